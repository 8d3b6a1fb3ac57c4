// Checks the generated test PKI against what other tests rely on: every promised file,
// the passwords (including non-ASCII ones) opening what they should, the chains, the
// dates, and the helpers in pki.h.
#include "tests/support/pki.h"

#include <gtest/gtest.h>
#include <openssl/cms.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "core/ossl.h"

namespace wsstep::testing {
namespace {

namespace fs = std::filesystem;
using ossl::EvpPkeyPtr;
using ossl::X509Ptr;

// The files other engineers' tests hard-code (the generator's contract).
constexpr const char* kPromisedFiles[] = {
    "ca/root.pem", "ca/root.key.pem", "ca/root.der", "ca/intermediate.pem",
    "ca/intermediate.key.pem", "ca/other-root.pem", "ca/other-root.key.pem",
    "trust/bundle.pem", "trust/root.der", "trust/other-bundle.pem",
    "server/localhost.pem", "server/localhost.key.pem", "server/localhost.chain.pem",
    "server/expired.pem", "server/expired.key.pem", "server/wrong-name.pem",
    "server/wrong-name.key.pem", "server/self-signed.pem", "server/self-signed.key.pem",
    "server/other-ca.pem", "server/other-ca.key.pem",
    "client/rsa.pem", "client/rsa.key.pem", "client/rsa.cert.der", "client/rsa.key.der",
    "client/rsa.chain.pem", "client/rsa.combined.pem", "client/rsa.combined-enc.pem",
    "client/rsa.key.pkcs8-aes.pem", "client/rsa.key.pkcs8-3des.pem",
    "client/rsa.key.pkcs8-pbes1.pem", "client/rsa.key.pkcs8-aes.der",
    "client/rsa.key.trad.pem", "client/rsa.key.trad-enc.pem", "client/rsa.leaf-only.pem",
    "client/ec256.pem", "client/ec256.key.pem", "client/ec384.pem", "client/ec384.key.pem",
    "client/ec521.pem", "client/ec521.key.pem", "client/ed25519.pem",
    "client/ed25519.key.pem", "client/second.pem", "client/second.key.pem",
    "client/second.chain.pem", "client/expired.pem", "client/expired.key.pem",
    "client/notyet.pem", "client/notyet.key.pem", "client/rsa1024.pem",
    "client/rsa1024.key.pem", "client/secp256k1.pem", "client/secp256k1.key.pem",
    "client/self-signed.pem", "client/self-signed.key.pem",
    "p12/rsa-modern.p12", "p12/rsa-legacy.p12", "p12/rsa-empty-password.p12",
    "p12/ec256.p12", "p12/cert-only.p12", "p12/java-modern.p12", "p12/java-truststore.p12",
    "jks/client.jks", "jks/client.jceks", "jks/truststore.jks", "jks/client.chain.pem",
    "mobile/profile.mobileprovision", "mobile/profile.expected",
    "garbage/random.bin", "garbage/truncated.p12", "garbage/not-a-cert.pem",
    "README.txt",
};

X509Ptr LoadCert(const std::string& rel) {
  std::string pem = ReadFile(PkiPath(rel));
  ossl::BioPtr bio = ossl::MemoryBio(pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) throw std::runtime_error("no certificate in " + rel);
  return cert;
}

std::vector<X509Ptr> LoadCerts(const std::string& rel) {
  std::string pem = ReadFile(PkiPath(rel));
  ossl::BioPtr bio = ossl::MemoryBio(pem);
  std::vector<X509Ptr> out;
  while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(c);
  ossl::ClearErrors();  // the loop ends on a "no start line" error
  return out;
}

EvpPkeyPtr LoadKey(const std::string& rel, std::string_view password = {}) {
  std::string pem = ReadFile(PkiPath(rel));
  ossl::BioPtr bio = ossl::MemoryBio(pem);
  std::string pass(password);
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr,
                                         pass.empty() ? nullptr : pass.data()));
  ossl::ClearErrors();
  return key;
}

std::string Subject(X509* cert) {
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

// Seconds from now to the certificate time (negative = in the past).
int64_t SecondsFromNow(const ASN1_TIME* t) {
  int days = 0, secs = 0;
  EXPECT_EQ(ASN1_TIME_diff(&days, &secs, nullptr, t), 1);
  return int64_t{days} * 86400 + secs;
}

constexpr int64_t kDay = 86400;

struct Pkcs12Contents {
  bool parsed = false;
  EvpPkeyPtr key;
  X509Ptr cert;
  ossl::X509StackPtr ca;
};

Pkcs12Contents ParseP12(const std::string& rel, std::string_view password) {
  Pkcs12Contents out;
  std::string der = ReadFile(PkiPath(rel));
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  ossl::Pkcs12Ptr p12(d2i_PKCS12(nullptr, &p, static_cast<long>(der.size())));
  if (p12 == nullptr) return out;
  std::string pass(password);
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  STACK_OF(X509)* ca = nullptr;
  out.parsed = PKCS12_parse(p12.get(), pass.c_str(), &key, &cert, &ca) == 1;
  out.key.reset(key);
  out.cert.reset(cert);
  out.ca.reset(ca);
  ossl::ClearErrors();
  return out;
}

// Legacy PKCS#12 (RC2-40) needs the legacy provider loaded together with the default one.
class LegacyProviders {
 public:
  LegacyProviders()
      : legacy_(OSSL_PROVIDER_load(nullptr, "legacy")),
        default_(OSSL_PROVIDER_load(nullptr, "default")) {}
  ~LegacyProviders() {
    if (legacy_ != nullptr) OSSL_PROVIDER_unload(legacy_);
    if (default_ != nullptr) OSSL_PROVIDER_unload(default_);
  }
  bool ok() const { return legacy_ != nullptr && default_ != nullptr; }

 private:
  OSSL_PROVIDER* legacy_;
  OSSL_PROVIDER* default_;
};

TEST(PkiTest, EveryPromisedFileExistsAndIsNotEmpty) {
  for (const char* rel : kPromisedFiles) {
    std::error_code ec;
    EXPECT_GT(fs::file_size(PkiPath(rel), ec), 0u) << rel << " " << ec.message();
  }
}

TEST(PkiTest, ReadmeListsExactlyTheFilesOnDisk) {
  std::istringstream readme(ReadFile(PkiPath("README.txt")));
  std::set<std::string> listed;
  for (std::string line; std::getline(readme, line);) {
    size_t colon = line.find(": ");
    if (colon == std::string::npos || line.find('/') > colon) {
      if (line.rfind("README.txt: ", 0) == 0) listed.insert("README.txt");
      continue;
    }
    listed.insert(line.substr(0, colon));
  }
  std::set<std::string> on_disk;
  for (const auto& e : fs::recursive_directory_iterator(PkiDir())) {
    if (!e.is_regular_file()) continue;
    std::string rel = fs::relative(e.path(), PkiDir()).string();
    // Tests that sign with our CAs may leave OpenSSL's serial bookkeeping (*.srl) behind.
    if (rel[0] != '.' && !rel.ends_with(".srl")) on_disk.insert(rel);
  }
  EXPECT_EQ(listed, on_disk);
  for (const char* rel : kPromisedFiles) EXPECT_TRUE(listed.count(rel)) << rel;
}

TEST(PkiTest, PasswordConstantsMatchPasswordsSh) {
  std::string source = std::getenv("WSSTEP_SOURCE_DIR") != nullptr
                           ? std::getenv("WSSTEP_SOURCE_DIR")
                           : WSSTEP_SOURCE_DIR;
  std::istringstream script(ReadFile(source + "/tests/pki/passwords.sh"));
  std::map<std::string, std::string> vars;
  for (std::string line; std::getline(script, line);) {
    size_t eq = line.find("='");
    if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
    ASSERT_EQ(line.back(), '\'') << line;
    vars[line.substr(0, eq)] = line.substr(eq + 2, line.size() - eq - 3);
  }
  EXPECT_EQ(vars["P12_PASSWORD"], pki::kP12Password);
  EXPECT_EQ(vars["KEY_PASSWORD"], pki::kKeyPassword);
  EXPECT_EQ(vars["STORE_PASSWORD"], pki::kStorePassword);
  EXPECT_EQ(vars["JKS_KEY_PASSWORD"], pki::kJksKeyPassword);
  EXPECT_EQ(vars["JAVA_P12_PASSWORD"], pki::kJavaP12Password);
  EXPECT_EQ(vars.size(), 5u);
  // The non-ASCII passwords really are non-ASCII UTF-8 (a space, and a multi-byte char).
  EXPECT_EQ(pki::kP12Password, "p12 p\u00e4ssw\u00f6rd");
  EXPECT_EQ(pki::kStorePassword, "store pass \u2603");
  EXPECT_NE(pki::kStorePassword, pki::kJksKeyPassword);
}

TEST(PkiTest, ModernP12OpensWithTheNonAsciiPasswordOnly) {
  Pkcs12Contents p12 = ParseP12("p12/rsa-modern.p12", pki::kP12Password);
  ASSERT_TRUE(p12.parsed);
  ASSERT_NE(p12.key, nullptr);
  ASSERT_NE(p12.cert, nullptr);
  EXPECT_EQ(X509_check_private_key(p12.cert.get(), p12.key.get()), 1);
  EXPECT_EQ(ossl::Sha256Fingerprint(p12.cert.get()),
            Sha256FingerprintOfPemFile(PkiPath("client/rsa.pem")));
  ASSERT_NE(p12.ca, nullptr);
  ASSERT_EQ(sk_X509_num(p12.ca.get()), 1);
  EXPECT_EQ(Subject(sk_X509_value(p12.ca.get(), 0)),
            "CN=wsstep Test Intermediate CA,O=wsstep tests");
  int name_len = 0;
  unsigned char* alias = X509_alias_get0(p12.cert.get(), &name_len);
  ASSERT_NE(alias, nullptr);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(alias), static_cast<size_t>(name_len)),
            "rsa-client");

  EXPECT_FALSE(ParseP12("p12/rsa-modern.p12", "p12 passwort").parsed);
  // Latin-1 bytes of the same text are a different password: passwords are bytes.
  EXPECT_FALSE(ParseP12("p12/rsa-modern.p12", "p12 p\xE4ssw\xF6rd").parsed);
}

TEST(PkiTest, LegacyP12NeedsLegacyAndDefaultProviders) {
  LegacyProviders providers;
  ASSERT_TRUE(providers.ok()) << ossl::DrainErrors();
  Pkcs12Contents p12 = ParseP12("p12/rsa-legacy.p12", pki::kP12Password);
  ASSERT_TRUE(p12.parsed);
  EXPECT_EQ(X509_check_private_key(p12.cert.get(), p12.key.get()), 1);
  EXPECT_EQ(sk_X509_num(p12.ca.get()), 1);
}

TEST(PkiTest, OtherOpensslP12s) {
  Pkcs12Contents empty = ParseP12("p12/rsa-empty-password.p12", "");
  ASSERT_TRUE(empty.parsed);
  EXPECT_NE(empty.key, nullptr);

  Pkcs12Contents ec = ParseP12("p12/ec256.p12", pki::kP12Password);
  ASSERT_TRUE(ec.parsed);
  ASSERT_NE(ec.key, nullptr);
  EXPECT_EQ(EVP_PKEY_get_base_id(ec.key.get()), EVP_PKEY_EC);

  Pkcs12Contents certs = ParseP12("p12/cert-only.p12", pki::kP12Password);
  ASSERT_TRUE(certs.parsed);
  EXPECT_EQ(certs.key, nullptr);
}

TEST(PkiTest, JavaModernP12HasAThreeCertificateChain) {
  Pkcs12Contents p12 = ParseP12("p12/java-modern.p12", pki::kJavaP12Password);
  ASSERT_TRUE(p12.parsed);
  ASSERT_NE(p12.key, nullptr);
  ASSERT_NE(p12.cert, nullptr);
  EXPECT_EQ(Subject(p12.cert.get()), "CN=java-modern,O=wsstep tests");
  EXPECT_EQ(X509_check_private_key(p12.cert.get(), p12.key.get()), 1);
  ASSERT_NE(p12.ca, nullptr);
  EXPECT_EQ(1 + sk_X509_num(p12.ca.get()), 3);
  // Java cannot use the non-ASCII store password for PKCS#12 (see pki.h).
  EXPECT_FALSE(ParseP12("p12/java-modern.p12", pki::kStorePassword).parsed);

  Pkcs12Contents trust = ParseP12("p12/java-truststore.p12", pki::kJavaP12Password);
  ASSERT_TRUE(trust.parsed);
  EXPECT_EQ(trust.key, nullptr);
  // PKCS12_parse puts certificates without a matching key into `ca`.
  int total = (trust.cert != nullptr ? 1 : 0) + (trust.ca ? sk_X509_num(trust.ca.get()) : 0);
  EXPECT_EQ(total, 2);
}

TEST(PkiTest, EncryptedKeysOpenWithTheKeyPassword) {
  EvpPkeyPtr plain = LoadKey("client/rsa.key.pem");
  ASSERT_NE(plain, nullptr);
  for (const char* rel : {"client/rsa.key.pkcs8-aes.pem", "client/rsa.key.pkcs8-3des.pem",
                          "client/rsa.key.pkcs8-pbes1.pem", "client/rsa.key.trad-enc.pem",
                          "client/rsa.combined-enc.pem"}) {
    EvpPkeyPtr key = LoadKey(rel, pki::kKeyPassword);
    ASSERT_NE(key, nullptr) << rel;
    EXPECT_EQ(EVP_PKEY_eq(key.get(), plain.get()), 1) << rel;
    EXPECT_EQ(LoadKey(rel, "wrong"), nullptr) << rel;
  }
  EXPECT_NE(ReadFile(PkiPath("client/rsa.key.trad-enc.pem")).find("Proc-Type: 4,ENCRYPTED"),
            std::string::npos);
  EXPECT_EQ(ReadFile(PkiPath("client/rsa.key.trad.pem")).rfind("-----BEGIN RSA PRIVATE KEY", 0),
            0u);

  std::string der = ReadFile(PkiPath("client/rsa.key.pkcs8-aes.der"));
  ossl::BioPtr bio = ossl::MemoryBio(der);
  std::string pass(pki::kKeyPassword);
  EvpPkeyPtr from_der(d2i_PKCS8PrivateKey_bio(bio.get(), nullptr, nullptr, pass.data()));
  ASSERT_NE(from_der, nullptr) << ossl::DrainErrors();
  EXPECT_EQ(EVP_PKEY_eq(from_der.get(), plain.get()), 1);
}

TEST(PkiTest, ClientChainsVerifyAndTheOddOnesOut) {
  X509Ptr root = LoadCert("ca/root.pem");
  X509Ptr inter = LoadCert("ca/intermediate.pem");
  auto verify = [&](const std::string& rel, const char* host) {
    X509Ptr leaf = LoadCert(rel);
    ossl::X509StorePtr store(X509_STORE_new());
    X509_STORE_add_cert(store.get(), root.get());
    ossl::X509StackPtr untrusted(sk_X509_new_null());
    sk_X509_push(untrusted.get(), ossl::UpRef(inter.get()).release());
    std::unique_ptr<X509_STORE_CTX, ossl::Deleter<X509_STORE_CTX_free>> ctx(
        X509_STORE_CTX_new());
    X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), untrusted.get());
    if (host != nullptr) {
      X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(ctx.get()), host, 0);
    }
    X509_verify_cert(ctx.get());
    return X509_STORE_CTX_get_error(ctx.get());
  };
  EXPECT_EQ(verify("client/rsa.pem", nullptr), X509_V_OK);
  EXPECT_EQ(verify("client/ec384.pem", nullptr), X509_V_OK);
  EXPECT_EQ(verify("client/ed25519.pem", nullptr), X509_V_OK);
  EXPECT_EQ(verify("client/second.pem", nullptr), X509_V_OK);
  EXPECT_EQ(verify("jks/client.chain.pem", nullptr), X509_V_OK);
  EXPECT_EQ(verify("server/localhost.pem", "localhost"), X509_V_OK);
  EXPECT_EQ(verify("client/expired.pem", nullptr), X509_V_ERR_CERT_HAS_EXPIRED);
  EXPECT_EQ(verify("client/notyet.pem", nullptr), X509_V_ERR_CERT_NOT_YET_VALID);
  EXPECT_EQ(verify("server/expired.pem", "localhost"), X509_V_ERR_CERT_HAS_EXPIRED);
  EXPECT_EQ(verify("server/wrong-name.pem", "localhost"), X509_V_ERR_HOSTNAME_MISMATCH);
  EXPECT_EQ(verify("server/self-signed.pem", "localhost"),
            X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
  EXPECT_EQ(verify("client/self-signed.pem", nullptr), X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
  EXPECT_EQ(verify("server/other-ca.pem", "localhost"),
            X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);

  X509Ptr server = LoadCert("server/localhost.pem");
  EXPECT_EQ(X509_check_ip_asc(server.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(Subject(root.get()), "CN=wsstep Test Root CA,O=wsstep tests");
  EXPECT_EQ(Subject(LoadCert("client/rsa.pem").get()), "CN=rsa,O=wsstep tests");
  EXPECT_EQ(Subject(LoadCert("client/second.pem").get()), "CN=wsstep client B,O=wsstep tests");
  EXPECT_EQ(LoadCerts("client/rsa.chain.pem").size(), 2u);
  EXPECT_EQ(LoadCerts("server/localhost.chain.pem").size(), 2u);
  EXPECT_EQ(LoadCerts("trust/bundle.pem").size(), 2u);
  EXPECT_EQ(LoadCerts("client/rsa.combined.pem").size(), 2u);
  EXPECT_NE(LoadKey("client/rsa.combined.pem"), nullptr);
}

TEST(PkiTest, DatesAreWhatTheFilesClaim) {
  X509Ptr rsa = LoadCert("client/rsa.pem");
  EXPECT_NEAR(SecondsFromNow(X509_get0_notBefore(rsa.get())), -kDay, kDay / 2);
  EXPECT_GT(SecondsFromNow(X509_get0_notAfter(rsa.get())), 300 * kDay);

  for (const char* rel : {"client/expired.pem", "server/expired.pem"}) {
    X509Ptr c = LoadCert(rel);
    EXPECT_LT(SecondsFromNow(X509_get0_notBefore(c.get())), 0) << rel;
    EXPECT_LT(SecondsFromNow(X509_get0_notAfter(c.get())), -20 * kDay) << rel;
  }
  X509Ptr notyet = LoadCert("client/notyet.pem");
  EXPECT_GT(SecondsFromNow(X509_get0_notBefore(notyet.get())), 20 * kDay);
  EXPECT_GT(SecondsFromNow(X509_get0_notAfter(notyet.get())), 300 * kDay);
}

TEST(PkiTest, KeyAlgorithms) {
  auto curve = [](const std::string& rel) {
    EvpPkeyPtr key = LoadKey(rel);
    char name[64] = {};
    size_t len = 0;
    EVP_PKEY_get_utf8_string_param(key.get(), "group", name, sizeof(name), &len);
    return std::string(name, len);
  };
  EXPECT_EQ(curve("client/ec256.key.pem"), "prime256v1");
  EXPECT_EQ(curve("client/ec384.key.pem"), "secp384r1");
  EXPECT_EQ(curve("client/ec521.key.pem"), "secp521r1");
  EXPECT_EQ(curve("client/secp256k1.key.pem"), "secp256k1");
  EXPECT_EQ(EVP_PKEY_get_base_id(LoadKey("client/ed25519.key.pem").get()), EVP_PKEY_ED25519);
  EXPECT_EQ(EVP_PKEY_get_bits(LoadKey("client/rsa1024.key.pem").get()), 1024);
  EXPECT_EQ(EVP_PKEY_get_bits(LoadKey("client/rsa.key.pem").get()), 2048);
  EXPECT_EQ(ReadFile(PkiPath("client/rsa.key.pem")).rfind("-----BEGIN PRIVATE KEY", 0), 0u);
  // Each client certificate carries its own key.
  for (const char* name : {"rsa", "ec256", "ec384", "ec521", "ed25519", "second", "expired",
                           "notyet", "rsa1024", "secp256k1", "self-signed"}) {
    std::string base = std::string("client/") + name;
    EXPECT_EQ(X509_check_private_key(LoadCert(base + ".pem").get(),
                                     LoadKey(base + ".key.pem").get()),
              1)
        << name;
  }
  EXPECT_NE(X509_check_private_key(LoadCert("client/second.pem").get(),
                                   LoadKey("client/rsa.key.pem").get()),
            1);
  ossl::ClearErrors();
}

TEST(PkiTest, JavaStoresHaveTheirMagic) {
  EXPECT_EQ(ReadFile(PkiPath("jks/client.jks")).substr(0, 4), "\xFE\xED\xFE\xED");
  EXPECT_EQ(ReadFile(PkiPath("jks/truststore.jks")).substr(0, 4), "\xFE\xED\xFE\xED");
  EXPECT_EQ(ReadFile(PkiPath("jks/client.jceks")).substr(0, 4), "\xCE\xCE\xCE\xCE");
  EXPECT_EQ(Subject(LoadCert("jks/client.chain.pem").get()), "CN=jks-client,O=wsstep tests");
}

TEST(PkiTest, MobileProvisionCarriesTheExpectedPlist) {
  std::map<std::string, std::string> expected;
  std::istringstream lines(ReadFile(PkiPath("mobile/profile.expected")));
  for (std::string line; std::getline(lines, line);) {
    size_t eq = line.find('=');
    if (eq != std::string::npos) expected[line.substr(0, eq)] = line.substr(eq + 1);
  }
  ASSERT_EQ(expected["Name"], "wsstep Test Profile");
  ASSERT_EQ(expected["TeamIdentifier"], "TEAM123456");
  ASSERT_EQ(expected["UUID"].size(), 36u);

  std::string der = ReadFile(PkiPath("mobile/profile.mobileprovision"));
  ossl::BioPtr in = ossl::MemoryBio(der);
  std::unique_ptr<CMS_ContentInfo, ossl::Deleter<CMS_ContentInfo_free>> cms(
      d2i_CMS_bio(in.get(), nullptr));
  ASSERT_NE(cms, nullptr);
  ASSERT_EQ(OBJ_obj2nid(CMS_get0_type(cms.get())), NID_pkcs7_signed);
  ASN1_OCTET_STRING** content = CMS_get0_content(cms.get());
  ASSERT_TRUE(content != nullptr && *content != nullptr);
  std::string plist(reinterpret_cast<const char*>(ASN1_STRING_get0_data(*content)),
                    static_cast<size_t>(ASN1_STRING_length(*content)));
  EXPECT_NE(plist.find("<string>wsstep Test Profile</string>"), std::string::npos);
  EXPECT_NE(plist.find("<string>" + expected["UUID"] + "</string>"), std::string::npos);
  EXPECT_NE(plist.find("<date>" + expected["ExpirationDate"] + "</date>"), std::string::npos);
  EXPECT_EQ(expected["DeveloperCertificateSha256"],
            Sha256FingerprintOfPemFile(PkiPath("client/rsa.pem")));

  std::tm tm{};
  ASSERT_NE(strptime(expected["ExpirationDate"].c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm), nullptr);
  int64_t in_days = (timegm(&tm) - std::time(nullptr)) / kDay;
  EXPECT_GE(in_days, 82);  // 90 days at generation; the PKI is regenerated weekly
  EXPECT_LE(in_days, 90);
}

TEST(PkiTest, GarbageIsGarbage) {
  EXPECT_EQ(ReadFile(PkiPath("garbage/random.bin")).size(), 4096u);
  EXPECT_EQ(ReadFile(PkiPath("garbage/truncated.p12")).size(),
            ReadFile(PkiPath("p12/rsa-modern.p12")).size() / 2);
  EXPECT_THROW(Sha256FingerprintOfPemFile(PkiPath("garbage/not-a-cert.pem")),
               std::runtime_error);
}

TEST(PkiHelpersTest, FingerprintOfPemAndDerAgree) {
  std::string fp = Sha256FingerprintOfPemFile(PkiPath("client/rsa.pem"));
  EXPECT_EQ(fp.size(), 32u * 3 - 1);
  EXPECT_EQ(fp, Sha256FingerprintOfPemFile(PkiPath("client/rsa.cert.der")));
  EXPECT_EQ(fp, Sha256FingerprintOfPemFile(PkiPath("client/rsa.chain.pem")));
  EXPECT_NE(fp, Sha256FingerprintOfPemFile(PkiPath("client/second.pem")));
  EXPECT_EQ(fp.find_first_of("ABCDEF"), std::string::npos);
}

TEST(PkiHelpersTest, ReadFileNamesTheMissingFile) {
  try {
    ReadFile(PkiPath("client/no-such-file.pem"));
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("client/no-such-file.pem"), std::string::npos);
  }
}

TEST(PkiHelpersTest, SecretFileHasTheFileBytes) {
  SecretBytes secret = ReadSecretFile(PkiPath("p12/rsa-modern.p12"));
  EXPECT_EQ(secret.view(), ReadFile(PkiPath("p12/rsa-modern.p12")));
}

TEST(PkiHelpersTest, TempDirIsRemovedRecursively) {
  std::string path;
  {
    TempDir dir("pki-test-");
    path = dir.path();
    EXPECT_TRUE(fs::is_directory(path));
    EXPECT_NE(path.find("pki-test-"), std::string::npos);
    fs::create_directories(dir.Path("a/b"));
    WriteFile(dir.Path("a/b/c.txt"), "hello");
    EXPECT_EQ(ReadFile(dir.Path("a/b/c.txt")), "hello");
    TempDir moved = std::move(dir);
    EXPECT_EQ(moved.path(), path);
  }
  EXPECT_FALSE(fs::exists(path));
  TempDir a("pki-test-"), b("pki-test-");
  EXPECT_NE(a.path(), b.path());
}

}  // namespace
}  // namespace wsstep::testing

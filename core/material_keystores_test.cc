// ParseMaterial for key stores and the rest: Java key stores and Java PKCS#12, mobile
// provisioning profiles, hostile uploads, and the encodings the store keeps. Metadata,
// passwords, validation and formats are in material_test.cc.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>

#include "core/material.h"
#include "core/material_testing.h"
#include "core/x509_info.h"

namespace wsstep::core {
namespace {

using namespace material_testing;  // NOLINT: the shared helpers of these tests
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// ======================================================================================
// Java key stores and Java PKCS#12

TEST(JavaTest, KeyEntryWithTrustedEntry) {
  ossl::X509Ptr expected_leaf = PemCert("jks/client.chain.pem");
  for (const char* file : {"jks/client.jks", "jks/client.jceks"}) {
    Upload u = OfType(EntryType::kJavaKeystore, file, kStorePassword);
    u.key_password = kJksKeyPassword;
    auto r = Import(u);
    ASSERT_TRUE(r.ok()) << file << ": " << Describe(r);
    EntryMetadata m;
    DescribeMaterial(*r, m);
    ASSERT_TRUE(m.certificate);
    EXPECT_EQ(*m.certificate, DescribeCertificate(expected_leaf.get()));
    EXPECT_EQ(m.certificate->sha256_fingerprint,
              Lower(OpensslX509("jks/client.chain.pem", "-fingerprint -sha256")));
    EXPECT_EQ(m.key_alias, "client");
    EXPECT_EQ(m.source_format, std::string_view(file).ends_with("jceks") ? SourceFormat::kJceks
                                                                         : SourceFormat::kJks);
    EXPECT_TRUE(m.has_private_key);
    EXPECT_TRUE(m.has_password);
    ASSERT_EQ(r->chain.size(), 1u);
    EXPECT_EQ(m.chain_subjects.back(),
              OpensslX509("ca/intermediate.pem", "-subject -nameopt RFC2253"));
    ASSERT_EQ(m.trusted.size(), 1u);
    EXPECT_EQ(m.trusted[0], DescribeCertificate(PemCert("ca/root.pem").get()));
    EXPECT_TRUE(r->warnings.empty());

    u.alias = "CLIENT";  // aliases compare case-insensitively, as Java's do
    EXPECT_TRUE(Import(u).ok());
    u.alias = "root";
    auto wrong = Import(u);
    ASSERT_EQ(wrong.code(), Code::kInvalidCertificateFormat);
    EXPECT_THAT(wrong.error().message, HasSubstr("no private key entry named 'root'"));
  }
}

TEST(JavaTest, TrustedOnlyStoreAsJavaKeystore) {
  auto r = Import(OfType(EntryType::kJavaKeystore, "jks/truststore.jks", kStorePassword));
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_FALSE(r->leaf);
  EXPECT_EQ(r->trusted.size(), 2u);
}

TEST(JavaTest, JavaPkcs12KeyStore) {
  auto r = Import(OfType(EntryType::kPkcs12, "p12/java-modern.p12", kJavaP12Password));
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r->key_alias, "client");
  EXPECT_EQ(DescribeCertificate(r->leaf.get()).subject, "CN=java-modern,O=wsstep tests");
  EntryMetadata m;
  DescribeMaterial(*r, m);
  // Sending order: leaf, intermediate, root.
  EXPECT_THAT(m.chain_subjects,
              ElementsAre("CN=java-modern,O=wsstep tests",
                          OpensslX509("ca/intermediate.pem", "-subject -nameopt RFC2253"),
                          OpensslX509("ca/root.pem", "-subject -nameopt RFC2253")));
}

// One bag of a PKCS#12 built here: a certificate, and its key when `key` is set (paired
// by localKeyID and friendly name).
struct Bag {
  const char* cert;
  const char* key = nullptr;
  const char* alias = nullptr;
};

// A PKCS#12 of `bags` in this order, AES-256 keys and a SHA-256 MAC: for layouts no tool
// writes in one command.
std::string Pkcs12OfBags(const std::vector<Bag>& list, std::string_view password) {
  STACK_OF(PKCS12_SAFEBAG)* bags = nullptr;
  std::string pw(password);
  std::vector<ossl::X509Ptr> certs;
  std::vector<ossl::EvpPkeyPtr> keys;
  for (const Bag& bag : list) {
    certs.push_back(PemCert(bag.cert));
    PKCS12_SAFEBAG* cb = PKCS12_add_cert(&bags, certs.back().get());
    if (bag.key == nullptr) continue;
    keys.push_back(PemKey(bag.key));
    unsigned char kid[1] = {static_cast<unsigned char>(keys.size())};
    PKCS12_add_friendlyname_asc(cb, bag.alias, -1);
    PKCS12_add_localkeyid(cb, kid, 1);
    PKCS12_SAFEBAG* kb =
        PKCS12_add_key(&bags, keys.back().get(), 0, 2048, NID_aes_256_cbc, pw.c_str());
    PKCS12_add_friendlyname_asc(kb, bag.alias, -1);
    PKCS12_add_localkeyid(kb, kid, 1);
  }
  STACK_OF(PKCS7)* safes = nullptr;
  PKCS12_add_safe(&safes, bags, -1, 0, nullptr);
  sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
  ossl::Pkcs12Ptr p12(PKCS12_add_safes(safes, 0));
  sk_PKCS7_pop_free(safes, PKCS7_free);
  PKCS12_set_mac(p12.get(), pw.c_str(), -1, nullptr, 0, 2048, EVP_sha256());
  unsigned char* der = nullptr;
  int len = i2d_PKCS12(p12.get(), &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

// A PKCS#12 with two identities and the intermediate.
std::string TwoIdentityPkcs12(std::string_view password) {
  return Pkcs12OfBags({{"client/rsa.pem", "client/rsa.key.pem", "first"},
                       {"client/ec256.pem", "client/ec256.key.pem", "second"},
                       {"ca/intermediate.pem"}},
                      password);
}

// keytool's PKCS#12 of a key entry plus the CAs as trusted entries lists every CA twice:
// leaf, intermediate, root, root, intermediate. The chain keeps each once, in sending
// order, whatever order the repeats come in.
TEST(JavaTest, ACertificateListedTwiceIsInTheChainOnce) {
  const std::string intermediate = OpensslX509("ca/intermediate.pem", "-subject -nameopt RFC2253");
  const std::string root = OpensslX509("ca/root.pem", "-subject -nameopt RFC2253");
  for (const auto& order :
       std::vector<std::vector<Bag>>{{{"client/rsa.pem", "client/rsa.key.pem", "client"},
                                      {"ca/intermediate.pem"},
                                      {"ca/root.pem"},
                                      {"ca/root.pem"},
                                      {"ca/intermediate.pem"}},
                                     {{"ca/root.pem"},
                                      {"client/rsa.pem", "client/rsa.key.pem", "client"},
                                      {"ca/root.pem"},
                                      {"client/rsa.pem"},
                                      {"ca/intermediate.pem"},
                                      {"ca/intermediate.pem"}}}) {
    SecretBytes p12(Pkcs12OfBags(order, kP12Password));
    auto r = ImportBytes(OfType(EntryType::kPkcs12, "keytool.p12", kP12Password), p12, nullptr);
    ASSERT_TRUE(r.ok()) << Describe(r);
    EntryMetadata m;
    DescribeMaterial(*r, m);
    EXPECT_THAT(m.chain_subjects, ElementsAre("CN=rsa,O=wsstep tests", intermediate, root));
    ASSERT_EQ(r->chain.size(), 2u);
  }
  // A PEM bundle with a repeated intermediate, the same.
  Upload pem;
  pem.content = "bundle.pem";
  SecretBytes bundle(Pki("client/rsa.pem") + Pki("ca/intermediate.pem") + Pki("ca/root.pem") +
                     Pki("ca/intermediate.pem"));
  SecretBytes key(Pki("client/rsa.key.pem"));
  pem.key = "rsa.key.pem";
  auto r = ImportBytes(pem, bundle, &key);
  ASSERT_TRUE(r.ok()) << Describe(r);
  EntryMetadata m;
  DescribeMaterial(*r, m);
  EXPECT_THAT(m.chain_subjects, ElementsAre("CN=rsa,O=wsstep tests", intermediate, root));
}

TEST(JavaTest, SeveralKeysNeedAnAlias) {
  SecretBytes p12(TwoIdentityPkcs12(kP12Password));
  Upload u = OfType(EntryType::kPkcs12, "two.p12", kP12Password);
  auto r = ImportBytes(u, p12, nullptr);
  ASSERT_EQ(r.code(), Code::kInvalidCertificateFormat) << Describe(r);
  EXPECT_EQ(r.error().message,
            "two.p12: holds 2 private keys ('first', 'second'); say which one to import");
  u.alias = "Second";
  r = ImportBytes(u, p12, nullptr);
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r->key_alias, "second");
  EXPECT_EQ(DescribeCertificate(r->leaf.get()).subject, "CN=ec256,O=wsstep tests");
  // The other identity's certificate is not part of this one's chain.
  ASSERT_EQ(r->chain.size(), 1u);
  EXPECT_EQ(DescribeCertificate(r->chain[0].get()),
            DescribeCertificate(PemCert("ca/intermediate.pem").get()));
  u.alias = "third";
  r = ImportBytes(u, p12, nullptr);
  ASSERT_EQ(r.code(), Code::kInvalidCertificateFormat);
  EXPECT_EQ(r.error().detail.at("aliases"), "'first', 'second'");
}

// ======================================================================================
// Mobile provisioning

std::map<std::string, std::string> ExpectedProfile() {
  std::map<std::string, std::string> out;
  std::istringstream in(Pki("mobile/profile.expected"));
  std::string line;
  while (std::getline(in, line)) {
    size_t eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}

TEST(MobileProvisionTest, ProfileFactsAndCertificates) {
  auto expected = ExpectedProfile();
  auto r = Import(OfType(EntryType::kMobileProvisioning, "mobile/profile.mobileprovision"));
  ASSERT_TRUE(r.ok()) << Describe(r);
  EntryMetadata m;
  DescribeMaterial(*r, m);
  EXPECT_EQ(m.source_format, SourceFormat::kMobileProvision);
  EXPECT_FALSE(m.has_private_key);
  EXPECT_FALSE(r->key);
  EXPECT_TRUE(r->key_pkcs8_der.empty());
  EXPECT_EQ(m.attributes.at("name"), expected.at("Name"));
  EXPECT_EQ(m.attributes.at("app_id_name"), expected.at("AppIDName"));
  EXPECT_EQ(m.attributes.at("team"), expected.at("TeamIdentifier"));
  EXPECT_EQ(m.attributes.at("uuid"), expected.at("UUID"));
  EXPECT_EQ(m.attributes.at("profile_expires"), expected.at("ExpirationDate"));
  EXPECT_EQ(m.attributes.at("profile_created"), expected.at("CreationDate"));
  ASSERT_TRUE(m.certificate);
  EXPECT_EQ(m.certificate->sha256_fingerprint, expected.at("DeveloperCertificateSha256"));
  EXPECT_EQ(std::to_string(1 + r->chain.size()), expected.at("DeveloperCertificateCount"));
}

// A SignedData over `plist`, signed by client/rsa like the generator's profile.
std::string SignedProfile(const std::string& plist) {
  std::string dir = Shell("mktemp -d");
  std::ofstream(dir + "/p.plist", std::ios::binary) << plist;
  Shell("openssl cms -sign -nodetach -binary -outform DER -in " + dir + "/p.plist -signer '" +
        PkiPath("client/rsa.pem") + "' -inkey '" + PkiPath("client/rsa.key.pem") + "' -out " + dir +
        "/p.mobileprovision");
  std::string out = ReadFile(dir + "/p.mobileprovision");
  std::filesystem::remove_all(dir);
  return out;
}

TEST(MobileProvisionTest, HostileOrIncompletePlistsAreRefused) {
  std::string cert_b64 =
      Shell("openssl x509 -in '" + PkiPath("client/rsa.pem") + "' -outform DER | base64 -w 64");
  std::string body =
      "<plist version=\"1.0\"><dict><key>Name</key><string>&xxe;</string>"
      "<key>ExpirationDate</key><date>2030-01-01T00:00:00Z</date>"
      "<key>DeveloperCertificates</key><array><data>" +
      cert_b64 + "</data></array></dict></plist>";
  struct Case {
    std::string plist;
    const char* message;
  };
  for (const Case& c : {
           Case{"<?xml version=\"1.0\"?><!DOCTYPE plist [<!ENTITY xxe SYSTEM "
                "\"file:///etc/passwd\">]>" +
                    body,
                "p.mobileprovision: the property list declares entities or an internal DTD, "
                "which is refused"},
           Case{"<plist><dict><key>Name</key><string>x</string></dict></plist>",
                "p.mobileprovision: the profile has no ExpirationDate"},
           Case{"<plist><dict><key>ExpirationDate</key><date>soon</date></dict></plist>",
                "p.mobileprovision: the profile's ExpirationDate is not a valid date"},
           Case{"<plist><dict><key>ExpirationDate</key><date>2030-01-01T00:00:00Z</date>"
                "<key>DeveloperCertificates</key><array><data>AAAA</data></array></dict></plist>",
                "p.mobileprovision: developer certificate 1 in the profile is not a valid "
                "certificate"},
           Case{"<plist><dict>",
                "p.mobileprovision: the property list is not valid XML "
                "(Start-end tags mismatch)"},
       }) {
    SecretBytes profile(SignedProfile(c.plist));
    auto r =
        ImportBytes(OfType(EntryType::kMobileProvisioning, "p.mobileprovision"), profile, nullptr);
    ASSERT_EQ(r.code(), Code::kInvalidCertificateFormat) << Describe(r);
    EXPECT_EQ(r.error().message, c.message);
  }
  // Apple's own DOCTYPE (no internal subset) is fine.
  std::string apple =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC "
      "\"-//Apple//DTD PLIST 1.0//EN\" "
      "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n" +
      body;
  apple.replace(apple.find("&xxe;"), 5, "ok");
  SecretBytes profile(SignedProfile(apple));
  auto r =
      ImportBytes(OfType(EntryType::kMobileProvisioning, "p.mobileprovision"), profile, nullptr);
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(r->attributes.at("name"), "ok");
  EXPECT_EQ(r->attributes.at("profile_expires"), "2030-01-01T00:00:00Z");
}

// ======================================================================================
// Hostile input

// rsa.key.pkcs8-aes.der with its PBKDF2 iteration count replaced.
std::string Pkcs8WithIterations(long iterations) {
  std::string der = Pki("client/rsa.key.pkcs8-aes.der");
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  ossl::X509SigPtr sig(d2i_X509_SIG(nullptr, &p, static_cast<long>(der.size())));
  X509_ALGOR* alg = nullptr;
  X509_SIG_getm(sig.get(), &alg, nullptr);
  PBE2PARAM* pbe2 =
      static_cast<PBE2PARAM*>(ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBE2PARAM), alg->parameter));
  PBKDF2PARAM* kdf = static_cast<PBKDF2PARAM*>(
      ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBKDF2PARAM), pbe2->keyfunc->parameter));
  ASN1_INTEGER_set(kdf->iter, iterations);
  ASN1_TYPE_pack_sequence(ASN1_ITEM_rptr(PBKDF2PARAM), kdf, &pbe2->keyfunc->parameter);
  ASN1_TYPE_pack_sequence(ASN1_ITEM_rptr(PBE2PARAM), pbe2, &alg->parameter);
  PBKDF2PARAM_free(kdf);
  PBE2PARAM_free(pbe2);
  unsigned char* out = nullptr;
  int len = i2d_X509_SIG(sig.get(), &out);
  std::string result(reinterpret_cast<char*>(out), static_cast<size_t>(len));
  OPENSSL_free(out);
  return result;
}

TEST(HostileInputTest, AbsurdKdfIterationCountsAreRefusedBeforeDeriving) {
  SecretBytes cert(Pki("client/rsa.pem"));
  SecretBytes key(Pkcs8WithIterations(2'000'000'000));
  Upload u = KeyPair("rsa.pem", "slow.der", kKeyPassword);
  auto r = ImportBytes(u, cert, &key);
  ASSERT_EQ(r.code(), Code::kInvalidCertificateFormat) << Describe(r);
  EXPECT_EQ(r.error().message,
            "slow.der: the file asks for 2000000000 key-derivation iterations; wsstep accepts 1 "
            "to 5000000");
  // The edit itself is sound: with the original count the key still opens.
  SecretBytes same(Pkcs8WithIterations(2048));
  EXPECT_TRUE(ImportBytes(u, cert, &same).ok());
}

// Every byte position of a few small uploads flipped or cut: never a crash, never an
// unexpected code, never a leftover OpenSSL error. (The fuzz targets go further.)
TEST(HostileInputTest, DamagedUploadsFailCleanly) {
  struct Case {
    Upload upload;
    const char* file;
  };
  std::vector<Case> cases = {
      {OfType(EntryType::kKeyPair, "x", kKeyPassword), "client/rsa.combined-enc.pem"},
      {OfType(EntryType::kPkcs12, "x", kP12Password), "p12/ec256.p12"},
      {OfType(EntryType::kTrustStore, "x"), "trust/root.der"},
      {OfType(EntryType::kMobileProvisioning, "x"), "mobile/profile.mobileprovision"},
  };
  const std::set<Code> allowed = {Code::kOk,
                                  Code::kInvalidCertificateFormat,
                                  Code::kWrongPassword,
                                  Code::kPasswordRequired,
                                  Code::kPrivateKeyMissing,
                                  Code::kKeyCertMismatch,
                                  Code::kUnsupportedAlgorithm,
                                  Code::kCertificateExpired};
  std::mt19937 rng(20240601);
  for (const Case& c : cases) {
    std::string original = Pki(c.file);
    for (int i = 0; i < 150; ++i) {
      std::string damaged = original;
      size_t pos = rng() % damaged.size();
      if (i % 3 == 0) {
        damaged.resize(pos);
      } else {
        damaged[pos] = static_cast<char>(damaged[pos] ^ (1 + rng() % 255));
      }
      SecretBytes bytes(damaged);
      auto r = ImportBytes(c.upload, bytes, nullptr);
      EXPECT_TRUE(allowed.count(r.code())) << c.file << " at " << pos << ": " << Describe(r);
    }
  }
}

// ======================================================================================
// Stored encodings

TEST(StoredEncodingTest, CertificateAndKeyRoundTrip) {
  auto r = Import(KeyPair("client/ed25519.pem", "client/ed25519.key.pem"));
  ASSERT_TRUE(r.ok()) << Describe(r);
  auto cert = CertificateFromDer(ossl::CertificateDer(r->leaf.get()));
  ASSERT_TRUE(cert.ok());
  EXPECT_EQ(X509_cmp(cert->get(), r->leaf.get()), 0);
  auto key = KeyFromPkcs8Der(r->key_pkcs8_der);
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(EVP_PKEY_eq(key->get(), r->key.get()), 1);

  EXPECT_EQ(CertificateFromDer("not der").code(), Code::kInvalidCertificateFormat);
  EXPECT_EQ(KeyFromPkcs8Der(SecretBytes(std::string_view("not der"))).code(),
            Code::kInvalidCertificateFormat);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(StoredEncodingTest, ProvidersLoadOnceAndLegacyWorksAfter) {
  EnsureProvidersLoaded();
  EnsureProvidersLoaded();
  auto r = Import(OfType(EntryType::kPkcs12, "p12/rsa-legacy.p12", kP12Password));
  EXPECT_TRUE(r.ok()) << Describe(r);
}

}  // namespace
}  // namespace wsstep::core

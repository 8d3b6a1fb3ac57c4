#include "core/material.h"

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

#include "core/material_testing.h"
#include "core/x509_info.h"

namespace wsstep::core {
namespace {

using namespace material_testing;  // NOLINT: the shared helpers of these tests
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// ======================================================================================
// Metadata

TEST(DescribeTest, KeyPairMetadataMatchesOpenssl) {
  auto r = Import(KeyPair("client/rsa.chain.pem", "client/rsa.key.pem"));
  ASSERT_TRUE(r.ok()) << Describe(r);
  EntryMetadata m;
  DescribeMaterial(*r, m);
  ASSERT_TRUE(m.certificate.has_value());
  const CertificateInfo& c = *m.certificate;
  EXPECT_EQ(c.subject, OpensslX509("client/rsa.pem", "-subject -nameopt RFC2253"));
  EXPECT_EQ(c.subject, "CN=rsa,O=wsstep tests");
  EXPECT_EQ(c.issuer, OpensslX509("client/rsa.pem", "-issuer -nameopt RFC2253"));
  EXPECT_EQ(c.serial, Lower(OpensslX509("client/rsa.pem", "-serial")));
  EXPECT_EQ(c.not_before, OpensslDate("client/rsa.pem", "-startdate"));
  EXPECT_EQ(c.not_after, OpensslDate("client/rsa.pem", "-enddate"));
  EXPECT_EQ(c.sha256_fingerprint, Lower(OpensslX509("client/rsa.pem", "-fingerprint -sha256")));
  EXPECT_TRUE(c.sans.empty());
  EXPECT_EQ(c.key_algorithm, "RSA");
  EXPECT_EQ(c.key_bits, 2048);
  EXPECT_EQ(c.curve, "");
  EXPECT_FALSE(c.is_ca);
  EXPECT_THAT(m.chain_subjects,
              ElementsAre("CN=rsa,O=wsstep tests",
                          OpensslX509("ca/intermediate.pem", "-subject -nameopt RFC2253")));
  EXPECT_TRUE(m.trusted.empty());
  EXPECT_TRUE(m.has_private_key);
  EXPECT_FALSE(m.has_password);
  EXPECT_EQ(m.source_format, SourceFormat::kPem);
  EXPECT_EQ(m.key_alias, "");
  EXPECT_TRUE(r->warnings.empty());
}

TEST(DescribeTest, CaAndSansAndUtf8Names) {
  // A certificate with every common SAN type and a non-ASCII subject, made here so the
  // expected values are the ones we asked for.
  std::string dir = Shell("mktemp -d");
  std::string cert = dir + "/san.pem";
  Shell("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -keyout " + dir +
        "/k.pem -out " + cert +
        " -days 2 -utf8 -subj '/C=DE/O=M\xC3\xBCller, Inc/CN=s\xC3\xA4n\\+test'" +
        " -addext 'subjectAltName=DNS:a.example,DNS:*.b.example,IP:127.0.0.1,IP:2001:db8::1,"
        "email:ops@example.com,URI:spiffe://example/client'" +
        " -addext 'basicConstraints=critical,CA:TRUE'");
  std::string pem = ReadFile(cert);
  ossl::BioPtr bio = ossl::MemoryBio(pem);
  ossl::X509Ptr x(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(x);
  CertificateInfo info = DescribeCertificate(x.get());
  EXPECT_THAT(info.sans,
              ElementsAre("DNS:a.example", "DNS:*.b.example", "IP:127.0.0.1", "IP:2001:db8::1",
                          "email:ops@example.com", "URI:spiffe://example/client"));
  // RFC 2253 order and escaping (the comma, the plus), UTF-8 kept readable.
  EXPECT_EQ(info.subject, "CN=s\xC3\xA4n\\+test,O=M\xC3\xBCller\\, Inc,C=DE");
  EXPECT_EQ(info.issuer, info.subject);
  EXPECT_TRUE(info.is_ca);
  EXPECT_EQ(info.key_algorithm, "EC");
  EXPECT_EQ(info.key_bits, 384);
  EXPECT_EQ(info.curve, "P-384");
}

TEST(DescribeTest, ServerSansAndCaFlag) {
  ossl::X509Ptr server = PemCert("server/localhost.pem");
  EXPECT_THAT(DescribeCertificate(server.get()).sans, ElementsAre("DNS:localhost", "IP:127.0.0.1"));
  ossl::X509Ptr root = PemCert("ca/root.pem");
  EXPECT_TRUE(DescribeCertificate(root.get()).is_ca);
}

TEST(DescribeTest, KeyAlgorithms) {
  struct Case {
    const char* name;
    const char* algorithm;
    int bits;
    const char* curve;
  };
  for (const Case& c : {Case{"ec256", "EC", 256, "P-256"}, Case{"ec384", "EC", 384, "P-384"},
                        Case{"ec521", "EC", 521, "P-521"}, Case{"ed25519", "Ed25519", 256, ""}}) {
    std::string base = std::string("client/") + c.name;
    auto r = Import(KeyPair(base + ".pem", base + ".key.pem"));
    ASSERT_TRUE(r.ok()) << c.name << ": " << Describe(r);
    CertificateInfo info = DescribeCertificate(r->leaf.get());
    EXPECT_EQ(info.key_algorithm, c.algorithm) << c.name;
    EXPECT_EQ(info.key_bits, c.bits) << c.name;
    EXPECT_EQ(info.curve, c.curve) << c.name;
    EXPECT_EQ(info.sha256_fingerprint, Lower(OpensslX509(base + ".pem", "-fingerprint -sha256")))
        << c.name;
  }
}

// The same identity in every container and encoding: identical certificate facts, the
// same key, the same normalized PKCS#8 bytes.
TEST(DescribeTest, SameIdentityIdenticalWhateverTheContainer) {
  struct Case {
    Upload upload;
    SourceFormat format;
    bool has_password;
    size_t chain;
    const char* alias;
  };
  auto p12 = [](const char* file, std::optional<std::string_view> pw) {
    return OfType(EntryType::kPkcs12, file, pw);
  };
  std::vector<Case> cases = {
      {KeyPair("client/rsa.pem", "client/rsa.key.pem"), SourceFormat::kPem, false, 0, ""},
      {KeyPair("client/rsa.cert.der", "client/rsa.key.der"), SourceFormat::kDer, false, 0, ""},
      {KeyPair("client/rsa.pem", "client/rsa.key.trad.pem"), SourceFormat::kPem, false, 0, ""},
      {KeyPair("client/rsa.pem", "client/rsa.key.pkcs8-aes.pem", kKeyPassword), SourceFormat::kPem,
       true, 0, ""},
      {KeyPair("client/rsa.pem", "client/rsa.key.pkcs8-3des.pem", kKeyPassword), SourceFormat::kPem,
       true, 0, ""},
      {KeyPair("client/rsa.pem", "client/rsa.key.pkcs8-pbes1.pem", kKeyPassword),
       SourceFormat::kPem, true, 0, ""},
      {KeyPair("client/rsa.cert.der", "client/rsa.key.pkcs8-aes.der", kKeyPassword),
       SourceFormat::kDer, true, 0, ""},
      {KeyPair("client/rsa.pem", "client/rsa.key.trad-enc.pem", kKeyPassword), SourceFormat::kPem,
       true, 0, ""},
      {KeyPair("client/rsa.combined.pem"), SourceFormat::kPem, false, 1, ""},
      {KeyPair("client/rsa.combined-enc.pem", "", kKeyPassword), SourceFormat::kPem, true, 1, ""},
      {p12("p12/rsa-modern.p12", kP12Password), SourceFormat::kPkcs12, true, 1, "rsa-client"},
      {p12("p12/rsa-legacy.p12", kP12Password), SourceFormat::kPkcs12, true, 1, "rsa-client"},
      {p12("p12/rsa-empty-password.p12", ""), SourceFormat::kPkcs12, false, 1, "rsa-client"},
  };
  ossl::X509Ptr expected_cert = PemCert("client/rsa.pem");
  ossl::EvpPkeyPtr expected_key = PemKey("client/rsa.key.pem");
  CertificateInfo expected = DescribeCertificate(expected_cert.get());
  // The generator's unencrypted PKCS#8 DER of the same key.
  SecretBytes expected_der(Pki("client/rsa.key.der"));
  for (const Case& c : cases) {
    SCOPED_TRACE(c.upload.content + " + " + c.upload.key);
    auto r = Import(c.upload);
    ASSERT_TRUE(r.ok()) << Describe(r);
    EntryMetadata m;
    DescribeMaterial(*r, m);
    ASSERT_TRUE(m.certificate);
    EXPECT_EQ(*m.certificate, expected);
    EXPECT_EQ(m.source_format, c.format);
    EXPECT_EQ(m.has_password, c.has_password);
    EXPECT_TRUE(m.has_private_key);
    EXPECT_EQ(m.key_alias, c.alias);
    EXPECT_EQ(r->chain.size(), c.chain);
    EXPECT_EQ(EVP_PKEY_eq(r->key.get(), expected_key.get()), 1);
    EXPECT_TRUE(ConstantTimeEquals(r->key_pkcs8_der.span(), expected_der.span()));
    if (c.chain == 1) {
      EXPECT_EQ(DescribeCertificate(r->chain[0].get()),
                DescribeCertificate(PemCert("ca/intermediate.pem").get()));
      EXPECT_TRUE(r->warnings.empty());
    } else {
      ASSERT_EQ(r->warnings.size(), 1u);  // leaf only: its issuer was not uploaded
      EXPECT_EQ(r->warnings[0].code, Code::kChainIncomplete);
    }
  }
}

// ======================================================================================
// Passwords

struct EncryptedCase {
  Upload upload;  // with the right password
  const char* name;
};

std::vector<EncryptedCase> EncryptedCases() {
  return {
      {KeyPair("client/rsa.pem", "client/rsa.key.pkcs8-aes.pem", kKeyPassword), "pkcs8-aes"},
      {KeyPair("client/rsa.pem", "client/rsa.key.pkcs8-3des.pem", kKeyPassword), "pkcs8-3des"},
      {KeyPair("client/rsa.pem", "client/rsa.key.pkcs8-pbes1.pem", kKeyPassword), "pkcs8-pbes1"},
      {KeyPair("client/rsa.cert.der", "client/rsa.key.pkcs8-aes.der", kKeyPassword), "pkcs8-der"},
      {KeyPair("client/rsa.pem", "client/rsa.key.trad-enc.pem", kKeyPassword), "traditional"},
      {KeyPair("client/rsa.combined-enc.pem", "", kKeyPassword), "combined-enc"},
      {OfType(EntryType::kPkcs12, "p12/rsa-modern.p12", kP12Password), "p12-modern"},
      {OfType(EntryType::kPkcs12, "p12/rsa-legacy.p12", kP12Password), "p12-legacy"},
      {OfType(EntryType::kPkcs12, "p12/ec256.p12", kP12Password), "p12-ec256"},
      {OfType(EntryType::kPkcs12, "p12/java-modern.p12", kJavaP12Password), "p12-java"},
      {OfType(EntryType::kTrustStore, "p12/java-truststore.p12", kJavaP12Password),
       "p12-java-trust"},
      {OfType(EntryType::kJavaKeystore, "jks/client.jks", kStorePassword), "jks"},
      {OfType(EntryType::kJavaKeystore, "jks/client.jceks", kStorePassword), "jceks"},
      {OfType(EntryType::kTrustStore, "jks/truststore.jks", kStorePassword), "jks-trust"},
  };
}

class PasswordTest : public ::testing::TestWithParam<EncryptedCase> {
 protected:
  Upload WithJksKeyPassword(Upload u) {
    if (u.content.ends_with("client.jks") || u.content.ends_with("client.jceks")) {
      u.key_password = kJksKeyPassword;
    }
    return u;
  }
};

TEST_P(PasswordTest, RightPasswordOpens) {
  auto r = Import(WithJksKeyPassword(GetParam().upload));
  ASSERT_TRUE(r.ok()) << Describe(r);
  EntryMetadata m;
  DescribeMaterial(*r, m);
  EXPECT_TRUE(m.has_password);
}

TEST_P(PasswordTest, WrongPasswordIsWrongPassword) {
  Upload u = WithJksKeyPassword(GetParam().upload);
  const std::string wrong = "wr\xC3\xB6ng password";  // spaces and UTF-8, like the real ones
  u.password = wrong;
  auto r = Import(u);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Code::kWrongPassword) << Describe(r);
  std::string name =
      BaseName(u.key.empty() || u.content.ends_with(".combined-enc.pem") ? u.content : u.key);
  EXPECT_THAT(r.error().message, HasSubstr(name));
  EXPECT_THAT(r.error().message, Not(HasSubstr(wrong)));
  EXPECT_THAT(r.error().hint, Not(HasSubstr(wrong)));
}

TEST_P(PasswordTest, NoPasswordIsPasswordRequired) {
  Upload u = GetParam().upload;
  u.password.reset();
  u.key_password.reset();
  auto r = Import(u);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Code::kPasswordRequired) << Describe(r);
}

TEST_P(PasswordTest, TheRightPasswordWithOneByteLessIsWrong) {
  Upload u = WithJksKeyPassword(GetParam().upload);
  u.password = u.password->substr(0, u.password->size() - 1);
  auto r = Import(u);
  EXPECT_EQ(r.code(), Code::kWrongPassword) << Describe(r);
}

INSTANTIATE_TEST_SUITE_P(EveryEncryptedFormat, PasswordTest, ::testing::ValuesIn(EncryptedCases()),
                         [](const auto& info) {
                           std::string n = info.param.name;
                           for (char& c : n)
                             c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return n;
                         });

// A wrong password for a traditional encrypted PEM key decrypts to bytes that end in valid
// CBC padding about once in 256 tries; what comes out is then no key at all. Search the
// generated key for such a password (bounded) and check it is still "wrong password".
TEST(PasswordTest, AWrongPasswordWhoseDecryptionLooksValidIsStillWrong) {
  const std::string pem = Pki("client/rsa.key.trad-enc.pem");
  std::optional<std::string> lucky;
  for (int i = 0; i < 20000 && !lucky; ++i) {
    std::string candidate = "wrong " + std::to_string(i);
    ossl::BioPtr bio = ossl::MemoryBio(pem);
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long len = 0;
    ASSERT_EQ(PEM_read_bio(bio.get(), &name, &header, &data, &len), 1);
    EVP_CIPHER_INFO cipher;
    ASSERT_EQ(PEM_get_EVP_CIPHER_INFO(header, &cipher), 1);
    auto cb = [](char* buf, int size, int, void* u) {
      const auto* pw = static_cast<const std::string*>(u);
      if (pw->size() > static_cast<size_t>(size)) return -1;
      std::memcpy(buf, pw->data(), pw->size());
      return static_cast<int>(pw->size());
    };
    if (PEM_do_header(&cipher, data, &len, cb, &candidate) == 1) lucky = candidate;
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_clear_free(data, static_cast<size_t>(len));
    ERR_clear_error();
  }
  ASSERT_TRUE(lucky) << "no password in 20000 gave valid padding";
  Upload u = KeyPair("client/rsa.pem", "client/rsa.key.trad-enc.pem", *lucky);
  auto r = Import(u);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), Code::kWrongPassword) << Describe(r);
  EXPECT_THAT(r.error().message, HasSubstr("rsa.key.trad-enc.pem"));
}

TEST(PasswordTest, EmptyPasswordPkcs12) {
  // Given as the empty password, or not given at all: both open a file protected by "".
  for (std::optional<std::string_view> pw :
       {std::optional<std::string_view>(""), std::optional<std::string_view>()}) {
    auto r = Import(OfType(EntryType::kPkcs12, "p12/rsa-empty-password.p12", pw));
    ASSERT_TRUE(r.ok()) << Describe(r);
    EXPECT_FALSE(r->had_password);
    EXPECT_EQ(r->key_alias, "rsa-client");
  }
  auto r = Import(OfType(EntryType::kPkcs12, "p12/rsa-empty-password.p12", " "));
  EXPECT_EQ(r.code(), Code::kWrongPassword) << Describe(r);
  // And the empty password is not "any password" for a protected file.
  r = Import(OfType(EntryType::kPkcs12, "p12/rsa-modern.p12", ""));
  EXPECT_EQ(r.code(), Code::kWrongPassword) << Describe(r);
}

TEST(PasswordTest, JavaKeyPasswordDiffersFromStorePassword) {
  Upload u = OfType(EntryType::kJavaKeystore, "jks/client.jks", kStorePassword);
  auto r = Import(u);  // no key password: the store password is tried, and is wrong
  ASSERT_EQ(r.code(), Code::kWrongPassword) << Describe(r);
  EXPECT_THAT(r.error().message, HasSubstr("client"));
  u.key_password = "not it";
  EXPECT_EQ(Import(u).code(), Code::kWrongPassword);
}

TEST(PasswordTest, UnencryptedKeyIgnoresAGivenPassword) {
  auto r = Import(KeyPair("client/rsa.pem", "client/rsa.key.pem", "unused"));
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_FALSE(r->had_password);
}

// ======================================================================================
// Validation

TEST(ValidationTest, KeyFromAnotherCertificateIsMismatch) {
  auto r = Import(KeyPair("client/rsa.pem", "client/ec256.key.pem"));
  ASSERT_EQ(r.code(), Code::kKeyCertMismatch) << Describe(r);
  EXPECT_EQ(r.error().message,
            "rsa.pem: the private key does not belong to the certificate CN=rsa,O=wsstep tests");
  r = Import(KeyPair("client/rsa.pem", "client/second.key.pem"));  // same algorithm and size
  EXPECT_EQ(r.code(), Code::kKeyCertMismatch) << Describe(r);
}

TEST(ValidationTest, ExpiredIsRejectedNamingTheDate) {
  auto r = Import(KeyPair("client/expired.pem", "client/expired.key.pem"));
  ASSERT_EQ(r.code(), Code::kCertificateExpired) << Describe(r);
  std::string date = FormatUtc(OpensslDate("client/expired.pem", "-enddate"));
  EXPECT_THAT(r.error().message, HasSubstr("expired.pem: "));
  EXPECT_THAT(r.error().message, HasSubstr("expired on " + date));
  EXPECT_EQ(r.error().detail.at("not_after"), date);
}

TEST(ValidationTest, ExpiryIsJudgedAtTheGivenTime) {
  UnixSeconds not_after = OpensslDate("client/rsa.pem", "-enddate");
  Upload u = KeyPair("client/rsa.pem", "client/rsa.key.pem");
  u.now = not_after + 1;
  EXPECT_EQ(Import(u).code(), Code::kCertificateExpired);
  u.now = not_after;
  EXPECT_TRUE(Import(u).ok());
}

TEST(ValidationTest, NotYetValidIsAccepted) {
  auto r = Import(KeyPair("client/notyet.pem", "client/notyet.key.pem"));
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_GT(DescribeCertificate(r->leaf.get()).not_before, std::time(nullptr));
}

TEST(ValidationTest, UnsupportedAlgorithmsNameAlgorithmAndSize) {
  auto r = Import(KeyPair("client/rsa1024.pem", "client/rsa1024.key.pem"));
  ASSERT_EQ(r.code(), Code::kUnsupportedAlgorithm) << Describe(r);
  EXPECT_EQ(r.error().message, "rsa1024.pem: the key is RSA 1024 bits, which is not supported");
  EXPECT_EQ(r.error().detail.at("algorithm"), "RSA 1024 bits");
  r = Import(KeyPair("client/secp256k1.pem", "client/secp256k1.key.pem"));
  ASSERT_EQ(r.code(), Code::kUnsupportedAlgorithm) << Describe(r);
  EXPECT_THAT(r.error().message, HasSubstr("EC secp256k1 (256 bits)"));
}

TEST(ValidationTest, NoKeyAnywhereIsPrivateKeyMissing) {
  auto r = Import(KeyPair("client/rsa.chain.pem"));
  ASSERT_EQ(r.code(), Code::kPrivateKeyMissing) << Describe(r);
  EXPECT_THAT(r.error().message, HasSubstr("rsa.chain.pem"));
  r = Import(KeyPair("client/rsa.cert.der"));
  EXPECT_EQ(r.code(), Code::kPrivateKeyMissing) << Describe(r);
  r = Import(OfType(EntryType::kPkcs12, "p12/cert-only.p12", kP12Password));
  ASSERT_EQ(r.code(), Code::kPrivateKeyMissing) << Describe(r);
  EXPECT_THAT(r.error().message, HasSubstr("cert-only.p12"));
}

TEST(ValidationTest, ChainIncompleteIsAWarningOnly) {
  Upload u = KeyPair("client/rsa.leaf-only.pem", "client/rsa.key.pem");
  auto r = Import(u);
  ASSERT_TRUE(r.ok()) << Describe(r);
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_EQ(r->warnings[0].code, Code::kChainIncomplete);
  EXPECT_EQ(r->warnings[0].message,
            "rsa.leaf-only.pem: the issuer of CN=rsa,O=wsstep tests (CN=wsstep Test Intermediate "
            "CA,O=wsstep tests) is neither included nor in a bound trust store");

  // The issuer in a bound trust store is enough; a trust store with only the root is not
  // (the server needs the intermediate), nor an unrelated CA with the issuer's name...
  ossl::X509Ptr intermediate = PemCert("ca/intermediate.pem");
  ossl::X509Ptr root = PemCert("ca/root.pem");
  u.bound_trust = {intermediate.get()};
  r = Import(u);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->warnings.empty());
  u.bound_trust = {root.get()};
  r = Import(u);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->warnings.size(), 1u);

  // Uploaded chain: no warning. Self-signed: nothing to complete.
  r = Import(KeyPair("client/rsa.chain.pem", "client/rsa.key.pem"));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->warnings.empty());
  r = Import(KeyPair("client/self-signed.pem", "client/self-signed.key.pem"));
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_TRUE(r->warnings.empty());
}

TEST(ValidationTest, LeafIsTheCertificateMatchingTheKeyWhateverItsPosition) {
  std::string reversed = Pki("ca/intermediate.pem") + Pki("client/rsa.pem");
  SecretBytes content(reversed);
  SecretBytes key(Pki("client/rsa.key.pem"));
  Upload u = KeyPair("reversed.pem", "rsa.key.pem");
  auto r = ImportBytes(u, content, &key);
  ASSERT_TRUE(r.ok()) << Describe(r);
  EXPECT_EQ(DescribeCertificate(r->leaf.get()).subject, "CN=rsa,O=wsstep tests");
  ASSERT_EQ(r->chain.size(), 1u);
  EXPECT_TRUE(r->warnings.empty());
}

TEST(ValidationTest, TwoDifferentKeysAreRefused) {
  auto r = Import(KeyPair("client/rsa.combined.pem", "client/second.key.pem"));
  ASSERT_EQ(r.code(), Code::kInvalidCertificateFormat) << Describe(r);
  EXPECT_THAT(r.error().message, HasSubstr("second.key.pem"));
  // The same key twice is fine.
  r = Import(KeyPair("client/rsa.combined.pem", "client/rsa.key.der"));
  EXPECT_TRUE(r.ok()) << Describe(r);
}

// ======================================================================================
// Formats and entry types

TEST(FormatTest, DeclaredFormatContradictedByContent) {
  Upload u = OfType(EntryType::kPkcs12, "p12/rsa-modern.p12", kP12Password);
  u.declared = SourceFormat::kPem;
  auto r = Import(u);
  ASSERT_EQ(r.code(), Code::kInvalidCertificateFormat) << Describe(r);
  EXPECT_EQ(r.error().message, "rsa-modern.p12: this is a PKCS#12 file, PEM was selected");
  EXPECT_EQ(r.error().detail.at("found"), "PKCS12");
  EXPECT_EQ(r.error().detail.at("selected"), "PEM");

  u = KeyPair("client/rsa.combined.pem");
  u.declared = SourceFormat::kDer;
  r = Import(u);
  ASSERT_EQ(r.code(), Code::kInvalidCertificateFormat);
  EXPECT_EQ(r.error().message,
            "rsa.combined.pem: this is a PEM file with 2 certificates and a private key, DER "
            "was selected");

  u = KeyPair("client/rsa.cert.der", "client/rsa.key.der");
  u.declared = SourceFormat::kPem;
  EXPECT_EQ(Import(u).error().message, "rsa.cert.der: this is a DER certificate, PEM was selected");

  // Agreement passes; JKS and JCEKS stand in for each other as keytool allows.
  u.declared = SourceFormat::kDer;
  EXPECT_TRUE(Import(u).ok());
  u = OfType(EntryType::kJavaKeystore, "jks/client.jceks", kStorePassword);
  u.key_password = kJksKeyPassword;
  u.declared = SourceFormat::kJks;
  EXPECT_TRUE(Import(u).ok());
}

TEST(FormatTest, GarbageNamesTheInput) {
  for (EntryType type : {EntryType::kKeyPair, EntryType::kPkcs12, EntryType::kTrustStore}) {
    auto r = Import(OfType(type, "garbage/random.bin", kP12Password));
    ASSERT_EQ(r.code(), Code::kInvalidCertificateFormat) << Describe(r);
    EXPECT_THAT(r.error().message, HasSubstr("random.bin: "));
    EXPECT_EQ(r.error().detail.at("input"), "random.bin");
  }
  auto r = Import(OfType(EntryType::kPkcs12, "garbage/truncated.p12", kP12Password));
  ASSERT_EQ(r.code(), Code::kInvalidCertificateFormat) << Describe(r);
  EXPECT_EQ(r.error().message,
            "truncated.p12: this is a DER structure that is cut short or damaged");
  r = Import(KeyPair("garbage/not-a-cert.pem", "client/rsa.key.pem"));
  ASSERT_EQ(r.code(), Code::kInvalidCertificateFormat) << Describe(r);
  EXPECT_EQ(r.error().message,
            "not-a-cert.pem: PEM certificate 1 is not a valid X.509 certificate");
  r = Import(KeyPair("client/rsa.pem", "garbage/random.bin"));
  ASSERT_EQ(r.code(), Code::kInvalidCertificateFormat) << Describe(r);
  EXPECT_THAT(r.error().message, HasSubstr("random.bin: "));
  r = Import(KeyPair("client/rsa.pem", "client/rsa.chain.pem"));  // certificates as the key
  ASSERT_EQ(r.code(), Code::kInvalidCertificateFormat) << Describe(r);
  EXPECT_EQ(r.error().message,
            "rsa.chain.pem: this is a PEM file with 2 certificates, not a private key");

  r = Import(KeyPair("client/rsa.key.pem", "client/rsa.pem"));  // the two files swapped
  ASSERT_EQ(r.code(), Code::kInvalidCertificateFormat) << Describe(r);
  EXPECT_EQ(r.error().message,
            "rsa.key.pem: contains no certificate (this is a PEM file with a private key)");

  SecretBytes empty;
  Upload u = KeyPair("empty.pem");
  EXPECT_EQ(ImportBytes(u, empty, nullptr).error().message, "empty.pem: the file is empty");
  // An empty key field counts as no key file.
  SecretBytes cert(Pki("client/rsa.pem"));
  EXPECT_EQ(ImportBytes(KeyPair("rsa.pem", "rsa.key.pem"), cert, &empty).code(),
            Code::kPrivateKeyMissing);
  // A key file with an entry type that has no use for one.
  SecretBytes key(Pki("client/rsa.key.pem"));
  Upload trust = OfType(EntryType::kTrustStore, "bundle.pem");
  trust.key = "rsa.key.pem";
  r = ImportBytes(trust, cert, &key);
  ASSERT_EQ(r.code(), Code::kInvalidCertificateFormat);
  EXPECT_EQ(r.error().message,
            "rsa.key.pem: a separate private key file only goes with a KEY_PAIR entry");
  std::string pem = Pki("client/rsa.combined.pem");
  SecretBytes cut(pem.substr(0, pem.size() - 40));
  EXPECT_THAT(ImportBytes(KeyPair("cut.pem"), cut, nullptr).error().message,
              HasSubstr("cut.pem: this is a PEM file that is cut short"));
}

TEST(FormatTest, EntryTypeMustFitTheContent) {
  struct Case {
    EntryType type;
    const char* file;
    const char* message;
  };
  for (const Case& c : {
           Case{EntryType::kKeyPair, "jks/client.jks",
                "client.jks: this is a JKS key store, which a KEY_PAIR entry cannot hold"},
           Case{EntryType::kKeyPair, "p12/rsa-modern.p12",
                "rsa-modern.p12: this is a PKCS#12 file, which a KEY_PAIR entry cannot hold"},
           Case{EntryType::kPkcs12, "client/rsa.combined.pem",
                "rsa.combined.pem: this is a PEM file with 2 certificates and a private key, "
                "which a PKCS12 entry cannot hold"},
           Case{EntryType::kJavaKeystore, "p12/java-modern.p12",
                "java-modern.p12: this is a PKCS#12 file, which a JAVA_KEYSTORE entry cannot "
                "hold"},
           Case{EntryType::kMobileProvisioning, "client/rsa.pem",
                "rsa.pem: this is a PEM file with a certificate, which a MOBILE_PROVISIONING "
                "entry cannot hold"},
           Case{EntryType::kTrustStore, "mobile/profile.mobileprovision",
                "profile.mobileprovision: this is a mobile provisioning profile, which a "
                "TRUST_STORE entry cannot hold"},
           Case{EntryType::kKeyPair, "client/rsa.key.der",
                "rsa.key.der: this is a DER private key, not a certificate"},
       }) {
    auto r = Import(OfType(c.type, c.file, kStorePassword));
    ASSERT_EQ(r.code(), Code::kInvalidCertificateFormat) << c.file << ": " << Describe(r);
    EXPECT_EQ(r.error().message, c.message);
  }
  auto r = Import(OfType(EntryType::kKeyPair, "jks/client.jks"));
  EXPECT_EQ(r.error().hint, "Choose the JAVA_KEYSTORE type for this file.");
}

TEST(FormatTest, TrustStoreRefusesPrivateKeys) {
  auto r = Import(OfType(EntryType::kTrustStore, "client/rsa.combined.pem"));
  ASSERT_EQ(r.code(), Code::kInvalidCertificateFormat) << Describe(r);
  EXPECT_THAT(r.error().message, HasSubstr("must not contain a private key"));
  r = Import(OfType(EntryType::kTrustStore, "p12/rsa-modern.p12", kP12Password));
  ASSERT_EQ(r.code(), Code::kInvalidCertificateFormat) << Describe(r);
  EXPECT_THAT(r.error().message, HasSubstr("contains a private key"));
  Upload u = OfType(EntryType::kTrustStore, "jks/client.jks", kStorePassword);
  u.key_password = kJksKeyPassword;
  r = Import(u);
  ASSERT_EQ(r.code(), Code::kInvalidCertificateFormat) << Describe(r);
  EXPECT_THAT(r.error().message, HasSubstr("private key entry 'client'"));
  // The administrator of a trust store has no key password to give: the answer is still
  // "certificates only", never a password error about a key the import refuses anyway
  // (a fuzzing finding). The same with a wrong key password.
  for (std::optional<std::string_view> key_password :
       {std::optional<std::string_view>(), std::optional<std::string_view>("not the key pass")}) {
    Upload v = OfType(EntryType::kTrustStore, "jks/client.jks", kStorePassword);
    v.key_password = key_password;
    r = Import(v);
    ASSERT_EQ(r.code(), Code::kInvalidCertificateFormat) << Describe(r);
    EXPECT_THAT(r.error().message, HasSubstr("a trust store holds certificates only"));
  }
}

TEST(FormatTest, TrustStoresInEveryFormat) {
  CertificateInfo root = DescribeCertificate(PemCert("ca/root.pem").get());
  CertificateInfo intermediate = DescribeCertificate(PemCert("ca/intermediate.pem").get());
  struct Case {
    const char* file;
    std::optional<std::string_view> password;
    SourceFormat format;
    std::vector<CertificateInfo> expected;
  };
  for (const Case& c : {
           Case{"trust/bundle.pem", std::nullopt, SourceFormat::kPem, {root, intermediate}},
           Case{"trust/root.der", std::nullopt, SourceFormat::kDer, {root}},
           Case{"jks/truststore.jks", kStorePassword, SourceFormat::kJks, {root, intermediate}},
           Case{"p12/java-truststore.p12",
                kJavaP12Password,
                SourceFormat::kPkcs12,
                {root, intermediate}},
       }) {
    auto r = Import(OfType(EntryType::kTrustStore, c.file, c.password));
    ASSERT_TRUE(r.ok()) << c.file << ": " << Describe(r);
    EntryMetadata m;
    DescribeMaterial(*r, m);
    EXPECT_FALSE(m.certificate.has_value()) << c.file;
    EXPECT_FALSE(m.has_private_key) << c.file;
    EXPECT_EQ(m.source_format, c.format) << c.file;
    // Order is the file's for PEM and the store's for JKS/PKCS#12: compare as sets.
    EXPECT_THAT(m.trusted, ::testing::UnorderedElementsAreArray(c.expected)) << c.file;
  }
  // A certificate-only PKCS#12 is a trust store too.
  auto r = Import(OfType(EntryType::kTrustStore, "p12/cert-only.p12", kP12Password));
  ASSERT_TRUE(r.ok()) << Describe(r);
  ASSERT_EQ(r->trusted.size(), 2u);
}

}  // namespace
}  // namespace wsstep::core

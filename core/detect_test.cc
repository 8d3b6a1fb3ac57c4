#include "core/detect.h"

#include <gtest/gtest.h>
#include <openssl/err.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace wsstep::core {
namespace {

// The generated test PKI (tests/pki/make_pki.sh), read directly: core tests do not link
// the test-support library.
std::string Pki(std::string_view rel) {
  const char* dir = std::getenv("WSSTEP_TEST_PKI");
  if (dir == nullptr) throw std::runtime_error("WSSTEP_TEST_PKI is not set (run through ctest)");
  std::string path = std::string(dir) + "/" + std::string(rel);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Case {
  const char* file;
  ContentKind kind;
  SourceFormat format;
  const char* description;
};

class DetectFixtureTest : public ::testing::TestWithParam<Case> {};

TEST_P(DetectFixtureTest, DetectsFromBytes) {
  const Case& c = GetParam();
  DetectedContent d = DetectContent(Pki(c.file));
  EXPECT_EQ(d.kind, c.kind) << c.file;
  EXPECT_EQ(d.format, c.format) << c.file;
  if (c.description != nullptr) {
    EXPECT_EQ(d.Description(), c.description) << c.file;
  }
  EXPECT_EQ(ERR_peek_error(), 0u) << "detection must leave no OpenSSL error behind";
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, DetectFixtureTest,
    ::testing::Values(
        Case{"client/rsa.pem", ContentKind::kPem, SourceFormat::kPem,
             "a PEM file with a certificate"},
        Case{"client/rsa.chain.pem", ContentKind::kPem, SourceFormat::kPem,
             "a PEM file with 2 certificates"},
        Case{"client/rsa.combined.pem", ContentKind::kPem, SourceFormat::kPem,
             "a PEM file with 2 certificates and a private key"},
        Case{"client/rsa.combined-enc.pem", ContentKind::kPem, SourceFormat::kPem,
             "a PEM file with 2 certificates and an encrypted private key"},
        Case{"client/rsa.key.pem", ContentKind::kPem, SourceFormat::kPem,
             "a PEM file with a private key"},
        Case{"client/rsa.key.trad-enc.pem", ContentKind::kPem, SourceFormat::kPem,
             "a PEM file with an encrypted private key"},
        Case{"client/rsa.cert.der", ContentKind::kDerCertificate, SourceFormat::kDer,
             "a DER certificate"},
        Case{"ca/root.der", ContentKind::kDerCertificate, SourceFormat::kDer, "a DER certificate"},
        Case{"client/rsa.key.der", ContentKind::kDerPrivateKey, SourceFormat::kDer,
             "a DER private key"},
        Case{"client/rsa.key.pkcs8-aes.der", ContentKind::kDerEncryptedPrivateKey,
             SourceFormat::kDer, "an encrypted DER private key (PKCS#8)"},
        Case{"p12/rsa-modern.p12", ContentKind::kPkcs12, SourceFormat::kPkcs12, "a PKCS#12 file"},
        Case{"p12/rsa-legacy.p12", ContentKind::kPkcs12, SourceFormat::kPkcs12, "a PKCS#12 file"},
        Case{"p12/java-truststore.p12", ContentKind::kPkcs12, SourceFormat::kPkcs12,
             "a PKCS#12 file"},
        Case{"jks/client.jks", ContentKind::kJks, SourceFormat::kJks, "a JKS key store"},
        Case{"jks/client.jceks", ContentKind::kJceks, SourceFormat::kJceks, "a JCEKS key store"},
        Case{"mobile/profile.mobileprovision", ContentKind::kMobileProvision,
             SourceFormat::kMobileProvision, "a mobile provisioning profile"},
        // Random bytes may happen to start like a DER SEQUENCE (then "cut short").
        Case{"garbage/random.bin", ContentKind::kUnknown, SourceFormat::kAuto, nullptr},
        Case{"garbage/truncated.p12", ContentKind::kUnknown, SourceFormat::kAuto,
             "a DER structure that is cut short or damaged"},
        // Framing alone makes it PEM; whether the block is a certificate is the importer's
        // question.
        Case{"garbage/not-a-cert.pem", ContentKind::kPem, SourceFormat::kPem,
             "a PEM file with a certificate"}));

TEST(DetectTest, PemBlocksCarryKindEncryptionAndText) {
  std::string combined = Pki("client/rsa.combined-enc.pem");
  DetectedContent d = DetectContent(combined);
  ASSERT_EQ(d.pem_blocks.size(), 3u);
  EXPECT_EQ(d.pem_blocks[0].label, "CERTIFICATE");
  EXPECT_EQ(d.pem_blocks[0].kind, PemBlockKind::kCertificate);
  EXPECT_FALSE(d.pem_blocks[0].encrypted);
  EXPECT_EQ(d.pem_blocks[2].label, "ENCRYPTED PRIVATE KEY");
  EXPECT_EQ(d.pem_blocks[2].kind, PemBlockKind::kEncryptedPrivateKey);
  EXPECT_TRUE(d.pem_blocks[2].encrypted);
  // Each block's text is exactly its span of the file: the first starts the file, the
  // key block ends it (before the final newline).
  EXPECT_TRUE(combined.starts_with(d.pem_blocks[0].text));
  ASSERT_FALSE(d.pem_blocks[2].text.empty());
  EXPECT_EQ(combined.rfind(d.pem_blocks[2].text) + d.pem_blocks[2].text.size(),
            combined.find_last_not_of("\r\n") + 1);
  EXPECT_EQ(d.CountPem(PemBlockKind::kCertificate), 2u);
  EXPECT_EQ(d.CountPemKeys(), 1u);

  std::string trad_enc = Pki("client/rsa.key.trad-enc.pem");
  d = DetectContent(trad_enc);
  ASSERT_EQ(d.pem_blocks.size(), 1u);
  EXPECT_EQ(d.pem_blocks[0].label, "RSA PRIVATE KEY");
  EXPECT_EQ(d.pem_blocks[0].kind, PemBlockKind::kTraditionalPrivateKey);
  EXPECT_TRUE(d.pem_blocks[0].encrypted);  // from the Proc-Type header

  std::string trad = Pki("client/rsa.key.trad.pem");
  d = DetectContent(trad);
  ASSERT_EQ(d.pem_blocks.size(), 1u);
  EXPECT_EQ(d.pem_blocks[0].kind, PemBlockKind::kTraditionalPrivateKey);
  EXPECT_FALSE(d.pem_blocks[0].encrypted);
}

TEST(DetectTest, PemToleratesSurroundingTextCrlfAndOtherBlocks) {
  std::string cert = Pki("client/rsa.pem");
  std::string crlf;
  for (char c : cert) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  std::string text = "Bag Attributes\r\n    friendlyName: x\r\n" + crlf +
                     "-----BEGIN CERTIFICATE REQUEST-----\r\nAAAA\r\n"
                     "-----END CERTIFICATE REQUEST-----\r\n";
  DetectedContent d = DetectContent(text);
  ASSERT_EQ(d.kind, ContentKind::kPem);
  ASSERT_EQ(d.pem_blocks.size(), 2u);
  EXPECT_EQ(d.pem_blocks[1].kind, PemBlockKind::kOther);
  EXPECT_EQ(d.Description(), "a PEM file with a certificate and a CERTIFICATE REQUEST block");
}

TEST(DetectTest, PemCutShortIsFlagged) {
  std::string cert = Pki("client/rsa.pem");
  DetectedContent d = DetectContent(cert.substr(0, cert.size() / 2));
  EXPECT_EQ(d.kind, ContentKind::kPem);
  EXPECT_TRUE(d.truncated);
  EXPECT_EQ(d.Description(), "a PEM file that is cut short (a BEGIN line without its END line)");
}

TEST(DetectTest, DerWithTrailingNewlineIsStillDer) {
  std::string der = Pki("client/rsa.cert.der") + "\n";
  EXPECT_EQ(DetectContent(der).kind, ContentKind::kDerCertificate);
  std::string junk = Pki("client/rsa.cert.der") + "junk";
  EXPECT_EQ(DetectContent(junk).kind, ContentKind::kUnknown);
}

TEST(DetectTest, JavaMagicAloneDecides) {
  EXPECT_EQ(DetectContent(std::string("\xFE\xED\xFE\xED", 4)).kind, ContentKind::kJks);
  EXPECT_EQ(DetectContent(std::string("\xCE\xCE\xCE\xCE", 4)).kind, ContentKind::kJceks);
  EXPECT_EQ(DetectContent(std::string("\xFE\xED\xFE", 3)).kind, ContentKind::kUnknown);
}

TEST(DetectTest, EmptyAndTinyInputsAreUnknown) {
  EXPECT_EQ(DetectContent("").kind, ContentKind::kUnknown);
  EXPECT_EQ(DetectContent(std::string("\x30", 1)).kind, ContentKind::kUnknown);
  EXPECT_EQ(DetectContent("-----BEGIN ").kind, ContentKind::kPem);  // cut short
  EXPECT_TRUE(DetectContent("-----BEGIN ").truncated);
}

TEST(DetectTest, FormatDisplayNames) {
  EXPECT_EQ(FormatDisplayName(SourceFormat::kPem), "PEM");
  EXPECT_EQ(FormatDisplayName(SourceFormat::kDer), "DER");
  EXPECT_EQ(FormatDisplayName(SourceFormat::kPkcs12), "PKCS#12");
  EXPECT_EQ(FormatDisplayName(SourceFormat::kJks), "JKS");
  EXPECT_EQ(FormatDisplayName(SourceFormat::kJceks), "JCEKS");
  EXPECT_EQ(FormatDisplayName(SourceFormat::kMobileProvision), "mobile provisioning");
}

}  // namespace
}  // namespace wsstep::core

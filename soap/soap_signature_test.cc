// WS-Security X.509 signatures (soap/signature.h), checked by independent verifiers: the
// xmlsec1 command line (Debian's xmlsec1) on the signed envelope, and a SOAP service
// behind a real mTLS nginx (soap/testdata/signature_service.py) that verifies with zeep's
// WS-Security (python3-xmlsec) against the certificate the TLS session presented.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "rest/engine.h"
#include "rest/rest_test_util.h"
#include "soap/client.h"
#include "soap/signature.h"
#include "soap/soap_test_util.h"
#include "tests/support/nginx.h"
#include "tests/support/pki.h"
#include "tests/support/process.h"

namespace wsstep::soap {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using wsstep::testing::NginxServer;
using wsstep::testing::PkiPath;
using wsstep::testing::RunCommand;
using wsstep::testing::TempDir;

constexpr char kTns[] = "urn:wsstep:signed";

core::UnixSeconds FixedNow() { return 1'900'000'000; }

SoapStep Step(SoapVersion version = SoapVersion::k11) {
  SoapStep step;
  step.endpoint = "https://localhost/signed";
  step.version = version;
  step.action = std::string(kTns) + ":Pay";
  SoapOperation op{.name = "Pay", .ns = kTns, .prefix = "p"};
  op.parameters.push_back(XmlNode{.name = "amount", .text = "100.00"});
  op.parameters.push_back(XmlNode{.name = "iban", .text = "DE02 <&> 1203"});
  step.body = std::move(op);
  step.security.signature = SignatureOptions{};
  return step;
}

// The envelope BuildEnvelope writes for `step`, signed with client/<name>.
Result<SignedEnvelope> BuildAndSign(const SoapStep& step, const std::string& name) {
  auto built = BuildEnvelope(step, FixedNow, SystemRandom());
  if (!built.ok()) return built.error();
  auto identity = rest::testutil::LoadIdentity(name);
  return SignEnvelope(built->body, built->signed_ids, *identity, *step.security.signature);
}

// `xmlsec1 --verify` of `xml` with the public key of client/<cert>.pem; wsu:Id is an ID
// attribute on every element the tests sign.
wsstep::testing::CommandResult Xmlsec1Verify(const std::string& xml, const std::string& cert,
                                             SoapVersion version = SoapVersion::k11) {
  TempDir dir("xmlsec1-");
  const std::string file = dir.Path("signed.xml");
  wsstep::testing::WriteFile(file, xml);
  const std::string wsu(kWsuNamespace);
  return RunCommand({"xmlsec1", "--verify", "--pubkey-cert-pem", PkiPath("client/" + cert + ".pem"),
                     "--id-attr:Id", std::string(EnvelopeNamespace(version)) + ":Body",
                     "--id-attr:Id", wsu + ":Timestamp", "--id-attr:Id", "urn:partner:Route",
                     file});
}

size_t Count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

TEST(SoapSignature, RsaBodyAndTimestampVerifyWithXmlsec1) {
  auto s = BuildAndSign(Step(), "rsa");
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_THAT(s->body, HasSubstr("<wsse:BinarySecurityToken"));
  EXPECT_THAT(s->body, HasSubstr("ValueType=\"" + std::string(kX509v3TokenType) + "\""));
  EXPECT_THAT(s->body, HasSubstr("<wsse:Reference URI=\"#wsstep-token\""));
  EXPECT_THAT(s->body, HasSubstr("Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\""));
  EXPECT_EQ(Count(s->body, "<ds:Reference "), 2u);
  EXPECT_EQ(s->facts.signature_algorithm, "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256");
  EXPECT_EQ(s->facts.digest_algorithm, "http://www.w3.org/2001/04/xmlenc#sha256");
  EXPECT_THAT(s->facts.signed_ids, ElementsAre("wsstep-body", "wsstep-timestamp"));
  EXPECT_EQ(s->facts.certificate_fingerprint,
            wsstep::testing::Sha256FingerprintOfPemFile(PkiPath("client/rsa.pem")));
  auto v = Xmlsec1Verify(s->body, "rsa");
  EXPECT_EQ(v.exit_code, 0) << v.output;
  EXPECT_THAT(v.output, HasSubstr("OK"));
  // Another certificate's key does not verify it.
  EXPECT_NE(Xmlsec1Verify(s->body, "second").exit_code, 0);
}

TEST(SoapSignature, EcKeySignsWithEcdsaSha256) {
  auto s = BuildAndSign(Step(SoapVersion::k12), "ec256");
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_EQ(s->facts.signature_algorithm, "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256");
  auto v = Xmlsec1Verify(s->body, "ec256", SoapVersion::k12);
  EXPECT_EQ(v.exit_code, 0) << v.output;
}

TEST(SoapSignature, ChosenAlgorithmsAreUsed) {
  SoapStep step = Step();
  step.security.signature->algorithm = SignatureAlgorithm::kRsaSha512;
  step.security.signature->digest = DigestAlgorithm::kSha384;
  auto s = BuildAndSign(step, "rsa");
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_THAT(s->body,
              HasSubstr("Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha512\""));
  EXPECT_EQ(Count(s->body, "Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#sha384\""), 2u);
  EXPECT_EQ(Xmlsec1Verify(s->body, "rsa").exit_code, 0);
}

TEST(SoapSignature, TamperedBodyFailsVerification) {
  auto s = BuildAndSign(Step(), "rsa");
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  std::string tampered = s->body;
  const size_t at = tampered.find("100.00");
  ASSERT_NE(at, std::string::npos);
  tampered.replace(at, 6, "999.00");
  auto v = Xmlsec1Verify(tampered, "rsa");
  EXPECT_NE(v.exit_code, 0) << v.output;
  EXPECT_THAT(v.output, HasSubstr("FAIL"));
  // A later Timestamp is also caught.
  std::string late = s->body;
  const size_t expires = late.find("<wsu:Expires>");
  ASSERT_NE(expires, std::string::npos);
  late.replace(expires + 13, 4, "2099");
  EXPECT_NE(Xmlsec1Verify(late, "rsa").exit_code, 0);
}

TEST(SoapSignature, IssuerSerialReferenceSendsNoToken) {
  SoapStep step = Step();
  step.security.signature->reference = TokenReference::kIssuerSerial;
  auto s = BuildAndSign(step, "rsa");
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_THAT(s->body, Not(HasSubstr("BinarySecurityToken")));
  EXPECT_THAT(s->body,
              HasSubstr("<ds:X509IssuerName>CN=wsstep Test Intermediate CA,O=wsstep tests<"));
  EXPECT_THAT(s->body, HasSubstr("<ds:X509SerialNumber>"));
  EXPECT_EQ(Xmlsec1Verify(s->body, "rsa").exit_code, 0);
}

TEST(SoapSignature, NamedHeaderBlockIsSigned) {
  SoapStep step = Step();
  step.header_blocks.push_back("<r:Route xmlns:r=\"urn:partner\"><r:to>bank</r:to></r:Route>");
  step.security.signature->parts = {"Body", "{urn:partner}Route"};
  auto s = BuildAndSign(step, "rsa");
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_THAT(s->facts.signed_ids, ElementsAre("wsstep-body", "wsstep-header-0"));
  // Without the Timestamp part, and no timestamp configured, none is written.
  EXPECT_THAT(s->body, Not(HasSubstr("Timestamp")));
  EXPECT_EQ(Xmlsec1Verify(s->body, "rsa").exit_code, 0);
  std::string tampered = s->body;
  tampered.replace(tampered.find(">bank<"), 6, ">evil<");
  EXPECT_NE(Xmlsec1Verify(tampered, "rsa").exit_code, 0);
}

TEST(SoapSignature, UnknownPartIsAConfigurationError) {
  SoapStep step = Step();
  step.security.signature->parts = {"Body", "Timestamp", "{urn:other}Route"};
  Status st = ValidateSoapStep(step);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Code::kInvalidStepConfig);
  EXPECT_EQ(st.error().detail.at("field"), "security.signature.parts[2]");
  EXPECT_THAT(st.error().message, HasSubstr("no header block \"{urn:other}Route\""));
}

TEST(SoapSignature, Ed25519KeyCannotSign) {
  auto s = BuildAndSign(Step(), "ed25519");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Code::kSigningFailed);
  EXPECT_EQ(s.error().side, Side::kClient);
  EXPECT_THAT(s.error().message, HasSubstr("key is ED25519"));
}

TEST(SoapSignature, AlgorithmMustFitTheKey) {
  SoapStep step = Step();
  step.security.signature->algorithm = SignatureAlgorithm::kEcdsaSha256;
  auto s = BuildAndSign(step, "rsa");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Code::kSigningFailed);
  EXPECT_THAT(s.error().message, HasSubstr("key is RSA, which cannot make "
                                           "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"));
}

TEST(SoapSignature, SigningNeedsTheBoundCertificate) {
  rest::RestEngine engine;
  SoapClient client(engine);
  rest::RestStep transport;
  transport.tls.ssl_verification = false;
  Status st = client.Validate(Step(), transport);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().detail.at("field"), "security.signature");
  EXPECT_THAT(st.error().message, HasSubstr("ssl_verification is off"));
}

// Against the independent verifier behind nginx mTLS.
class SoapSignatureInterop : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    env_ = new testutil::ServiceBehindNginx("signature_service.py", {"/signed"});
    nginx_ = env_->nginx.get();
    engine_ = env_->engine.get();
  }
  static void TearDownTestSuite() {
    delete env_;
    env_ = nullptr;
  }

  void SetUp() override { ASSERT_TRUE(env_->error.empty()) << env_->error; }

  static rest::RestStep Transport() {
    rest::RestStep t;
    t.tls.ssl_verification = true;
    t.timeouts.total = std::chrono::milliseconds(20'000);
    return t;
  }

  static Result<SoapResult> Call(SoapStep step, const std::string& client_cert) {
    step.endpoint = nginx_->base_url() + "/signed";
    SoapClient client(*engine_);
    return client.Execute(step, Transport(), rest::testutil::Creds(client_cert),
                          rest::testutil::Soon());
  }

  static std::string Verified(const SoapResult& r, const std::string& field) {
    const XmlElement* v = r.response.body.Child("Verified");
    const XmlElement* f = v ? v->Child(field) : nullptr;
    return f ? f->text : "<missing " + field + ">";
  }

  static testutil::ServiceBehindNginx* env_;
  static NginxServer* nginx_;
  static rest::RestEngine* engine_;
};

testutil::ServiceBehindNginx* SoapSignatureInterop::env_ = nullptr;
NginxServer* SoapSignatureInterop::nginx_ = nullptr;
rest::RestEngine* SoapSignatureInterop::engine_ = nullptr;

TEST_F(SoapSignatureInterop, RsaSignedSoap11IsVerified) {
  auto r = Call(Step(SoapVersion::k11), "rsa");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ASSERT_FALSE(r->response.fault) << r->response.fault->reason;
  EXPECT_EQ(Verified(*r, "signer"), "CN=rsa,O=wsstep tests");
  EXPECT_EQ(Verified(*r, "token"), "direct");
  EXPECT_EQ(Verified(*r, "signed"), "Body Timestamp");
  EXPECT_EQ(Verified(*r, "signature_method"), "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256");
  EXPECT_EQ(Verified(*r, "digest_method"), "http://www.w3.org/2001/04/xmlenc#sha256");
  ASSERT_TRUE(r->signature);
  EXPECT_EQ(r->signature->certificate_fingerprint, r->http.tls.client_certificate->fingerprint);
}

TEST_F(SoapSignatureInterop, EcSignedSoap12WithIssuerSerialIsVerified) {
  SoapStep step = Step(SoapVersion::k12);
  step.security.signature->reference = TokenReference::kIssuerSerial;
  auto r = Call(std::move(step), "ec256");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ASSERT_FALSE(r->response.fault) << r->response.fault->reason;
  EXPECT_EQ(Verified(*r, "token"), "issuer-serial");
  EXPECT_EQ(Verified(*r, "signature_method"),
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256");
}

TEST_F(SoapSignatureInterop, TamperedMessageIsAFault) {
  auto s = BuildAndSign(Step(), "rsa");
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  std::string tampered = s->body;
  tampered.replace(tampered.find("100.00"), 6, "999.00");
  rest::RestStep post = Transport();
  post.method = "POST";
  post.url = nginx_->base_url() + "/signed";
  post.content_type = "text/xml; charset=utf-8";
  post.body = tampered;
  auto r = engine_->Execute(std::move(post), rest::testutil::Creds("rsa"), rest::testutil::Soon());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 500);
  EXPECT_THAT(r->body, HasSubstr("wsse:FailedCheck"));
  EXPECT_THAT(r->body, HasSubstr("the signature does not verify"));
}

TEST_F(SoapSignatureInterop, SignedWithAnotherCertificateThanTheTlsOneIsAFault) {
  auto s = BuildAndSign(Step(), "second");
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  rest::RestStep post = Transport();
  post.method = "POST";
  post.url = nginx_->base_url() + "/signed";
  post.content_type = "text/xml; charset=utf-8";
  post.body = s->body;
  auto r = engine_->Execute(std::move(post), rest::testutil::Creds("rsa"), rest::testutil::Soon());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 500);
  EXPECT_THAT(r->body, HasSubstr("the BinarySecurityToken is not the TLS client certificate"));
}

}  // namespace
}  // namespace wsstep::soap

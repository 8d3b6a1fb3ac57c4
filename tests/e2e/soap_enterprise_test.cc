// SOAP for enterprises through the real binary (issue 19): signed messages and WSDL import.
// - ExecuteSoapStep with ws_security.signature, sent through a real mTLS nginx to an
//   independent verifier (soap/testdata/signature_service.py: zeep's WS-Security over
//   python3-xmlsec) that checks the signature against the certificate TLS presented;
//   an Ed25519 certificate bound to the endpoint is SIGNING_FAILED, nothing sent.
// - DescribeWsdl of the WSDL a spyne service serves only over mTLS, fetched by the plugin
//   with the certificate bound to that host, compared with python3-zeep's reading of the
//   same URL; uploaded documents with imports; a ready step for an operation; ValidateStep
//   of a step that names its WSDL.
// - The CLI: `wsstep wsdl FILE` (imports uploaded as the plugin asks for them) and
//   `wsstep call soap --sign`.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/e2e/e2e_util.h"
#include "tests/mock_engine/mock_engine.h"
#include "tests/support/nginx.h"
#include "tests/support/pki.h"
#include "tests/support/process.h"

namespace wsstep::e2e {
namespace {

using ::testing::HasSubstr;
using testing::PkiPath;

std::string SourceDir() {
  const char* env = std::getenv("WSSTEP_SOURCE_DIR");
  return env != nullptr && *env != '\0' ? env : WSSTEP_SOURCE_DIR;
}

// A Python service of soap/testdata on an ephemeral port.
uint16_t StartPythonService(testing::ChildProcess& process, const testing::TempDir& dir,
                            const std::string& script, const std::string& name) {
  std::string error;
  const uint16_t port = testing::StartWithPortFile(
      process, {"/usr/bin/python3", SourceDir() + "/soap/testdata/" + script},
      dir.Path(name + ".port"), dir.Path(name + ".log"), &error);
  if (port == 0) ADD_FAILURE() << script << ": " << error;
  return port;
}

// The text of <v:Verified>/<v:field> in the verifier's answer.
std::string Verified(const v1::SoapResult& soap, const std::string& field) {
  for (const auto& b : soap.body()) {
    if (b.name() != "Verified") continue;
    for (const auto& c : b.children()) {
      if (c.name() == field) return c.text();
    }
  }
  return "<missing " + field + "> in " + soap.body_xml() + soap.fault().reason();
}

std::vector<std::string> ElementNames(
    const google::protobuf::RepeatedPtrField<v1::WsdlParameter>& params) {
  std::vector<std::string> out;
  for (const auto& p : params) {
    if (!p.attribute()) out.push_back(p.name());
  }
  return out;
}

// DescribeWsdl's answer in the shape of soap/testdata/wsdl_zeep_dump.py's output.
nlohmann::json AsZeepShape(const v1::DescribeWsdlResponse& d) {
  nlohmann::json out = {{"services", nlohmann::json::array()}};
  for (const auto& s : d.services()) {
    nlohmann::json service = {{"name", s.name()}, {"ports", nlohmann::json::array()}};
    for (const auto& p : s.ports()) {
      nlohmann::json port = {{"name", p.name()},
                             {"address", p.address()},
                             {"binding", p.binding()},
                             {"version", p.version() == v1::SOAP_VERSION_1_2 ? "1.2" : "1.1"},
                             {"operations", nlohmann::json::array()}};
      std::vector<nlohmann::json> ops;
      for (const auto& op : p.operations()) {
        ops.push_back({{"name", op.name()},
                       {"action", op.soap_action()},
                       {"style", op.style()},
                       {"input", ElementNames(op.input())},
                       {"output", ElementNames(op.output())}});
      }
      std::sort(ops.begin(), ops.end(),
                [](const auto& a, const auto& b) { return a["name"] < b["name"]; });
      for (auto& op : ops) port["operations"].push_back(op);
      service["ports"].push_back(port);
    }
    out["services"].push_back(service);
  }
  return out;
}

class SoapEnterpriseTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir("soap-enterprise-");
    verifier_ = new testing::ChildProcess();
    spyne_ = new testing::ChildProcess();
    const uint16_t verifier_port =
        StartPythonService(*verifier_, *dir_, "signature_service.py", "verifier");
    const uint16_t spyne_port = StartPythonService(*spyne_, *dir_, "soap_service.py", "spyne");
    if (verifier_port == 0 || spyne_port == 0) return;
    testing::NginxConfig config;
    config.verify_client = testing::NginxVerifyClient::kOn;
    config.proxy_routes.emplace_back("/signed", verifier_port);
    config.proxy_routes.emplace_back("/soap11", spyne_port);
    nginx_ = new testing::NginxServer(config);
    if (!nginx_->Start()) ADD_FAILURE() << "nginx: " << nginx_->start_error();
  }
  static void TearDownTestSuite() {
    delete nginx_;
    for (auto* p : {verifier_, spyne_}) {
      if (p != nullptr) p->Stop();
      delete p;
    }
    delete dir_;
    nginx_ = nullptr;
    verifier_ = spyne_ = nullptr;
    dir_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(nginx_, nullptr);
    ASSERT_TRUE(engine_.Start()) << engine_.start_error();
    id_ = ImportRsaIdentity(engine_, port());
    ASSERT_FALSE(id_.id().empty());
  }
  void TearDown() override { EXPECT_EQ(engine_.Stop(), 0) << "plugin exit code"; }

  static uint32_t port() { return nginx_->port(); }
  static std::string Url(const std::string& path) {
    return "https://localhost:" + std::to_string(port()) + path;
  }

  static v1::ExecuteSoapStepRequest SignedStep(v1::SoapVersion version) {
    v1::ExecuteSoapStepRequest req;
    auto* step = req.mutable_step();
    step->set_endpoint(Url("/signed"));
    step->set_version(version);
    step->set_action("urn:wsstep:signed:Pay");
    auto* op = step->mutable_operation();
    op->set_name("Pay");
    op->set_namespace_uri("urn:wsstep:signed");
    auto* amount = op->add_parameters();
    amount->set_name("amount");
    amount->set_text("100.00");
    step->mutable_tls()->set_ssl_verification(true);
    step->mutable_ws_security()->mutable_signature();
    return req;
  }

  static testing::TempDir* dir_;
  static testing::ChildProcess* verifier_;
  static testing::ChildProcess* spyne_;
  static testing::NginxServer* nginx_;
  mock_engine::MockEngine engine_;
  v1::Certificate id_;
};

testing::TempDir* SoapEnterpriseTest::dir_ = nullptr;
testing::ChildProcess* SoapEnterpriseTest::verifier_ = nullptr;
testing::ChildProcess* SoapEnterpriseTest::spyne_ = nullptr;
testing::NginxServer* SoapEnterpriseTest::nginx_ = nullptr;

TEST_F(SoapEnterpriseTest, SignedStepIsVerifiedWithTheCertificateTlsPresented) {
  for (v1::SoapVersion version : {v1::SOAP_VERSION_1_1, v1::SOAP_VERSION_1_2}) {
    auto r = engine_.Soap(SignedStep(version));
    ASSERT_TRUE(r.ok()) << r.status.error_message();
    const v1::StepOutcome& outcome = r.response.outcome();
    ASSERT_TRUE(outcome.has_soap()) << outcome.error().code() << ": " << outcome.error().message();
    const v1::SoapResult& soap = outcome.soap();
    ASSERT_FALSE(soap.has_fault()) << soap.fault().reason();
    EXPECT_EQ(Verified(soap, "signer"), "CN=rsa,O=wsstep tests");
    EXPECT_EQ(Verified(soap, "token"), "direct");
    EXPECT_EQ(Verified(soap, "signed"), "Body Timestamp");
    EXPECT_EQ(Verified(soap, "signature_method"),
              "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256");
    EXPECT_EQ(soap.signature().certificate_fingerprint(), id_.certificate().sha256_fingerprint());
    EXPECT_EQ(outcome.tls().client_certificate().sha256_fingerprint(),
              id_.certificate().sha256_fingerprint());
    EXPECT_EQ(soap.signature().token_reference(), v1::WsSignature::TOKEN_REFERENCE_DIRECT);
    EXPECT_THAT(std::vector<std::string>(soap.signature().signed_ids().begin(),
                                         soap.signature().signed_ids().end()),
                ::testing::ElementsAre("wsstep-body", "wsstep-timestamp"));
  }
}

TEST_F(SoapEnterpriseTest, IssuerSerialAndChosenAlgorithms) {
  v1::ExecuteSoapStepRequest req = SignedStep(v1::SOAP_VERSION_1_1);
  auto* sig = req.mutable_step()->mutable_ws_security()->mutable_signature();
  sig->set_token_reference(v1::WsSignature::TOKEN_REFERENCE_ISSUER_SERIAL);
  sig->set_signature_algorithm(v1::WsSignature::SIGNATURE_ALGORITHM_RSA_SHA512);
  sig->set_digest_algorithm(v1::WsSignature::DIGEST_ALGORITHM_SHA512);
  auto r = engine_.Soap(req);
  ASSERT_TRUE(r.ok()) << r.status.error_message();
  const v1::StepOutcome& outcome = r.response.outcome();
  ASSERT_TRUE(outcome.has_soap()) << outcome.error().message();
  ASSERT_FALSE(outcome.soap().has_fault()) << outcome.soap().fault().reason();
  EXPECT_EQ(Verified(outcome.soap(), "token"), "issuer-serial");
  EXPECT_EQ(Verified(outcome.soap(), "signature_method"),
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512");
  EXPECT_EQ(Verified(outcome.soap(), "digest_method"), "http://www.w3.org/2001/04/xmlenc#sha512");
}

TEST_F(SoapEnterpriseTest, Ed25519CertificateCannotSignAndNothingIsSent) {
  ASSERT_TRUE(engine_
                  .Create(mock_engine::TrustStoreFromFile("trust-ed", "trust/bundle.pem",
                                                          {{"localhost", port(), "ed"}}))
                  .ok());
  ASSERT_TRUE(
      engine_
          .Create(mock_engine::KeyPairFromFiles(
              "ed", "client/ed25519.pem", "client/ed25519.key.pem", {{"localhost", port(), "ed"}}))
          .ok());
  v1::ExecuteSoapStepRequest req = SignedStep(v1::SOAP_VERSION_1_1);
  req.set_environment("ed");
  auto r = engine_.Soap(req);
  ASSERT_TRUE(r.ok()) << r.status.error_message();
  const v1::StepError& e = r.response.outcome().error();
  EXPECT_EQ(e.code(), "SIGNING_FAILED");
  EXPECT_EQ(e.error_code(), v1::ERROR_CODE_SIGNING_FAILED);
  EXPECT_EQ(e.side(), v1::ERROR_SIDE_CLIENT);
  EXPECT_THAT(e.message(), HasSubstr("key is ED25519"));
  for (const auto& line : nginx_->AccessLog())
    EXPECT_THAT(line.client_subject, ::testing::Not(HasSubstr("ed25519")));
}

TEST_F(SoapEnterpriseTest, SigningWithVerificationOffIsAConfigurationError) {
  v1::ExecuteSoapStepRequest req = SignedStep(v1::SOAP_VERSION_1_1);
  req.mutable_step()->mutable_tls()->set_ssl_verification(false);
  auto r = engine_.Soap(req);
  ASSERT_TRUE(r.ok()) << r.status.error_message();
  const v1::StepError& e = r.response.outcome().error();
  EXPECT_EQ(e.code(), "INVALID_STEP_CONFIG");
  EXPECT_EQ(e.detail().at("field"), "ws_security.signature");
  v1::ValidateStepRequest validate;
  *validate.mutable_soap() = req.step();
  auto v = engine_.Validate(validate);
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v.response.valid());
  ASSERT_GE(v.response.diagnostics_size(), 1);
  EXPECT_EQ(v.response.diagnostics(0).field_path(), "ws_security.signature");
}

TEST_F(SoapEnterpriseTest, WsdlServedOnlyOverMtlsMatchesZeep) {
  v1::DescribeWsdlRequest req;
  req.set_url(Url("/soap11?wsdl"));
  req.mutable_tls()->set_ssl_verification(true);
  req.set_operation("Compute");
  auto r = engine_.DescribeWsdl(req);
  ASSERT_TRUE(r.ok()) << r.status.error_message();
  auto zeep =
      testing::RunCommand({"/usr/bin/python3", SourceDir() + "/soap/testdata/wsdl_zeep_dump.py",
                           Url("/soap11?wsdl"), "--cert", PkiPath("client/rsa.pem"), "--key",
                           PkiPath("client/rsa.key.pem"), "--ca", PkiPath("trust/bundle.pem")});
  ASSERT_EQ(zeep.exit_code, 0) << zeep.output;
  EXPECT_EQ(AsZeepShape(r.response).dump(1), nlohmann::json::parse(zeep.output).dump(1));
  // The ready step for Compute, sent as is (parameters filled in) to the same service.
  ASSERT_TRUE(r.response.has_step());
  v1::SoapStep step = r.response.step();
  EXPECT_EQ(step.action(), "Compute");
  EXPECT_EQ(step.operation().name(), "Compute");
  EXPECT_EQ(step.operation().namespace_uri(), "urn:wsstep:interop");
  ASSERT_EQ(step.operation().parameters_size(), 1);
  EXPECT_EQ(step.operation().parameters(0).name(), "order");
  // The use of the bound certificate for the fetch is audited like a step's.
  v1::ListAuditEventsRequest audit;
  auto events = engine_.Audit(audit);
  ASSERT_TRUE(events.ok());
  bool used = false;
  for (const auto& ev : events.response.events()) used = used || ev.certificate_id() == id_.id();
  EXPECT_TRUE(used);
}

TEST_F(SoapEnterpriseTest, UploadedWsdlWithImportsAndValidateStepAgainstAServedWsdl) {
  const std::string dir = SourceDir() + "/soap/testdata/wsdl/multi/";
  v1::DescribeWsdlRequest req;
  for (const char* loc :
       {"main.wsdl", "abstract/interface.wsdl", "schemas/order.xsd", "schemas/parts.xsd"}) {
    auto* doc = req.add_documents();
    doc->set_location(loc);
    doc->set_content(testing::ReadFile(dir + loc));
  }
  auto r = engine_.DescribeWsdl(req);
  ASSERT_TRUE(r.ok()) << r.status.error_message();
  EXPECT_EQ(r.response.documents_size(), 4);
  ASSERT_EQ(r.response.services_size(), 1);
  EXPECT_EQ(r.response.services(0).ports(0).operations(0).soap_action(),
            "urn:example:orders:PlaceOrder");

  // A missing import is INVALID_WSDL naming it.
  req.mutable_documents()->RemoveLast();
  auto missing = engine_.DescribeWsdl(req);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(missing.details.reason, "INVALID_WSDL");
  EXPECT_EQ(missing.details.metadata.at("missing_document"), "schemas/parts.xsd");
  EXPECT_EQ(missing.details.metadata.at("document"), "schemas/order.xsd");

  // ValidateStep reads the WSDL a step names, over mTLS, and checks its parameters.
  v1::ValidateStepRequest validate;
  v1::SoapStep* step = validate.mutable_soap();
  step->set_endpoint(Url("/soap11"));
  step->set_action("Echo");
  step->mutable_tls()->set_ssl_verification(true);
  step->mutable_wsdl()->set_url(Url("/soap11?wsdl"));
  step->mutable_wsdl()->set_operation("Echo");
  auto* op = step->mutable_operation();
  op->set_name("Echo");
  op->set_namespace_uri("urn:wsstep:interop");
  auto* text = op->add_parameters();
  text->set_name("text");
  text->set_text("hi");
  auto ok = engine_.Validate(validate);
  ASSERT_TRUE(ok.ok()) << ok.status.error_message();
  EXPECT_TRUE(ok.response.valid()) << ok.response.DebugString();
  text->set_name("txt");
  auto bad = engine_.Validate(validate);
  ASSERT_TRUE(bad.ok());
  EXPECT_FALSE(bad.response.valid());
  ASSERT_GE(bad.response.diagnostics_size(), 1);
  EXPECT_EQ(bad.response.diagnostics(0).field_path(), "operation.parameters.txt");
  EXPECT_THAT(bad.response.diagnostics(0).summary(), HasSubstr("no element \"txt\""));
}

// The CLI against `wsstep serve`.
class SoapEnterpriseCliTest : public SoapEnterpriseTest {
 protected:
  void SetUp() override {
    ASSERT_NE(nginx_, nullptr);
    socket_ = StartServeForCli(server_, work_);
    ASSERT_FALSE(socket_.empty());
    const std::string bind = "localhost:" + std::to_string(port());
    ASSERT_EQ(Wsstep({"cert", "import", "--name", "trust", "--type", "trust-store", "--file",
                      PkiPath("trust/bundle.pem"), "--bind", bind})
                  .exit_code,
              0);
    ASSERT_EQ(Wsstep({"cert", "import", "--name", "id", "--type", "key-pair", "--file",
                      PkiPath("client/rsa.pem"), "--key-file", PkiPath("client/rsa.key.pem"),
                      "--bind", bind})
                  .exit_code,
              0);
  }
  void TearDown() override { server_.Stop(SIGTERM, std::chrono::seconds(20)); }

  testing::CommandResult Wsstep(std::vector<std::string> args) {
    std::vector<std::string> argv = {WSSTEP_BINARY, "--plugin", "unix://" + socket_};
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::RunCommand(argv);
  }

  testing::ChildProcess server_;
  testing::TempDir work_{"wsstep-cli-soap-"};
  std::string socket_;
};

TEST_F(SoapEnterpriseCliTest, WsdlFileWithImportsAcrossFiles) {
  auto r = Wsstep(
      {"wsdl", SourceDir() + "/soap/testdata/wsdl/multi/main.wsdl", "--operation", "PlaceOrder"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("WSDL urn:example:orders:service (4 documents)"));
  EXPECT_THAT(r.output,
              HasSubstr("port OrdersPort  SOAP 1.1  document  https://orders.example/soap"));
  EXPECT_THAT(r.output,
              HasSubstr("operation PlaceOrder  action \"urn:example:orders:PlaceOrder\""));
  EXPECT_THAT(r.output, HasSubstr("line: {urn:example:orders}Line [1..*]"));
  EXPECT_THAT(r.output, HasSubstr("\"endpoint\": \"https://orders.example/soap\""));
  auto json = Wsstep({"--json", "wsdl", SourceDir() + "/soap/testdata/wsdl/rpc/calc.wsdl"});
  ASSERT_EQ(json.exit_code, 0) << json.output;
  auto parsed = nlohmann::json::parse(json.output, nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << json.output;
  EXPECT_EQ(parsed["services"][0]["ports"][0]["operations"][0]["style"], "rpc");
}

TEST_F(SoapEnterpriseCliTest, WsdlErrorsNameTheFileAndTheElement) {
  testing::TempDir dir("wsdl-bad-");
  testing::WriteFile(dir.Path("a.wsdl"),
                     "<definitions xmlns=\"http://schemas.xmlsoap.org/wsdl/\" "
                     "targetNamespace=\"urn:a\"><import location=\"b.wsdl\"/></definitions>");
  testing::WriteFile(dir.Path("b.wsdl"),
                     "<definitions xmlns=\"http://schemas.xmlsoap.org/wsdl/\" "
                     "targetNamespace=\"urn:b\"><import location=\"a.wsdl\"/></definitions>");
  auto r = Wsstep({"wsdl", dir.Path("a.wsdl")});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("b.wsdl: <import location=\"a.wsdl\">: import cycle"));
  EXPECT_THAT(r.output, HasSubstr("INVALID_WSDL"));
}

TEST_F(SoapEnterpriseCliTest, CallSoapSign) {
  auto r = Wsstep({"call", "soap", "--endpoint", Url("/signed"), "--operation", "Pay",
                   "--namespace", "urn:wsstep:signed", "--param", "amount=5", "--sign",
                   "--sign-algorithm", "rsa_sha384", "--fail"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("<v:signed>Body Timestamp</v:signed>"));
  EXPECT_THAT(r.output, HasSubstr("xmldsig-more#rsa-sha384"));
}

}  // namespace
}  // namespace wsstep::e2e

// The wired plugin end to end: the real `wsstep` binary launched as a host launches it,
// certificates imported over gRPC, steps run against a real nginx with
// ssl_verify_client on, and `wsstep demo`.
#include <grpcpp/grpcpp.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "plugin/cli/host_launcher.h"
#include "plugin/server/status_map.h"
#include "plugin/adapters/wiring.h"
#include "tests/support/nginx.h"
#include "tests/support/pki.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"
#include "wsstep/v1/certificate_service.grpc.pb.h"
#include "wsstep/v1/step_plugin_service.grpc.pb.h"

namespace wsstep::plugin {
namespace {

using testing::NginxConfig;
using testing::NginxServer;
using testing::NginxVerifyClient;
using testing::PkiPath;
using testing::ReadFile;

class WiringTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LaunchOptions o;
    o.binary = WSSTEP_BINARY;
    // Everything the plugin writes goes into work_, removed after the test: its log, its
    // data directory and its socket directory (which it cannot remove itself if killed).
    o.stderr_path = work_.Path("plugin.log");
    o.env.push_back({"WSSTEP_DATA_DIR", work_.Path("data")});
    o.env.push_back({"PLUGIN_UNIX_SOCKET_DIR", work_.path()});
    o.start_timeout = std::chrono::seconds(30);
    auto p = PluginProcess::Launch(o);
    ASSERT_TRUE(p.ok()) << p.error().ToString();
    plugin_ = std::move(p).value();
    certs_ = v1::CertificateService::NewStub(plugin_->channel());
    steps_ = v1::StepPluginService::NewStub(plugin_->channel());
  }
  void TearDown() override {
    if (plugin_) {
      plugin_->CloseStdin();
      plugin_->Wait(std::chrono::seconds(20));
      plugin_.reset();  // kills it if it did not exit, before work_ goes
    }
  }

  static void Deadline(grpc::ClientContext* ctx, int seconds = 30) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  }

  grpc::Status Create(v1::CertificateType type, const std::string& name, const std::string& content,
                      const std::string& key, std::vector<v1::Binding> bindings,
                      v1::CreateCertificateResponse* resp,
                      std::optional<std::string> password = std::nullopt) {
    v1::CreateCertificateRequest req;
    req.mutable_certificate()->set_name(name);
    req.mutable_certificate()->set_type(type);
    for (auto& b : bindings) *req.mutable_certificate()->add_bindings() = b;
    req.mutable_material()->set_content(content);
    req.mutable_material()->set_private_key(key);
    if (password) req.mutable_material()->mutable_password()->set_value(*password);
    grpc::ClientContext ctx;
    Deadline(&ctx);
    return certs_->CreateCertificate(&ctx, req, resp);
  }

  static v1::Binding Bind(const std::string& host, uint32_t port) {
    v1::Binding b;
    b.set_host(host);
    b.set_port(port);
    return b;
  }

  // Client certificate client/rsa and the test CA bound to localhost:port.
  void ImportClientAndTrust(uint16_t port) {
    v1::CreateCertificateResponse resp;
    auto s = Create(v1::CERTIFICATE_TYPE_KEY_PAIR, "client-rsa", ReadFile(PkiPath("client/rsa.pem")),
                    ReadFile(PkiPath("client/rsa.key.pem")), {Bind("localhost", port)}, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    client_id_ = resp.certificate().id();
    v1::CreateCertificateResponse trust;
    s = Create(v1::CERTIFICATE_TYPE_TRUST_STORE, "test-ca", ReadFile(PkiPath("trust/bundle.pem")), "",
               {Bind("localhost", port)}, &trust);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  v1::StepOutcome RunRest(const std::string& url, bool verification = true) {
    v1::ExecuteRestStepRequest req;
    req.mutable_step()->set_url(url);
    req.mutable_step()->mutable_tls()->set_ssl_verification(verification);
    grpc::ClientContext ctx;
    Deadline(&ctx);
    ctx.AddMetadata("x-wsstep-step-id", "step-1");
    ctx.AddMetadata("x-wsstep-workflow-id", "wf-1");
    v1::ExecuteRestStepResponse resp;
    auto s = steps_->ExecuteRestStep(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.outcome();
  }

  testing::TempDir work_{"wsstep-wiring-"};
  std::unique_ptr<PluginProcess> plugin_;
  std::unique_ptr<v1::CertificateService::Stub> certs_;
  std::unique_ptr<v1::StepPluginService::Stub> steps_;
  std::string client_id_;
};

TEST_F(WiringTest, RestStepPresentsTheBoundCertificateToNginx) {
  NginxConfig config;
  config.verify_client = NginxVerifyClient::kOn;
  NginxServer nginx(config);
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();
  ImportClientAndTrust(nginx.port());

  const v1::StepOutcome outcome = RunRest(nginx.base_url() + "/echo");
  ASSERT_TRUE(outcome.has_http()) << outcome.error().code() << ": " << outcome.error().message();
  EXPECT_EQ(outcome.http().status(), 200);
  const std::string fingerprint = testing::Sha256FingerprintOfPemFile(PkiPath("client/rsa.pem"));
  EXPECT_EQ(testing::NginxEcho::Parse(outcome.http().body()).client_fingerprint, fingerprint);
  EXPECT_EQ(outcome.tls().client_certificate().sha256_fingerprint(), fingerprint);
  EXPECT_EQ(outcome.tls().client_certificate().certificate_id(), client_id_);
  EXPECT_EQ(outcome.step_id(), "step-1");
  EXPECT_FALSE(outcome.tls().protocol().empty());
  auto log = nginx.AccessLog(1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].client_verify, "SUCCESS");
  EXPECT_EQ(log[0].client_fingerprint, fingerprint);

  // The use is visible in the audit log with the step and workflow ids (written by the
  // plugin's background flusher, which tells nobody: ask until it is there).
  v1::ListAuditEventsRequest areq;
  areq.add_actions(v1::AUDIT_ACTION_USE);
  grpc::Status listed;
  EXPECT_TRUE(testing::WaitUntil("the use is in the plugin's audit log", [&] {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::ListAuditEventsResponse aresp;
    listed = certs_->ListAuditEvents(&ctx, areq, &aresp);
    if (!listed.ok()) return true;  // reported below
    for (const auto& e : aresp.events()) {
      if (e.certificate_id() == client_id_ && e.step_id() == "step-1" &&
          e.workflow_id() == "wf-1" && e.outcome() == "OK") {
        return true;
      }
    }
    return false;
  }));
  EXPECT_TRUE(listed.ok()) << listed.error_message();
}

TEST_F(WiringTest, UnboundHostIsACertificateNotFoundOutcome) {
  NginxConfig config;
  config.verify_client = NginxVerifyClient::kOn;
  NginxServer nginx(config);
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();
  ImportClientAndTrust(nginx.port());
  // Bound to localhost, called as 127.0.0.1: nothing is bound there.
  const v1::StepOutcome outcome = RunRest(nginx.base_url("127.0.0.1") + "/echo");
  ASSERT_TRUE(outcome.has_error());
  EXPECT_EQ(outcome.error().code(), "CERTIFICATE_NOT_FOUND");
  EXPECT_EQ(outcome.error().error_code(), v1::ERROR_CODE_CERTIFICATE_NOT_FOUND);
  EXPECT_EQ(nginx.AccessLog().size(), 0u);
}

TEST_F(WiringTest, SelfSignedServerIsUntrusted) {
  NginxConfig config;
  config.cert_file = PkiPath("server/self-signed.pem");
  config.key_file = PkiPath("server/self-signed.key.pem");
  config.verify_client = NginxVerifyClient::kOn;
  NginxServer nginx(config);
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();
  ImportClientAndTrust(nginx.port());
  const v1::StepOutcome outcome = RunRest(nginx.base_url() + "/echo");
  ASSERT_TRUE(outcome.has_error());
  EXPECT_EQ(outcome.error().code(), "SERVER_CERT_UNTRUSTED");
}

TEST_F(WiringTest, WrongPasswordIsInvalidArgumentNamingWrongPassword) {
  v1::CreateCertificateResponse resp;
  auto s = Create(v1::CERTIFICATE_TYPE_PKCS12, "p12", ReadFile(PkiPath("p12/rsa-modern.p12")), "",
                  {Bind("api.example", 443)}, &resp, std::string("not the password"));
  ASSERT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  const StatusDetails d = DecodeStatusDetails(s);
  EXPECT_EQ(d.reason, "WRONG_PASSWORD");
  ASSERT_EQ(d.violations.size(), 1u);
  EXPECT_EQ(d.violations[0].field, "material.password");

  // A duplicate name is ALREADY_EXISTS.
  ASSERT_TRUE(Create(v1::CERTIFICATE_TYPE_TRUST_STORE, "ca", ReadFile(PkiPath("trust/bundle.pem")),
                     "", {}, &resp).ok());
  s = Create(v1::CERTIFICATE_TYPE_TRUST_STORE, "CA", ReadFile(PkiPath("trust/bundle.pem")), "", {},
             &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(DecodeStatusDetails(s).reason, "DUPLICATE_NAME");
}

TEST_F(WiringTest, GetCertificateNeverReturnsSecrets) {
  v1::CreateCertificateResponse created;
  const std::string p12 = ReadFile(PkiPath("p12/rsa-modern.p12"));
  ASSERT_TRUE(Create(v1::CERTIFICATE_TYPE_PKCS12, "p12", p12, "", {Bind("api.example", 443)},
                     &created, std::string(testing::pki::kP12Password))
                  .ok());
  v1::GetCertificateRequest req;
  req.set_name("P12");
  v1::GetCertificateResponse resp;
  grpc::ClientContext ctx;
  Deadline(&ctx);
  ASSERT_TRUE(certs_->GetCertificate(&ctx, req, &resp).ok());
  const v1::Certificate& c = resp.certificate();
  EXPECT_EQ(c.id(), created.certificate().id());
  EXPECT_TRUE(c.has_private_key());
  EXPECT_TRUE(c.has_password());
  EXPECT_EQ(c.status(), v1::CERTIFICATE_STATUS_VALID);
  EXPECT_EQ(c.bindings(0).host(), "api.example");
  const std::string wire = resp.SerializeAsString();
  EXPECT_EQ(wire.find("PRIVATE KEY"), std::string::npos);
  EXPECT_EQ(wire.find(std::string(testing::pki::kP12Password)), std::string::npos);
  const std::string key_der = ReadFile(PkiPath("client/rsa.key.der"));
  EXPECT_EQ(wire.find(key_der.substr(key_der.size() / 2, 64)), std::string::npos);
}

TEST_F(WiringTest, SoapStepReturnsTheParsedBody) {
  const std::string envelope =
      "<?xml version=\"1.0\"?><soap:Envelope "
      "xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>"
      "<q:GetQuoteResponse xmlns:q=\"urn:quotes\"><q:Price>1.5</q:Price></q:GetQuoteResponse>"
      "</soap:Body></soap:Envelope>";
  NginxConfig config;
  config.verify_client = NginxVerifyClient::kOn;
  config.responses.emplace_back("/soap", envelope, 200, "text/xml");
  NginxServer nginx(config);
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();
  ImportClientAndTrust(nginx.port());

  v1::ExecuteSoapStepRequest req;
  auto* step = req.mutable_step();
  step->set_endpoint(nginx.base_url() + "/soap");
  step->set_action("urn:quotes:GetQuote");
  step->mutable_operation()->set_name("GetQuote");
  step->mutable_operation()->set_namespace_uri("urn:quotes");
  auto* p = step->mutable_operation()->add_parameters();
  p->set_name("Symbol");
  p->set_text("ACME");
  step->mutable_tls()->set_ssl_verification(true);
  grpc::ClientContext ctx;
  Deadline(&ctx);
  v1::ExecuteSoapStepResponse resp;
  ASSERT_TRUE(steps_->ExecuteSoapStep(&ctx, req, &resp).ok());
  const auto& outcome = resp.outcome();
  ASSERT_TRUE(outcome.has_soap()) << outcome.error().code() << ": " << outcome.error().message();
  EXPECT_EQ(outcome.soap().http_status(), 200);
  ASSERT_EQ(outcome.soap().body_size(), 1);
  EXPECT_EQ(outcome.soap().body(0).name(), "GetQuoteResponse");
  EXPECT_EQ(outcome.soap().body(0).namespace_uri(), "urn:quotes");
  ASSERT_EQ(outcome.soap().body(0).children_size(), 1);
  EXPECT_EQ(outcome.soap().body(0).children(0).text(), "1.5");
  EXPECT_EQ(outcome.tls().client_certificate().certificate_id(), client_id_);
}

TEST_F(WiringTest, TestConnectionDiagnosesTheHandshake) {
  NginxConfig config;
  config.verify_client = NginxVerifyClient::kOn;
  NginxServer nginx(config);
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();
  ImportClientAndTrust(nginx.port());
  v1::TestConnectionRequest req;
  req.set_host("localhost");
  req.set_port(nginx.port());
  grpc::ClientContext ctx;
  Deadline(&ctx);
  v1::TestConnectionResponse resp;
  auto s = certs_->TestConnection(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(resp.ok()) << resp.error().code() << ": " << resp.error().message();
  EXPECT_EQ(resp.resolution().chosen().id(), client_id_);
  EXPECT_EQ(resp.tls().client_certificate().certificate_id(), client_id_);
  EXPECT_NE(resp.tls().server_certificate().subject().find("CN=localhost"), std::string::npos);
}

TEST(WiringOptionsTest, EngineQueueHoldsEveryStepThePluginAdmits) {
  Config config;
  config.limits.max_in_flight_steps = 5000;  // above the engine's old fixed queue of 1,024
  config.limits.max_body_bytes = 1 << 20;
  config.protected_environments = {"prod", "live"};
  TransferOptions t = TransferOptionsFor(config);
  EXPECT_EQ(t.max_queue, 5000u + 1024u);
  EXPECT_GE(t.max_queue, static_cast<size_t>(config.limits.max_in_flight_steps));
  EXPECT_EQ(t.max_body_bytes, 1u << 20);
  EXPECT_EQ(t.protected_environments, (std::set<std::string>{"prod", "live"}));

  Config defaults;
  EXPECT_EQ(TransferOptionsFor(defaults).max_queue, 256u + 1024u);
  EXPECT_EQ(TransferOptionsFor(defaults).spin_wait, std::chrono::microseconds(250));
  config.spin_wait = std::chrono::microseconds(0);
  EXPECT_EQ(TransferOptionsFor(config).spin_wait, std::chrono::microseconds(0));
}

TEST(WiringDemo, DemoExitsZero) {
  testing::TempDir work("wsstep-wiring-demo-");
  auto r = testing::RunCommand({WSSTEP_BINARY, "demo"}, {{"WSSTEP_DATA_DIR", work.Path("data")}},
                               std::chrono::seconds(120));
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

// With --json the narrative goes to stderr: stdout is one JSON document (issue 15).
TEST(WiringDemo, JsonDemoPrintsOneDocumentOnStdout) {
  testing::TempDir work("wsstep-wiring-demo-json-");
  const std::string out = work.Path("stdout.json");
  auto r = testing::RunCommand(
      {"bash", "-c", "exec \"$0\" --json demo >\"$1\"", WSSTEP_BINARY, out},
      {{"WSSTEP_DATA_DIR", work.Path("data")}}, std::chrono::seconds(120));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, ::testing::HasSubstr("demo: OK"));  // the narrative, on stderr
  auto j = nlohmann::json::parse(testing::ReadFile(out), nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << testing::ReadFile(out);
  EXPECT_EQ(j["result"], "OK");
  EXPECT_EQ(j["mtlsStep"]["http"]["status"], 200) << j.dump();
  EXPECT_EQ(j["untrustedStep"]["error"]["code"], "SERVER_CERT_UNTRUSTED") << j.dump();
}

}  // namespace
}  // namespace wsstep::plugin

// Steps through an explicit HTTP proxy, driven through the real binary: the mock engine
// over gRPC (the step's proxy settings and the plugin's configuration) and the CLI
// (`wsstep call rest --proxy`), against a real tinyproxy in front of a real nginx mTLS
// origin. nginx's access log proves which client certificate came through the tunnel;
// tinyproxy's log proves the tunnel was used; proxy variables in the plugin's environment
// change nothing unless the configuration says to use them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>

#include "tests/e2e/e2e_util.h"
#include "tests/mock_engine/mock_engine.h"
#include "tests/support/nginx.h"
#include "tests/support/pki.h"
#include "tests/support/process.h"
#include "tests/support/tinyproxy.h"
#include "tests/support/wait.h"

namespace wsstep::e2e {
namespace {

using mock_engine::MockEngine;
using ::testing::HasSubstr;
using testing::NginxServer;
using testing::TinyproxyServer;

constexpr char kProxyUser[] = "egress";
constexpr char kProxyPassword[] = "tunnel-pa55word";

class ProxyE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    testing::NginxConfig config;
    config.verify_client = testing::NginxVerifyClient::kOn;
    config.client_ca_file = testing::PkiPath("ca/root.pem");
    config.responses.emplace_back("/hello", "hi");
    config.responses.emplace_back(
        "/soap",
        "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>"
        "<PayResponse xmlns=\"urn:wsstep:proxy\"><status>booked</status></PayResponse>"
        "</soap:Body></soap:Envelope>",
        200, "text/xml; charset=utf-8");
    nginx_ = new NginxServer(config);
    ASSERT_TRUE(nginx_->Start()) << nginx_->start_error();
    testing::TinyproxyConfig auth;
    auth.basic_auth = {{kProxyUser, kProxyPassword}};
    proxy_ = new TinyproxyServer(auth);
    ASSERT_TRUE(proxy_->Start()) << proxy_->start_error();
  }
  static void TearDownTestSuite() {
    delete proxy_;
    delete nginx_;
  }
  void SetUp() override { nginx_->ClearAccessLog(); }

  static std::string Url() { return nginx_->base_url() + "/hello"; }
  static std::string Fingerprint() {
    return testing::Sha256FingerprintOfPemFile(testing::PkiPath("client/rsa.pem"));
  }
  static int Connects() { return proxy_->ConnectRequests("localhost", nginx_->port()); }
  static bool ConnectsReach(int n) {
    return testing::WaitUntil("tinyproxy logged the CONNECT", [n] { return Connects() >= n; });
  }
  static std::string Dead() {
    return "http://127.0.0.1:" + std::to_string(testing::PickFreeLoopbackPort());
  }

  // The plugin's own proxy, with credentials, in its environment.
  static std::vector<std::pair<std::string, std::string>> ConfiguredProxy() {
    return {{"WSSTEP_PROXY", proxy_->url()},
            {"WSSTEP_PROXY_USERNAME", kProxyUser},
            {"WSSTEP_PROXY_PASSWORD", kProxyPassword}};
  }
  // Where the proxy password shows in `text` (none expected).
  static std::vector<std::string> PasswordIn(const std::string& what, const std::string& text) {
    return mock_engine::ScanForSecrets(what, text,
                                       {mock_engine::TextSecret("proxy password", kProxyPassword)});
  }

  // Runs `wsstep ARGS...` against a served plugin, with PROXY_PASSWORD in its environment.
  using Cli = std::function<testing::CommandResult(std::vector<std::string>)>;
  // `wsstep serve` in `work` with the client certificate bound to nginx; empty (and a test
  // failure) when that fails.
  static Cli ServeWithIdentity(testing::ChildProcess& server, const testing::TempDir& work) {
    const std::string socket = StartServeWithRsaIdentity(server, work, nginx_->port());
    if (socket.empty()) return nullptr;
    return [socket](std::vector<std::string> args) {
      return RunCli(socket, args, {{"PROXY_PASSWORD", kProxyPassword}});
    };
  }

  static NginxServer* nginx_;
  static TinyproxyServer* proxy_;
};
NginxServer* ProxyE2eTest::nginx_ = nullptr;
TinyproxyServer* ProxyE2eTest::proxy_ = nullptr;

TEST_F(ProxyE2eTest, AStepsProxyCarriesMutualTlsAndItsPasswordNeverComesBack) {
  MockEngine engine;
  ASSERT_TRUE(engine.Start()) << engine.start_error();
  ImportRsaIdentity(engine, nginx_->port());

  // Without credentials: the proxy's 407, on side PROXY.
  v1::RestStep step = mock_engine::GetStep(Url());
  step.mutable_proxy()->set_url(proxy_->url());
  auto refused = engine.Rest(step, "", Opts("no-credentials"));
  ASSERT_TRUE(refused.ok()) << refused.status.error_message();
  ASSERT_TRUE(refused.response.outcome().has_error());
  const v1::StepError& e = refused.response.outcome().error();
  EXPECT_EQ(e.code(), "PROXY_AUTH_REQUIRED") << e.message();
  EXPECT_EQ(e.error_code(), v1::ERROR_CODE_PROXY_AUTH_REQUIRED);
  EXPECT_EQ(e.side(), v1::ERROR_SIDE_PROXY);
  EXPECT_EQ(e.detail().at("proxy_status"), "407");
  EXPECT_EQ(e.detail().at("proxy"), proxy_->url());  // the route tried

  const int before = Connects();
  step.mutable_proxy()->set_username(kProxyUser);
  step.mutable_proxy()->set_password(kProxyPassword);
  auto r = engine.Rest(step, "", Opts("through-proxy"));
  ASSERT_TRUE(r.ok()) << r.status.error_message();
  ASSERT_TRUE(r.response.outcome().has_http()) << r.response.outcome().error().message();
  EXPECT_EQ(r.response.outcome().http().status(), 200);
  EXPECT_EQ(r.response.outcome().tls().proxy(), proxy_->url());
  EXPECT_EQ(r.response.outcome().tls().client_certificate().sha256_fingerprint(), Fingerprint());
  EXPECT_TRUE(ConnectsReach(before + 1)) << proxy_->Log();
  auto log = nginx_->AccessLog(1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].client_fingerprint, Fingerprint());
  EXPECT_EQ(log[0].client_verify, "SUCCESS");
  // The step's log line names the route, never the credentials.
  EXPECT_THAT(FinishedLineOf(engine, "through-proxy"),
              HasSubstr("\"proxy\":\"" + proxy_->url() + "\""));

  const std::vector<mock_engine::Secret> secrets = {
      mock_engine::TextSecret("proxy password", kProxyPassword)};
  EXPECT_THAT(mock_engine::ScanForSecrets("transcript", engine.Transcript(), secrets),
              ::testing::IsEmpty());
  EXPECT_THAT(mock_engine::ScanForSecrets("stderr", engine.StderrText(), secrets),
              ::testing::IsEmpty());
  for (const auto& [name, text] : mock_engine::ReadTree(engine.data_dir())) {
    EXPECT_THAT(mock_engine::ScanForSecrets(name, text, secrets), ::testing::IsEmpty());
  }
}

// A SOAP step takes the same route: its proxy settings, the tunnel, and the client
// certificate nginx sees at the far end.
TEST_F(ProxyE2eTest, ASoapStepGoesThroughItsProxyWithTheBoundCertificate) {
  MockEngine engine;
  ASSERT_TRUE(engine.Start()) << engine.start_error();
  ImportRsaIdentity(engine, nginx_->port());
  v1::ExecuteSoapStepRequest req;
  v1::SoapStep* step = req.mutable_step();
  step->set_endpoint(nginx_->base_url() + "/soap");
  step->set_version(v1::SOAP_VERSION_1_1);
  step->set_action("urn:wsstep:proxy:Pay");
  step->mutable_operation()->set_name("Pay");
  step->mutable_operation()->set_namespace_uri("urn:wsstep:proxy");
  step->mutable_tls()->set_ssl_verification(true);
  step->mutable_proxy()->set_url(proxy_->url());
  step->mutable_proxy()->set_username(kProxyUser);
  step->mutable_proxy()->set_password(kProxyPassword);
  const int before = Connects();
  auto r = engine.Soap(req, Opts("soap-through-proxy"));
  ASSERT_TRUE(r.ok()) << r.status.error_message();
  const v1::StepOutcome& outcome = r.response.outcome();
  ASSERT_TRUE(outcome.has_soap()) << outcome.error().message();
  EXPECT_EQ(outcome.soap().http_status(), 200);
  EXPECT_THAT(outcome.soap().body_xml(), HasSubstr("<status>booked</status>"));
  EXPECT_EQ(outcome.tls().proxy(), proxy_->url());
  EXPECT_TRUE(ConnectsReach(before + 1)) << proxy_->Log();
  auto log = nginx_->AccessLog(1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].client_fingerprint, Fingerprint());
  EXPECT_EQ(log[0].client_verify, "SUCCESS");
}

TEST_F(ProxyE2eTest, ThePluginsConfiguredProxyIsUsedByStepsThatNameNone) {
  MockEngine engine;
  ASSERT_TRUE(engine.Start(ConfiguredProxy())) << engine.start_error();
  ImportRsaIdentity(engine, nginx_->port());
  const int before = Connects();
  auto r = engine.Rest(mock_engine::GetStep(Url()), "", Opts("configured"));
  ASSERT_TRUE(r.ok()) << r.status.error_message();
  ASSERT_TRUE(r.response.outcome().has_http()) << r.response.outcome().error().message();
  EXPECT_EQ(r.response.outcome().tls().proxy(), proxy_->url());
  EXPECT_TRUE(ConnectsReach(before + 1)) << proxy_->Log();
  EXPECT_EQ(nginx_->AccessLog(1).at(0).client_fingerprint, Fingerprint());

  // A step that says direct skips it.
  v1::RestStep direct = mock_engine::GetStep(Url());
  direct.mutable_proxy()->set_direct(true);
  auto d = engine.Rest(direct, "", Opts("direct"));
  ASSERT_TRUE(d.response.outcome().has_http()) << d.response.outcome().error().message();
  EXPECT_EQ(d.response.outcome().tls().proxy(), "");
  EXPECT_THAT(PasswordIn("stderr", engine.StderrText()), ::testing::IsEmpty());
}

TEST_F(ProxyE2eTest, ABogusHttpsProxyInThePluginsEnvironmentIsIgnoredByDefault) {
  MockEngine engine;
  ASSERT_TRUE(engine.Start({{"https_proxy", Dead()},
                            {"HTTPS_PROXY", Dead()},
                            {"ALL_PROXY", Dead()},
                            {"http_proxy", Dead()}}))
      << engine.start_error();
  ImportRsaIdentity(engine, nginx_->port());
  auto r = engine.Rest(mock_engine::GetStep(Url()), "", Opts("env-ignored"));
  ASSERT_TRUE(r.ok()) << r.status.error_message();
  ASSERT_TRUE(r.response.outcome().has_http()) << r.response.outcome().error().message();
  EXPECT_EQ(r.response.outcome().http().status(), 200);
  EXPECT_EQ(r.response.outcome().tls().proxy(), "");
}

TEST_F(ProxyE2eTest, TheEnvironmentsProxyIsHonouredWhenTheConfigurationSaysSo) {
  // user:password@ in https_proxy are the proxy credentials.
  const std::string with_credentials =
      "http://" + std::string(kProxyUser) + ":" + kProxyPassword + "@" + proxy_->url().substr(7);
  MockEngine engine;
  ASSERT_TRUE(
      engine.Start({{"WSSTEP_PROXY_FROM_ENVIRONMENT", "true"}, {"https_proxy", with_credentials}}))
      << engine.start_error();
  ImportRsaIdentity(engine, nginx_->port());
  const int before = Connects();
  auto r = engine.Rest(mock_engine::GetStep(Url()), "", Opts("env-honoured"));
  ASSERT_TRUE(r.response.outcome().has_http()) << r.response.outcome().error().message();
  EXPECT_EQ(r.response.outcome().tls().proxy(), proxy_->url());
  EXPECT_TRUE(ConnectsReach(before + 1)) << proxy_->Log();

  // And a dead one in the environment then fails on side PROXY.
  MockEngine dead;
  ASSERT_TRUE(dead.Start({{"WSSTEP_PROXY_FROM_ENVIRONMENT", "true"}, {"https_proxy", Dead()}}))
      << dead.start_error();
  ImportRsaIdentity(dead, nginx_->port());
  auto f = dead.Rest(mock_engine::GetStep(Url()), "", Opts("env-dead"));
  ASSERT_TRUE(f.response.outcome().has_error());
  EXPECT_EQ(f.response.outcome().error().code(), "PROXY_UNREACHABLE")
      << f.response.outcome().error().message();
  EXPECT_EQ(f.response.outcome().error().side(), v1::ERROR_SIDE_PROXY);
}

TEST_F(ProxyE2eTest, CallRestTakesTheProxyOptions) {
  testing::TempDir work("wsstep-proxy-cli-");
  testing::ChildProcess server;
  const Cli wsstep = ServeWithIdentity(server, work);
  ASSERT_TRUE(wsstep);
  auto refused = wsstep({"call", "rest", "--url", Url(), "--proxy", proxy_->url()});
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_THAT(refused.output, HasSubstr("PROXY_AUTH_REQUIRED"));
  EXPECT_THAT(refused.output, HasSubstr("side: PROXY"));

  const int before = Connects();
  auto ok = wsstep({"call", "rest", "--url", Url(), "--proxy", proxy_->url(), "--proxy-user",
                    kProxyUser, "--proxy-password-env", "PROXY_PASSWORD"});
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_THAT(ok.output, HasSubstr("hi"));
  EXPECT_TRUE(ConnectsReach(before + 1)) << proxy_->Log();
  EXPECT_EQ(nginx_->AccessLog(1).at(0).client_fingerprint, Fingerprint());
  EXPECT_THAT(ok.output + refused.output, ::testing::Not(HasSubstr(kProxyPassword)));

  // test-connection takes the same options.
  const std::string target = "localhost:" + std::to_string(nginx_->port());
  auto probe_refused = wsstep({"test-connection", target, "--proxy", proxy_->url()});
  EXPECT_EQ(probe_refused.exit_code, 1) << probe_refused.output;
  EXPECT_THAT(probe_refused.output, HasSubstr("handshake FAILED\n"));
  EXPECT_THAT(probe_refused.output, HasSubstr("wsstep: PROXY_AUTH_REQUIRED: "));
  const int before_probe = Connects();
  auto probe = wsstep({"test-connection", target, "--proxy", proxy_->url(), "--proxy-user",
                       kProxyUser, "--proxy-password-env", "PROXY_PASSWORD"});
  ASSERT_EQ(probe.exit_code, 0) << probe.output;
  EXPECT_THAT(probe.output, HasSubstr("through proxy: " + proxy_->url() + "\n"));
  EXPECT_THAT(probe.output, HasSubstr("handshake OK\n"));
  EXPECT_THAT(probe.output, HasSubstr("client certificate offered: id\n"));
  EXPECT_TRUE(ConnectsReach(before_probe + 1)) << proxy_->Log();
  auto unset = wsstep({"test-connection", target, "--proxy", proxy_->url(), "--proxy-user",
                       kProxyUser, "--proxy-password-env", "NO_SUCH_VARIABLE_SET"});
  EXPECT_EQ(unset.exit_code, 2) << unset.output;
  EXPECT_THAT(unset.output, HasSubstr("--proxy-password-env: environment variable "
                                      "NO_SUCH_VARIABLE_SET is not set"));
  EXPECT_THAT(probe.output + probe_refused.output, ::testing::Not(HasSubstr(kProxyPassword)));
  server.Stop(SIGTERM, std::chrono::seconds(20));
}

// TestConnection takes a step's route: the proxy it is given (the handshake and the
// client certificate run through the tunnel), the plugin's configured one, or none.
TEST_F(ProxyE2eTest, TestConnectionProbesThroughTheProxyItIsGiven) {
  MockEngine engine;
  ASSERT_TRUE(engine.Start()) << engine.start_error();
  ImportRsaIdentity(engine, nginx_->port());
  v1::TestConnectionRequest req;
  req.set_host("localhost");
  req.set_port(nginx_->port());
  req.mutable_proxy()->set_url(proxy_->url());

  auto refused = engine.TestConnection(req);
  ASSERT_TRUE(refused.ok()) << refused.status.error_message();
  EXPECT_FALSE(refused.response.ok());
  EXPECT_EQ(refused.response.error().code(), "PROXY_AUTH_REQUIRED")
      << refused.response.error().message();
  EXPECT_EQ(refused.response.error().side(), v1::ERROR_SIDE_PROXY);
  EXPECT_EQ(refused.response.tls().proxy(), proxy_->url());

  const int before = Connects();
  req.mutable_proxy()->set_username(kProxyUser);
  req.mutable_proxy()->set_password(kProxyPassword);
  auto r = engine.TestConnection(req);
  ASSERT_TRUE(r.ok()) << r.status.error_message();
  EXPECT_TRUE(r.response.ok()) << r.response.error().message();
  EXPECT_EQ(r.response.tls().proxy(), proxy_->url());
  EXPECT_EQ(r.response.tls().client_certificate().sha256_fingerprint(), Fingerprint());
  EXPECT_EQ(r.response.http_status(), 404);  // nginx's answer to the probe's GET /
  EXPECT_TRUE(ConnectsReach(before + 1)) << proxy_->Log();
  auto log = nginx_->AccessLog(1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].client_fingerprint, Fingerprint());
  EXPECT_EQ(log[0].client_verify, "SUCCESS");

  // A proxy that refuses CONNECT to the origin's port: PROXY_REFUSED, nothing reached nginx.
  testing::TinyproxyConfig only_443;
  only_443.connect_ports = {443};
  TinyproxyServer strict(only_443);
  ASSERT_TRUE(strict.Start()) << strict.start_error();
  nginx_->ClearAccessLog();
  req.mutable_proxy()->Clear();
  req.mutable_proxy()->set_url(strict.url());
  auto forbidden = engine.TestConnection(req);
  ASSERT_TRUE(forbidden.ok()) << forbidden.status.error_message();
  EXPECT_FALSE(forbidden.response.ok());
  EXPECT_EQ(forbidden.response.error().code(), "PROXY_REFUSED")
      << forbidden.response.error().message();
  EXPECT_EQ(forbidden.response.error().detail().at("proxy_status"), "403");
  EXPECT_FALSE(forbidden.response.tls().has_client_certificate());

  // A proxy that is not there: PROXY_UNREACHABLE.
  req.mutable_proxy()->set_url(Dead());
  auto dead = engine.TestConnection(req);
  ASSERT_TRUE(dead.ok()) << dead.status.error_message();
  EXPECT_EQ(dead.response.error().code(), "PROXY_UNREACHABLE") << dead.response.error().message();
  EXPECT_EQ(dead.response.error().side(), v1::ERROR_SIDE_PROXY);

  // Naming a proxy and going direct at once is the caller's mistake, named.
  req.mutable_proxy()->set_direct(true);
  auto both = engine.TestConnection(req);
  EXPECT_EQ(both.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(both.status.error_message(), HasSubstr("proxy.direct"));
  EXPECT_TRUE(nginx_->AccessLog(0).empty());

  EXPECT_THAT(PasswordIn("transcript", engine.Transcript()), ::testing::IsEmpty());
}

TEST_F(ProxyE2eTest, TestConnectionTakesThePluginsProxyUnlessToldToGoDirect) {
  MockEngine engine;
  ASSERT_TRUE(engine.Start(ConfiguredProxy())) << engine.start_error();
  ImportRsaIdentity(engine, nginx_->port());
  v1::TestConnectionRequest req;
  req.set_host("localhost");
  req.set_port(nginx_->port());
  const int before = Connects();
  auto r = engine.TestConnection(req);
  ASSERT_TRUE(r.ok()) << r.status.error_message();
  EXPECT_TRUE(r.response.ok()) << r.response.error().message();
  EXPECT_EQ(r.response.tls().proxy(), proxy_->url());
  EXPECT_TRUE(ConnectsReach(before + 1)) << proxy_->Log();

  req.mutable_proxy()->set_direct(true);
  auto d = engine.TestConnection(req);
  ASSERT_TRUE(d.ok()) << d.status.error_message();
  EXPECT_TRUE(d.response.ok()) << d.response.error().message();
  EXPECT_EQ(d.response.tls().proxy(), "");
  EXPECT_EQ(d.response.tls().client_certificate().sha256_fingerprint(), Fingerprint());
  EXPECT_EQ(Connects(), before + 1);  // the direct probe did not use the tunnel
}

// Proxy credentials kept in the store: the plugin's configuration names one
// (WSSTEP_PROXY_CREDENTIAL) and steps name others (proxy.credential); each is looked up
// when a step runs, so setting, changing and deleting one over gRPC counts from the next
// step, and its password appears in no answer, log or file.
TEST_F(ProxyE2eTest, AStoredProxyCredentialIsLookedUpAtEachStepAndNeverShown) {
  MockEngine engine;
  ASSERT_TRUE(engine.Start({{"WSSTEP_PROXY", proxy_->url()},
                            {"WSSTEP_PROXY_CREDENTIAL", "corp"},
                            {"WSSTEP_LOG_LEVEL", "debug"}}))  // every line scanned below
      << engine.start_error();
  ImportRsaIdentity(engine, nginx_->port());
  const v1::RestStep plain = mock_engine::GetStep(Url());

  // The configuration names a credential the store does not hold yet.
  auto missing = engine.Rest(plain, "", Opts("config-missing"));
  ASSERT_TRUE(missing.response.outcome().has_error());
  EXPECT_EQ(missing.response.outcome().error().code(), "FAILED_PRECONDITION");
  EXPECT_EQ(missing.response.outcome().error().message(),
            "the plugin's proxy.credential names \"corp\", which the store does not hold");
  EXPECT_TRUE(nginx_->AccessLog(0).empty());

  // Stored with a wrong password: the proxy's own 407.
  auto wrong = engine.SetProxyCredential("corp", kProxyUser, "not-the-password");
  ASSERT_TRUE(wrong.ok()) << wrong.status.error_message();
  EXPECT_TRUE(wrong.response.created());
  EXPECT_EQ(wrong.response.credential().name(), "corp");
  auto refused = engine.Rest(plain, "", Opts("config-wrong"));
  ASSERT_TRUE(refused.response.outcome().has_error());
  EXPECT_EQ(refused.response.outcome().error().code(), "PROXY_AUTH_REQUIRED")
      << refused.response.outcome().error().message();

  // Corrected: the very next step goes through, with the bound certificate at nginx.
  auto right = engine.SetProxyCredential("CORP", kProxyUser, kProxyPassword);
  ASSERT_TRUE(right.ok()) << right.status.error_message();
  EXPECT_FALSE(right.response.created());
  EXPECT_EQ(right.response.credential().name(), "corp");  // its first spelling
  const int before = Connects();
  auto ok = engine.Rest(plain, "", Opts("config-right"));
  ASSERT_TRUE(ok.response.outcome().has_http()) << ok.response.outcome().error().message();
  EXPECT_EQ(ok.response.outcome().http().status(), 200);
  EXPECT_EQ(ok.response.outcome().tls().proxy(), proxy_->url());
  EXPECT_TRUE(ConnectsReach(before + 1)) << proxy_->Log();
  EXPECT_EQ(nginx_->AccessLog(1).at(0).client_fingerprint, Fingerprint());

  // A step names another credential, which wins over the configuration's.
  ASSERT_TRUE(engine.SetProxyCredential("partner", kProxyUser, "wrong-for-partner").ok());
  v1::RestStep named = plain;
  named.mutable_proxy()->set_credential("partner");
  auto partner = engine.Rest(named, "", Opts("step-credential"));
  ASSERT_TRUE(partner.response.outcome().has_error());
  EXPECT_EQ(partner.response.outcome().error().code(), "PROXY_AUTH_REQUIRED");

  // Names the store does not hold, or a credential beside a user: the step's config.
  named.mutable_proxy()->set_credential("nobody");
  auto unknown = engine.Rest(named, "", Opts("step-unknown"));
  ASSERT_TRUE(unknown.response.outcome().has_error());
  EXPECT_EQ(unknown.response.outcome().error().code(), "INVALID_STEP_CONFIG");
  EXPECT_EQ(unknown.response.outcome().error().detail().at("field"), "proxy.credential");
  EXPECT_EQ(unknown.response.outcome().error().message(),
            "proxy.credential: no proxy credential named \"nobody\" in the store");
  named.mutable_proxy()->set_username(kProxyUser);
  auto both = engine.Rest(named, "", Opts("step-both"));
  EXPECT_EQ(both.response.outcome().error().code(), "INVALID_STEP_CONFIG");
  EXPECT_EQ(both.response.outcome().error().detail().at("field"), "proxy.credential");

  // Listed with users, never passwords; audited without them.
  auto listed = engine.ListProxyCredentials();
  ASSERT_TRUE(listed.ok()) << listed.status.error_message();
  ASSERT_EQ(listed.response.credentials_size(), 2);
  EXPECT_EQ(listed.response.credentials(0).name(), "corp");
  EXPECT_EQ(listed.response.credentials(0).username(), kProxyUser);
  EXPECT_EQ(listed.response.credentials(1).name(), "partner");
  v1::ListAuditEventsRequest audit;
  audit.add_actions(v1::AUDIT_ACTION_SET_PROXY_CREDENTIAL);
  auto sets = engine.Audit(audit);
  ASSERT_TRUE(sets.ok()) << sets.status.error_message();
  EXPECT_EQ(sets.response.events_size(), 3);

  // Deleted: the configuration's name is missing again.
  ASSERT_TRUE(engine.DeleteProxyCredential("corp").ok());
  auto deleted = engine.DeleteProxyCredential("corp");
  EXPECT_EQ(deleted.status.error_code(), grpc::StatusCode::NOT_FOUND);
  auto after = engine.Rest(plain, "", Opts("config-deleted"));
  EXPECT_EQ(after.response.outcome().error().code(), "FAILED_PRECONDITION");

  // Bad input is named, and changes nothing.
  auto bad = engine.SetProxyCredential("x", "dom:user", kProxyPassword);
  EXPECT_EQ(bad.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad.status.error_message(), HasSubstr("username"));
  EXPECT_EQ(engine.ListProxyCredentials().response.credentials_size(), 1);

  EXPECT_THAT(PasswordIn("transcript", engine.Transcript()), ::testing::IsEmpty());
  EXPECT_THAT(PasswordIn("stderr", engine.StderrText()), ::testing::IsEmpty());
  for (const auto& [name, text] : mock_engine::ReadTree(engine.data_dir())) {
    EXPECT_THAT(PasswordIn(name, text), ::testing::IsEmpty());
  }
}

// The administrator's side: `wsstep proxy-credential set|list|delete`, a step and a
// connection test naming it, and a master key rotation that re-seals it.
TEST_F(ProxyE2eTest, ProxyCredentialCommandsStoreWhatCallsAndTestConnectionUse) {
  testing::TempDir work("wsstep-proxy-credential-");
  testing::ChildProcess server;
  const Cli wsstep = ServeWithIdentity(server, work);
  ASSERT_TRUE(wsstep);

  auto no_password = wsstep({"proxy-credential", "set", "corp", "--user", kProxyUser});
  EXPECT_EQ(no_password.exit_code, 2) << no_password.output;
  EXPECT_THAT(no_password.output, HasSubstr("password: required"));
  auto set = wsstep({"proxy-credential", "set", "corp", "--user", kProxyUser, "--password-env",
                     "PROXY_PASSWORD"});
  ASSERT_EQ(set.exit_code, 0) << set.output;
  EXPECT_EQ(set.output, "created proxy credential corp (user " + std::string(kProxyUser) +
                            "); the password is stored encrypted\n");
  auto list = wsstep({"--json", "proxy-credential", "list"});
  ASSERT_EQ(list.exit_code, 0) << list.output;
  auto j = nlohmann::json::parse(list.output);
  ASSERT_EQ(j["credentials"].size(), 1u);
  EXPECT_EQ(j["credentials"][0]["name"], "corp");
  EXPECT_EQ(j["credentials"][0]["username"], kProxyUser);
  EXPECT_FALSE(j["credentials"][0].contains("password"));

  const int before = Connects();
  auto call = wsstep(
      {"call", "rest", "--url", Url(), "--proxy", proxy_->url(), "--proxy-credential", "corp"});
  ASSERT_EQ(call.exit_code, 0) << call.output;
  EXPECT_THAT(call.output, HasSubstr("hi"));
  EXPECT_TRUE(ConnectsReach(before + 1)) << proxy_->Log();
  EXPECT_EQ(nginx_->AccessLog(1).at(0).client_fingerprint, Fingerprint());

  // A rotation re-seals the password; the next call still opens it.
  auto rotate = wsstep({"master-key", "rotate"});
  ASSERT_EQ(rotate.exit_code, 0) << rotate.output;
  const std::string target = "localhost:" + std::to_string(nginx_->port());
  auto probe =
      wsstep({"test-connection", target, "--proxy", proxy_->url(), "--proxy-credential", "corp"});
  ASSERT_EQ(probe.exit_code, 0) << probe.output;
  EXPECT_THAT(probe.output, HasSubstr("through proxy: " + proxy_->url() + "\n"));
  EXPECT_THAT(probe.output, HasSubstr("handshake OK\n"));
  auto audit = wsstep({"cert", "audit", "--action", "rotate-master-key"});
  EXPECT_THAT(audit.output, HasSubstr("1 proxy credentials re-encrypted"));

  auto del = wsstep({"proxy-credential", "delete", "corp"});
  ASSERT_EQ(del.exit_code, 0) << del.output;
  EXPECT_EQ(del.output, "deleted proxy credential corp\n");
  auto gone = wsstep(
      {"call", "rest", "--url", Url(), "--proxy", proxy_->url(), "--proxy-credential", "corp"});
  EXPECT_EQ(gone.exit_code, 1) << gone.output;
  EXPECT_THAT(gone.output, HasSubstr("INVALID_STEP_CONFIG"));
  EXPECT_THAT(gone.output, HasSubstr("no proxy credential named \"corp\" in the store"));
  server.Stop(SIGTERM, std::chrono::seconds(20));

  for (const auto& text : {set.output, list.output, call.output, probe.output, audit.output}) {
    EXPECT_THAT(text, ::testing::Not(HasSubstr(kProxyPassword)));
  }
  for (const auto& [name, text] : mock_engine::ReadTree(work.path())) {
    EXPECT_THAT(PasswordIn(name, text), ::testing::IsEmpty());
  }
}

}  // namespace
}  // namespace wsstep::e2e

// Steps through a real HTTP proxy (tinyproxy) to a real nginx mTLS origin: the TLS session
// runs end to end inside the CONNECT tunnel (nginx sees the client certificate), proxy
// authentication, a proxy that refuses the tunnel, an unreachable proxy, no-proxy lists,
// and proxy variables in the process environment that must change nothing.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <set>

#include "rest/engine.h"
#include "rest/proxy.h"
#include "rest/rest_test_util.h"
#include "tests/support/nginx.h"
#include "tests/support/tinyproxy.h"
#include "tests/support/wait.h"

namespace wsstep::rest {
namespace {

using namespace testutil;
using testing::NginxConfig;
using testing::NginxServer;
using testing::NginxVerifyClient;
using testing::TinyproxyConfig;
using testing::TinyproxyServer;

constexpr char kProxyUser[] = "wsstep-proxy";
constexpr char kProxyPassword[] = "pr0xy-s3cret";

std::shared_ptr<const SecretBytes> Secret(std::string_view text) {
  return std::make_shared<const SecretBytes>(SecretBytes(text));
}

// One nginx origin and three proxies for the whole suite: open, with basic
// authentication, and one that allows CONNECT only to port 1.
class ProxyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    NginxConfig config;
    config.verify_client = NginxVerifyClient::kOn;
    config.client_ca_file = PkiPath("ca/root.pem");
    config.responses.emplace_back("/hello", "hi");
    nginx_ = new NginxServer(config);
    ASSERT_TRUE(nginx_->Start()) << nginx_->start_error();
    open_ = new TinyproxyServer();
    ASSERT_TRUE(open_->Start()) << open_->start_error();
    TinyproxyConfig auth;
    auth.basic_auth = {{kProxyUser, kProxyPassword}};
    auth_ = new TinyproxyServer(auth);
    ASSERT_TRUE(auth_->Start()) << auth_->start_error();
    TinyproxyConfig restricted;
    restricted.connect_ports = {1};
    restricted_ = new TinyproxyServer(restricted);
    ASSERT_TRUE(restricted_->Start()) << restricted_->start_error();
  }
  static void TearDownTestSuite() {
    delete restricted_;
    delete auth_;
    delete open_;
    delete nginx_;
  }
  void SetUp() override { nginx_->ClearAccessLog(); }

  static std::string Url() { return nginx_->base_url() + "/hello"; }
  static RestStep Through(const TinyproxyServer& proxy) {
    RestStep s = Get(Url());
    s.proxy.url = proxy.url();
    return s;
  }

  static NginxServer* nginx_;
  static TinyproxyServer* open_;
  static TinyproxyServer* auth_;
  static TinyproxyServer* restricted_;
};
NginxServer* ProxyTest::nginx_ = nullptr;
TinyproxyServer* ProxyTest::open_ = nullptr;
TinyproxyServer* ProxyTest::auth_ = nullptr;
TinyproxyServer* ProxyTest::restricted_ = nullptr;

TEST_F(ProxyTest, MutualTlsRunsEndToEndThroughTheTunnel) {
  RestEngine engine;
  core::CallCredentials creds = Creds("rsa");
  const int before = open_->ConnectRequests("localhost", nginx_->port());
  auto r = engine.Execute(Through(*open_), creds, Soon());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hi");
  EXPECT_EQ(r->tls.proxy, open_->url());
  ASSERT_TRUE(r->tls.client_certificate.has_value());
  EXPECT_EQ(r->tls.client_certificate->fingerprint, creds.identity->fingerprint);
  // The proxy opened a tunnel; the origin saw our certificate through it.
  EXPECT_TRUE(testing::WaitUntil("tinyproxy logged the CONNECT", [&] {
    return open_->ConnectRequests("localhost", nginx_->port()) == before + 1;
  })) << open_->Log();
  auto log = nginx_->AccessLog(1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].client_verify, "SUCCESS");
  EXPECT_EQ(log[0].client_fingerprint, creds.identity->fingerprint);
}

TEST_F(ProxyTest, TunnelledAndDirectConnectionsNeverShareAPool) {
  RestEngine engine;
  core::CallCredentials creds = Creds("rsa");
  for (int i = 0; i < 4; ++i) {
    RestStep step = i % 2 == 0 ? Through(*open_) : Get(Url());
    auto r = engine.Execute(std::move(step), creds, Soon());
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(r->tls.proxy, i % 2 == 0 ? open_->url() : "");
    // The second request of each route reuses that route's own connection.
    EXPECT_EQ(r->tls.connection_reused, i >= 2) << i;
  }
  std::set<std::string> keys;
  for (const auto& s : engine.Stats()) keys.insert(s.key);
  EXPECT_EQ(keys.size(), 2u);
  // nginx saw two connections, each used by one route only (2 requests each).
  auto log = nginx_->AccessLog(4);
  ASSERT_EQ(log.size(), 4u);
  EXPECT_EQ(log[0].connection, log[2].connection);
  EXPECT_EQ(log[1].connection, log[3].connection);
  EXPECT_NE(log[0].connection, log[1].connection);
}

TEST_F(ProxyTest, ProxyAuthenticationRequiredThenGiven) {
  RestEngine engine;
  core::CallCredentials creds = Creds("rsa");

  auto none = engine.Execute(Through(*auth_), creds, Soon());
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, Code::kProxyAuthRequired) << none.error().ToString();
  EXPECT_EQ(none.error().side, Side::kProxy);
  EXPECT_EQ(none.error().detail.at("proxy_status"), "407");
  EXPECT_EQ(none.error().detail.at("proxy"), auth_->url());
  EXPECT_NE(none.error().message.find("none were configured"), std::string::npos);

  RestStep wrong = Through(*auth_);
  wrong.proxy.username = kProxyUser;
  wrong.proxy.password = Secret("not-the-password");
  auto refused = engine.Execute(std::move(wrong), creds, Soon());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Code::kProxyAuthRequired) << refused.error().ToString();
  EXPECT_NE(refused.error().message.find("rejected the proxy credentials"), std::string::npos);

  RestStep given = Through(*auth_);
  given.proxy.username = kProxyUser;
  given.proxy.password = Secret(kProxyPassword);
  auto r = engine.Execute(std::move(given), creds, Soon());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  auto log = nginx_->AccessLog(1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].client_fingerprint, creds.identity->fingerprint);
  // The credentials went to the proxy only; nothing of them is in the answers.
  for (const auto& h : r->headers) EXPECT_EQ(h.value.find(kProxyPassword), std::string::npos);
  for (const Error* e : {&none.error(), &refused.error()}) {
    EXPECT_EQ(e->ToString().find("pr0xy"), std::string::npos);
    for (const auto& [k, v] : e->detail) EXPECT_EQ(v.find("pr0xy"), std::string::npos) << k;
  }
}

TEST_F(ProxyTest, EngineProxyCredentialsAndTheStepsOwnCredentialsArePooledApart) {
  EngineOptions options;
  options.proxy.url = auth_->url();
  options.proxy.username = kProxyUser;
  options.proxy.password = Secret(kProxyPassword);
  RestEngine engine(options);
  auto r = engine.Execute(Get(Url()), Creds("rsa"), Soon());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->tls.proxy, auth_->url());
  // Same proxy, a step's wrong password: its own partition, so the authenticated tunnel
  // is not reused for it.
  RestStep wrong = Get(Url());
  wrong.proxy.username = kProxyUser;
  wrong.proxy.password = Secret("wrong");
  auto refused = engine.Execute(std::move(wrong), Creds("rsa"), Soon());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Code::kProxyAuthRequired) << refused.error().ToString();
  for (const auto& s : engine.Stats()) EXPECT_EQ(s.key.find(kProxyPassword), std::string::npos);
}

TEST_F(ProxyTest, AProxyThatRefusesTheTunnelIsProxyRefused) {
  RestEngine engine;
  auto r = engine.Execute(Through(*restricted_), Creds("rsa"), Soon());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kProxyRefused) << r.error().ToString();
  EXPECT_EQ(r.error().side, Side::kProxy);
  EXPECT_EQ(r.error().detail.at("proxy_status"), "403");
  EXPECT_EQ(nginx_->AccessLog().size(), 0u);
}

TEST_F(ProxyTest, AnUnreachableProxyIsProxyUnreachable) {
  RestEngine engine;
  RestStep step = Get(Url());
  step.proxy.url = "http://127.0.0.1:" + std::to_string(testing::PickFreeLoopbackPort());
  auto r = engine.Execute(std::move(step), Creds("rsa"), Soon());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kProxyUnreachable) << r.error().ToString();
  EXPECT_EQ(r.error().side, Side::kProxy);
}

// Proxy variables in the process environment would send every step through a dead proxy
// if libcurl read them: the engine tells libcurl the route itself.
TEST_F(ProxyTest, ProxyVariablesInTheEnvironmentAreIgnored) {
  const std::string dead = "http://127.0.0.1:" + std::to_string(testing::PickFreeLoopbackPort());
  for (const char* name : {"https_proxy", "HTTPS_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"}) {
    ::setenv(name, dead.c_str(), 1);
  }
  ::setenv("no_proxy", "", 1);
  RestEngine engine;
  auto direct = engine.Execute(Get(Url()), Creds("rsa"), Soon());
  // And a configured proxy is used for localhost although NO_PROXY would exempt it.
  ::setenv("NO_PROXY", "localhost,127.0.0.1", 1);
  const int before = open_->ConnectRequests("localhost", nginx_->port());
  auto proxied = engine.Execute(Through(*open_), Creds("rsa"), Soon());
  for (const char* name : {"https_proxy", "HTTPS_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
                           "no_proxy", "NO_PROXY"}) {
    ::unsetenv(name);
  }
  ASSERT_TRUE(direct.ok()) << direct.error().ToString();
  EXPECT_EQ(direct->status, 200);
  EXPECT_EQ(direct->tls.proxy, "");
  ASSERT_TRUE(proxied.ok()) << proxied.error().ToString();
  EXPECT_EQ(proxied->tls.proxy, open_->url());
  EXPECT_TRUE(testing::WaitUntil("tinyproxy logged the CONNECT", [&] {
    return open_->ConnectRequests("localhost", nginx_->port()) == before + 1;
  })) << open_->Log();
}

TEST_F(ProxyTest, NoProxyListsAndDirectStepsBypassTheEnginesProxy) {
  EngineOptions options;
  options.proxy.url = "http://127.0.0.1:" + std::to_string(testing::PickFreeLoopbackPort());
  RestEngine engine(options);
  auto through = engine.Execute(Get(Url()), Creds("rsa"), Soon());
  ASSERT_FALSE(through.ok());
  EXPECT_EQ(through.error().code, Code::kProxyUnreachable) << through.error().ToString();

  RestStep listed = Get(Url());
  listed.proxy.no_proxy = {".LOCALHOST"};
  auto a = engine.Execute(std::move(listed), Creds("rsa"), Soon());
  ASSERT_TRUE(a.ok()) << a.error().ToString();
  EXPECT_EQ(a->tls.proxy, "");

  RestStep direct = Get(Url());
  direct.proxy.direct = true;
  auto b = engine.Execute(std::move(direct), Creds("rsa"), Soon());
  ASSERT_TRUE(b.ok()) << b.error().ToString();
  EXPECT_EQ(b->tls.proxy, "");

  EngineOptions exempt;
  exempt.proxy.url = options.proxy.url;
  exempt.proxy.no_proxy = {"*"};
  RestEngine exempt_engine(exempt);
  auto c = exempt_engine.Execute(Get(Url()), Creds("rsa"), Soon());
  ASSERT_TRUE(c.ok()) << c.error().ToString();
}

TEST(ProxySettingsTest, BadSettingsAreInvalidStepConfigNamingTheField) {
  RestEngine engine;
  RestStep socks = Get("https://localhost:1/");
  socks.proxy.url = "socks5://127.0.0.1:1080";
  Status s = engine.Validate(socks);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Code::kInvalidStepConfig);
  EXPECT_EQ(s.error().detail.at("field"), "proxy.url");

  RestStep user = Get("https://localhost:1/");
  user.proxy.url = "127.0.0.1:3128";
  user.proxy.username = "a:b";
  ASSERT_FALSE(engine.Validate(user).ok());
  EXPECT_EQ(engine.Validate(user).error().detail.at("field"), "proxy.username");

  RestStep list = Get("https://localhost:1/");
  list.proxy.no_proxy = {"10.0.0.0/8"};
  ASSERT_FALSE(engine.Validate(list).ok());
  EXPECT_EQ(engine.Validate(list).error().detail.at("field"), "proxy.no_proxy[0]");
}

TEST(ProxySettingsTest, NoProxyMatchesHostsAndDomainsOnly) {
  EXPECT_TRUE(NoProxyMatches({"example.com"}, "example.com"));
  EXPECT_TRUE(NoProxyMatches({"example.com"}, "api.example.com"));
  EXPECT_TRUE(NoProxyMatches({".Example.com"}, "api.example.com"));
  EXPECT_FALSE(NoProxyMatches({"example.com"}, "badexample.com"));
  EXPECT_TRUE(NoProxyMatches({"10.0.0.5"}, "10.0.0.5"));
  EXPECT_FALSE(NoProxyMatches({"10.0.0.5"}, "10.0.0.50"));
  EXPECT_TRUE(NoProxyMatches({"*"}, "anything"));
  EXPECT_FALSE(NoProxyMatches({}, "anything"));
  auto route = ParseProxyUrl("proxy.internal:3128", "proxy.url");
  ASSERT_TRUE(route.ok());
  EXPECT_EQ(route->url, "http://proxy.internal:3128");
  EXPECT_FALSE(ParseProxyUrl("http://u:p@proxy:3128", "proxy.url").ok());
}

}  // namespace
}  // namespace wsstep::rest

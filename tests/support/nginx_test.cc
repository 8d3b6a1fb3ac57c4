// The nginx harness against real nginx and curl: mutual TLS, what the access log and the
// echo location report, fixed responses, proxy routes, the egress gateway, and stopping.
#include "tests/support/nginx.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/support/pki.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace wsstep::testing {
namespace {

struct CurlResult {
  int exit_code = -1;
  int http_code = 0;
  std::string body;
  std::string output;  // everything curl printed, for failure messages
};

// curl as a subprocess. The last line of output is the status code (-w).
CurlResult Curl(std::vector<std::string> args) {
  std::vector<std::string> argv = {"curl", "-sS", "--noproxy", "*", "--max-time", "20",
                                   "-w", "\n%{http_code}"};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandResult r = RunCommand(argv, {}, std::chrono::seconds(30));
  CurlResult out;
  out.exit_code = r.exit_code;
  out.output = r.output;
  size_t nl = r.output.rfind('\n');
  if (nl != std::string::npos) {
    out.body = r.output.substr(0, nl);
    out.http_code = std::atoi(r.output.c_str() + nl + 1);
  }
  return out;
}

std::vector<std::string> ClientCert(const std::string& name) {
  return {"--cert", PkiPath("client/" + name + ".pem"), "--key",
          PkiPath("client/" + name + ".key.pem"), "--cacert", PkiPath("ca/root.pem")};
}

std::vector<std::string> Concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

NginxConfig MutualTlsConfig() {
  NginxConfig config;
  config.verify_client = NginxVerifyClient::kOn;
  config.responses.emplace_back("/hello", "hello from nginx");
  return config;
}

TEST(NginxServerTest, MutualTlsRequestIsLoggedWithTheClientFingerprint) {
  NginxServer nginx(MutualTlsConfig());
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();
  EXPECT_TRUE(nginx.running());
  EXPECT_EQ(nginx.base_url(), "https://localhost:" + std::to_string(nginx.port()));

  CurlResult r = Curl(Concat(ClientCert("rsa"), {nginx.base_url() + "/hello"}));
  ASSERT_EQ(r.exit_code, 0) << r.output << nginx.ErrorLog();
  EXPECT_EQ(r.http_code, 200);
  EXPECT_EQ(r.body, "hello from nginx");

  std::vector<NginxAccessLogEntry> log = nginx.AccessLog(1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].server_port, nginx.port());
  EXPECT_EQ(log[0].method, "GET");
  EXPECT_EQ(log[0].uri, "/hello");
  EXPECT_EQ(log[0].status, 200);
  EXPECT_EQ(log[0].client_verify, "SUCCESS");
  EXPECT_EQ(log[0].client_subject, "CN=rsa,O=wsstep tests");
  EXPECT_EQ(log[0].client_fingerprint, Sha256FingerprintOfPemFile(PkiPath("client/rsa.pem")));
  EXPECT_EQ(log[0].client_fingerprint_sha1.size(), 40u);
  EXPECT_EQ(log[0].connection_requests, 1u);
  EXPECT_FALSE(log[0].ssl_protocol.empty());
}

TEST(NginxServerTest, NoClientCertificateIs400) {
  NginxServer nginx(MutualTlsConfig());
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();
  CurlResult r = Curl({"--cacert", PkiPath("ca/root.pem"), nginx.base_url() + "/hello"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.http_code, 400);
  std::vector<NginxAccessLogEntry> log = nginx.AccessLog(1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].status, 400);
  EXPECT_EQ(log[0].client_verify, "NONE");
  EXPECT_EQ(log[0].client_fingerprint, "");
}

TEST(NginxServerTest, EchoReportsEachRequestOnItsConnection) {
  NginxServer nginx(MutualTlsConfig());
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();
  // Two URLs in one curl run share one kept-alive connection.
  CurlResult r = Curl(Concat(ClientCert("second"),
                             {nginx.base_url() + "/echo", "-o", "/dev/null",
                              nginx.base_url() + "/echo"}));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.http_code, 200);
  size_t last = r.body.rfind("client_verify=");
  ASSERT_NE(last, std::string::npos) << r.body;
  NginxEcho echo = NginxEcho::Parse(r.body.substr(last));
  EXPECT_EQ(echo.client_verify, "SUCCESS");
  EXPECT_EQ(echo.client_subject, "CN=wsstep client B,O=wsstep tests");
  EXPECT_EQ(echo.client_fingerprint, Sha256FingerprintOfPemFile(PkiPath("client/second.pem")));
  EXPECT_EQ(echo.connection_requests, 2u);

  std::vector<NginxAccessLogEntry> log = nginx.AccessLog(2);
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0].connection, log[1].connection);
  EXPECT_EQ(log[1].connection, echo.connection);
  EXPECT_EQ(log[1].connection_requests, 2u);

  nginx.ClearAccessLog();
  EXPECT_TRUE(nginx.AccessLog().empty());
}

TEST(NginxServerTest, StopClosesThePort) {
  NginxServer nginx(MutualTlsConfig());
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();
  uint16_t port = nginx.port();
  EXPECT_TRUE(LoopbackPortAccepts(port));
  nginx.Stop();
  EXPECT_FALSE(nginx.running());
  EXPECT_FALSE(LoopbackPortAccepts(port));
  nginx.Stop();  // idempotent
}

TEST(NginxServerTest, FixedResponsesKeepEveryByte) {
  NginxConfig config;
  std::string tricky = "quote \" backslash \\ dollar $host tab\t brace { } ; \n second line";
  std::string big(10000, 'x');
  config.responses.emplace_back("/tricky", tricky, 201, "application/json");
  config.responses.back().headers = {{"X-Test", "a $b \"c\""}};
  config.responses.emplace_back("/big", big);
  config.responses.emplace_back("/big-error", big, 503);
  NginxServer nginx(config);
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();
  std::vector<std::string> ca = {"--cacert", PkiPath("ca/root.pem")};

  CurlResult r = Curl(Concat(ca, {"-D", "-", nginx.base_url() + "/tricky"}));
  EXPECT_EQ(r.http_code, 201);
  EXPECT_NE(r.body.find("X-Test: a $b \"c\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("Content-Type: application/json"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.substr(r.body.size() - tricky.size()), tricky);

  r = Curl(Concat(ca, {nginx.base_url() + "/big"}));
  EXPECT_EQ(r.http_code, 200);
  EXPECT_EQ(r.body, big);
  r = Curl(Concat(ca, {nginx.base_url() + "/big-error"}));
  EXPECT_EQ(r.http_code, 503);
  EXPECT_EQ(r.body, big);
  r = Curl(Concat(ca, {nginx.base_url() + "/nothing-here"}));
  EXPECT_EQ(r.http_code, 404);
}

TEST(NginxServerTest, ProxyRouteReachesAPlainHttpBackend) {
  TempDir docroot("nginx-backend-");
  std::filesystem::create_directories(docroot.Path("soap"));
  WriteFile(docroot.Path("soap/hello.xml"), "<hello/>");
  uint16_t backend_port = PickFreeLoopbackPort();
  ChildProcess backend;
  ASSERT_TRUE(backend.Start({"/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1",
                             "--directory", docroot.path(), std::to_string(backend_port)}))
      << backend.error();
  ASSERT_TRUE(WaitUntil("the python backend accepts connections",
                        [&] { return LoopbackPortAccepts(backend_port); }));

  NginxConfig config = MutualTlsConfig();
  config.proxy_routes.emplace_back("/soap/", backend_port);
  NginxServer nginx(config);
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();
  CurlResult r = Curl(Concat(ClientCert("rsa"), {nginx.base_url() + "/soap/hello.xml"}));
  EXPECT_EQ(r.http_code, 200) << r.output;
  EXPECT_EQ(r.body, "<hello/>");
  std::vector<NginxAccessLogEntry> log = nginx.AccessLog(1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].upstream_addr, "127.0.0.1:" + std::to_string(backend_port));
}

TEST(NginxServerTest, EgressGatewayPresentsItsCertificateOverAKeptAliveConnection) {
  NginxServer origin(MutualTlsConfig());
  ASSERT_TRUE(origin.Start()) << origin.start_error();

  NginxConfig config;
  config.tls = false;
  config.egress.emplace();
  config.egress->upstream_port = origin.port();
  config.egress->client_cert_file = PkiPath("client/rsa.chain.pem");
  config.egress->client_key_file = PkiPath("client/rsa.key.pem");
  config.egress->trusted_ca_file = PkiPath("ca/root.pem");
  NginxServer gateway(config);
  ASSERT_TRUE(gateway.Start()) << gateway.start_error();
  EXPECT_EQ(gateway.port(), 0);

  CurlResult r = Curl({gateway.gateway_url() + "/hello", gateway.gateway_url() + "/hello",
                       gateway.gateway_url() + "/echo"});
  ASSERT_EQ(r.exit_code, 0) << r.output << gateway.ErrorLog();
  EXPECT_EQ(r.http_code, 200);
  EXPECT_EQ(r.body.substr(0, 16), "hello from nginx");

  std::vector<NginxAccessLogEntry> log = origin.AccessLog(3);
  ASSERT_EQ(log.size(), 3u);
  std::string rsa = Sha256FingerprintOfPemFile(PkiPath("client/rsa.pem"));
  for (const auto& e : log) {
    EXPECT_EQ(e.client_fingerprint, rsa) << e.raw;
    EXPECT_EQ(e.status, 200) << e.raw;
    EXPECT_EQ(e.connection, log[0].connection) << "upstream keep-alive: " << e.raw;
  }
  EXPECT_EQ(log[2].connection_requests, 3u);

  std::vector<NginxAccessLogEntry> gw = gateway.AccessLog(3);
  ASSERT_EQ(gw.size(), 3u);
  EXPECT_EQ(gw[0].server_port, gateway.gateway_port());
  EXPECT_EQ(gw[0].upstream_addr, "127.0.0.1:" + std::to_string(origin.port()));
}

TEST(NginxServerTest, StartFailureExplainsWhy) {
  NginxConfig config;
  config.cert_file = "/nonexistent/wsstep-cert.pem";
  NginxServer nginx(config);
  EXPECT_FALSE(nginx.Start());
  EXPECT_NE(nginx.start_error().find("/nonexistent/wsstep-cert.pem"), std::string::npos)
      << nginx.start_error();
  EXPECT_FALSE(nginx.running());
}

}  // namespace
}  // namespace wsstep::testing

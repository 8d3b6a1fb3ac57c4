// HTTP/2 against a real nginx (`listen ... ssl http2`): h2 negotiated by ALPN and reported
// in the TLS facts, HTTP/1.1 when a step or the engine says so, alternating identities on
// one host:port each seen by nginx on every request (never one connection for two
// identities), and 16 steps in flight at once over one connection.
#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <map>
#include <mutex>

#include "rest/engine.h"
#include "rest/rest_test_util.h"
#include "tests/support/nginx.h"
#include "tests/support/tls_server.h"

namespace wsstep::rest {
namespace {

using namespace testutil;
using testing::NginxConfig;
using testing::NginxServer;
using testing::NginxVerifyClient;

NginxConfig H2Config() {
  NginxConfig config;
  config.http2 = true;
  config.verify_client = NginxVerifyClient::kOn;
  config.client_ca_file = PkiPath("ca/root.pem");
  config.responses.emplace_back("/hello", "hi");
  return config;
}

TEST(Http2Test, H2IsNegotiatedAndReportedAndHttp11CanBeForced) {
  NginxServer nginx(H2Config());
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();
  RestEngine engine;
  auto h2 = engine.Execute(Get(nginx.base_url() + "/hello"), Creds("rsa"), Soon());
  ASSERT_TRUE(h2.ok()) << h2.error().ToString();
  EXPECT_EQ(h2->status, 200);
  EXPECT_EQ(h2->body, "hi");
  EXPECT_EQ(h2->tls.http_version, "HTTP/2");

  RestStep forced = Get(nginx.base_url() + "/hello");
  forced.http_version = HttpVersion::kHttp11;
  auto h1 = engine.Execute(std::move(forced), Creds("rsa"), Soon());
  ASSERT_TRUE(h1.ok()) << h1.error().ToString();
  EXPECT_EQ(h1->tls.http_version, "HTTP/1.1");

  EngineOptions options;
  options.offer_http2 = false;
  RestEngine h1_engine(options);
  auto plain = h1_engine.Execute(Get(nginx.base_url() + "/hello"), Creds("rsa"), Soon());
  ASSERT_TRUE(plain.ok()) << plain.error().ToString();
  EXPECT_EQ(plain->tls.http_version, "HTTP/1.1");

  auto log = nginx.AccessLog(3);
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[0].protocol, "HTTP/2.0");
  EXPECT_EQ(log[1].protocol, "HTTP/1.1");
  EXPECT_EQ(log[2].protocol, "HTTP/1.1");
  for (const auto& line : log) EXPECT_EQ(line.client_verify, "SUCCESS") << line.raw;
}

TEST(Http2Test, AlternatingIdentitiesAreEachSeenOnEveryRequest) {
  NginxServer nginx(H2Config());
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();
  RestEngine engine;
  core::CallCredentials a = Creds("rsa");
  core::CallCredentials b = Creds("second");
  constexpr int kRequests = 40;
  for (int i = 0; i < kRequests; ++i) {
    const auto& creds = i % 2 == 0 ? a : b;
    auto r = engine.Execute(Get(nginx.base_url() + "/hello?i=" + std::to_string(i)), creds, Soon());
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(r->tls.http_version, "HTTP/2");
    EXPECT_EQ(r->tls.client_certificate->fingerprint, creds.identity->fingerprint);
  }
  auto log = nginx.AccessLog(kRequests);
  ASSERT_EQ(log.size(), static_cast<size_t>(kRequests));
  std::map<uint64_t, std::string> connection_identity;
  for (const auto& line : log) {
    const int i = std::stoi(line.uri.substr(line.uri.find("i=") + 2));
    EXPECT_EQ(line.protocol, "HTTP/2.0") << line.raw;
    EXPECT_EQ(line.client_fingerprint, (i % 2 == 0 ? a : b).identity->fingerprint) << line.raw;
    auto [it, inserted] = connection_identity.emplace(line.connection, line.client_fingerprint);
    EXPECT_EQ(it->second, line.client_fingerprint) << "nginx connection " << line.connection;
  }
  // Each identity kept its own connection alive across its requests.
  EXPECT_LE(connection_identity.size(), 4u);
}

// A plain-HTTP backend behind nginx that answers no request before `expected` are
// waiting at once: each answer says whether they all met.
class Rendezvous {
 public:
  explicit Rendezvous(int expected) : expected_(expected) {}
  testing::ServerResponse Answer() {
    std::unique_lock<std::mutex> lock(mu_);
    ++arrived_;
    cv_.notify_all();
    const bool met =
        cv_.wait_for(lock, std::chrono::seconds(20), [this] { return arrived_ >= expected_; });
    testing::ServerResponse r;
    r.body = met ? "together" : "alone";
    return r;
  }

 private:
  const int expected_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
};

TEST(Http2Test, SixteenStepsInFlightShareOneConnection) {
  constexpr int kInFlight = 16;
  Rendezvous rendezvous(kInFlight);
  testing::TlsServerConfig backend_config;
  backend_config.plain_http = true;
  backend_config.handler = [&rendezvous](const testing::ServerRequest&) {
    return rendezvous.Answer();
  };
  testing::TlsServer backend(backend_config);
  ASSERT_TRUE(backend.Start()) << backend.start_error();
  NginxConfig config = H2Config();
  config.proxy_routes.emplace_back("/together", backend.port());
  NginxServer nginx(config);
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();

  // One event loop: the steps of one partition multiplex on one loop's connection, once
  // that connection is known to speak h2 (the first step makes it).
  EngineOptions options;
  options.workers = 1;
  RestEngine engine(options);
  core::CallCredentials creds = Creds("rsa");
  auto first = engine.Execute(Get(nginx.base_url() + "/hello"), creds, Soon());
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  EXPECT_EQ(first->tls.http_version, "HTTP/2");
  std::vector<std::future<Result<RestResult>>> results;
  for (int i = 0; i < kInFlight; ++i) {
    auto promise = std::make_shared<std::promise<Result<RestResult>>>();
    results.push_back(promise->get_future());
    engine.Submit(Get(nginx.base_url() + "/together?i=" + std::to_string(i)), creds, Soon(), {},
                  [promise](Result<RestResult> r) { promise->set_value(std::move(r)); });
  }
  for (auto& f : results) {
    auto r = f.get();
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "together");
    EXPECT_EQ(r->tls.http_version, "HTTP/2");
  }
  auto log = nginx.AccessLog(kInFlight + 1);
  ASSERT_EQ(log.size(), static_cast<size_t>(kInFlight + 1));
  for (const auto& line : log) {
    EXPECT_EQ(line.connection, log[0].connection) << line.raw;
    EXPECT_EQ(line.client_fingerprint, creds.identity->fingerprint) << line.raw;
  }
  const PartitionStats s = engine.StatsForIdentity(creds.identity->fingerprint);
  EXPECT_EQ(s.requests, static_cast<uint64_t>(kInFlight + 1));
  EXPECT_EQ(s.new_connections, 1u);
}

}  // namespace
}  // namespace wsstep::rest

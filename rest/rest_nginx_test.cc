// Against a real nginx mTLS origin: what nginx saw of each request's client certificate,
// keep-alive and session resumption per identity, and nginx's way of refusing a missing
// certificate (HTTP 400 after a completed handshake).
#include <gtest/gtest.h>

#include <map>

#include "rest/engine.h"
#include "rest/rest_test_util.h"
#include "tests/support/nginx.h"

namespace wsstep::rest {
namespace {

using namespace testutil;
using testing::NginxConfig;
using testing::NginxServer;
using testing::NginxVerifyClient;

TEST(NginxTest, AlternatingIdentitiesAreSeenByNginxOnEveryRequest) {
  NginxConfig config;
  config.verify_client = NginxVerifyClient::kOn;
  config.client_ca_file = PkiPath("ca/root.pem");
  testing::NginxFixedResponse hello;
  hello.path = "/hello";
  hello.body = "hi";
  config.responses.push_back(hello);
  // A few connections end after 10 requests, so new ones must resume the session.
  config.keepalive_requests = 10;
  NginxServer nginx(config);
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();

  RestEngine engine;
  core::CallCredentials a = Creds("rsa");
  core::CallCredentials b = Creds("second");
  constexpr int kRequests = 60;
  for (int i = 0; i < kRequests; ++i) {
    const auto& creds = i % 2 == 0 ? a : b;
    auto r = engine.Execute(Get(nginx.base_url() + "/hello?i=" + std::to_string(i)), creds, Soon());
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(r->body, "hi");
    EXPECT_EQ(r->tls.client_certificate->fingerprint, creds.identity->fingerprint);
  }
  auto log = nginx.AccessLog(kRequests);
  ASSERT_EQ(log.size(), static_cast<size_t>(kRequests));
  std::map<uint64_t, std::string> connection_identity;
  int resumed = 0;
  for (const auto& line : log) {
    int i = std::stoi(line.uri.substr(line.uri.find("i=") + 2));
    const auto& expected = (i % 2 == 0 ? a : b).identity->fingerprint;
    EXPECT_EQ(line.client_fingerprint, expected) << line.raw;
    EXPECT_EQ(line.client_verify, "SUCCESS") << line.raw;
    auto [it, inserted] = connection_identity.emplace(line.connection, line.client_fingerprint);
    EXPECT_EQ(it->second, line.client_fingerprint) << "nginx connection " << line.connection;
    if (line.connection_requests == 1 && line.session_reused) ++resumed;
  }
  // 30 requests per identity at 10 per connection: 3 connections each, 2 of them resumed.
  EXPECT_LE(connection_identity.size(), 8u);
  EXPECT_GE(resumed, 2);
  for (const auto* creds : {&a, &b}) {
    PartitionStats s = engine.StatsForIdentity(creds->identity->fingerprint);
    EXPECT_EQ(s.requests, 30u);
    EXPECT_GE(s.reused_connections, 24u);
    EXPECT_GE(s.resumed_sessions, 1u);
  }
}

TEST(NginxTest, MissingOrRefusedCertificateBehindHttp400IsClassified) {
  NginxConfig config;
  config.verify_client = NginxVerifyClient::kOn;
  config.client_ca_file = PkiPath("ca/root.pem");
  testing::NginxFixedResponse hello;
  hello.path = "/hello";
  hello.body = "hi";
  config.responses.push_back(hello);
  NginxServer nginx(config);
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();
  RestEngine engine;

  // nginx completes the handshake without a certificate and answers 400.
  auto missing = engine.Execute(Get(nginx.base_url() + "/hello"), Creds(""), Soon());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, Code::kClientCertRequired) << missing.error().ToString();
  EXPECT_EQ(missing.error().detail.at("http_status"), "400");
  EXPECT_EQ(missing.error().detail.at("certificate_requested"), "true");

  // A self-signed client certificate: nginx's verification fails, again as HTTP 400.
  core::CallCredentials self = Creds("");
  self.identity = LoadIdentity("self-signed", /*with_chain=*/false);
  auto rejected = engine.Execute(Get(nginx.base_url() + "/hello"), self, Soon());
  ASSERT_FALSE(rejected.ok());
  EXPECT_EQ(rejected.error().code, Code::kClientCertRejected) << rejected.error().ToString();
  EXPECT_EQ(rejected.error().detail.at("certificate"), "self-signed");
  EXPECT_EQ(rejected.error().detail.at("fingerprint"), self.identity->fingerprint);
}

TEST(NginxTest, OptionalCertificateNotConfiguredIsAResultWithAWarning) {
  NginxConfig config;
  config.verify_client = NginxVerifyClient::kOptional;
  testing::NginxFixedResponse hello;
  hello.path = "/hello";
  hello.body = "hi";
  config.responses.push_back(hello);
  NginxServer nginx(config);
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();
  RestEngine engine;
  auto r = engine.Execute(Get(nginx.base_url() + "/hello"), Creds(""), Soon());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(r->tls.client_certificate_requested);
  EXPECT_FALSE(r->tls.client_certificate.has_value());
  ASSERT_FALSE(r->warnings.empty());
  EXPECT_EQ(r->warnings.back().code, WarningCode::kClientCertRequestedNoneSent);
  EXPECT_NE(r->warnings.back().message.find("asked for a client certificate"), std::string::npos);
}

}  // namespace
}  // namespace wsstep::rest

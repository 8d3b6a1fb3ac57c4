// Retries and HTTP/2 through the real binary (the mock engine over gRPC): the outcome lists
// every attempt of a step with a retry policy, and reports the HTTP version the origin
// spoke (h2 by ALPN against nginx, HTTP/1.1 when the step asks for it).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>

#include "tests/e2e/e2e_util.h"
#include "tests/mock_engine/mock_engine.h"
#include "tests/support/nginx.h"
#include "tests/support/pki.h"
#include "tests/support/tls_server.h"

namespace wsstep::e2e {
namespace {

using mock_engine::MockEngine;

TEST(NetworksE2eTest, EveryAttemptOfARetriedStepIsInTheOutcome) {
  std::atomic<int> seen{0};
  testing::TlsServerConfig config = MtlsOriginConfig([&seen](const testing::ServerRequest&) {
    testing::ServerResponse r;
    if (seen.fetch_add(1) < 2) {
      r.status = 503;
      r.body = "busy";
    }
    return r;
  });
  testing::TlsServer origin(config);
  ASSERT_TRUE(origin.Start()) << origin.start_error();
  MockEngine engine;
  ASSERT_TRUE(engine.Start()) << engine.start_error();
  ImportRsaIdentity(engine, origin.port());

  v1::RestStep step = mock_engine::GetStep(origin.BaseUrl() + "/flaky");
  step.mutable_retry()->set_max_attempts(4);
  step.mutable_retry()->mutable_base_delay()->set_nanos(10'000'000);
  auto r = engine.Rest(step, "", Opts("retried"));
  ASSERT_TRUE(r.ok()) << r.status.error_message();
  const v1::StepOutcome& out = r.response.outcome();
  ASSERT_TRUE(out.has_http()) << out.error().message();
  EXPECT_EQ(out.http().status(), 200);
  EXPECT_EQ(seen.load(), 3);
  ASSERT_EQ(out.attempts_size(), 3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(out.attempts(i).number(), i + 1);
  EXPECT_EQ(out.attempts(0).http_status(), 503);
  EXPECT_EQ(out.attempts(0).retry_reason(), "status_503");
  EXPECT_EQ(out.attempts(1).retry_reason(), "status_503");
  EXPECT_EQ(out.attempts(2).http_status(), 200);
  EXPECT_EQ(out.attempts(2).retry_reason(), "");
  EXPECT_THAT(FinishedLineOf(engine, "retried"), ::testing::HasSubstr("\"attempts\":3"));

  // A POST is not retried unless the step declares itself idempotent.
  seen = 0;
  v1::RestStep post = step;
  post.set_method("POST");
  post.set_body("{}");
  auto once = engine.Rest(post, "", Opts("post"));
  ASSERT_TRUE(once.response.outcome().has_http());
  EXPECT_EQ(once.response.outcome().http().status(), 503);
  EXPECT_EQ(once.response.outcome().attempts_size(), 1);
  EXPECT_EQ(seen.load(), 1);

  // A bad policy names its field.
  v1::RestStep bad = step;
  bad.mutable_retry()->set_max_attempts(50);
  auto refused = engine.Rest(bad, "", Opts("bad"));
  ASSERT_TRUE(refused.response.outcome().has_error());
  EXPECT_EQ(refused.response.outcome().error().code(), "INVALID_STEP_CONFIG");
  EXPECT_EQ(refused.response.outcome().error().detail().at("field"), "retry.max_attempts");
}

TEST(NetworksE2eTest, Http2IsNegotiatedAndReportedAndHttp11CanBeAskedFor) {
  testing::NginxConfig config;
  config.http2 = true;
  config.verify_client = testing::NginxVerifyClient::kOn;
  config.client_ca_file = testing::PkiPath("ca/root.pem");
  config.responses.emplace_back("/hello", "hi");
  testing::NginxServer nginx(config);
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();
  MockEngine engine;
  ASSERT_TRUE(engine.Start()) << engine.start_error();
  ImportRsaIdentity(engine, nginx.port());

  v1::RestStep step = mock_engine::GetStep(nginx.base_url() + "/hello");
  auto h2 = engine.Rest(step, "", Opts("h2"));
  ASSERT_TRUE(h2.response.outcome().has_http()) << h2.response.outcome().error().message();
  EXPECT_EQ(h2.response.outcome().tls().http_version(), "HTTP/2");
  step.set_http_version(v1::HTTP_VERSION_1_1);
  auto h1 = engine.Rest(step, "", Opts("h1"));
  ASSERT_TRUE(h1.response.outcome().has_http()) << h1.response.outcome().error().message();
  EXPECT_EQ(h1.response.outcome().tls().http_version(), "HTTP/1.1");
  auto log = nginx.AccessLog(2);
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0].protocol, "HTTP/2.0");
  EXPECT_EQ(log[1].protocol, "HTTP/1.1");
  const std::string fingerprint =
      testing::Sha256FingerprintOfPemFile(testing::PkiPath("client/rsa.pem"));
  for (const auto& line : log) EXPECT_EQ(line.client_fingerprint, fingerprint) << line.raw;
}

}  // namespace
}  // namespace wsstep::e2e

// Retries: against an in-process TLS origin that fails a given number of times (a reset
// connection, 503, 429 with Retry-After) and then answers. Only idempotent requests are
// retried, never after a certificate failure, never past the deadline, and the wait
// between attempts holds no thread.
#include <gtest/gtest.h>

#include <atomic>
#include <ctime>
#include <future>

#include "rest/engine.h"
#include "rest/rest_test_util.h"
#include "tests/support/nginx.h"
#include "tests/support/tls_server.h"
#include "tests/support/wait.h"

namespace wsstep::rest {
namespace {

using namespace testutil;
using std::chrono::milliseconds;
using testing::ServerRequest;
using testing::ServerResponse;
using testing::TlsServer;

// An mTLS origin whose first `failures` requests get `failure`, then 200 "ok".
class FlakyOrigin {
 public:
  FlakyOrigin(int failures, ServerResponse failure)
      : failures_(failures), failure_(std::move(failure)) {
    // No client certificate asked: a reset right after a TLS 1.3 handshake that asked for
    // one reads as the server refusing it (tls_diagnosis.h), which is never retried.
    testing::TlsServerConfig c = ServerConfig("localhost", testing::ClientAuth::kNone);
    c.handler = [this](const ServerRequest&) {
      if (seen_.fetch_add(1) < failures_) return failure_;
      return ServerResponse{};
    };
    server_ = std::make_unique<TlsServer>(std::move(c));
  }
  bool Start() { return server_->Start(); }
  std::string Url() const { return server_->BaseUrl() + "/flaky"; }
  int seen() const { return seen_.load(); }
  TlsServer& server() { return *server_; }

 private:
  const int failures_;
  const ServerResponse failure_;
  std::atomic<int> seen_{0};
  std::unique_ptr<TlsServer> server_;
};

ServerResponse Status(int status, std::vector<std::pair<std::string, std::string>> headers = {}) {
  ServerResponse r;
  r.status = status;
  r.body = "try later";
  for (auto& h : headers) r.headers.push_back(h);
  return r;
}

ServerResponse Reset() {
  ServerResponse r;
  r.mode = ServerResponse::Mode::kReset;
  return r;
}

RestStep Retrying(const std::string& url, int attempts) {
  RestStep s = Get(url);
  s.retry.max_attempts = attempts;
  s.retry.base_delay = milliseconds(10);
  s.retry.max_delay = milliseconds(40);
  s.attempts = std::make_shared<AttemptLog>();
  return s;
}

TEST(RetryTest, AnOriginThatFailsTwiceThenAnswersGetsThreeAttempts) {
  FlakyOrigin origin(2, Reset());
  ASSERT_TRUE(origin.Start());
  RestEngine engine;
  RestStep step = Retrying(origin.Url(), 4);
  auto log = step.attempts;
  auto r = engine.Execute(std::move(step), Creds("rsa"), Soon());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(origin.seen(), 3);
  ASSERT_EQ(log->size(), 3u);
  for (int i = 0; i < 2; ++i) {
    const AttemptRecord& a = (*log)[i];
    EXPECT_EQ(a.number, i + 1);
    ASSERT_TRUE(a.error.has_value());
    EXPECT_EQ(a.error->code, Code::kTransferFailed) << a.error->ToString();
    EXPECT_EQ(a.retry_reason, "TRANSFER_FAILED");
    EXPECT_LE(a.delay, milliseconds(i == 0 ? 0 : 10));  // full jitter: at most the cap
    EXPECT_FALSE(a.delay_from_retry_after);
  }
  EXPECT_EQ((*log)[2].http_status, 200);
  EXPECT_FALSE((*log)[2].error.has_value());
  EXPECT_EQ((*log)[2].retry_reason, "");
  EXPECT_LE((*log)[2].delay, milliseconds(20));
}

TEST(RetryTest, ServiceUnavailableIsRetriedAndTheLastAnswerIsTheResult) {
  FlakyOrigin origin(5, Status(503));
  ASSERT_TRUE(origin.Start());
  RestEngine engine;
  RestStep step = Retrying(origin.Url(), 3);
  auto log = step.attempts;
  auto r = engine.Execute(std::move(step), Creds("rsa"), Soon());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 503);  // out of attempts: a status is still a result
  EXPECT_EQ(origin.seen(), 3);
  ASSERT_EQ(log->size(), 3u);
  EXPECT_EQ((*log)[0].retry_reason, "status_503");
  EXPECT_EQ((*log)[1].retry_reason, "status_503");
  EXPECT_EQ((*log)[2].retry_reason, "");
}

TEST(RetryTest, RetryAfterInSecondsAndAsAnHttpDateIsHonoured) {
  FlakyOrigin seconds(1, Status(429, {{"Retry-After", "1"}}));
  ASSERT_TRUE(seconds.Start());
  RestEngine engine;
  RestStep step = Retrying(seconds.Url(), 2);
  auto log = step.attempts;
  auto r = engine.Execute(std::move(step), Creds("rsa"), Soon());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  ASSERT_EQ(log->size(), 2u);
  EXPECT_EQ((*log)[0].retry_reason, "status_429");
  EXPECT_EQ((*log)[1].delay, milliseconds(1000));
  EXPECT_TRUE((*log)[1].delay_from_retry_after);

  // An HTTP date two seconds ahead (at least one second away at whole-second precision).
  char date[64];
  const std::time_t at = std::time(nullptr) + 2;
  std::tm tm{};
  gmtime_r(&at, &tm);
  std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  FlakyOrigin dated(1, Status(503, {{"Retry-After", date}}));
  ASSERT_TRUE(dated.Start());
  RestStep again = Retrying(dated.Url(), 2);
  auto dated_log = again.attempts;
  auto d = engine.Execute(std::move(again), Creds("rsa"), Soon());
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_EQ(d->status, 200);
  ASSERT_EQ(dated_log->size(), 2u);
  EXPECT_TRUE((*dated_log)[1].delay_from_retry_after);
  EXPECT_GT((*dated_log)[1].delay, milliseconds(0));
  EXPECT_LE((*dated_log)[1].delay, milliseconds(2000));
}

TEST(RetryTest, ARetryAfterBeyondTheDeadlineEndsWithTheAnswerAtHand) {
  FlakyOrigin origin(1, Status(503, {{"Retry-After", "3600"}}));
  ASSERT_TRUE(origin.Start());
  RestEngine engine;
  RestStep step = Retrying(origin.Url(), 5);
  auto log = step.attempts;
  auto r = engine.Execute(std::move(step), Creds("rsa"), Soon());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(origin.seen(), 1);
  EXPECT_EQ(log->size(), 1u);
}

TEST(RetryTest, OnlyIdempotentRequestsAreRetried) {
  FlakyOrigin origin(1, Status(503));
  ASSERT_TRUE(origin.Start());
  RestEngine engine;
  RestStep post = Retrying(origin.Url(), 3);
  post.method = "POST";
  post.body = "{}";
  auto r = engine.Execute(std::move(post), Creds("rsa"), Soon());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(origin.seen(), 1);

  RestStep declared = Retrying(origin.Url(), 3);
  declared.method = "POST";
  declared.body = "{}";
  declared.retry.idempotent = true;
  auto d = engine.Execute(std::move(declared), Creds("rsa"), Soon());
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_EQ(d->status, 200);
  EXPECT_EQ(origin.seen(), 2);
}

TEST(RetryTest, ACertificateFailureIsNeverRetried) {
  testing::TlsServerConfig c = ServerConfig("self-signed");
  TlsServer server(c);
  ASSERT_TRUE(server.Start()) << server.start_error();
  RestEngine engine;
  RestStep step = Retrying(server.BaseUrl() + "/", 5);
  auto log = step.attempts;
  auto r = engine.Execute(std::move(step), Creds("rsa"), Soon());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kServerCertUntrusted) << r.error().ToString();
  EXPECT_TRUE(testing::WaitUntil("the server saw the handshake",
                                 [&] { return !server.connections().empty(); }));
  EXPECT_EQ(server.connections().size(), 1u);
  ASSERT_EQ(log->size(), 1u);
  EXPECT_EQ(log->front().error->code, Code::kServerCertUntrusted);
}

TEST(RetryTest, ARefusedConnectionIsRetriedAndTheErrorCountsTheAttempts) {
  const uint16_t closed = testing::PickFreeLoopbackPort();
  RestEngine engine;
  RestStep step = Retrying("https://localhost:" + std::to_string(closed) + "/", 3);
  auto log = step.attempts;
  auto r = engine.Execute(std::move(step), Creds("rsa"), Soon());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kConnectionRefused) << r.error().ToString();
  EXPECT_EQ(r.error().detail.at("attempts"), "3");
  ASSERT_EQ(log->size(), 3u);
  EXPECT_EQ((*log)[0].retry_reason, "CONNECTION_REFUSED");
}

// One event loop: a step waiting out a Retry-After must leave it free for other steps.
TEST(RetryTest, AWaitingRetryHoldsNoThreadAndCancelEndsIt) {
  FlakyOrigin waiting(1, Status(503, {{"Retry-After", "30"}}));
  ASSERT_TRUE(waiting.Start());
  TlsServer other(ServerConfig());
  ASSERT_TRUE(other.Start());
  EngineOptions options;
  options.workers = 1;
  RestEngine engine(options);

  CancelToken cancel;
  std::promise<Result<RestResult>> first;
  RestStep step = Retrying(waiting.Url(), 2);
  step.timeouts.total = milliseconds(60'000);  // room for the 30 s Retry-After
  engine.Submit(std::move(step), Creds("rsa"), In(milliseconds(60'000)), cancel,
                [&first](Result<RestResult> r) { first.set_value(std::move(r)); });
  ASSERT_TRUE(
      testing::WaitUntil("the first attempt was answered", [&] { return waiting.seen() == 1; }));

  auto second = engine.Execute(Get(other.BaseUrl() + "/"), Creds("rsa"), Soon());
  ASSERT_TRUE(second.ok()) << second.error().ToString();
  EXPECT_EQ(second->status, 200);

  cancel.Cancel();
  auto r = first.get_future().get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kCancelled) << r.error().ToString();
  EXPECT_EQ(r.error().detail.at("waiting_to_retry"), "true");
  EXPECT_EQ(waiting.seen(), 1);
}

TEST(RetryTest, BadPoliciesAreInvalidStepConfig) {
  RestEngine engine;
  RestStep many = Get("https://localhost:1/");
  many.retry.max_attempts = 11;
  EXPECT_EQ(engine.Validate(many).error().detail.at("field"), "retry.max_attempts");
  RestStep inverted = Get("https://localhost:1/");
  inverted.retry.base_delay = milliseconds(500);
  inverted.retry.max_delay = milliseconds(100);
  EXPECT_EQ(engine.Validate(inverted).error().detail.at("field"), "retry.base_delay");
}

}  // namespace
}  // namespace wsstep::rest

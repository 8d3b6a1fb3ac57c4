// Streamed bodies in the engine (rest/body_stream.h) against an in-process mTLS origin: a
// response sink that has room for little and is drained by another thread (the transfer
// must pause and resume, and every byte arrive in order), a request source fed by another
// thread (the transfer waits for it), and the limits and failures of both.
#include <gtest/gtest.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "rest/body_stream.h"
#include "rest/engine.h"
#include "rest/rest_test_util.h"

namespace wsstep::rest {
namespace {

using namespace testutil;

constexpr size_t kRoom = 64 * 1024;

// Takes at most kRoom bytes until a drainer thread took them; counts its pauses.
class SmallSink final : public ResponseBodySink {
 public:
  SmallSink() : drainer_([this] { Drain(); }) {}
  ~SmallSink() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    drainer_.join();
  }
  void Begin(int status, const std::vector<Header>&, ResumeTransfer resume) override {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = status;
    resume_ = std::move(resume);
  }
  bool Write(std::string_view bytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (held_ >= kRoom) {
      paused_ = true;
      ++pauses_;
      cv_.notify_all();
      return false;
    }
    held_ += bytes.size();
    for (char c : bytes) ok_ = ok_ && c == 'x';
    received_ += bytes.size();
    cv_.notify_all();
    return true;
  }
  size_t received() const {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }
  int pauses() const {
    std::lock_guard<std::mutex> lock(mu_);
    return pauses_;
  }
  bool all_x() const {
    std::lock_guard<std::mutex> lock(mu_);
    return ok_;
  }
  int status() const {
    std::lock_guard<std::mutex> lock(mu_);
    return status_;
  }

 private:
  // The consumer: takes what is held once the transfer paused, then resumes it.
  void Drain() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return stop_ || paused_; });
      if (stop_) return;
      held_ = 0;
      paused_ = false;
      ResumeTransfer resume = resume_;
      lock.unlock();
      resume();
      lock.lock();
    }
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  size_t held_ = 0;
  size_t received_ = 0;
  int pauses_ = 0;
  int status_ = 0;
  bool paused_ = false;
  bool stop_ = false;
  bool ok_ = true;
  ResumeTransfer resume_;
  std::thread drainer_;
};

// Hands out the pieces a producer pushes; waits (pauses the transfer) when it has none.
class FedSource final : public RequestBodySource {
 public:
  explicit FedSource(std::optional<uint64_t> length) : length_(length) {}
  std::optional<uint64_t> length() const override { return length_; }
  Read ReadSome(char* out, size_t max, const ResumeTransfer& resume) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (failed_) return {State::kFailed, 0};
    if (pieces_.empty()) {
      if (ended_) return {State::kEnd, 0};
      resume_ = resume;
      ++waits_;
      cv_.notify_all();
      return {State::kWait, 0};
    }
    std::string& front = pieces_.front();
    const size_t n = std::min(max, front.size());
    std::memcpy(out, front.data(), n);
    front.erase(0, n);
    if (front.empty()) pieces_.pop_front();
    return {State::kData, n};
  }
  void Push(std::string piece, bool end) {
    ResumeTransfer resume;
    {
      std::lock_guard<std::mutex> lock(mu_);
      pieces_.push_back(std::move(piece));
      ended_ = end;
      resume = std::move(resume_);
      resume_ = nullptr;
    }
    if (resume) resume();
  }
  void Fail() {
    ResumeTransfer resume;
    {
      std::lock_guard<std::mutex> lock(mu_);
      failed_ = true;
      resume = std::move(resume_);
      resume_ = nullptr;
    }
    if (resume) resume();
  }
  // Until the transfer found nothing to read `n` times (it paused); false after 30 s.
  bool WaitForWaits(int n) const {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return waits_ >= n; });
  }

 private:
  const std::optional<uint64_t> length_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::deque<std::string> pieces_;
  bool ended_ = false;
  bool failed_ = false;
  int waits_ = 0;
  ResumeTransfer resume_;
};

std::unique_ptr<testing::TlsServer> Origin(size_t huge_bytes) {
  auto config = ServerConfig();
  config.handler = [huge_bytes](const testing::ServerRequest& req) {
    testing::ServerResponse r;
    if (req.target == "/huge") {
      r.huge_body_bytes = huge_bytes;
      r.chunked = true;
    } else if (req.target == "/echo-length") {
      r.body = std::to_string(req.body.size()) + ":" + req.Header("Transfer-Encoding") + ":" +
               req.Header("Content-Length");
    } else if (req.target == "/missing") {
      r.status = 404;
      r.body = "no such thing";
    }
    return r;
  };
  auto server = std::make_unique<testing::TlsServer>(std::move(config));
  EXPECT_TRUE(server->Start()) << server->start_error();
  return server;
}

TEST(BodyStreamTest, AResponseSinkWithLittleRoomPausesTheTransferAndGetsEveryByte) {
  constexpr size_t kBytes = 8 * 1024 * 1024;
  auto origin = Origin(kBytes);
  RestEngine engine;
  auto sink = std::make_shared<SmallSink>();
  RestStep step = Get(origin->BaseUrl() + "/huge");
  step.response_body = sink;
  auto r = engine.Execute(std::move(step), Creds("rsa"), Soon());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(r->body_streamed);
  EXPECT_TRUE(r->body.empty());
  EXPECT_EQ(r->body_bytes, kBytes);
  EXPECT_EQ(sink->received(), kBytes);
  EXPECT_TRUE(sink->all_x());
  EXPECT_EQ(sink->status(), 200);
  EXPECT_GT(sink->pauses(), 0) << "the sink never ran out of room: nothing was proven";
  // Not a 2xx: the body stays whole in the result, the sink sees nothing.
  auto other = std::make_shared<SmallSink>();
  RestStep missing = Get(origin->BaseUrl() + "/missing");
  missing.response_body = other;
  auto m = engine.Execute(std::move(missing), Creds("rsa"), Soon());
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  EXPECT_EQ(m->status, 404);
  EXPECT_FALSE(m->body_streamed);
  EXPECT_EQ(m->body, "no such thing");
  EXPECT_EQ(other->received(), 0u);
}

TEST(BodyStreamTest, AStreamedResponseOverMaxResponseBytesIsTooLargeAndSaysHowMuchCame) {
  auto origin = Origin(8 * 1024 * 1024);
  RestEngine engine;
  auto sink = std::make_shared<SmallSink>();
  RestStep step = Get(origin->BaseUrl() + "/huge");
  step.response_body = sink;
  step.max_response_bytes = 1024 * 1024;
  step.retry.max_attempts = 3;  // a body already handed over is never fetched again
  step.attempts = std::make_shared<AttemptLog>();
  auto r = engine.Execute(std::move(step), Creds("rsa"), Soon());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kResponseTooLarge);
  EXPECT_LE(sink->received(), 1024u * 1024u);
  EXPECT_EQ(r.error().detail.at("body_bytes_streamed"), std::to_string(sink->received()));
  EXPECT_EQ(origin->request_count(), 1u);
}

TEST(BodyStreamTest, ARequestSourceFedByAnotherThreadIsSentWholeChunkedOrWithItsLength) {
  auto origin = Origin(0);
  RestEngine engine;
  constexpr size_t kPiece = 100 * 1000;
  constexpr int kPieces = 30;
  for (bool declared : {false, true}) {
    SCOPED_TRACE(declared);
    auto source = std::make_shared<FedSource>(declared ? std::optional<uint64_t>(kPiece * kPieces)
                                                       : std::nullopt);
    RestStep step = Get(origin->BaseUrl() + "/echo-length");
    step.method = "POST";
    step.body_source = source;
    std::thread producer([source] {
      for (int i = 0; i < kPieces; ++i) {
        // Wait until the transfer asked for more and found nothing: it must pause.
        if (!source->WaitForWaits(i + 1)) return source->Fail();
        source->Push(std::string(kPiece, static_cast<char>('a' + i % 26)), i + 1 == kPieces);
      }
    });
    auto r = engine.Execute(std::move(step), Creds("rsa"), Soon());
    producer.join();
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(r->body, std::to_string(kPiece * kPieces) + (declared ? "::3000000" : ":chunked:"));
  }
  std::string expected;
  for (int i = 0; i < kPieces; ++i)
    expected += std::string(kPiece, static_cast<char>('a' + i % 26));
  const auto requests = origin->requests();
  ASSERT_EQ(requests.size(), 2u);
  for (const auto& rec : requests) EXPECT_TRUE(rec.request.body == expected);
}

TEST(BodyStreamTest, ASourceThatFailsAbortsTheRequest) {
  auto origin = Origin(0);
  RestEngine engine;
  auto source = std::make_shared<FedSource>(std::nullopt);
  RestStep step = Get(origin->BaseUrl() + "/echo-length");
  step.method = "POST";
  step.body_source = source;
  std::thread producer([source] {
    if (source->WaitForWaits(1)) source->Push("some", false);
    source->WaitForWaits(2);
    source->Fail();
  });
  auto r = engine.Execute(std::move(step), Creds("rsa"), Soon());
  producer.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kInvalidArgument) << r.error().ToString();
  EXPECT_EQ(r.error().detail.at("request_body_bytes_sent"), "4");
  // A body and a source at once is a configuration error.
  RestStep both = Get(origin->BaseUrl() + "/echo-length");
  both.method = "POST";
  both.body = "inline";
  both.body_source = std::make_shared<FedSource>(std::nullopt);
  auto refused = engine.Execute(std::move(both), Creds("rsa"), Soon());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Code::kInvalidStepConfig);
  EXPECT_EQ(refused.error().detail.at("field"), "body");
}

}  // namespace
}  // namespace wsstep::rest

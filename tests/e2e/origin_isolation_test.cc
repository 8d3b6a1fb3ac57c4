// One bad origin never stalls the others (issue 20), against the real plugin binary and
// faulty origins on loopback (tests/support/faulty_origin.h): steps hanging on a dead
// origin hold no place that a healthy origin's steps need; a step that cannot finish in
// time is answered TIMEOUT naming the phase it was in (queued, tls_handshake, first_byte,
// reading) before the gRPC deadline; a per-origin cap answers ORIGIN_BUSY; and a plugin
// that runs out of file descriptors answers DESCRIPTORS_EXHAUSTED, logs an error line,
// keeps every stderr line JSON and still accepts a new host channel.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <chrono>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/e2e/e2e_util.h"
#include "tests/mock_engine/mock_engine.h"
#include "tests/support/faulty_origin.h"
#include "tests/support/pki.h"
#include "tests/support/tls_server.h"
#include "tests/support/wait.h"

namespace wsstep::e2e {
namespace {

using mock_engine::KeyPairFromFiles;
using mock_engine::MockEngine;
using mock_engine::TrustStoreFromFile;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::FaultyOrigin;
using ::testing::HasSubstr;

// The parallelism the old engine had (a fixed pool of 8 blocking workers): 4x that many
// steps hang on the dead origin in the test below.
constexpr int kHangingSteps = 32;

// The trust store and the client/rsa key pair, bound to localhost on every port given.
void ImportIdentityFor(MockEngine& engine, const std::vector<uint32_t>& ports) {
  std::vector<mock_engine::Bind> binds;
  for (uint32_t port : ports) binds.push_back({"localhost", port, ""});
  auto trust = engine.Create(TrustStoreFromFile("trust", "trust/bundle.pem", binds));
  ASSERT_TRUE(trust.ok()) << "trust: " << trust.status.error_message();
  auto id = engine.Create(KeyPairFromFiles("id", "client/rsa.pem", "client/rsa.key.pem", binds));
  ASSERT_TRUE(id.ok()) << "id: " << id.status.error_message();
}

v1::RestStep StepWithTotal(const std::string& url, milliseconds total) {
  v1::RestStep step = mock_engine::GetStep(url);
  if (total.count() > 0) {
    step.mutable_timeouts()->mutable_total()->set_seconds(total.count() / 1000);
    step.mutable_timeouts()->mutable_total()->set_nanos(static_cast<int32_t>(total.count() % 1000) *
                                                        1'000'000);
  }
  return step;
}

v1::ExecuteRestStepRequest RequestFor(const v1::RestStep& step) {
  v1::ExecuteRestStepRequest request;
  *request.mutable_step() = step;
  return request;
}

// The step error of an answered call (the gRPC call itself succeeded).
v1::StepError ErrorOf(const CallResult& r, const std::string& label) {
  EXPECT_TRUE(r.status.ok()) << label << ": gRPC " << r.status.error_code() << " "
                             << r.status.error_message();
  EXPECT_TRUE(r.response.outcome().has_error())
      << label << ": HTTP " << r.response.outcome().http().status();
  return r.response.outcome().error();
}

std::string Detail(const v1::StepError& e, const std::string& key) {
  auto it = e.detail().find(key);
  return it == e.detail().end() ? "" : it->second;
}

TEST(OriginIsolationTest, AHealthyOriginsStepsDoNotWaitBehindStepsHangingOnADeadOne) {
  testing::TlsServer healthy(MtlsOriginConfig(nullptr));
  ASSERT_TRUE(healthy.Start()) << healthy.start_error();
  FaultyOrigin dead(FaultyOrigin::Fault::kNeverAnswers);
  ASSERT_TRUE(dead.Start()) << dead.start_error();
  MockEngine engine;
  ASSERT_TRUE(engine.Start()) << engine.start_error();
  ImportIdentityFor(engine, {healthy.port(), dead.port()});
  const std::string healthy_url = "https://localhost:" + std::to_string(healthy.port()) + "/ok";

  // Warm: the healthy origin's connection exists before the storm.
  ASSERT_TRUE(engine.Rest(mock_engine::GetStep(healthy_url), "", Opts("warm")).ok());

  ConcurrentRestCalls hanging(engine.process().channel());
  const auto hang = RequestFor(StepWithTotal(dead.Url("/hang"), seconds(60)));
  for (int i = 0; i < kHangingSteps; ++i) {
    hanging.Start(hang, "hang-" + std::to_string(i), seconds(90));
  }
  // Every hanging step is running at once: each has its own connection to the dead
  // origin (with a fixed pool of blocking workers only as many as the pool connect).
  ASSERT_TRUE(dead.WaitForConnections(kHangingSteps))
      << dead.connections() << " of " << kHangingSteps << " hanging steps reached the origin";

  std::vector<int64_t> micros;
  for (int i = 0; i < 20; ++i) {
    const auto start = Clock::now();
    auto r =
        engine.Rest(mock_engine::GetStep(healthy_url), "", Opts("healthy-" + std::to_string(i)));
    micros.push_back(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());
    ASSERT_TRUE(r.ok()) << r.status.error_message();
    ASSERT_TRUE(r.response.outcome().has_http()) << r.response.outcome().error().message();
    EXPECT_EQ(r.response.outcome().http().status(), 200);
    EXPECT_EQ(r.response.outcome().tls().client_certificate().name(), "id");
  }
  // The healthy steps were answered while every hanging one still hangs.
  EXPECT_EQ(hanging.finished(), 0u);
  EXPECT_EQ(engine.Health("plugin"), "SERVING");
  std::sort(micros.begin(), micros.end());
  std::cout << "[figures] healthy step while " << kHangingSteps << " hang on a dead origin: p50 "
            << micros[micros.size() / 2] << " us, max " << micros.back() << " us" << std::endl;

  for (size_t i = 0; i < hanging.size(); ++i) hanging.Cancel(i);
  ASSERT_TRUE(hanging.WaitAll(seconds(30)));
  EXPECT_EQ(engine.Stop(), 0);
}

TEST(OriginIsolationTest, AStepWaitingForItsOriginIsAnsweredTimeoutQueuedBeforeTheGrpcDeadline) {
  FaultyOrigin dead(FaultyOrigin::Fault::kNeverAnswers);
  ASSERT_TRUE(dead.Start()) << dead.start_error();
  MockEngine engine;
  ASSERT_TRUE(engine.Start({{"WSSTEP_MAX_IN_FLIGHT_PER_ORIGIN", "1"}})) << engine.start_error();
  ImportIdentityFor(engine, {dead.port()});

  ConcurrentRestCalls calls(engine.process().channel());
  // The one place for this origin: a step that hangs until cancelled.
  calls.Start(RequestFor(StepWithTotal(dead.Url("/first"), seconds(60))), "first", seconds(90));
  ASSERT_TRUE(dead.WaitForConnections(1));

  // The step's own timeout runs out while it waits: TIMEOUT, phase queued, never started.
  auto own = engine.Rest(StepWithTotal(dead.Url("/own"), milliseconds(800)), "",
                         Opts("own-timeout", seconds(20)));
  ASSERT_TRUE(own.ok()) << "gRPC " << own.status.error_code() << " " << own.status.error_message();
  ASSERT_TRUE(own.response.outcome().has_error());
  const v1::StepError& e = own.response.outcome().error();
  EXPECT_EQ(e.code(), "TIMEOUT") << e.message();
  EXPECT_EQ(e.error_code(), v1::ERROR_CODE_TIMEOUT);
  EXPECT_EQ(Detail(e, "phase"), "queued") << e.message();
  EXPECT_EQ(Detail(e, "started"), "false");
  EXPECT_EQ(Detail(e, "limit"), "step_timeout");
  EXPECT_EQ(e.side(), v1::ERROR_SIDE_PLUGIN);
  EXPECT_THAT(e.message(), HasSubstr("never started"));

  // No timeout of its own: the host's deadline binds, and the answer still comes as a
  // step result before gRPC would end the call with a bare DEADLINE_EXCEEDED.
  auto host = engine.Rest(StepWithTotal(dead.Url("/host"), milliseconds(0)), "",
                          Opts("host-deadline", seconds(2)));
  ASSERT_TRUE(host.ok()) << "gRPC " << host.status.error_code() << " "
                         << host.status.error_message();
  ASSERT_TRUE(host.response.outcome().has_error());
  EXPECT_EQ(host.response.outcome().error().code(), "TIMEOUT");
  EXPECT_EQ(Detail(host.response.outcome().error(), "phase"), "queued");
  EXPECT_EQ(Detail(host.response.outcome().error(), "limit"), "caller_deadline");

  // One running and one waiting fill the origin: of two more steps, the one that comes
  // second is answered ORIGIN_BUSY at once (which one is up to gRPC's delivery order).
  calls.Start(RequestFor(StepWithTotal(dead.Url("/waits"), seconds(60))), "waits", seconds(90));
  calls.Start(RequestFor(StepWithTotal(dead.Url("/busy"), seconds(60))), "busy", seconds(90));
  ASSERT_TRUE(calls.WaitFinished(1, seconds(30)));
  int busy = 0;
  for (size_t i = 1; i < calls.size(); ++i) {
    const CallResult r = calls.result(i);
    if (!r.done) continue;
    const v1::StepError b = ErrorOf(r, "call " + std::to_string(i));
    EXPECT_EQ(b.code(), "ORIGIN_BUSY") << b.message();
    EXPECT_EQ(b.error_code(), v1::ERROR_CODE_ORIGIN_BUSY);
    EXPECT_EQ(b.side(), v1::ERROR_SIDE_PLUGIN);
    EXPECT_EQ(Detail(b, "max_in_flight_per_origin"), "1");
    ++busy;
  }
  EXPECT_EQ(busy, 1);
  EXPECT_FALSE(calls.result(0).done) << "the running step is still running";
  for (size_t i = 0; i < calls.size(); ++i) calls.Cancel(i);
  ASSERT_TRUE(calls.WaitAll(seconds(30)));
  EXPECT_EQ(engine.Stop(), 0);
}

TEST(OriginIsolationTest, EachFaultyOriginIsAnsweredWithItsPhase) {
  FaultyOrigin dead(FaultyOrigin::Fault::kNeverAnswers);
  FaultyOrigin trickle(FaultyOrigin::Fault::kTrickles);
  FaultyOrigin slow(FaultyOrigin::Fault::kSlow, milliseconds(1500));
  FaultyOrigin resets(FaultyOrigin::Fault::kResets);
  for (FaultyOrigin* o : {&dead, &trickle, &slow, &resets})
    ASSERT_TRUE(o->Start()) << o->start_error();
  MockEngine engine;
  ASSERT_TRUE(engine.Start()) << engine.start_error();
  ImportIdentityFor(engine, {dead.port(), trickle.port(), slow.port(), resets.port()});

  struct Case {
    std::string label;
    std::string url;
    milliseconds total;
    std::string phase;
  };
  const std::vector<Case> cases = {
      {"dead", dead.Url("/"), milliseconds(700), "tls_handshake"},  // TCP only, never TLS
      {"slow", slow.Url("/"), milliseconds(700), "first_byte"},
      {"trickle", trickle.Url("/"), milliseconds(2500), "reading"},
  };
  for (const Case& c : cases) {
    auto r = engine.Rest(StepWithTotal(c.url, c.total), "", Opts(c.label, seconds(20)));
    ASSERT_TRUE(r.ok()) << c.label << ": gRPC " << r.status.error_message();
    ASSERT_TRUE(r.response.outcome().has_error()) << c.label;
    const v1::StepError& e = r.response.outcome().error();
    EXPECT_EQ(e.code(), "TIMEOUT") << c.label << ": " << e.message();
    EXPECT_EQ(Detail(e, "phase"), c.phase) << c.label << ": " << e.message();
    EXPECT_EQ(Detail(e, "limit"), "step_timeout") << c.label;
    EXPECT_EQ(Detail(e, "timeout_ms"), std::to_string(c.total.count())) << c.label;
    std::cout << "[figures] " << c.label << ": " << e.message() << std::endl;
  }

  // Given the time, the slow origin answers.
  auto answered = engine.Rest(StepWithTotal(slow.Url("/"), seconds(10)), "", Opts("slow-ok"));
  ASSERT_TRUE(answered.ok());
  ASSERT_TRUE(answered.response.outcome().has_http())
      << answered.response.outcome().error().message();
  EXPECT_EQ(answered.response.outcome().http().body(), "slow");

  // A reset is not a timeout: it is answered at once (the reset comes during the
  // handshake, so the catalog names the handshake).
  auto reset = engine.Rest(StepWithTotal(resets.Url("/"), seconds(10)), "", Opts("reset"));
  ASSERT_TRUE(reset.ok());
  ASSERT_TRUE(reset.response.outcome().has_error());
  EXPECT_EQ(reset.response.outcome().error().code(), "TLS_HANDSHAKE_FAILED")
      << reset.response.outcome().error().message();
  std::cout << "[figures] reset: " << reset.response.outcome().error().code() << ": "
            << reset.response.outcome().error().message() << std::endl;
  EXPECT_EQ(engine.Stop(), 0);
}

TEST(OriginIsolationTest, RunningOutOfDescriptorsIsItsOwnCodeAndANewHostChannelStillConnects) {
  FaultyOrigin dead(FaultyOrigin::Fault::kNeverAnswers);
  ASSERT_TRUE(dead.Start()) << dead.start_error();
  MockEngine engine;
  ASSERT_TRUE(engine.Start()) << engine.start_error();
  ImportIdentityFor(engine, {dead.port()});

  // What an operator's `prlimit --nofile=64` does to a running plugin.
  rlimit limit{64, 64};
  ASSERT_EQ(::prlimit(engine.process().pid(), RLIMIT_NOFILE, &limit, nullptr), 0)
      << std::strerror(errno);

  // 64 steps at once, each needing a connection of its own: more than the plugin has
  // descriptors for.
  constexpr int kSteps = 64;
  ConcurrentRestCalls calls(engine.process().channel());
  const auto hang = RequestFor(StepWithTotal(dead.Url("/"), seconds(60)));
  for (int i = 0; i < kSteps; ++i) calls.Start(hang, "fd-" + std::to_string(i), seconds(90));
  // Each step either holds a connection to the dead origin or, finding no descriptor,
  // is answered at once.
  ASSERT_TRUE(testing::WaitUntil(
      "every step connected or was answered",
      [&] { return dead.connections() + calls.finished() >= static_cast<size_t>(kSteps); }))
      << dead.connections() << " connected, " << calls.finished() << " answered";
  std::map<std::string, int> codes;
  for (size_t i = 0; i < calls.size(); ++i) {
    const CallResult r = calls.result(i);
    if (!r.done) continue;
    const v1::StepError e = ErrorOf(r, "fd-" + std::to_string(i));
    ++codes[e.code()];
    EXPECT_EQ(e.code(), "DESCRIPTORS_EXHAUSTED") << e.message();
    EXPECT_EQ(e.error_code(), v1::ERROR_CODE_DESCRIPTORS_EXHAUSTED);
    EXPECT_EQ(e.side(), v1::ERROR_SIDE_PLUGIN);
    EXPECT_THAT(e.message(), HasSubstr("ran out of file descriptors"));
  }
  EXPECT_GT(codes["DESCRIPTORS_EXHAUSTED"], 0);
  const size_t held = dead.connections();

  // A host that reconnects (a new channel, a new connection) is still accepted while
  // the remaining steps hold their sockets.
  auto channel = engine.process().NewChannel();
  ASSERT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() + seconds(10)))
      << "a new host channel could not connect";
  auto stub = v1::StepPluginService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + seconds(10));
  v1::GetPluginInfoResponse info;
  EXPECT_TRUE(stub->GetPluginInfo(&ctx, v1::GetPluginInfoRequest(), &info).ok());

  for (size_t i = 0; i < calls.size(); ++i) calls.Cancel(i);
  ASSERT_TRUE(calls.WaitAll(seconds(30)));

  // The exhaustion is an error line; every line on stderr is one JSON object.
  const std::string log = engine.StderrText();
  bool error_line = false;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    auto json = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(json.is_discarded()) << "not JSON on stderr: " << line;
    if (json.value("@level", "") == "error" &&
        line.find("DESCRIPTORS_EXHAUSTED") != std::string::npos) {
      error_line = true;
    }
  }
  EXPECT_TRUE(error_line) << log.substr(0, 4000);
  std::cout << "[figures] 64 steps under RLIMIT_NOFILE 64: " << held
            << " held a connection to the origin;";
  for (const auto& [code, n] : codes) std::cout << " " << code << "=" << n;
  std::cout << std::endl;
  EXPECT_EQ(engine.Stop(), 0);
}

}  // namespace
}  // namespace wsstep::e2e

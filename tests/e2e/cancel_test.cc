// Cancellation at scale: a host starts max_in_flight_steps steps against an origin that
// holds every request, then gives up on half of them (ClientContext::TryCancel and short
// deadlines). The cancelled ones end CANCELLED / DEADLINE_EXCEEDED at once, the rest
// succeed once the origin answers, and no in-flight slot or connection leaks: afterwards
// exactly max_in_flight_steps held steps are accepted again (a leaked slot would refuse
// one) and the origin is left with no more connections than the engine keeps idle.
// The same at engine level (rest::RestEngine in process): 1,000 submissions, half their
// CancelTokens cancelled, every callback exactly once.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <future>
#include <iostream>
#include <set>
#include <string_view>

#include "rest/engine.h"
#include "rest/rest_test_util.h"
#include "tests/e2e/e2e_util.h"
#include "tests/mock_engine/mock_engine.h"
#include "tests/support/pki.h"
#include "tests/support/tls_server.h"
#include "tests/support/wait.h"

namespace wsstep::e2e {
namespace {

using ::testing::HasSubstr;
using mock_engine::MockEngine;

constexpr int kExtra = 16;   // calls beyond the limit in the leak probe
// Steps held at the origin before the host gives up (the engine's event loops send them
// all at once; these few are enough to know the storm has reached the origin).
constexpr int kEngineWorkers = 8;
// Idle connections the engine keeps per identity partition (rest::EngineOptions default).
const size_t kIdleConnections = rest::EngineOptions().max_idle_handles_per_partition;

int IndexOf(const std::string& target) {
  const auto eq = target.find("i=");
  return eq == std::string::npos ? -1 : std::stoi(target.substr(eq + 2));
}

// What the plugin's log says about the steps whose id satisfies `which`: how many took an
// in-flight slot ("step started", debug level) and how many gave it back ("step
// finished" / "step refused", written after the slot is released). A call whose deadline
// passed before it was dispatched never takes a slot and logs neither.
struct SlotLines {
  int started = 0;
  int ended = 0;
};
SlotLines LoggedSlots(const std::string& log, const std::function<bool(const std::string&)>& which) {
  SlotLines n;
  size_t line_start = 0;
  while (line_start < log.size()) {
    size_t end = log.find('\n', line_start);
    if (end == std::string::npos) end = log.size();
    const std::string_view line(log.data() + line_start, end - line_start);
    line_start = end + 1;
    const bool started = line.find("\"@message\":\"step started\"") != std::string_view::npos;
    const bool ended = line.find("\"@message\":\"step finished\"") != std::string_view::npos ||
                       line.find("\"@message\":\"step refused\"") != std::string_view::npos;
    if (!started && !ended) continue;
    constexpr std::string_view kKey = "\"step_id\":\"";
    const size_t at = line.find(kKey);
    if (at == std::string_view::npos) continue;
    const size_t from = at + kKey.size();
    const size_t to = line.find('"', from);
    if (to == std::string_view::npos || !which(std::string(line.substr(from, to - from)))) continue;
    (started ? n.started : n.ended) += 1;
  }
  return n;
}

class CancelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    origin_ = std::make_unique<testing::TlsServer>(MtlsOriginConfig(gate_.Handler()));
    ASSERT_TRUE(origin_->Start()) << origin_->start_error();
    // Debug level: "step started" tells when a probe step took its in-flight slot.
    ASSERT_TRUE(engine_.Start({{"WSSTEP_LOG_LEVEL", "debug"}})) << engine_.start_error();
    auto info = engine_.Info();
    ASSERT_TRUE(info.ok());
    limit_ = info.response.limits().max_in_flight_steps();
    ASSERT_GT(limit_, kEngineWorkers);
    ASSERT_FALSE(ImportRsaIdentity(engine_, origin_->port()).id().empty());
  }
  void TearDown() override {
    gate_.Open();
    if (probe_gate_) probe_gate_->Open();
    EXPECT_EQ(engine_.Stop(), 0);
    origin_->Stop();
  }

  v1::ExecuteRestStepRequest Request(int i) const {
    v1::ExecuteRestStepRequest r;
    *r.mutable_step() = mock_engine::GetStep("https://localhost:" + std::to_string(origin_->port()) +
                                             "/held?i=" + std::to_string(i));
    return r;
  }

  Gate gate_;
  std::unique_ptr<Gate> probe_gate_;
  std::unique_ptr<testing::TlsServer> origin_;
  MockEngine engine_;
  int limit_ = 0;
};

TEST_F(CancelTest, HalfOfMaxInFlightCancelledEndPromptlyTheRestSucceedAndNoSlotLeaks) {
  const int n = limit_;
  // i % 4 == 1: TryCancel; i % 4 == 3: a 600 ms deadline; even: run to completion.
  auto cancelled_by_host = [](int i) { return i % 4 == 1; };
  auto short_deadline = [](int i) { return i % 4 == 3; };
  ConcurrentRestCalls calls(engine_.process().channel());
  for (int i = 0; i < n; ++i) {
    calls.Start(Request(i), "c-" + std::to_string(i),
                short_deadline(i) ? std::chrono::milliseconds(600) : std::chrono::seconds(50));
  }
  // The steps are held at the origin (the engine sends every one at once).
  ASSERT_TRUE(gate_.WaitForWaiting(kEngineWorkers, std::chrono::seconds(20))) << gate_.waiting();
  for (int i = 0; i < n; ++i) {
    if (cancelled_by_host(i)) calls.Cancel(i);
  }
  ASSERT_TRUE(calls.WaitFinished(n / 2, std::chrono::seconds(30)));
  EXPECT_EQ(calls.finished(), static_cast<size_t>(n / 2)) << "only the given-up calls may end while the origin holds";
  // The plugin ends every given-up step that took a slot too (its cancel bridge polls
  // every 25 ms), while the origin still holds: each logs when it gives its slot back.
  auto given_up = [&](const std::string& id) {
    if (id.rfind("c-", 0) != 0) return false;
    const int i = std::stoi(id.substr(2));
    return cancelled_by_host(i) || short_deadline(i);
  };
  SlotLines given_up_slots;
  EXPECT_TRUE(testing::WaitUntil("the plugin ended every given-up step that took a slot", [&] {
    given_up_slots = LoggedSlots(engine_.StderrText(), given_up);
    return given_up_slots.ended >= given_up_slots.started;
  })) << given_up_slots.started << " took a slot, " << given_up_slots.ended << " gave it back";
  const auto opened_at = Clock::now();
  for (int i = 0; i < n; ++i) {
    const CallResult r = calls.result(i);
    if (cancelled_by_host(i)) {
      ASSERT_TRUE(r.done) << i;
      EXPECT_EQ(r.status.error_code(), grpc::StatusCode::CANCELLED) << i << " " << r.status.error_message();
      EXPECT_LT(r.finished, opened_at) << i << " ended only when the origin answered";
    } else if (short_deadline(i)) {
      ASSERT_TRUE(r.done) << i;
      // The contract (step_plugin_service.proto): the deadline bounds the step; a step
      // already at the origin may come back first as the TIMEOUT outcome.
      if (r.status.ok()) {
        EXPECT_EQ(r.response.outcome().error().code(), "TIMEOUT") << i;
      } else {
        EXPECT_EQ(r.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << i << " " << r.status.error_message();
      }
      EXPECT_LT(r.finished, opened_at) << i << " ended only when the origin answered";
    } else {
      EXPECT_FALSE(r.done) << i << " finished while the origin held every request";
    }
  }
  const int arrived_before_open = gate_.arrived();
  gate_.Open();
  ASSERT_TRUE(calls.WaitAll(std::chrono::seconds(40))) << calls.finished() << " of " << n;
  for (int i = 0; i < n; i += 2) {
    const CallResult r = calls.result(i);
    ASSERT_TRUE(r.status.ok()) << i << ": " << r.status.error_message();
    ASSERT_TRUE(r.response.outcome().has_http()) << i << ": " << r.response.outcome().error().code();
    EXPECT_EQ(r.response.outcome().http().status(), 200) << i;
    EXPECT_EQ(r.response.outcome().http().body(), "released /held?i=" + std::to_string(i));
    EXPECT_EQ(r.response.outcome().step_id(), "c-" + std::to_string(i));
  }
  // Which given-up steps still reached the origin: the ones already there when the host
  // gave up, and any a worker started before it noticed the cancellation.
  std::set<int> reached;
  for (const auto& rec : origin_->requests()) reached.insert(IndexOf(rec.request.target));
  int cancelled_reached = 0;
  for (int i = 1; i < n; i += 2) cancelled_reached += reached.count(i) ? 1 : 0;
  for (int i = 0; i < n; i += 2) EXPECT_EQ(reached.count(i), 1u) << "step " << i << " never reached the origin";
  std::cout << "[figures] " << n << " held steps, " << n / 2 << " given up (" << given_up_slots.started
            << " of them took a slot; the others' deadline passed before the plugin dispatched them): "
            << cancelled_reached
            << " given-up steps reached the origin (" << arrived_before_open
            << " requests had arrived before it answered); origin connections: "
            << origin_->connection_count() << " accepted, " << origin_->open_connection_count()
            << " open after the run" << std::endl;

  // Every step of the run that took a slot gave it back (every call has ended at the host;
  // the plugin logs a slot's release just after it).
  SlotLines run_slots;
  EXPECT_TRUE(testing::WaitUntil("the plugin gave back every slot of the run", [&] {
    run_slots = LoggedSlots(engine_.StderrText(), [](const std::string& id) { return id.rfind("c-", 0) == 0; });
    return run_slots.ended >= run_slots.started;
  })) << run_slots.started << " took a slot, " << run_slots.ended << " gave it back";
  EXPECT_GE(run_slots.started, n / 2) << "every step that ran to completion took a slot";
  // Leak probe: limit_ + kExtra held steps. Exactly limit_ are accepted (a leaked slot
  // would refuse one more), the kExtra others are refused at once with UNAVAILABLE.
  probe_gate_ = std::make_unique<Gate>();
  origin_->SetHandler(probe_gate_->Handler());
  ConcurrentRestCalls probe(engine_.process().channel());
  for (int i = 0; i < n + kExtra; ++i) probe.Start(Request(1000 + i), "p-" + std::to_string(i), std::chrono::seconds(50));
  ASSERT_TRUE(probe.WaitFinished(kExtra, std::chrono::seconds(20))) << probe.finished();
  ASSERT_TRUE(probe_gate_->WaitForWaiting(kEngineWorkers, std::chrono::seconds(20)));
  // Until the plugin decided on every probe call: each was either admitted (it logs "step
  // started" on taking a slot) or refused at once (the call ended).
  auto probe_step = [](const std::string& id) { return id.rfind("p-", 0) == 0; };
  int admitted = 0;
  EXPECT_TRUE(testing::WaitUntil("the plugin admitted or refused every probe call", [&] {
    admitted = LoggedSlots(engine_.StderrText(), probe_step).started;
    return admitted + static_cast<int>(probe.finished()) >= n + kExtra;
  }));
  EXPECT_EQ(admitted, n) << "exactly max_in_flight_steps probe calls take a slot";
  EXPECT_EQ(probe.finished(), static_cast<size_t>(kExtra)) << "exactly the calls beyond the limit end early";
  int refused = 0;
  for (int i = 0; i < n + kExtra; ++i) {
    const CallResult r = probe.result(i);
    if (!r.done) continue;
    ++refused;
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE) << r.status.error_message();
    EXPECT_THAT(r.status.error_message(), HasSubstr("max_in_flight_steps"));
    EXPECT_THAT(r.status.error_message(), HasSubstr("not started"));
  }
  EXPECT_EQ(refused, kExtra);
  probe_gate_->Open();
  ASSERT_TRUE(probe.WaitAll(std::chrono::seconds(40)));
  int succeeded = 0;
  for (int i = 0; i < n + kExtra; ++i) {
    const CallResult r = probe.result(i);
    succeeded += r.status.ok() && r.response.outcome().has_http() && r.response.outcome().http().status() == 200;
  }
  EXPECT_EQ(succeeded, n) << "every accepted probe step succeeds";
  // Connections are returned, not leaked: the identity's partition keeps at most its idle
  // limit open (all steps used one identity, so one partition).
  EXPECT_LE(origin_->open_connection_count(), kIdleConnections);
  EXPECT_EQ(engine_.Health("plugin"), "SERVING");
}

// --- Engine level ------------------------------------------------------------------------

class EngineCancelTest : public ::testing::Test {};

// Opens a gate when the scope ends (declared after the engine, so it runs before the
// engine's destructor waits for the transfers the gate holds).
struct OpenOnExit {
  Gate& gate;
  ~OpenOnExit() { gate.Open(); }
};

TEST_F(EngineCancelTest, ThousandSubmissionsHalfCancelledEveryCallbackRunsExactlyOnce) {
  constexpr int kSubmissions = 1000;
  Gate gate;
  testing::TlsServer origin(rest::testutil::ServerConfig());
  origin.SetHandler(gate.Handler());
  ASSERT_TRUE(origin.Start()) << origin.start_error();
  rest::EngineOptions options;  // 1,024 steps in flight at most: 1,000 fit
  auto engine = std::make_unique<rest::RestEngine>(options);
  OpenOnExit open_on_exit{gate};  // a failed assertion must not leave the engine held
  const auto creds = rest::testutil::Creds("rsa");

  std::vector<std::atomic<int>> calls(kSubmissions);
  std::vector<Code> codes(kSubmissions, Code::kOk);
  std::vector<int> statuses(kSubmissions, 0);
  std::vector<Clock::time_point> done_at(kSubmissions);
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  std::vector<rest::CancelToken> tokens(kSubmissions);
  for (int i = 0; i < kSubmissions; ++i) {
    auto step = rest::testutil::Get(origin.BaseUrl() + "/held?i=" + std::to_string(i));
    step.timeouts.total = std::chrono::seconds(40);
    engine->Submit(std::move(step), creds, rest::testutil::In(std::chrono::seconds(45)), tokens[i],
                   [&, i](Result<rest::RestResult> r) {
                     ++calls[i];
                     std::lock_guard<std::mutex> lock(mu);
                     codes[i] = r.ok() ? Code::kOk : r.error().code;
                     statuses[i] = r.ok() ? r->status : 0;
                     done_at[i] = Clock::now();
                     ++done;
                     cv.notify_all();
                   });
  }
  ASSERT_TRUE(gate.WaitForWaiting(kEngineWorkers, std::chrono::seconds(20))) << gate.waiting();
  const auto cancel_at = Clock::now();
  for (int i = 1; i < kSubmissions; i += 2) tokens[i].Cancel();
  // While the origin holds every request, every cancelled submission completes: its
  // event loop looks at each running transfer's token between socket events. None of them
  // needs the origin to answer.
  auto cancelled_done = [&] {
    int n = 0;
    for (int i = 1; i < kSubmissions; i += 2) n += calls[i].load() > 0;
    return n;
  };
  {
    std::unique_lock<std::mutex> lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, testing::kWaitBound,
                            [&] { return cancelled_done() == kSubmissions / 2; }))
        << cancelled_done() << " of " << kSubmissions / 2
        << " cancelled submissions completed while the origin held every request";
  }
  const int cancelled_done_while_held = cancelled_done();
  gate.Open();
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(40), [&] { return done == kSubmissions; })) << done;
  }
  Clock::duration slowest_cancel{};
  for (int i = 0; i < kSubmissions; ++i) {
    EXPECT_EQ(calls[i].load(), 1) << "callback of submission " << i;
    if (i % 2 == 1) {
      EXPECT_EQ(codes[i], Code::kCancelled) << i << " " << CodeName(codes[i]);
      slowest_cancel = std::max(slowest_cancel, done_at[i] - cancel_at);
    } else {
      EXPECT_EQ(codes[i], Code::kOk) << i << " " << CodeName(codes[i]);
      EXPECT_EQ(statuses[i], 200) << i;
    }
  }
  // Every transfer ended: a shutdown has nothing to wait for. (Timing is the behaviour
  // here: a transfer left running would hold Shutdown for its 40 s timeout; the bound is
  // generous so that only that, not a loaded machine, fails it.)
  const auto shutdown_at = Clock::now();
  engine->Shutdown();
  EXPECT_LT(Clock::now() - shutdown_at, std::chrono::seconds(10));
  uint64_t requests = 0;
  for (const auto& s : engine->Stats()) requests += s.requests;
  std::cout << "[figures] engine: " << kSubmissions / 2 << " cancelled, "
            << cancelled_done_while_held << " completed while the origin held them; slowest "
            << std::chrono::duration_cast<std::chrono::milliseconds>(slowest_cancel).count()
            << " ms after Cancel(); partition requests " << requests << ", origin saw "
            << origin.request_count() << std::endl;
  // Every request the engine counts is one the origin received, and every live step's.
  EXPECT_GE(origin.request_count(), static_cast<size_t>(kSubmissions / 2));
  engine.reset();
  // The origin notices each close on its own connection thread.
  EXPECT_TRUE(origin.WaitForOpenConnectionsAtMost(0)) << "the engine closed every connection: "
                                                      << origin.open_connection_count() << " open";
  origin.Stop();
}

// What a host expects: a step whose CancelToken is cancelled before a worker takes it ends
// CANCELLED without sending anything, and without waiting for a worker (an API call the
// host gave up on must not be made).
TEST_F(EngineCancelTest, AStepCancelledWhileQueuedNeverReachesTheOriginAndEndsAtOnce) {
  Gate gate;
  testing::TlsServer origin(rest::testutil::ServerConfig());
  origin.SetHandler(gate.Handler());
  ASSERT_TRUE(origin.Start()) << origin.start_error();
  rest::EngineOptions options;
  options.max_in_flight_per_origin = 1;  // the held step takes the origin's only place
  rest::RestEngine engine(options);
  OpenOnExit open_on_exit{gate};  // a failed assertion must not leave the engine held
  const auto creds = rest::testutil::Creds("rsa");
  std::promise<Result<rest::RestResult>> held, queued;
  rest::CancelToken queued_token;
  engine.Submit(rest::testutil::Get(origin.BaseUrl() + "/held"), creds, rest::testutil::Soon(), {},
                [&](Result<rest::RestResult> r) { held.set_value(std::move(r)); });
  ASSERT_TRUE(gate.WaitForWaiting(1, std::chrono::seconds(10)));
  engine.Submit(rest::testutil::Get(origin.BaseUrl() + "/queued"), creds, rest::testutil::Soon(),
                queued_token, [&](Result<rest::RestResult> r) { queued.set_value(std::move(r)); });
  queued_token.Cancel();
  auto queued_result = queued.get_future();
  auto held_result = held.get_future();
  // The origin's only place is held until the gate opens below (or until the held step's
  // own timeout): the cancelled step may complete while the held one still runs only if
  // it does not wait for that place.
  ASSERT_EQ(queued_result.wait_for(testing::kWaitBound), std::future_status::ready)
      << "a cancelled queued step waits for its origin's place";
  EXPECT_EQ(held_result.wait_for(std::chrono::seconds(0)), std::future_status::timeout)
      << "a cancelled queued step waited for the place (it ended after the held step)";
  gate.Open();
  const auto r = queued_result.get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kCancelled);
  EXPECT_TRUE(held_result.get().ok());
  for (const auto& rec : origin.requests()) EXPECT_NE(rec.request.target, "/queued");
}

}  // namespace
}  // namespace wsstep::e2e

// A closed-loop load generator: keeps `in_flight` asynchronous operations outstanding,
// starting the next one as each completes, until a duration or count bound is reached.
// Used for the REST engine (Submit) and for the plugin (gRPC callback API), so both are
// driven the same way.
//
//   LoopOutcome o = RunClosedLoop(16, std::chrono::seconds(8), 0,
//       [&](OpDone done) { engine.Submit(..., [done](auto r) { done(r.ok() ? "" : "..."); }); });
#ifndef WSSTEP_TESTS_BENCH_CLOSED_LOOP_H_
#define WSSTEP_TESTS_BENCH_CLOSED_LOOP_H_

#include <cstdint>
#include <functional>
#include <string>

#include "tests/bench/stats.h"

namespace wsstep::bench {

// Completion of one operation: "" = success, otherwise a short description of the
// failure. Must be called exactly once, from any thread.
using OpDone = std::function<void(std::string error)>;
// Starts one operation; it must not block until completion.
using AsyncOp = std::function<void(OpDone done)>;

struct LoopOutcome {
  Throughput throughput;  // successful operations only
  uint64_t failures = 0;
  std::string first_error;
  bool hung = false;  // operations still outstanding after the grace period
};

// Runs the loop. An operation that fails retires its slot (so a broken target cannot
// spin). Waits at most `duration` + `grace` for the last operations to finish.
LoopOutcome RunClosedLoop(int in_flight, Nanos duration, uint64_t max_count, const AsyncOp& op,
                          Nanos grace = std::chrono::seconds(60));

}  // namespace wsstep::bench

#endif  // WSSTEP_TESTS_BENCH_CLOSED_LOOP_H_

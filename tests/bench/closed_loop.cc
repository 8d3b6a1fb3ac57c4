#include "tests/bench/closed_loop.h"

#include <condition_variable>
#include <memory>
#include <mutex>

namespace wsstep::bench {
namespace {

// Shared with every callback, so a callback arriving after RunClosedLoop gave up on a
// hung operation touches live memory.
struct LoopState {
  std::mutex mu;
  std::condition_variable cv;
  LatencySamples samples;
  uint64_t started = 0;
  uint64_t failures = 0;
  std::string first_error;
  int active = 0;
  Clock::time_point start;
  Clock::time_point last_done;
  Nanos duration{0};
  uint64_t max_count = 0;
  AsyncOp op;
};

void Issue(const std::shared_ptr<LoopState>& state) {
  const auto t0 = Now();
  state->op([state, t0](std::string error) {
    const auto t1 = Now();
    bool again = false;
    {
      std::lock_guard<std::mutex> lock(state->mu);
      if (error.empty()) {
        state->samples.Add(t1 - t0);
        state->last_done = t1;
        // Count started operations, so that a count bound is never overshot by the
        // operations still in flight.
        again = !LoopDone(state->start, state->duration, state->started, state->max_count);
        if (again) ++state->started;
      } else {
        if (state->failures++ == 0) state->first_error = std::move(error);
      }
      if (!again) {
        --state->active;
        state->cv.notify_all();
      }
    }
    if (again) Issue(state);
  });
}

}  // namespace

LoopOutcome RunClosedLoop(int in_flight, Nanos duration, uint64_t max_count, const AsyncOp& op,
                          Nanos grace) {
  auto state = std::make_shared<LoopState>();
  state->duration = duration;
  state->max_count = max_count;
  state->op = op;
  state->samples.Reserve(1 << 16);
  state->start = Now();
  state->last_done = state->start;
  int slots = in_flight < 1 ? 1 : in_flight;
  if (max_count != 0 && static_cast<uint64_t>(slots) > max_count) slots = static_cast<int>(max_count);
  {
    std::lock_guard<std::mutex> lock(state->mu);
    state->active = slots;
    state->started = static_cast<uint64_t>(slots);
  }
  for (int i = 0; i < slots; ++i) Issue(state);

  LoopOutcome out;
  std::unique_lock<std::mutex> lock(state->mu);
  const bool finished = state->cv.wait_until(lock, state->start + duration + grace,
                                             [&] { return state->active == 0; });
  out.hung = !finished;
  out.failures = state->failures;
  out.first_error = state->first_error;
  out.throughput = state->samples.Summarize(state->last_done - state->start);
  return out;
}

}  // namespace wsstep::bench

// Waiting in tests without sleeping for a guessed time.
//
// Wait for an event, not for time: a latch or a condition variable the code under test
// (or the test's fake) signals, TlsServer::WaitForRequests, the e2e Gate, a pipe byte from
// a child. EventCounter is such an event for a test's own threads and fakes:
//
//   EventCounter arrived;                        // the fake origin calls arrived.Add()
//   ...
//   ASSERT_TRUE(arrived.WaitFor(1, "the slow step reached the origin"));
//
// Only when nothing can notify the test (another process's state: a port that starts to
// accept, a file a child writes, a line in a plugin's log, a row its background flusher
// writes) poll it, with WaitUntil, naming the condition:
//
//   ASSERT_TRUE(WaitUntil("the backend accepts connections",
//                         [&] { return LoopbackPortAccepts(port); }));
//
// Both return a ::testing::AssertionResult (usable as a bool) whose failure message names
// the condition and the bound. The bound is a safety net for a broken test, generous on
// purpose (kWaitBound): a test passes because its condition held, never because time went
// by, so a loaded machine only makes a test slower, not red.
#ifndef WSSTEP_TESTS_SUPPORT_WAIT_H_
#define WSSTEP_TESTS_SUPPORT_WAIT_H_

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string_view>

namespace wsstep::testing {

// The default safety bound of every wait here.
inline constexpr std::chrono::milliseconds kWaitBound{30000};

// Polls `condition` (from 1 ms up to every 20 ms) until it holds or `bound` passed;
// success, or a failure saying that `what` did not happen within `bound`.
::testing::AssertionResult WaitUntil(std::string_view what, const std::function<bool()>& condition,
                                     std::chrono::milliseconds bound = kWaitBound);

// A count of events that threads can wait on (without polling): Add() wakes every waiter.
class EventCounter {
 public:
  void Add(int n = 1);
  int value() const;
  // Until value() >= n; a failure naming `what` after `bound`.
  ::testing::AssertionResult WaitFor(int n, std::string_view what,
                                     std::chrono::milliseconds bound = kWaitBound) const;

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  int value_ = 0;
};

}  // namespace wsstep::testing

#endif  // WSSTEP_TESTS_SUPPORT_WAIT_H_

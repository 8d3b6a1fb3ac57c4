#include "tests/support/wait.h"

#include <algorithm>
#include <string>
#include <thread>

namespace wsstep::testing {

::testing::AssertionResult WaitUntil(std::string_view what, const std::function<bool()>& condition,
                                     std::chrono::milliseconds bound) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  std::chrono::milliseconds interval(1);
  for (;;) {
    if (condition()) return ::testing::AssertionSuccess();
    if (std::chrono::steady_clock::now() >= deadline) break;
    // Polling another process's state: nothing can notify us, so look again shortly.
    std::this_thread::sleep_for(interval);
    interval = std::min(interval * 2, std::chrono::milliseconds(20));
  }
  // One last look: the condition may have come true while we slept past the deadline.
  if (condition()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "waited " << bound.count() << " ms (the safety bound) for: " << std::string(what);
}

void EventCounter::Add(int n) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    value_ += n;
  }
  cv_.notify_all();
}

int EventCounter::value() const {
  std::lock_guard<std::mutex> lock(mu_);
  return value_;
}

::testing::AssertionResult EventCounter::WaitFor(int n, std::string_view what,
                                                 std::chrono::milliseconds bound) const {
  std::unique_lock<std::mutex> lock(mu_);
  if (cv_.wait_for(lock, bound, [&] { return value_ >= n; })) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "waited " << bound.count() << " ms (the safety bound) for: " << std::string(what)
         << " (" << value_ << " of " << n << ")";
}

}  // namespace wsstep::testing

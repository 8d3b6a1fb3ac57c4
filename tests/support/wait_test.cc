#include "tests/support/wait.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace wsstep::testing {
namespace {

using ::testing::HasSubstr;

TEST(WaitUntilTest, ReturnsAsSoonAsTheConditionHolds) {
  int looks = 0;
  EXPECT_TRUE(WaitUntil("the third look", [&] { return ++looks == 3; }));
  EXPECT_EQ(looks, 3);
}

TEST(WaitUntilTest, AFailureNamesTheConditionAndTheBound) {
  // The bound is the behaviour under test here, so it is tiny.
  const ::testing::AssertionResult r = WaitUntil(
      "a thing that never happens", [] { return false; }, std::chrono::milliseconds(5));
  EXPECT_FALSE(r);
  EXPECT_THAT(r.message(), HasSubstr("a thing that never happens"));
  EXPECT_THAT(r.message(), HasSubstr("5 ms"));
}

TEST(EventCounterTest, WaitForWakesWhenAnotherThreadAdds) {
  EventCounter counter;
  std::thread adder([&] {
    counter.Add();
    counter.Add(2);
  });
  EXPECT_TRUE(counter.WaitFor(3, "three events"));
  adder.join();
  EXPECT_EQ(counter.value(), 3);
}

TEST(EventCounterTest, AFailureSaysHowFarItGot) {
  EventCounter counter;
  counter.Add();
  const ::testing::AssertionResult r =
      counter.WaitFor(2, "two events", std::chrono::milliseconds(5));
  EXPECT_FALSE(r);
  EXPECT_THAT(r.message(), HasSubstr("two events (1 of 2)"));
}

}  // namespace
}  // namespace wsstep::testing

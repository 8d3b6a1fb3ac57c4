#include "rest/spin_wait.h"

#include <gtest/gtest.h>

namespace wsstep::rest {
namespace {

using std::chrono::microseconds;

// The budget of the next `n` waits, counting those that spin.
int SpinsIn(SpinAdvisor& a, int n) {
  int spins = 0;
  for (int i = 0; i < n; ++i) spins += a.Budget() == a.spin() ? 1 : 0;
  return spins;
}

TEST(SpinAdvisorTest, SpinsFromTheStartWhileWaitsAreShort) {
  SpinAdvisor a;
  EXPECT_EQ(a.Budget(), SpinAdvisor::kDefaultSpin);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(a.Budget(), SpinAdvisor::kDefaultSpin) << i;
    a.Observe(microseconds(120));  // a nearby origin
  }
  EXPECT_NEAR(a.average_us(), 120, 1);
}

TEST(SpinAdvisorTest, LongWaitsStopTheSpinExceptOneProbeIn64) {
  SpinAdvisor a;
  for (int i = 0; i < 40; ++i) a.Observe(microseconds(5000));  // an origin 5 ms away
  EXPECT_GT(a.average_us(), a.worth_it_us());
  // 640 waits: exactly the 10 probes spin, whichever they fall on.
  EXPECT_EQ(SpinsIn(a, 640), 10);
}

TEST(SpinAdvisorTest, FailuresCountAsLongWaits) {
  SpinAdvisor a;
  a.ObserveFailure();
  a.ObserveFailure();
  EXPECT_GT(a.average_us(), a.worth_it_us());
  EXPECT_EQ(SpinsIn(a, 64), 1);
}

TEST(SpinAdvisorTest, AProbeThatFindsShortWaitsAgainBringsTheSpinBack) {
  SpinAdvisor a;
  for (int i = 0; i < 40; ++i) a.Observe(microseconds(5000));
  ASSERT_EQ(a.Budget(), microseconds(0));
  // The origin became fast: the probes' observations pull the average down.
  int waits = 0;
  while (a.Budget() != a.spin() || a.average_us() > a.worth_it_us()) {
    a.Observe(microseconds(100));
    ASSERT_LT(++waits, 64 * 40) << "the spin never came back";
  }
  EXPECT_EQ(SpinsIn(a, 10), 10);
}

TEST(SpinAdvisorTest, ZeroNeverSpinsNotEvenToProbe) {
  SpinAdvisor a(microseconds(0));
  EXPECT_EQ(a.spin(), microseconds(0));
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(a.Budget(), microseconds(0)) << i;
    a.Observe(microseconds(50));
  }
  SpinAdvisor negative(microseconds(-5));
  EXPECT_EQ(negative.Budget(), microseconds(0));
}

TEST(SpinAdvisorTest, ASpinOfItsOwnScalesWhatIsWorthIt) {
  SpinAdvisor a(microseconds(100));
  EXPECT_EQ(a.Budget(), microseconds(100));
  EXPECT_DOUBLE_EQ(a.worth_it_us(), 400);
  for (int i = 0; i < 60; ++i) a.Observe(microseconds(600));  // worth it for 250, not 100
  EXPECT_EQ(a.Budget(), microseconds(0));
  SpinAdvisor b;
  for (int i = 0; i < 60; ++i) b.Observe(microseconds(600));
  EXPECT_EQ(b.Budget(), SpinAdvisor::kDefaultSpin);
}

}  // namespace
}  // namespace wsstep::rest

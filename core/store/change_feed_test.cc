#include "core/store/change_feed.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>

namespace wsstep::core {
namespace {

using std::chrono::milliseconds;

Clock FixedClock(UnixSeconds at) {
  return [at] { return at; };
}

TEST(ChangeFeedTest, EventsAreNumberedWithoutGapsAndStamped) {
  ChangeFeed feed(FixedClock(1000));
  EXPECT_EQ(feed.latest(), 0u);
  feed.Append(ChangeKind::kCreated, "id1", "one");
  feed.Append(ChangeKind::kUpdated, "id1", "uno");
  feed.Append(ChangeKind::kDeleted, "id1", "uno");
  EXPECT_EQ(feed.latest(), 3u);
  auto events = feed.WaitAfter(1, milliseconds(0));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].sequence, 2u);
  EXPECT_EQ(events[0].kind, ChangeKind::kUpdated);
  EXPECT_EQ(events[0].entry_name, "uno");
  EXPECT_EQ(events[0].at, 1000);
  EXPECT_EQ(events[1].kind, ChangeKind::kDeleted);
}

TEST(ChangeFeedTest, NothingNewIsAnEmptyAnswerAfterTheTimeout) {
  ChangeFeed feed(FixedClock(1));
  feed.Append(ChangeKind::kCreated, "a", "a");
  EXPECT_TRUE(feed.WaitAfter(1, milliseconds(0)).empty());
  EXPECT_TRUE(feed.WaitAfter(5, milliseconds(0)).empty());  // ahead of the feed
}

TEST(ChangeFeedTest, AWaiterIsWokenByTheNextEvent) {
  ChangeFeed feed(FixedClock(1));
  std::atomic<bool> waiting{false};
  auto waiter = std::async(std::launch::async, [&] {
    waiting = true;
    return feed.WaitAfter(0, std::chrono::hours(1));  // only an event ends this
  });
  while (!waiting) std::this_thread::yield();
  feed.Append(ChangeKind::kCreated, "a", "a");
  auto events = waiter.get();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].entry_id, "a");
}

TEST(ChangeFeedTest, AWatcherBehindTheWindowGetsOneResyncFirst) {
  ChangeFeed feed(FixedClock(7), /*capacity=*/3);
  for (int i = 1; i <= 5; ++i) feed.Append(ChangeKind::kUpdated, "e" + std::to_string(i), "n");
  auto events = feed.WaitAfter(0, milliseconds(0));
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].kind, ChangeKind::kResync);
  EXPECT_EQ(events[0].sequence, 2u);  // just before the oldest kept
  EXPECT_EQ(events[0].at, 7);
  EXPECT_EQ(events[1].sequence, 3u);
  EXPECT_EQ(events[3].sequence, 5u);
  // Exactly at the window's edge: no resync.
  events = feed.WaitAfter(2, milliseconds(0));
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].kind, ChangeKind::kUpdated);
}

TEST(ChangeFeedTest, KindNames) {
  EXPECT_EQ(ChangeKindName(ChangeKind::kCreated), "CREATED");
  EXPECT_EQ(ChangeKindName(ChangeKind::kResync), "RESYNC");
}

}  // namespace
}  // namespace wsstep::core

#include "core/store/use_recorder.h"

#include <gtest/gtest.h>

#include "core/store/storage_testing.h"

namespace wsstep::core {
namespace {

using testing::MemoryStorage;

AuditEvent Use(std::string entry_id, UnixSeconds at) {
  AuditEvent ev;
  ev.action = AuditAction::kUse;
  ev.entry_id = std::move(entry_id);
  ev.at = at;
  ev.outcome = "OK";
  return ev;
}

class UseRecorderTest : public ::testing::Test {
 protected:
  UseRecorderTest() {
    EntryMetadata e;
    e.id = "e1";
    e.use_count = 5;
    e.last_used_at = 100;
    storage_.entries["e1"] = {e, 1};
  }

  MemoryStorage storage_;
  Mutex write_mu_;
  // No flusher is started: the tests flush by hand.
  UseRecorder uses_{storage_, write_mu_, [] { return UnixSeconds{500}; }, std::chrono::hours(1)};
};

TEST_F(UseRecorderTest, CountersAreLiveAndWrittenWithTheEvents) {
  const Usage stored{100, 5};
  uses_.Record(Use("e1", 200), &stored);
  uses_.Record(Use("e1", 150), &stored);  // out of order: last_used_at keeps the latest
  uses_.Record(Use("", 210), nullptr);    // a call without a client certificate
  EntryMetadata shown;
  shown.id = "e1";
  shown = uses_.WithUsage(shown);
  EXPECT_EQ(shown.use_count, 7u);
  EXPECT_EQ(shown.last_used_at, 200);
  EXPECT_TRUE(storage_.audit.empty());  // nothing written on the caller's thread

  ASSERT_TRUE(uses_.Flush().ok());
  EXPECT_EQ(storage_.commits, 1);
  ASSERT_EQ(storage_.audit.size(), 3u);
  EXPECT_EQ(storage_.audit[2].entry_id, "");
  EXPECT_EQ(storage_.entries["e1"].entry.use_count, 7u);
  EXPECT_EQ(storage_.entries["e1"].entry.last_used_at, 200);
  ASSERT_TRUE(uses_.Flush().ok());
  EXPECT_EQ(storage_.commits, 1);  // nothing left: no transaction
}

TEST_F(UseRecorderTest, AFailedBatchIsKeptForTheNextFlush) {
  const Usage stored{100, 5};
  uses_.Record(Use("e1", 200), &stored);
  storage_.fail_commits = 1;
  EXPECT_EQ(uses_.Flush().code(), Code::kStorageError);
  EXPECT_TRUE(storage_.audit.empty());
  uses_.Record(Use("e1", 300), &stored);
  ASSERT_TRUE(uses_.Flush().ok());
  ASSERT_EQ(storage_.audit.size(), 2u);
  EXPECT_EQ(storage_.audit[0].at, 200);  // the kept one first
  EXPECT_EQ(storage_.entries["e1"].entry.use_count, 7u);
}

TEST_F(UseRecorderTest, BeyondTheBoundEventsAreCountedAsDropped) {
  for (int i = 0; i < 100'002; ++i) uses_.Record(Use("", i), nullptr);
  ASSERT_TRUE(uses_.Flush().ok());
  ASSERT_EQ(storage_.audit.size(), 100'001u);
  const AuditEvent& note = storage_.audit.back();
  EXPECT_EQ(note.outcome, "DROPPED");
  EXPECT_EQ(note.actor, "wsstep");
  EXPECT_EQ(note.at, 500);
  EXPECT_TRUE(note.detail.starts_with("2 use records were not written")) << note.detail;
}

TEST_F(UseRecorderTest, AForgottenEntryIsNotWrittenBack) {
  const Usage stored{100, 5};
  uses_.Record(Use("e1", 200), &stored);
  uses_.Forget("e1");
  EntryMetadata shown;
  shown.id = "e1";
  EXPECT_EQ(uses_.WithUsage(shown).use_count, 0u);
  ASSERT_TRUE(uses_.Flush().ok());
  EXPECT_EQ(storage_.entries["e1"].entry.use_count, 5u);
  EXPECT_EQ(storage_.audit.size(), 1u);  // the event itself stays in the log
}

TEST_F(UseRecorderTest, TheFlusherWritesAFullBatchWithoutWaitingForItsInterval) {
  uses_.Start();
  for (int i = 0; i < 1024; ++i) uses_.Record(Use("", i), nullptr);
  // The interval is an hour: only the full batch can have woken the flusher. Stop()
  // joins it; whatever it had not taken yet is flushed here.
  for (;;) {
    {
      std::lock_guard lk(storage_.mu);
      if (storage_.commits > 0) break;
    }
    std::this_thread::yield();
  }
  uses_.Stop();
  ASSERT_TRUE(uses_.Flush().ok());
  EXPECT_EQ(storage_.audit.size(), 1024u);
}

}  // namespace
}  // namespace wsstep::core

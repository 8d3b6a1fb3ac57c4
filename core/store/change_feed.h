// The store's feed of entry changes behind CertificateStore::WaitForChanges (the plugin's
// WatchEvents stream): a numbered, gap-free sequence of the latest events, in memory.
// Internal to the store.
//
//   ChangeFeed feed(clock);
//   feed.Append(ChangeKind::kCreated, e.id, e.name);               // after the commit
//   uint64_t seen = feed.latest();
//   for (;;) {
//     for (const ChangeEvent& ev : feed.WaitAfter(seen, std::chrono::seconds(30))) {
//       seen = ev.sequence;   // a kResync first when `seen` fell out of the window
//     }
//   }
//
// Thread safety: every method may be called from any thread, concurrently.
#ifndef WSSTEP_CORE_STORE_CHANGE_FEED_H_
#define WSSTEP_CORE_STORE_CHANGE_FEED_H_

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/mutex.h"
#include "core/store/store.h"

namespace wsstep::core {

class ChangeFeed {
 public:
  // Events are stamped with `clock`; the latest `capacity` are kept.
  explicit ChangeFeed(Clock clock, size_t capacity = 4096);

  // Numbers and keeps the event, and wakes every waiter.
  void Append(ChangeKind kind, const std::string& entry_id, const std::string& entry_name,
              const std::string& actor = {});

  // Events with sequence > after_sequence, waiting up to `timeout` for the first one
  // (empty on timeout). A caller behind the kept window gets one kResync event first,
  // numbered just before the oldest event kept.
  std::vector<ChangeEvent> WaitAfter(uint64_t after_sequence,
                                     std::chrono::milliseconds timeout) const;

  // The sequence of the latest event (0 before the first).
  uint64_t latest() const;

 private:
  const Clock clock_;
  const size_t capacity_;
  mutable Mutex mu_;
  mutable CondVar cv_;                                   // notified by Append
  std::deque<ChangeEvent> events_ ABSL_GUARDED_BY(mu_);  // oldest first
  uint64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;           // of the latest event
};

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_STORE_CHANGE_FEED_H_

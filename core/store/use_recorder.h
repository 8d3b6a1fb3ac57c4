// The store's record of step uses (CertificateStore::RecordUse): live use counters that
// Get and List show at once, and USE audit events, both written to storage in batches by
// a background flusher so that a step never waits for I/O. Internal to the store.
//
//   UseRecorder uses(*storage, write_mu, clock, std::chrono::milliseconds(500));
//   uses.Start();                                     // the flusher thread
//   uses.Record(std::move(event), &counters_in_snapshot);
//   EntryMetadata shown = uses.WithUsage(entry);      // live use_count / last_used_at
//   uses.Stop();                                      // joins the flusher
//   (void)uses.Flush();                               // what is left
//
// Bounds: at most 100,000 events wait; beyond that they are counted and the next batch
// records how many were dropped (a USE event with outcome DROPPED). A batch that fails
// to write is kept for the next attempt, within the same bound. A crash loses at most
// the waiting events, never an acknowledged change.
//
// Thread safety: every method may be called from any thread, concurrently.
#ifndef WSSTEP_CORE_STORE_USE_RECORDER_H_
#define WSSTEP_CORE_STORE_USE_RECORDER_H_

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/model.h"
#include "core/mutex.h"
#include "core/store/audit.h"
#include "core/store/storage.h"

namespace wsstep::core {

// An entry's use counters.
struct Usage {
  UnixSeconds last_used_at = 0;
  uint64_t use_count = 0;
};

class UseRecorder {
 public:
  // Writes go to `storage` in transactions taken under `write_mu`, the lock that
  // serializes every change of the store. Both outlive the recorder. Batches are written
  // at most `flush_interval` apart, or sooner when 1,024 events wait.
  UseRecorder(Storage& storage, Mutex& write_mu, Clock clock,
              std::chrono::milliseconds flush_interval);
  ~UseRecorder();  // Stop()s; does not flush
  UseRecorder(const UseRecorder&) = delete;
  UseRecorder& operator=(const UseRecorder&) = delete;

  // Starts the background flusher.
  void Start();
  // Stops and joins the flusher (if started). Waiting events stay for Flush().
  void Stop();

  // Queues `event` (a USE event). With `counted`, the counters of event.entry_id are
  // bumped, starting from `counted` on the entry's first use since the store opened.
  void Record(AuditEvent event, const Usage* counted);
  // Writes what waits now: changed counters, events, and the count of dropped events.
  Status Flush();

  // `e` with its live counters, when it was used since the store opened.
  EntryMetadata WithUsage(EntryMetadata e) const;
  // Forgets the counters of a deleted entry.
  void Forget(const std::string& entry_id);

 private:
  // Uses of one entry not written yet: how many, and the latest.
  struct Unwritten {
    std::string entry_id;
    uint64_t uses = 0;
    UnixSeconds last_used_at = 0;
  };
  Status Write(const std::deque<AuditEvent>& events, const std::vector<Unwritten>& counts,
               size_t dropped);
  void FlusherLoop();

  Storage& storage_;
  Mutex& write_mu_;
  const Clock clock_;
  const std::chrono::milliseconds flush_interval_;

  // Held for a whole Flush: one that finds nothing pending while another is still
  // writing what it took waits for that write, so "flushed" means "in the storage".
  Mutex flush_mu_;
  mutable Mutex mu_;
  CondVar cv_;  // wakes the flusher: a full batch, or stopping
  // Entries used since the store opened.
  std::unordered_map<std::string, Usage> usage_ ABSL_GUARDED_BY(mu_);
  // Uses counted, not written yet.
  std::unordered_map<std::string, uint64_t> unwritten_ ABSL_GUARDED_BY(mu_);
  std::deque<AuditEvent> pending_ ABSL_GUARDED_BY(mu_);  // a deque: growing never moves events
  size_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::thread flusher_;
};

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_STORE_USE_RECORDER_H_

#include "core/store/use_recorder.h"

#include <algorithm>
#include <iterator>
#include <utility>
#include <vector>

namespace wsstep::core {
namespace {

// Events that may wait; more are dropped (and counted).
constexpr size_t kMaxPendingUses = 100'000;
// Events that wake the flusher before its interval is up.
constexpr size_t kUseBatchWakeup = 1024;

}  // namespace

UseRecorder::UseRecorder(Storage& storage, Mutex& write_mu, Clock clock,
                         std::chrono::milliseconds flush_interval)
    : storage_(storage),
      write_mu_(write_mu),
      clock_(std::move(clock)),
      flush_interval_(flush_interval) {}

UseRecorder::~UseRecorder() { Stop(); }

void UseRecorder::Start() {
  flusher_ = std::thread([this] { FlusherLoop(); });
}

void UseRecorder::Stop() {
  if (!flusher_.joinable()) return;
  {
    MutexLock lk(mu_);
    stopping_ = true;
  }
  cv_.NotifyAll();
  flusher_.join();
}

void UseRecorder::Record(AuditEvent event, const Usage* counted) {
  bool wake = false;
  {
    MutexLock lk(mu_);
    if (counted != nullptr) {
      auto [it, inserted] = usage_.try_emplace(event.entry_id, *counted);
      it->second.use_count++;
      it->second.last_used_at = std::max(it->second.last_used_at, event.at);
      ++unwritten_[event.entry_id];
    }
    if (pending_.size() >= kMaxPendingUses) {
      ++dropped_;
    } else {
      pending_.push_back(std::move(event));
      wake = pending_.size() == kUseBatchWakeup;
    }
  }
  if (wake) cv_.NotifyOne();
}

Status UseRecorder::Flush() {
  MutexLock flushing(flush_mu_);
  std::deque<AuditEvent> events;
  std::vector<Unwritten> counts;
  size_t dropped = 0;
  {
    MutexLock lk(mu_);
    events.swap(pending_);
    for (const auto& [id, uses] : unwritten_) counts.push_back({id, uses, usage_[id].last_used_at});
    unwritten_.clear();
    dropped = dropped_;
    dropped_ = 0;
  }
  if (events.empty() && counts.empty() && dropped == 0) return {};
  Status st = Write(events, counts, dropped);
  if (!st.ok()) {
    // Keep them for the next attempt, within the bound.
    MutexLock lk(mu_);
    for (const auto& u : counts) {
      if (usage_.count(u.entry_id) != 0) unwritten_[u.entry_id] += u.uses;  // not forgotten
    }
    size_t room = kMaxPendingUses > pending_.size() ? kMaxPendingUses - pending_.size() : 0;
    size_t keep = std::min(room, events.size());
    dropped_ += dropped + (events.size() - keep);
    pending_.insert(pending_.begin(), std::make_move_iterator(events.begin()),
                    std::make_move_iterator(events.begin() + static_cast<long>(keep)));
  }
  return st;
}

Status UseRecorder::Write(const std::deque<AuditEvent>& events,
                          const std::vector<Unwritten>& counts, size_t dropped) {
  MutexLock lk(write_mu_);
  WSSTEP_ASSIGN_OR_RETURN(auto tx, storage_.Begin());
  for (const auto& u : counts) {
    WSSTEP_RETURN_IF_ERROR(tx->PutUsage(u.entry_id, u.uses, u.last_used_at));
  }
  for (const auto& ev : events) WSSTEP_RETURN_IF_ERROR(tx->AppendAudit(ev));
  if (dropped > 0) {
    AuditEvent ev;
    ev.at = clock_();
    ev.action = AuditAction::kUse;
    ev.actor = "wsstep";
    ev.outcome = "DROPPED";
    ev.detail = std::to_string(dropped) +
                " use records were not written: the store could not keep up or could not write";
    WSSTEP_RETURN_IF_ERROR(tx->AppendAudit(ev));
  }
  return tx->Commit();
}

EntryMetadata UseRecorder::WithUsage(EntryMetadata e) const {
  MutexLock lk(mu_);
  auto it = usage_.find(e.id);
  if (it != usage_.end()) {
    e.use_count = it->second.use_count;
    e.last_used_at = it->second.last_used_at;
  }
  return e;
}

void UseRecorder::Forget(const std::string& entry_id) {
  MutexLock lk(mu_);
  usage_.erase(entry_id);
  unwritten_.erase(entry_id);
}

void UseRecorder::FlusherLoop() {
  MutexLock lk(mu_);
  while (!stopping_) {
    const auto until = std::chrono::steady_clock::now() + flush_interval_;
    while (!stopping_ && pending_.size() < kUseBatchWakeup) {
      if (!cv_.WaitUntil(lk, until)) break;
    }
    lk.Unlock();
    (void)Flush();
    lk.Lock();
  }
}

}  // namespace wsstep::core

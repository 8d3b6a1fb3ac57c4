#include "core/store/change_feed.h"

#include <utility>

#include "core/enum_names.h"

namespace wsstep::core {
namespace {

constexpr std::pair<ChangeKind, std::string_view> kChangeKindNames[] = {
    {ChangeKind::kCreated, "CREATED"},
    {ChangeKind::kUpdated, "UPDATED"},
    {ChangeKind::kDeleted, "DELETED"},
    {ChangeKind::kResync, "RESYNC"},
};

}  // namespace

std::string_view ChangeKindName(ChangeKind k) { return NameIn(kChangeKindNames, k); }

ChangeFeed::ChangeFeed(Clock clock, size_t capacity)
    : clock_(std::move(clock)), capacity_(capacity) {}

void ChangeFeed::Append(ChangeKind kind, const std::string& entry_id, const std::string& entry_name,
                        const std::string& actor) {
  {
    MutexLock lk(mu_);
    events_.push_back(ChangeEvent{++sequence_, kind, entry_id, entry_name, clock_(), actor});
    while (events_.size() > capacity_) events_.pop_front();
  }
  cv_.NotifyAll();
}

std::vector<ChangeEvent> ChangeFeed::WaitAfter(uint64_t after_sequence,
                                               std::chrono::milliseconds timeout) const {
  MutexLock lk(mu_);
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (sequence_ <= after_sequence) {
    if (!cv_.WaitUntil(lk, until)) break;
  }
  std::vector<ChangeEvent> out;
  if (sequence_ <= after_sequence) return out;
  uint64_t first = events_.empty() ? sequence_ + 1 : events_.front().sequence;
  if (after_sequence + 1 < first) {
    ChangeEvent resync;
    resync.sequence = first - 1;
    resync.kind = ChangeKind::kResync;
    resync.at = clock_();
    out.push_back(std::move(resync));
  }
  for (const auto& ev : events_) {
    if (ev.sequence > after_sequence) out.push_back(ev);
  }
  return out;
}

uint64_t ChangeFeed::latest() const {
  MutexLock lk(mu_);
  return sequence_;
}

}  // namespace wsstep::core

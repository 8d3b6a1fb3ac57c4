#include "core/notifications.h"

#include <algorithm>
#include <tuple>

namespace wsstep::core {
namespace {

constexpr int64_t kSecondsPerDay = 86400;

int64_t FrequencyDays(NotificationFrequency f) {
  return f == NotificationFrequency::kWeekly ? 7 : 1;
}

}  // namespace

int64_t UtcDay(UnixSeconds t) {
  return t >= 0 ? t / kSecondsPerDay : -((-t + kSecondsPerDay - 1) / kSecondsPerDay);
}

bool NotificationDue(const EntryMetadata& e, UnixSeconds now) {
  if (!e.notifications.enabled || e.disabled || e.revoked || e.pending_certificate) return false;
  const auto window = GoverningWindow(e);
  if (!window) return false;
  const NotificationLevel level = NotificationLevelAt(e, now);
  const int64_t warning_days = std::max(0, e.notifications.warning_days);
  if (window->not_after - now > warning_days * kSecondsPerDay) return false;
  if (e.last_notified_at == 0) return true;
  if (level == NotificationLevel::kUrgent) {
    // Escalation: the first notification at the urgent level does not wait for the
    // frequency; after it, urgent entries are reminded of daily.
    const int64_t urgent_days = std::clamp<int64_t>(e.notifications.urgent_days, 0, warning_days);
    if (e.last_notified_at < window->not_after - urgent_days * kSecondsPerDay) return true;
    return UtcDay(now) - UtcDay(e.last_notified_at) >= 1;
  }
  return UtcDay(now) - UtcDay(e.last_notified_at) >= FrequencyDays(e.notifications.frequency);
}

namespace {

// `each(visit)` calls visit(const EntryMetadata&) for every entry.
template <typename ForEach>
std::vector<DueNotification> Due(ForEach&& each, UnixSeconds now) {
  std::vector<DueNotification> due;
  each([&](const EntryMetadata& e) {
    if (!NotificationDue(e, now)) return;
    due.push_back(DueNotification{e.id, e.name, e.notifications.alert_ref,
                                  GoverningWindow(e)->not_after, DaysRemaining(e, now),
                                  StatusAt(e, now), NotificationLevelAt(e, now)});
  });
  std::sort(due.begin(), due.end(), [](const DueNotification& a, const DueNotification& b) {
    return std::tie(a.not_after, a.name, a.entry_id) < std::tie(b.not_after, b.name, b.entry_id);
  });
  return due;
}

}  // namespace

std::vector<DueNotification> DueNotifications(const std::vector<EntryMetadata>& entries,
                                              UnixSeconds now) {
  return Due(
      [&](auto&& visit) {
        for (const auto& e : entries) visit(e);
      },
      now);
}

std::vector<DueNotification> DueNotifications(
    const std::vector<std::shared_ptr<const EntryMetadata>>& entries, UnixSeconds now) {
  return Due(
      [&](auto&& visit) {
        for (const auto& e : entries) visit(*e);
      },
      now);
}

}  // namespace wsstep::core

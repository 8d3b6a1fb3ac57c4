// Which certificate-expiry notifications are due (PRODUCT.md §1 "Lifecycle"). Pure: the
// store calls it with its entries and the time, hands the result to the host (stream or
// pull), and on acknowledgement records last_notified_at = now for each entry sent, which
// it persists so restarts do not repeat a reminder.
//
// An entry is due at `now` when all of these hold:
// - notifications.enabled, and the entry is neither disabled, revoked nor pending its
//   certificate, and it has a governing certificate (GoverningCertificate());
// - the certificate expires within notifications.warning_days (not_after - now <=
//   warning_days * 86400, as for EXPIRING_SOON) or has expired already: expired
//   certificates keep being reminded of until they are replaced, disabled or switched off;
// - the frequency allows it, counted in UTC calendar days so that a job running at the
//   same wall time every day is never skipped because it ran a few seconds earlier than
//   the day before: DAILY when the UTC day of now is after the UTC day of
//   last_notified_at, WEEKLY when it is at least 7 UTC days after. At most one
//   notification per entry per UTC day (per 7 UTC days for WEEKLY); a last_notified_at
//   in the future (a clock set back) holds notifications back until that day has passed.
//   last_notified_at == 0 means never notified.
// - escalation: within notifications.urgent_days (NotificationLevelAt() kUrgent, expired
//   included), the first notification since the entry became urgent is due at once,
//   whatever the frequency; after it, urgent entries are due daily.
#ifndef WSSTEP_CORE_NOTIFICATIONS_H_
#define WSSTEP_CORE_NOTIFICATIONS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/model.h"

namespace wsstep::core {

struct DueNotification {
  std::string entry_id;
  std::string name;
  std::string alert_ref;       // notifications.alert_ref: the host's alert to send it through
  UnixSeconds not_after = 0;   // of the governing certificate
  int64_t days_remaining = 0;  // DaysRemaining(): negative once expired
  CertStatus status = CertStatus::kValid;  // StatusAt(): EXPIRING_SOON or EXPIRED (or
                                           // NOT_YET_VALID for a short-lived future cert)
  NotificationLevel level = NotificationLevel::kWarning;  // kUrgent within urgent_days
};

// The notifications due at `now`, most urgent first (earliest not_after, then name, then
// id), at most one per entry.
std::vector<DueNotification> DueNotifications(const std::vector<EntryMetadata>& entries,
                                              UnixSeconds now);
// The same over a snapshot's shared entries.
std::vector<DueNotification> DueNotifications(
    const std::vector<std::shared_ptr<const EntryMetadata>>& entries, UnixSeconds now);

// The rule above for one entry.
bool NotificationDue(const EntryMetadata& entry, UnixSeconds now);

// Days since 1970-01-01 in UTC (floor, so negative times count backwards).
int64_t UtcDay(UnixSeconds t);

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_NOTIFICATIONS_H_

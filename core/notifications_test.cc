#include "core/notifications.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace wsstep::core {
namespace {

constexpr UnixSeconds kDay = 86400;
constexpr UnixSeconds kDay0 = 1'799'971'200;  // 2027-01-15T00:00:00Z
constexpr UnixSeconds kNineAm = 9 * 3600;

EntryMetadata Expiring(std::string name, UnixSeconds not_after, int warning_days = 30,
                       NotificationFrequency f = NotificationFrequency::kDaily) {
  EntryMetadata e;
  e.id = "id-" + name;
  e.name = std::move(name);
  e.has_private_key = true;
  e.certificate = CertificateInfo{};
  e.certificate->not_before = not_after - 365 * kDay;
  e.certificate->not_after = not_after;
  e.notifications.warning_days = warning_days;
  e.notifications.frequency = f;
  e.notifications.alert_ref = "alert-" + e.name;
  return e;
}

// Runs a notification job over `days` days at `times` (seconds after 00:00 UTC, one run
// each, `jitter` added on alternate days) and acknowledges everything sent, as the store
// does. Returns, per entry name, the day numbers (relative to kDay0) it was notified on.
std::map<std::string, std::vector<int>> Simulate(std::vector<EntryMetadata>& entries, int days,
                                                 std::vector<UnixSeconds> times,
                                                 UnixSeconds jitter = 0) {
  std::map<std::string, std::vector<int>> sent;
  for (int d = 0; d < days; ++d) {
    for (UnixSeconds t : times) {
      const UnixSeconds now = kDay0 + d * kDay + t + (d % 2 == 0 ? jitter : -jitter);
      for (const auto& n : DueNotifications(entries, now)) {
        sent[n.name].push_back(d);
        for (auto& e : entries) {
          if (e.id == n.entry_id) e.last_notified_at = now;
        }
      }
      // Nothing repeats at the same instant once acknowledged.
      EXPECT_TRUE(DueNotifications(entries, now).empty()) << "day " << d;
    }
  }
  return sent;
}

std::vector<int> Range(int from, int to, int step = 1) {
  std::vector<int> v;
  for (int d = from; d < to; d += step) v.push_back(d);
  return v;
}

TEST(Notifications, DailyEveryDayFromTheWarningWindowOnAndAfterExpiry) {
  // Expires on day 40 at 12:00; warning 30 days: due from day 10 12:00 on.
  std::vector<EntryMetadata> entries = {Expiring("a", kDay0 + 40 * kDay + 12 * 3600)};
  auto sent = Simulate(entries, 60, {kNineAm});
  // The 09:00 run of day 10 is 30 days and 3 hours before expiry: outside the window.
  EXPECT_EQ(sent["a"], Range(11, 60));
}

TEST(Notifications, DailyJobDriftingEarlierIsNeverSkipped) {
  std::vector<EntryMetadata> entries = {Expiring("a", kDay0 + 20 * kDay)};
  // Alternate days run 7 s late and 7 s early: consecutive runs are < 24 h apart.
  auto sent = Simulate(entries, 15, {kNineAm}, /*jitter=*/7);
  EXPECT_EQ(sent["a"], Range(0, 15));
}

TEST(Notifications, HourlyJobSendsOncePerUtcDay) {
  std::vector<EntryMetadata> entries = {Expiring("a", kDay0 + 5 * kDay)};
  std::vector<UnixSeconds> hourly;
  for (int h = 0; h < 24; ++h) hourly.push_back(h * 3600 + 30);
  auto sent = Simulate(entries, 10, hourly);
  EXPECT_EQ(sent["a"], Range(0, 10));
}

std::vector<int> Concat(std::vector<int> a, const std::vector<int>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(Notifications, WeeklyEverySevenDaysThenDailyOnceExpired) {
  std::vector<EntryMetadata> entries = {
      Expiring("w", kDay0 + 60 * kDay, 45, NotificationFrequency::kWeekly)};
  entries[0].notifications.urgent_days = 0;  // urgent only once expired
  auto sent = Simulate(entries, 80, {kNineAm, 21 * 3600});
  // Window opens at day 15 00:00: first run at 09:00 that day, then weekly; expired on
  // day 60, urgent: at once, then daily.
  EXPECT_EQ(sent["w"], Concat(Range(15, 60, 7), Range(60, 80)));
}

TEST(Notifications, WeeklyEscalatesAtOnceWhenUrgentThenDaily) {
  std::vector<EntryMetadata> entries = {
      Expiring("w", kDay0 + 60 * kDay, 45, NotificationFrequency::kWeekly)};
  entries[0].notifications.urgent_days = 7;  // urgent from day 53 00:00
  auto sent = Simulate(entries, 80, {kNineAm, 21 * 3600});
  // Weekly on days 15..50; day 53 although only 3 days passed; daily from then on.
  EXPECT_EQ(sent["w"], Concat(Range(15, 53, 7), Range(53, 80)));
}

TEST(Notifications, BecomingUrgentLaterTheSameDayIsDueAgainThatDay) {
  // Expires on day 40 at 12:00: warning from day 10 12:00, urgent from day 33 12:00.
  std::vector<EntryMetadata> entries = {Expiring("a", kDay0 + 40 * kDay + 12 * 3600)};
  auto sent = Simulate(entries, 45, {kNineAm, 21 * 3600});
  // Day 33: at 09:00 as a warning, at 21:00 again as urgent.
  EXPECT_EQ(sent["a"], Concat(Range(10, 34), Range(33, 45)));
}

TEST(Notifications, LevelsFollowWarningAndUrgentDays) {
  const UnixSeconds now = kDay0 + kNineAm;
  auto level = [&](UnixSeconds not_after, int warning, int urgent) {
    auto e = Expiring("x", not_after, warning);
    e.notifications.urgent_days = urgent;
    return NotificationLevelAt(e, now);
  };
  EXPECT_EQ(level(now + 30 * kDay + 1, 30, 7), NotificationLevel::kNone);
  EXPECT_EQ(level(now + 30 * kDay, 30, 7), NotificationLevel::kWarning);
  EXPECT_EQ(level(now + 7 * kDay + 1, 30, 7), NotificationLevel::kWarning);
  EXPECT_EQ(level(now + 7 * kDay, 30, 7), NotificationLevel::kUrgent);
  EXPECT_EQ(level(now - 400 * kDay, 30, 7), NotificationLevel::kUrgent);  // expired
  EXPECT_EQ(level(now + 1, 30, 0), NotificationLevel::kWarning);
  EXPECT_EQ(level(now - 1, 30, 0), NotificationLevel::kUrgent);
  // An urgent window wider than the warning one counts as the warning one.
  EXPECT_EQ(level(now + 5 * kDay, 3, 10), NotificationLevel::kNone);
  EXPECT_EQ(level(now + 3 * kDay, 3, 10), NotificationLevel::kUrgent);
  auto revoked = Expiring("r", now + kDay);
  revoked.revoked = true;
  EXPECT_EQ(NotificationLevelAt(revoked, now), NotificationLevel::kNone);
  auto due =
      DueNotifications({Expiring("soon", now + 2 * kDay), Expiring("later", now + 20 * kDay)}, now);
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(due[0].level, NotificationLevel::kUrgent);
  EXPECT_EQ(due[1].level, NotificationLevel::kWarning);
}

TEST(Notifications, WeeklyCountsCalendarDays) {
  auto e = Expiring("w", kDay0 + 10 * kDay, 30, NotificationFrequency::kWeekly);
  e.notifications.urgent_days = 0;
  e.last_notified_at = kDay0 + 23 * 3600;  // day 0, 23:00
  EXPECT_FALSE(NotificationDue(e, kDay0 + 6 * kDay + 23 * 3600 + 59 * 60));
  EXPECT_TRUE(NotificationDue(e, kDay0 + 7 * kDay + 60));  // day 7, 00:01: < 7 * 24 h later
}

TEST(Notifications, WarningWindowBoundaries) {
  const UnixSeconds now = kDay0 + kNineAm;
  auto at = [&](UnixSeconds not_after, int warning_days) {
    return NotificationDue(Expiring("x", not_after, warning_days), now);
  };
  EXPECT_TRUE(at(now + 30 * kDay, 30));
  EXPECT_FALSE(at(now + 30 * kDay + 1, 30));
  EXPECT_TRUE(at(now + 7 * kDay, 7));
  EXPECT_FALSE(at(now + 7 * kDay + 1, 7));
  // warning_days 0: only once expired (or expiring this very second).
  EXPECT_FALSE(at(now + 1, 0));
  EXPECT_TRUE(at(now, 0));
  EXPECT_TRUE(at(now - 1, 0));
  EXPECT_TRUE(at(now - 400 * kDay, 30));  // long expired: still reminded
  EXPECT_FALSE(at(now + 1, -5));          // a negative window counts as 0
}

TEST(Notifications, SkippedEntries) {
  const UnixSeconds now = kDay0 + kNineAm;
  const UnixSeconds soon = now + kDay;
  auto base = Expiring("x", soon);
  ASSERT_TRUE(NotificationDue(base, now));

  auto off = base;
  off.notifications.enabled = false;
  EXPECT_FALSE(NotificationDue(off, now));
  auto disabled = base;
  disabled.disabled = true;
  EXPECT_FALSE(NotificationDue(disabled, now));
  auto revoked = base;
  revoked.revoked = true;
  EXPECT_FALSE(NotificationDue(revoked, now));
  auto pending = base;
  pending.pending_certificate = true;
  EXPECT_FALSE(NotificationDue(pending, now));
  auto no_cert = base;
  no_cert.certificate.reset();
  EXPECT_FALSE(NotificationDue(no_cert, now));
  auto future_ack = base;  // the clock went back after the last notification
  future_ack.last_notified_at = now + kDay;
  EXPECT_FALSE(NotificationDue(future_ack, now));
  EXPECT_FALSE(NotificationDue(future_ack, now + kDay));
  EXPECT_TRUE(NotificationDue(future_ack, now + 2 * kDay));
  EXPECT_TRUE(DueNotifications({off, disabled, revoked, pending, no_cert}, now).empty());
}

TEST(Notifications, TrustStoresAndProvisioningUseTheirEarliestCertificate) {
  const UnixSeconds now = kDay0 + kNineAm;
  EntryMetadata trust;
  trust.id = "id-ca";
  trust.name = "ca";
  trust.type = EntryType::kTrustStore;
  trust.trusted.resize(2);
  trust.trusted[0].not_after = now + 400 * kDay;
  trust.trusted[1].not_after = now + 10 * kDay;
  EntryMetadata profile = trust;
  profile.id = "id-mp";
  profile.name = "mp";
  profile.type = EntryType::kMobileProvisioning;
  profile.trusted[1].not_after = now + 90 * kDay;  // outside the 30-day window
  auto due = DueNotifications({trust, profile}, now);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].entry_id, "id-ca");
  EXPECT_EQ(due[0].not_after, now + 10 * kDay);
  EXPECT_EQ(due[0].days_remaining, 10);
}

TEST(Notifications, FieldsAndOrder) {
  const UnixSeconds now = kDay0 + kNineAm;
  std::vector<EntryMetadata> entries = {
      Expiring("later", now + 20 * kDay), Expiring("gone", now - 3 * kDay + 1),
      Expiring("b-soon", now + 2 * kDay), Expiring("a-soon", now + 2 * kDay),
      Expiring("far", now + 200 * kDay)};
  auto due = DueNotifications(entries, now);
  ASSERT_EQ(due.size(), 4u);
  EXPECT_EQ(due[0].name, "gone");
  EXPECT_EQ(due[0].entry_id, "id-gone");
  EXPECT_EQ(due[0].alert_ref, "alert-gone");
  EXPECT_EQ(due[0].days_remaining, -3);
  EXPECT_EQ(due[0].status, CertStatus::kExpired);
  EXPECT_EQ(due[1].name, "a-soon");
  EXPECT_EQ(due[2].name, "b-soon");
  EXPECT_EQ(due[2].days_remaining, 2);
  EXPECT_EQ(due[2].status, CertStatus::kExpiringSoon);
  EXPECT_EQ(due[2].not_after, now + 2 * kDay);
  EXPECT_EQ(due[3].name, "later");
}

TEST(Notifications, UtcDay) {
  EXPECT_EQ(UtcDay(0), 0);
  EXPECT_EQ(UtcDay(kDay - 1), 0);
  EXPECT_EQ(UtcDay(kDay), 1);
  EXPECT_EQ(UtcDay(-1), -1);
  EXPECT_EQ(UtcDay(-kDay), -1);
  EXPECT_EQ(UtcDay(kDay0 + kDay - 1) - UtcDay(kDay0), 0);
}

}  // namespace
}  // namespace wsstep::core

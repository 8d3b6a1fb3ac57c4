#include "core/model.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <utility>

#include "core/enum_names.h"
#include "core/x509_info.h"

namespace wsstep::core {
namespace {

constexpr std::array<std::pair<EntryType, std::string_view>, 5> kEntryTypes = {{
    {EntryType::kKeyPair, "KEY_PAIR"},
    {EntryType::kPkcs12, "PKCS12"},
    {EntryType::kTrustStore, "TRUST_STORE"},
    {EntryType::kJavaKeystore, "JAVA_KEYSTORE"},
    {EntryType::kMobileProvisioning, "MOBILE_PROVISIONING"},
}};

constexpr std::array<std::pair<SourceFormat, std::string_view>, 7> kFormats = {{
    {SourceFormat::kAuto, "AUTO"},
    {SourceFormat::kPem, "PEM"},
    {SourceFormat::kDer, "DER"},
    {SourceFormat::kPkcs12, "PKCS12"},
    {SourceFormat::kJks, "JKS"},
    {SourceFormat::kJceks, "JCEKS"},
    {SourceFormat::kMobileProvision, "MOBILEPROVISION"},
}};

constexpr std::array<std::pair<CertStatus, std::string_view>, 7> kStatuses = {{
    {CertStatus::kValid, "VALID"},
    {CertStatus::kExpiringSoon, "EXPIRING_SOON"},
    {CertStatus::kExpired, "EXPIRED"},
    {CertStatus::kNotYetValid, "NOT_YET_VALID"},
    {CertStatus::kRevoked, "REVOKED"},
    {CertStatus::kDisabled, "DISABLED"},
    {CertStatus::kPendingCertificate, "PENDING_CERTIFICATE"},
}};

}  // namespace

Clock SystemClock() {
  return [] {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
}

std::string_view EntryTypeName(EntryType t) { return NameIn(kEntryTypes, t); }
std::optional<EntryType> EntryTypeFromName(std::string_view n) { return ValueIn(kEntryTypes, n); }
std::string_view SourceFormatName(SourceFormat f) { return NameIn(kFormats, f); }
std::optional<SourceFormat> SourceFormatFromName(std::string_view n) {
  return ValueIn(kFormats, n);
}
std::string_view CertStatusName(CertStatus s) { return NameIn(kStatuses, s); }
std::optional<CertStatus> CertStatusFromName(std::string_view n) { return ValueIn(kStatuses, n); }

std::string_view NotificationFrequencyName(NotificationFrequency f) {
  return f == NotificationFrequency::kWeekly ? "WEEKLY" : "DAILY";
}

const CertificateInfo* GoverningCertificate(const EntryMetadata& e) {
  if (e.certificate) return &*e.certificate;
  const CertificateInfo* earliest = nullptr;
  for (const auto& c : e.trusted) {
    if (earliest == nullptr || c.not_after < earliest->not_after) earliest = &c;
  }
  return earliest;
}

std::optional<ValidityWindow> GoverningWindow(const EntryMetadata& e) {
  if (e.type == EntryType::kMobileProvisioning) {
    auto attr = [&](const char* key) -> std::optional<UnixSeconds> {
      auto it = e.attributes.find(key);
      return it == e.attributes.end() ? std::nullopt : ParseUtc(it->second);
    };
    if (auto expires = attr("profile_expires")) {
      return ValidityWindow{attr("profile_created").value_or(0), *expires};
    }
  }
  const CertificateInfo* c = GoverningCertificate(e);
  if (c == nullptr) return std::nullopt;
  return ValidityWindow{c->not_before, c->not_after};
}

CertStatus StatusAt(const EntryMetadata& e, UnixSeconds now) {
  if (e.disabled) return CertStatus::kDisabled;
  if (e.revoked) return CertStatus::kRevoked;
  if (e.pending_certificate) return CertStatus::kPendingCertificate;
  const auto c = GoverningWindow(e);
  if (!c) return CertStatus::kValid;
  if (now < c->not_before) return CertStatus::kNotYetValid;
  if (now > c->not_after) return CertStatus::kExpired;
  if (c->not_after - now <= static_cast<UnixSeconds>(e.notifications.warning_days) * 86400) {
    return CertStatus::kExpiringSoon;
  }
  return CertStatus::kValid;
}

std::string_view NotificationLevelName(NotificationLevel l) {
  switch (l) {
    case NotificationLevel::kWarning:
      return "WARNING";
    case NotificationLevel::kUrgent:
      return "URGENT";
    case NotificationLevel::kNone:
      break;
  }
  return "NONE";
}

NotificationLevel NotificationLevelAt(const EntryMetadata& e, UnixSeconds now) {
  if (e.disabled || e.revoked || e.pending_certificate) return NotificationLevel::kNone;
  const auto c = GoverningWindow(e);
  if (!c) return NotificationLevel::kNone;
  const UnixSeconds left = c->not_after - now;
  const int warning = std::max(0, e.notifications.warning_days);
  const int urgent = std::clamp(e.notifications.urgent_days, 0, warning);
  if (left < 0 || left <= static_cast<UnixSeconds>(urgent) * 86400)
    return NotificationLevel::kUrgent;
  if (left <= static_cast<UnixSeconds>(warning) * 86400) return NotificationLevel::kWarning;
  return NotificationLevel::kNone;
}

int64_t DaysRemaining(const EntryMetadata& e, UnixSeconds now) {
  const auto c = GoverningWindow(e);
  if (!c) return 0;
  UnixSeconds left = c->not_after - now;
  // Floor division, so one second past expiry is already day -1.
  return left >= 0 ? left / 86400 : -((-left + 86399) / 86400);
}

std::string NormalizeHost(std::string_view host) {
  std::string out(host);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  while (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

}  // namespace wsstep::core

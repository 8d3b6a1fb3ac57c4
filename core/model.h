// The certificate store's data model (PRODUCT.md §1): entry types, formats, bindings,
// metadata and statuses. Plain values, no OpenSSL types: this is what the API returns,
// what the resolver indexes and what the database stores in clear. Secret material never
// appears here; it lives in Identity (core/identity.h) and, at rest, sealed in the store.
#ifndef WSSTEP_CORE_MODEL_H_
#define WSSTEP_CORE_MODEL_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wsstep::core {

// Seconds since the Unix epoch, UTC. Everything time-dependent takes a Clock so tests
// can move time.
using UnixSeconds = int64_t;
using Clock = std::function<UnixSeconds()>;
Clock SystemClock();

enum class EntryType {
  kKeyPair,            // certificate + private key (separate files, or one combined PEM)
  kPkcs12,             // PFX / .p12, modern or legacy
  kTrustStore,         // trusted CA / server certificates: PEM bundle, DER, Java PKCS#12 trust store
  kJavaKeystore,       // JKS or JCEKS: key entries and/or trusted-certificate entries
  kMobileProvisioning  // .mobileprovision: tracked for expiry, never used for TLS
};
std::string_view EntryTypeName(EntryType t);  // "KEY_PAIR", "PKCS12", ...
std::optional<EntryType> EntryTypeFromName(std::string_view name);

// The container format of an upload, declared by the administrator or detected.
enum class SourceFormat {
  kAuto,  // declared only: "detect it"
  kPem,
  kDer,
  kPkcs12,
  kJks,
  kJceks,
  kMobileProvision,
};
std::string_view SourceFormatName(SourceFormat f);  // "PEM", "DER", "PKCS12", "JKS", ...
std::optional<SourceFormat> SourceFormatFromName(std::string_view name);

enum class CertStatus {
  kValid,
  kExpiringSoon,  // within the entry's warning days
  kExpired,
  kNotYetValid,
  kRevoked,
  kDisabled,
  kPendingCertificate,  // a generated key + CSR waiting for its issued certificate
};
std::string_view CertStatusName(CertStatus s);
std::optional<CertStatus> CertStatusFromName(std::string_view name);

enum class NotificationFrequency { kDaily, kWeekly };
std::string_view NotificationFrequencyName(NotificationFrequency f);

// How close an entry is to expiry by its notification settings: kWarning within
// warning_days, kUrgent within urgent_days or once expired.
enum class NotificationLevel { kNone, kWarning, kUrgent };
std::string_view NotificationLevelName(NotificationLevel l);

inline constexpr std::string_view kDefaultEnvironment = "default";
inline constexpr uint16_t kDefaultPort = 443;

// Where a certificate may be used. host is stored normalized (lower case, no trailing
// dot) and may be a one-label wildcard "*.example.com".
struct Binding {
  std::string host;
  uint16_t port = kDefaultPort;
  std::string environment = std::string(kDefaultEnvironment);
  bool operator==(const Binding&) const = default;
};

// Facts about one X.509 certificate, identical whatever container it arrived in.
struct CertificateInfo {
  std::string subject;  // one line, RFC 2253 order: "CN=api.example.com,O=Example"
  std::string issuer;
  std::string serial;   // lower-case hex, no separators
  UnixSeconds not_before = 0;
  UnixSeconds not_after = 0;
  std::vector<std::string> sans;  // "DNS:a.example", "IP:127.0.0.1", "email:x@y", "URI:..."
  std::string key_algorithm;      // "RSA", "EC", "Ed25519"
  int key_bits = 0;               // RSA modulus bits, EC field bits, 256 for Ed25519
  std::string curve;              // "P-256", "P-384", "P-521" for EC; empty otherwise
  std::string sha256_fingerprint; // "ab:cd:..." lower case
  bool is_ca = false;
  bool operator==(const CertificateInfo&) const = default;
};

struct NotificationSettings {
  bool enabled = true;
  int warning_days = 30;
  int urgent_days = 7;  // at most warning_days; a larger stored value counts as warning_days
  NotificationFrequency frequency = NotificationFrequency::kDaily;
  std::string alert_ref;  // opaque, owned by the host (its e-mail alert)
  bool operator==(const NotificationSettings&) const = default;
};

// Everything the API may show about an entry. Never holds secret material.
struct EntryMetadata {
  std::string id;  // store-assigned, stable, opaque
  std::string name;  // unique (case-insensitive) within the store
  std::string description;
  EntryType type = EntryType::kKeyPair;
  SourceFormat source_format = SourceFormat::kPem;
  std::vector<Binding> bindings;  // empty: usable only when a step names it

  std::optional<CertificateInfo> certificate;  // the leaf of a key-bearing entry
  std::vector<std::string> chain_subjects;     // leaf first, then intermediates as uploaded
  std::vector<CertificateInfo> trusted;        // trust-store / JKS trusted / provisioning certs
  std::string key_alias;                       // JKS/PKCS#12 alias (friendly name) when present
  std::map<std::string, std::string> attributes;  // e.g. mobile provisioning: "team", "app_id"

  bool has_private_key = false;
  bool has_password = false;
  bool private_trust_only = false;  // a trust store that replaces the system CAs
  bool disabled = false;
  bool revoked = false;
  bool pending_certificate = false;  // key + CSR generated, certificate not attached yet

  UnixSeconds created_at = 0;
  UnixSeconds updated_at = 0;
  UnixSeconds last_used_at = 0;  // 0: never used
  uint64_t use_count = 0;
  uint64_t version = 1;  // bumped by every change of material; part of identity cache keys

  NotificationSettings notifications;
  UnixSeconds last_notified_at = 0;  // 0: never
};

// The certificate that governs an entry's validity: the leaf when there is one, otherwise
// the earliest-expiring trusted / provisioning certificate. Null if it has none.
const CertificateInfo* GoverningCertificate(const EntryMetadata& e);

// The validity window that governs an entry's status, days left and notifications: a
// provisioning profile's own CreationDate..ExpirationDate (attributes "profile_created",
// "profile_expires"), else the governing certificate's. nullopt without either.
struct ValidityWindow {
  UnixSeconds not_before = 0;
  UnixSeconds not_after = 0;
};
std::optional<ValidityWindow> GoverningWindow(const EntryMetadata& e);

// Status at `now`: disabled, revoked and pending first, then validity dates, then
// EXPIRING_SOON within notifications.warning_days.
CertStatus StatusAt(const EntryMetadata& e, UnixSeconds now);
// The notification level at `now`: kNone for disabled, revoked and pending entries, those
// without a validity window, and those expiring after warning_days.
NotificationLevel NotificationLevelAt(const EntryMetadata& e, UnixSeconds now);
// Whole days until expiry (negative once expired); 0 if there is no certificate.
int64_t DaysRemaining(const EntryMetadata& e, UnixSeconds now);

// Lower case, trailing dot removed. Does not validate.
std::string NormalizeHost(std::string_view host);

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_MODEL_H_

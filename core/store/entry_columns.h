// The columns of an entry, a certificate's facts, material and an audit event as both storage
// backends keep them (core/store/sqlite_rows.cc, core/store/pg_storage.cc), and reading them back:
// one place decides what each column means.
//
//   "SELECT " + std::string(kEntryColumns) + " FROM entries"
//   int64_t save_seq = ReadEntryColumns(row, entry);   // row: Text/Int/View/Blob(i)
//
// A row type provides Text(i) -> std::string, Int(i) -> int64_t, View(i) ->
// std::string_view (valid while the row is) and Blob(i) -> bytes (a view or a string).
#ifndef WSSTEP_CORE_STORE_ENTRY_COLUMNS_H_
#define WSSTEP_CORE_STORE_ENTRY_COLUMNS_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "core/model.h"
#include "core/store/audit.h"
#include "core/store/codec.h"
#include "core/store/storage.h"

namespace wsstep::core {

// The `entries` columns read at startup, in this order (save_seq first).
inline constexpr std::string_view kEntryColumns =
    "save_seq, id, name, description, type, source_format, key_alias, has_private_key, "
    "has_password, private_trust_only, disabled, revoked, pending_certificate, created_at, "
    "updated_at, last_used_at, use_count, version, notify_enabled, notify_warning_days, "
    "notify_frequency, notify_alert_ref, last_notified_at, chain_subjects, attributes, "
    "notify_urgent_days";
// How many columns kEntryColumns names: a backend's own columns after them start here.
inline constexpr int kEntryColumnCount = 26;

// Fills `e` from a row of kEntryColumns; returns its save sequence.
template <typename Row>
int64_t ReadEntryColumns(const Row& row, EntryMetadata& e) {
  e.id = row.Text(1);
  e.name = row.Text(2);
  e.description = row.Text(3);
  e.type = EntryTypeFromName(row.View(4)).value_or(EntryType::kKeyPair);
  e.source_format = SourceFormatFromName(row.View(5)).value_or(SourceFormat::kPem);
  e.key_alias = row.Text(6);
  e.has_private_key = row.Int(7) != 0;
  e.has_password = row.Int(8) != 0;
  e.private_trust_only = row.Int(9) != 0;
  e.disabled = row.Int(10) != 0;
  e.revoked = row.Int(11) != 0;
  e.pending_certificate = row.Int(12) != 0;
  e.created_at = row.Int(13);
  e.updated_at = row.Int(14);
  e.last_used_at = row.Int(15);
  e.use_count = static_cast<uint64_t>(row.Int(16));
  e.version = static_cast<uint64_t>(row.Int(17));
  e.notifications.enabled = row.Int(18) != 0;
  e.notifications.warning_days = static_cast<int>(row.Int(19));
  e.notifications.frequency =
      row.View(20) == "WEEKLY" ? NotificationFrequency::kWeekly : NotificationFrequency::kDaily;
  e.notifications.alert_ref = row.Text(21);
  e.last_notified_at = row.Int(22);
  e.chain_subjects = DecodeList(row.Blob(23));
  e.attributes = DecodeMap(row.Blob(24));
  e.notifications.urgent_days = static_cast<int>(row.Int(25));
  return row.Int(0);
}

// INSERT of an entry's own row, or UPDATE of every column but id, type and created_at when
// the id exists, with the 25 values numbered in the backend's placeholder style: '?'
// (SQLite: ?1..?25) or '$' (PostgreSQL: $1..$25), in this order: id, name, name_key,
// description, type, source_format, key_alias, has_private_key, has_password,
// private_trust_only, disabled, revoked, pending_certificate, created_at, updated_at,
// version, save_seq, notify_enabled, notify_warning_days, notify_frequency,
// notify_alert_ref, last_notified_at, chain_subjects, attributes, notify_urgent_days.
inline std::string EntryUpsertSql(char placeholder) {
  std::string values;
  for (int i = 1; i <= 25; ++i) {
    values += (i == 1 ? "" : ", ") + std::string(1, placeholder) + std::to_string(i);
  }
  return "INSERT INTO entries (id, name, name_key, description, type, source_format, key_alias, "
         "has_private_key, has_password, private_trust_only, disabled, revoked, "
         "pending_certificate, created_at, updated_at, version, save_seq, notify_enabled, "
         "notify_warning_days, notify_frequency, notify_alert_ref, last_notified_at, "
         "chain_subjects, attributes, notify_urgent_days) VALUES (" +
         values +
         ") ON CONFLICT (id) DO UPDATE SET name=excluded.name, name_key=excluded.name_key, "
         "description=excluded.description, source_format=excluded.source_format, "
         "key_alias=excluded.key_alias, has_private_key=excluded.has_private_key, "
         "has_password=excluded.has_password, private_trust_only=excluded.private_trust_only, "
         "disabled=excluded.disabled, revoked=excluded.revoked, "
         "pending_certificate=excluded.pending_certificate, updated_at=excluded.updated_at, "
         "version=excluded.version, save_seq=excluded.save_seq, "
         "notify_enabled=excluded.notify_enabled, "
         "notify_warning_days=excluded.notify_warning_days, "
         "notify_frequency=excluded.notify_frequency, notify_alert_ref=excluded.notify_alert_ref, "
         "last_notified_at=excluded.last_notified_at, chain_subjects=excluded.chain_subjects, "
         "attributes=excluded.attributes, notify_urgent_days=excluded.notify_urgent_days";
}

// The `certificates` columns of one certificate's facts, in this order.
inline constexpr std::string_view kCertificateColumns =
    "subject, issuer, serial, not_before, not_after, sans, key_algorithm, key_bits, curve, "
    "sha256_fingerprint, is_ca";

// A certificate's facts from kCertificateColumns starting at column `first`.
template <typename Row>
CertificateInfo ReadCertificateColumns(const Row& row, int first) {
  CertificateInfo c;
  c.subject = row.Text(first);
  c.issuer = row.Text(first + 1);
  c.serial = row.Text(first + 2);
  c.not_before = row.Int(first + 3);
  c.not_after = row.Int(first + 4);
  c.sans = DecodeList(row.Blob(first + 5));
  c.key_algorithm = row.Text(first + 6);
  c.key_bits = static_cast<int>(row.Int(first + 7));
  c.curve = row.Text(first + 8);
  c.sha256_fingerprint = row.Text(first + 9);
  c.is_ca = row.Int(first + 10) != 0;
  return c;
}

// The `material` columns of one entry, in this order.
inline constexpr std::string_view kMaterialColumns =
    "version, leaf_der, chain_der, trusted_der, sealed_key, key_id, csr_pem";

// An entry's stored material from a row of kMaterialColumns (the row type also provides
// IsNull(i)).
template <typename Row>
StoredMaterial ReadMaterialColumns(const Row& row) {
  StoredMaterial m;
  m.version = static_cast<uint64_t>(row.Int(0));
  m.leaf_der = std::string(row.Blob(1));
  m.chain_der = DecodeList(row.Blob(2));
  m.trusted_der = DecodeList(row.Blob(3));
  if (!row.IsNull(4)) {
    m.sealed_key = std::string(row.Blob(4));
    m.sealed_key_id = row.Text(5);
  }
  if (!row.IsNull(6)) m.csr_pem = row.Text(6);
  return m;
}

// The `audit` columns, in this order.
inline constexpr std::string_view kAuditColumns =
    "sequence, at, action, actor, entry_id, entry_name, host, port, environment, step_id, "
    "workflow_id, outcome, code, detail";

// An audit event from a row of kAuditColumns.
template <typename Row>
AuditEvent ReadAuditColumns(const Row& row) {
  AuditEvent ev;
  ev.sequence = row.Int(0);
  ev.at = row.Int(1);
  ev.action = AuditActionFromName(row.View(2)).value_or(AuditAction::kUse);
  ev.actor = row.Text(3);
  ev.entry_id = row.Text(4);
  ev.entry_name = row.Text(5);
  ev.host = row.Text(6);
  ev.port = static_cast<uint16_t>(row.Int(7));
  ev.environment = row.Text(8);
  ev.step_id = row.Text(9);
  ev.workflow_id = row.Text(10);
  ev.outcome = row.Text(11);
  ev.code = row.Text(12);
  ev.detail = row.Text(13);
  return ev;
}

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_STORE_ENTRY_COLUMNS_H_

#include "core/store/pg_schema.h"

#include <cstdint>
#include <iterator>

namespace wsstep::core::pg {
namespace {

// The migration's advisory lock key (a bigint, scoped to the database, held for its
// transaction). The writers' is kWriteLockKey in pg_storage.cc.
constexpr int64_t kMigrationLockKey = 0x7773737470000002;  // "wsstp" + 2

// Version 1: the tables of the SQLite backend.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE entries (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  name_key TEXT NOT NULL CONSTRAINT entries_name_key UNIQUE,
  description TEXT NOT NULL,
  type TEXT NOT NULL,
  source_format TEXT NOT NULL,
  key_alias TEXT NOT NULL,
  has_private_key INTEGER NOT NULL,
  has_password INTEGER NOT NULL,
  private_trust_only INTEGER NOT NULL,
  disabled INTEGER NOT NULL,
  revoked INTEGER NOT NULL,
  pending_certificate INTEGER NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  last_used_at BIGINT NOT NULL DEFAULT 0,
  use_count BIGINT NOT NULL DEFAULT 0,
  version BIGINT NOT NULL,
  save_seq BIGINT NOT NULL,
  notify_enabled INTEGER NOT NULL,
  notify_warning_days INTEGER NOT NULL,
  notify_frequency TEXT NOT NULL,
  notify_alert_ref TEXT NOT NULL,
  last_notified_at BIGINT NOT NULL,
  chain_subjects BYTEA NOT NULL,
  attributes BYTEA NOT NULL
);
CREATE INDEX entries_by_save_seq ON entries(save_seq);
CREATE TABLE bindings (
  entry_id TEXT NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
  ordinal INTEGER NOT NULL,
  host TEXT NOT NULL,
  port INTEGER NOT NULL,
  environment TEXT NOT NULL,
  PRIMARY KEY (entry_id, ordinal)
);
CREATE TABLE certificates (
  entry_id TEXT NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
  role TEXT NOT NULL CHECK (role IN ('leaf', 'trusted')),
  ordinal INTEGER NOT NULL,
  subject TEXT NOT NULL,
  issuer TEXT NOT NULL,
  serial TEXT NOT NULL,
  not_before BIGINT NOT NULL,
  not_after BIGINT NOT NULL,
  sans BYTEA NOT NULL,
  key_algorithm TEXT NOT NULL,
  key_bits INTEGER NOT NULL,
  curve TEXT NOT NULL,
  sha256_fingerprint TEXT NOT NULL,
  is_ca INTEGER NOT NULL,
  PRIMARY KEY (entry_id, role, ordinal)
);
CREATE TABLE material (
  entry_id TEXT PRIMARY KEY REFERENCES entries(id) ON DELETE CASCADE,
  version BIGINT NOT NULL,
  leaf_der BYTEA NOT NULL,
  chain_der BYTEA NOT NULL,
  trusted_der BYTEA NOT NULL,
  sealed_key BYTEA,
  key_id TEXT,
  csr_pem TEXT
);
CREATE TABLE audit (
  sequence BIGSERIAL PRIMARY KEY,
  at BIGINT NOT NULL,
  action TEXT NOT NULL,
  actor TEXT NOT NULL,
  entry_id TEXT NOT NULL,
  entry_name TEXT NOT NULL,
  host TEXT NOT NULL,
  port INTEGER NOT NULL,
  environment TEXT NOT NULL,
  step_id TEXT NOT NULL,
  workflow_id TEXT NOT NULL,
  outcome TEXT NOT NULL,
  code TEXT NOT NULL,
  detail TEXT NOT NULL
);
CREATE INDEX audit_by_entry ON audit(entry_id, sequence);
CREATE INDEX audit_by_time ON audit(at);
CREATE FUNCTION wsstep_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
  FOR EACH ROW EXECUTE FUNCTION wsstep_audit_append_only();
)sql";

// Version 2: several plugins on one database. Every change to an entry takes the next
// value of change_cursor (one per transaction; transactions are serialized by the write
// lock, so the values rise in commit order); a deleted entry leaves a tombstone with
// its cursor; a due notification is claimed by one plugin.
constexpr const char* kSchemaV2 = R"sql(
CREATE SEQUENCE change_cursor;
ALTER TABLE entries ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX entries_by_change_seq ON entries(change_seq);
CREATE TABLE tombstones (
  entry_id TEXT PRIMARY KEY,
  change_seq BIGINT NOT NULL
);
CREATE INDEX tombstones_by_change_seq ON tombstones(change_seq);
CREATE TABLE notification_claims (
  entry_id TEXT NOT NULL,
  day BIGINT NOT NULL,
  claimed_by TEXT NOT NULL,
  PRIMARY KEY (entry_id, day)
);
)sql";

// Version 3: the urgent notification level (issue 15); existing entries get its default.
constexpr const char* kSchemaV3 = R"sql(
ALTER TABLE entries ADD COLUMN notify_urgent_days INTEGER NOT NULL DEFAULT 7;
)sql";

// Version 4: a claim is per level too, so that the same day's escalation from WARNING to
// URGENT is claimed (and handed over) on its own. Existing claims were WARNING (1).
constexpr const char* kSchemaV4 = R"sql(
ALTER TABLE notification_claims ADD COLUMN level INTEGER NOT NULL DEFAULT 1;
ALTER TABLE notification_claims DROP CONSTRAINT notification_claims_pkey;
ALTER TABLE notification_claims ADD PRIMARY KEY (entry_id, day, level);
)sql";

// Version 5: proxy credentials (issue 18), the password sealed by the vault. Each set or
// delete takes a change cursor too, kept in meta, so the other plugins reload them.
constexpr const char* kSchemaV5 = R"sql(
CREATE TABLE secrets (
  name_key TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  username TEXT NOT NULL,
  sealed_value BYTEA NOT NULL,
  key_id TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
)sql";

struct PgMigration {
  int version;
  const char* sql;
};
constexpr PgMigration kMigrations[] = {
    {1, kSchemaV1}, {2, kSchemaV2}, {3, kSchemaV3}, {4, kSchemaV4}, {5, kSchemaV5},
};
constexpr int kSchemaVersion = kMigrations[std::size(kMigrations) - 1].version;

}  // namespace

Status Migrate(Connection& c, const std::string& location) {
  WSSTEP_RETURN_IF_ERROR(c.Exec("BEGIN"));
  auto rollback = [&c](Status s) {
    (void)c.Exec("ROLLBACK");
    return s;
  };
  Status s = c.Exec("SELECT pg_advisory_xact_lock($1)", Params().Int(kMigrationLockKey));
  if (s.ok()) {
    s = c.Exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL)");
  }
  if (!s.ok()) return rollback(s);
  auto version_text = ReadMeta(c, "schema_version");
  if (!version_text.ok()) return rollback(version_text.error());
  const int version = version_text->has_value() ? std::stoi(**version_text) : 0;
  if (version > kSchemaVersion) {
    return rollback(Error(Code::kStorageError,
                          location + ": the database holds a wsstep store of schema version " +
                              std::to_string(version) + ", newer than this build's (" +
                              std::to_string(kSchemaVersion) + ")",
                          "run the newer wsstep this store was upgraded by", Side::kStore));
  }
  for (const auto& [to, sql] : kMigrations) {
    if (version >= to) continue;
    s = c.ExecScript(sql);
    if (!s.ok()) return rollback(s);
  }
  if (version < kSchemaVersion) {
    s = WriteMeta(c, "schema_version", std::to_string(kSchemaVersion));
    if (!s.ok()) return rollback(s);
  }
  return c.Exec("COMMIT");
}

}  // namespace wsstep::core::pg

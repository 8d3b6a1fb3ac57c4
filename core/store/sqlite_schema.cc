#include "core/store/sqlite_schema.h"

#include <iterator>

namespace wsstep::core {
namespace {

constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value BLOB NOT NULL
);
CREATE TABLE entries (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  name_key TEXT NOT NULL UNIQUE,          -- ASCII lower case: names are case-insensitive
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
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  last_used_at INTEGER NOT NULL DEFAULT 0,
  use_count INTEGER NOT NULL DEFAULT 0,
  version INTEGER NOT NULL,
  save_seq INTEGER NOT NULL,              -- order of saves: resolution tie-break
  notify_enabled INTEGER NOT NULL,
  notify_warning_days INTEGER NOT NULL,
  notify_frequency TEXT NOT NULL,
  notify_alert_ref TEXT NOT NULL,
  last_notified_at INTEGER NOT NULL,
  chain_subjects BLOB NOT NULL,           -- length-prefixed list
  attributes BLOB NOT NULL                -- length-prefixed key, value, key, value...
);
CREATE INDEX entries_by_save_seq ON entries(save_seq);
CREATE TABLE bindings (
  entry_id TEXT NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
  ordinal INTEGER NOT NULL,
  host TEXT NOT NULL,
  port INTEGER NOT NULL,
  environment TEXT NOT NULL,
  PRIMARY KEY (entry_id, ordinal)
) WITHOUT ROWID;
CREATE INDEX bindings_by_target ON bindings(host, port, environment);
CREATE TABLE certificates (             -- facts of the leaf and trusted certificates
  entry_id TEXT NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
  role TEXT NOT NULL CHECK (role IN ('leaf', 'trusted')),
  ordinal INTEGER NOT NULL,
  subject TEXT NOT NULL,
  issuer TEXT NOT NULL,
  serial TEXT NOT NULL,
  not_before INTEGER NOT NULL,
  not_after INTEGER NOT NULL,
  sans BLOB NOT NULL,
  key_algorithm TEXT NOT NULL,
  key_bits INTEGER NOT NULL,
  curve TEXT NOT NULL,
  sha256_fingerprint TEXT NOT NULL,
  is_ca INTEGER NOT NULL,
  PRIMARY KEY (entry_id, role, ordinal)
) WITHOUT ROWID;
CREATE TABLE material (                 -- read on an entry version's first use only
  entry_id TEXT PRIMARY KEY REFERENCES entries(id) ON DELETE CASCADE,
  version INTEGER NOT NULL,
  leaf_der BLOB NOT NULL,                 -- empty: none
  chain_der BLOB NOT NULL,                -- length-prefixed list
  trusted_der BLOB NOT NULL,              -- length-prefixed list
  sealed_key BLOB,                        -- vault blob of the PKCS#8 DER; NULL: no key
  key_id TEXT,                            -- master key id of sealed_key
  csr_pem TEXT                            -- GenerateKeyAndCsr entries until attached
);
CREATE TABLE audit (
  sequence INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
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
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
)sql"},
    // The urgent notification level (issue 15); existing entries get its default.
    {2, R"sql(
ALTER TABLE entries ADD COLUMN notify_urgent_days INTEGER NOT NULL DEFAULT 7;
)sql"},
    // Proxy credentials (issue 18): a name, a user and the password sealed by the vault.
    {3, R"sql(
CREATE TABLE secrets (
  name_key TEXT PRIMARY KEY,              -- ASCII lower case: names are case-insensitive
  name TEXT NOT NULL,
  username TEXT NOT NULL,
  sealed_value BLOB NOT NULL,             -- vault blob of the password
  key_id TEXT NOT NULL,                   -- master key id of sealed_value
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
)sql"},
};

}  // namespace

std::span<const Migration> SqliteStoreMigrations() { return kMigrations; }

int SqliteStoreSchemaVersion() { return kMigrations[std::size(kMigrations) - 1].version; }

}  // namespace wsstep::core

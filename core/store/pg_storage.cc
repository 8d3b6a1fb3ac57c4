#include "core/store/pg_storage.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/store/bulk_load.h"
#include "core/store/codec.h"
#include "core/store/entry_columns.h"
#include "core/store/validation.h"

namespace wsstep::core {
namespace {

// Advisory lock keys (one bigint each, scoped to the database): the writer session's
// for its life (one plugin per database), and the migration's for its transaction.
constexpr int64_t kPluginLockKey = 0x7773737470000001;     // "wsstp" + 1
constexpr int64_t kMigrationLockKey = 0x7773737470000002;  // "wsstp" + 2

constexpr int kSchemaVersion = 1;
constexpr const char* kSchema = R"sql(
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

struct ConnCloser {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnCloser>;
struct ResultClearer {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultClearer>;

// Statement parameters: text, or binary for BYTEA; null where absent.
class Params {
 public:
  Params& Text(std::string_view v) { return Add(std::string(v), 0, false); }
  Params& Int(int64_t v) { return Add(std::to_string(v), 0, false); }
  Params& Bytes(std::string_view v) { return Add(std::string(v), 1, false); }
  Params& Null() { return Add("", 0, true); }

  int size() const { return static_cast<int>(values_.size()); }
  const char* const* values() {
    pointers_.clear();
    for (size_t i = 0; i < values_.size(); ++i) {
      pointers_.push_back(nulls_[i] ? nullptr : values_[i].data());
    }
    return pointers_.data();
  }
  const int* lengths() {
    lengths_.clear();
    for (const auto& v : values_) lengths_.push_back(static_cast<int>(v.size()));
    return lengths_.data();
  }
  const int* formats() const { return formats_.data(); }

 private:
  Params& Add(std::string v, int format, bool null) {
    values_.push_back(std::move(v));
    formats_.push_back(format);
    nulls_.push_back(null);
    return *this;
  }
  std::vector<std::string> values_;
  std::vector<int> formats_;
  std::vector<bool> nulls_;
  std::vector<const char*> pointers_;
  std::vector<int> lengths_;
};

// Text columns of a result row.
class Row {
 public:
  Row(const PGresult* r, int row) : r_(r), row_(row) {}
  bool IsNull(int col) const { return PQgetisnull(r_, row_, col) != 0; }
  std::string_view View(int col) const {
    return std::string_view(PQgetvalue(r_, row_, col),
                            static_cast<size_t>(PQgetlength(r_, row_, col)));
  }
  std::string Text(int col) const { return std::string(View(col)); }
  int64_t Int(int col) const {
    const std::string_view v = View(col);
    return v.empty() ? 0 : std::stoll(std::string(v));
  }
  bool Bool(int col) const { return Int(col) != 0; }
  std::string Blob(int col) const { return Bytes(col); }
  std::string Bytes(int col) const {
    size_t n = 0;
    unsigned char* raw =
        PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(r_, row_, col)), &n);
    if (raw == nullptr) return {};
    std::string out(reinterpret_cast<const char*>(raw), n);
    PQfreemem(raw);
    return out;
  }

 private:
  const PGresult* r_;
  int row_;
};

Error StorageError(const std::string& location, const std::string& what) {
  std::string msg = what;
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  return Error(Code::kStorageError, location + ": " + msg,
               "check that the PostgreSQL server is reachable and the login may use the "
               "database",
               Side::kStore)
      .With("location", location);
}

// One libpq connection and what runs on it.
class Connection {
 public:
  Connection(ConnPtr conn, std::string location)
      : conn_(std::move(conn)), location_(std::move(location)) {}

  static Result<Connection> Open(const std::string& conninfo, const std::string& location,
                                 const std::string& application_name) {
    // The string's own settings win over the defaults before it; the application name
    // after it names this plugin in pg_stat_activity.
    const char* keys[] = {"connect_timeout", "dbname", "application_name", nullptr};
    const char* values[] = {"10", conninfo.c_str(), application_name.c_str(), nullptr};
    ConnPtr conn(PQconnectdbParams(keys, values, /*expand_dbname=*/1));
    if (!conn) return StorageError(location, "cannot allocate a connection");
    if (PQstatus(conn.get()) != CONNECTION_OK) {
      return StorageError(location, std::string("cannot connect: ") + PQerrorMessage(conn.get()));
    }
    return Connection(std::move(conn), location);
  }

  // Runs `sql`; the result of a statement that returns rows or completes.
  Result<ResultPtr> Run(const std::string& sql, Params params = {}) {
    ResultPtr r(PQexecParams(conn_.get(), sql.c_str(), params.size(), nullptr, params.values(),
                             params.lengths(), params.formats(), /*resultFormat=*/0));
    const ExecStatusType status = PQresultStatus(r.get());
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return r;
    const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
    Error e = StorageError(location_, PQresultErrorMessage(r.get()));
    if (state != nullptr) e.detail["sqlstate"] = state;
    const char* constraint = PQresultErrorField(r.get(), PG_DIAG_CONSTRAINT_NAME);
    if (constraint != nullptr) e.detail["constraint"] = constraint;
    return e;
  }
  Status Exec(const std::string& sql, Params params = {}) {
    auto r = Run(sql, std::move(params));
    if (!r.ok()) return r.error();
    return {};
  }

  // Several statements without parameters (the schema).
  Status ExecScript(const char* sql) {
    ResultPtr r(PQexec(conn_.get(), sql));
    const ExecStatusType status = PQresultStatus(r.get());
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return {};
    return StorageError(location_, PQresultErrorMessage(r.get()));
  }

 private:
  ConnPtr conn_;
  std::string location_;
};

Result<std::optional<std::string>> ReadMeta(Connection& c, std::string_view key) {
  WSSTEP_ASSIGN_OR_RETURN(ResultPtr r,
                          c.Run("SELECT value FROM meta WHERE key=$1", Params().Text(key)));
  if (PQntuples(r.get()) == 0) return std::optional<std::string>();
  return std::optional<std::string>(Row(r.get(), 0).Bytes(0));
}

Status WriteMeta(Connection& c, std::string_view key, std::string_view value) {
  return c.Exec(
      "INSERT INTO meta (key, value) VALUES ($1, $2) "
      "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
      Params().Text(key).Bytes(value));
}

// Creates the tables of a new database, or checks an existing one's version, under a
// transaction-scoped advisory lock (two plugins starting at once migrate once).
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
  if (version < 1) {
    s = c.ExecScript(kSchema);
    if (s.ok()) s = WriteMeta(c, "schema_version", std::to_string(kSchemaVersion));
    if (!s.ok()) return rollback(s);
  }
  return c.Exec("COMMIT");
}

// Holds the database for this plugin (session advisory lock), or says who does.
Status LockDatabase(Connection& c, const std::string& location) {
  WSSTEP_ASSIGN_OR_RETURN(ResultPtr r,
                          c.Run("SELECT pg_try_advisory_lock($1)", Params().Int(kPluginLockKey)));
  if (Row(r.get(), 0).View(0) == "t") return {};
  std::string holder;
  auto who = c.Run(
      "SELECT a.application_name, a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid=l.pid "
      "WHERE l.locktype='advisory' AND l.granted AND l.database=(SELECT oid FROM pg_database "
      "WHERE datname=current_database()) AND l.classid=$1 AND l.objid=$2 AND l.objsubid=1",
      Params()
          .Int(static_cast<int64_t>(static_cast<uint64_t>(kPluginLockKey) >> 32))
          .Int(kPluginLockKey & 0xffffffff));
  if (who.ok() && PQntuples(who->get()) > 0) {
    holder =
        " (" + Row(who->get(), 0).Text(0) + ", server process " + Row(who->get(), 0).Text(1) + ")";
  }
  return Error(Code::kStorageError,
               location + ": the database is in use by another wsstep plugin" + holder,
               "one database serves one plugin in this version: stop the other plugin, or give "
               "this one its own database",
               Side::kStore)
      .With("location", location);
}

class PgTransaction final : public Storage::Transaction {
 public:
  PgTransaction(std::unique_lock<std::mutex> lock, Connection& c) : lock_(std::move(lock)), c_(c) {}
  ~PgTransaction() override {
    if (!done_) (void)c_.Exec("ROLLBACK");
  }

  Status PutEntry(const EntryMetadata& e, int64_t save_sequence) override {
    Params p;
    p.Text(e.id)
        .Text(e.name)
        .Text(AsciiLower(e.name))
        .Text(e.description)
        .Text(EntryTypeName(e.type))
        .Text(SourceFormatName(e.source_format))
        .Text(e.key_alias)
        .Int(e.has_private_key)
        .Int(e.has_password)
        .Int(e.private_trust_only)
        .Int(e.disabled)
        .Int(e.revoked)
        .Int(e.pending_certificate)
        .Int(e.created_at)
        .Int(e.updated_at)
        .Int(static_cast<int64_t>(e.version))
        .Int(save_sequence)
        .Int(e.notifications.enabled)
        .Int(e.notifications.warning_days)
        .Text(NotificationFrequencyName(e.notifications.frequency))
        .Text(e.notifications.alert_ref)
        .Int(e.last_notified_at)
        .Bytes(EncodeList(e.chain_subjects))
        .Bytes(EncodeMap(e.attributes));
    Status s = c_.Exec(EntryUpsertSql('$'), std::move(p));
    if (!s.ok() && s.error().detail.count("constraint") &&
        s.error().detail.at("constraint") == "entries_name_key") {
      return DuplicateName(e.name, e.name);
    }
    return s;
  }

  Status PutBindings(const EntryMetadata& e) override {
    WSSTEP_RETURN_IF_ERROR(c_.Exec("DELETE FROM bindings WHERE entry_id=$1", Params().Text(e.id)));
    for (size_t i = 0; i < e.bindings.size(); ++i) {
      const Binding& b = e.bindings[i];
      WSSTEP_RETURN_IF_ERROR(
          c_.Exec("INSERT INTO bindings (entry_id, ordinal, host, port, environment) "
                  "VALUES ($1, $2, $3, $4, $5)",
                  Params()
                      .Text(e.id)
                      .Int(static_cast<int64_t>(i))
                      .Text(b.host)
                      .Int(b.port)
                      .Text(b.environment)));
    }
    return {};
  }

  Status PutMaterial(const EntryMetadata& e, const StoredMaterial& m) override {
    WSSTEP_RETURN_IF_ERROR(
        c_.Exec("DELETE FROM certificates WHERE entry_id=$1", Params().Text(e.id)));
    auto insert = [&](std::string_view role, size_t ordinal, const CertificateInfo& c) {
      return c_.Exec(
          "INSERT INTO certificates (entry_id, role, ordinal, subject, issuer, serial, "
          "not_before, not_after, sans, key_algorithm, key_bits, curve, sha256_fingerprint, "
          "is_ca) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)",
          Params()
              .Text(e.id)
              .Text(role)
              .Int(static_cast<int64_t>(ordinal))
              .Text(c.subject)
              .Text(c.issuer)
              .Text(c.serial)
              .Int(c.not_before)
              .Int(c.not_after)
              .Bytes(EncodeList(c.sans))
              .Text(c.key_algorithm)
              .Int(c.key_bits)
              .Text(c.curve)
              .Text(c.sha256_fingerprint)
              .Int(c.is_ca));
    };
    if (e.certificate) WSSTEP_RETURN_IF_ERROR(insert("leaf", 0, *e.certificate));
    for (size_t i = 0; i < e.trusted.size(); ++i) {
      WSSTEP_RETURN_IF_ERROR(insert("trusted", i, e.trusted[i]));
    }
    Params p;
    p.Text(e.id)
        .Int(static_cast<int64_t>(m.version))
        .Bytes(m.leaf_der)
        .Bytes(EncodeList(m.chain_der))
        .Bytes(EncodeList(m.trusted_der));
    if (m.sealed_key) {
      p.Bytes(*m.sealed_key).Text(m.sealed_key_id);
    } else {
      p.Null().Null();
    }
    if (m.csr_pem) {
      p.Text(*m.csr_pem);
    } else {
      p.Null();
    }
    return c_.Exec(
        "INSERT INTO material (entry_id, version, leaf_der, chain_der, trusted_der, sealed_key, "
        "key_id, csr_pem) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (entry_id) DO UPDATE SET "
        "version=excluded.version, leaf_der=excluded.leaf_der, chain_der=excluded.chain_der, "
        "trusted_der=excluded.trusted_der, sealed_key=excluded.sealed_key, "
        "key_id=excluded.key_id, csr_pem=excluded.csr_pem",
        std::move(p));
  }

  Status DeleteEntry(std::string_view entry_id) override {
    return c_.Exec("DELETE FROM entries WHERE id=$1", Params().Text(entry_id));
  }

  Status PutUsage(std::string_view entry_id, uint64_t use_count,
                  UnixSeconds last_used_at) override {
    return c_.Exec("UPDATE entries SET use_count=$1, last_used_at=$2 WHERE id=$3",
                   Params().Int(static_cast<int64_t>(use_count)).Int(last_used_at).Text(entry_id));
  }

  Status PutLastNotified(std::string_view entry_id, UnixSeconds at) override {
    return c_.Exec("UPDATE entries SET last_notified_at=$1 WHERE id=$2",
                   Params().Int(at).Text(entry_id));
  }

  Status AppendAudit(const AuditEvent& ev) override {
    return c_.Exec(
        "INSERT INTO audit (at, action, actor, entry_id, entry_name, host, port, environment, "
        "step_id, workflow_id, outcome, code, detail) "
        "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)",
        Params()
            .Int(ev.at)
            .Text(AuditActionName(ev.action))
            .Text(ev.actor)
            .Text(ev.entry_id)
            .Text(ev.entry_name)
            .Text(ev.host)
            .Int(ev.port)
            .Text(ev.environment)
            .Text(ev.step_id)
            .Text(ev.workflow_id)
            .Text(ev.outcome)
            .Text(ev.code)
            .Text(ev.detail));
  }

  Status PutMasterKeyRecord(const MasterKeyRecord& record) override {
    WSSTEP_RETURN_IF_ERROR(WriteMeta(c_, "master_key_id", record.key_id));
    if (!record.check) return {};
    return WriteMeta(c_, "key_check", *record.check);
  }

  Result<size_t> ResealKeys(std::string_view new_key_id, const Resealer& reseal) override {
    WSSTEP_ASSIGN_OR_RETURN(
        ResultPtr r, c_.Run("SELECT entry_id, sealed_key FROM material WHERE sealed_key IS NOT "
                            "NULL ORDER BY entry_id"));
    const int n = PQntuples(r.get());
    for (int i = 0; i < n; ++i) {
      const Row row(r.get(), i);
      const std::string id = row.Text(0);
      WSSTEP_ASSIGN_OR_RETURN(std::string sealed, reseal(id, row.Bytes(1)));
      WSSTEP_RETURN_IF_ERROR(
          c_.Exec("UPDATE material SET sealed_key=$1, key_id=$2 WHERE entry_id=$3",
                  Params().Bytes(sealed).Text(new_key_id).Text(id)));
    }
    return static_cast<size_t>(n);
  }

  Status Commit() override {
    done_ = true;
    return c_.Exec("COMMIT");
  }

 private:
  std::unique_lock<std::mutex> lock_;
  Connection& c_;
  bool done_ = false;
};

class PgStorage final : public Storage {
 public:
  PgStorage(std::string location, Connection writer, Connection reader)
      : location_(std::move(location)), writer_(std::move(writer)), reader_(std::move(reader)) {}

  bool read_only() const override { return false; }
  const std::string& location() const override { return location_; }

  Result<std::optional<MasterKeyRecord>> ReadMasterKeyRecord() override {
    std::lock_guard lk(reader_mu_);
    WSSTEP_ASSIGN_OR_RETURN(std::optional<std::string> id, ReadMeta(reader_, "master_key_id"));
    if (!id) return std::optional<MasterKeyRecord>();
    MasterKeyRecord record;
    record.key_id = std::move(*id);
    WSSTEP_ASSIGN_OR_RETURN(record.check, ReadMeta(reader_, "key_check"));
    return std::optional<MasterKeyRecord>(std::move(record));
  }

  Result<LoadedEntries> LoadEntries() override {
    std::lock_guard lk(reader_mu_);
    std::vector<EntryMetadata> entries;
    std::vector<int64_t> save_seq;
    {
      WSSTEP_ASSIGN_OR_RETURN(
          ResultPtr r, reader_.Run("SELECT " + std::string(kEntryColumns) + " FROM entries"));
      const int n = PQntuples(r.get());
      entries.reserve(static_cast<size_t>(n));
      save_seq.reserve(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) {
        const Row row(r.get(), i);
        save_seq.push_back(ReadEntryColumns(row, entries.emplace_back()));
      }
    }
    // Child rows joined through an id index (COLLATE "C": byte order, as std::string).
    const std::vector<uint32_t> by_id = SortedById(entries);
    auto find = [&](std::string_view id) -> EntryMetadata* {
      auto it = std::lower_bound(by_id.begin(), by_id.end(), id,
                                 [&](uint32_t i, std::string_view v) { return entries[i].id < v; });
      return it != by_id.end() && entries[*it].id == id ? &entries[*it] : nullptr;
    };
    {
      WSSTEP_ASSIGN_OR_RETURN(ResultPtr r, reader_.Run("SELECT entry_id, host, port, environment "
                                                       "FROM bindings ORDER BY entry_id, ordinal"));
      for (int i = 0; i < PQntuples(r.get()); ++i) {
        const Row row(r.get(), i);
        if (EntryMetadata* e = find(row.View(0))) {
          e->bindings.push_back(
              Binding{row.Text(1), static_cast<uint16_t>(row.Int(2)), row.Text(3)});
        }
      }
    }
    {
      WSSTEP_ASSIGN_OR_RETURN(
          ResultPtr r, reader_.Run("SELECT entry_id, role, " + std::string(kCertificateColumns) +
                                   " FROM certificates ORDER BY entry_id, role, ordinal"));
      for (int i = 0; i < PQntuples(r.get()); ++i) {
        const Row row(r.get(), i);
        EntryMetadata* e = find(row.View(0));
        if (e == nullptr) continue;
        if (row.View(1) == "leaf") {
          e->certificate = ReadCertificateColumns(row, 2);
        } else {
          e->trusted.push_back(ReadCertificateColumns(row, 2));
        }
      }
    }
    LoadedEntries loaded;
    if (!save_seq.empty()) {
      loaded.latest_save_sequence = *std::max_element(save_seq.begin(), save_seq.end());
    }
    PutInSaveOrder(entries, save_seq);
    loaded.entries = std::move(entries);
    return loaded;
  }

  Result<std::optional<StoredMaterial>> ReadMaterial(std::string_view entry_id) override {
    std::lock_guard lk(reader_mu_);
    WSSTEP_ASSIGN_OR_RETURN(ResultPtr r, reader_.Run("SELECT " + std::string(kMaterialColumns) +
                                                         " FROM material WHERE entry_id=$1",
                                                     Params().Text(entry_id)));
    if (PQntuples(r.get()) == 0) return std::optional<StoredMaterial>();
    StoredMaterial m = ReadMaterialColumns(Row(r.get(), 0));
    return std::optional<StoredMaterial>(std::move(m));
  }

  Result<std::vector<AuditEvent>> ReadAudit(const AuditFilter& filter, int64_t before_sequence,
                                            size_t limit) override {
    std::string sql = "SELECT " + std::string(kAuditColumns) + " FROM audit WHERE true";
    Params p;
    int n = 0;
    auto text = [&](const char* column, const std::string& v) {
      sql += std::string(" AND ") + column + "=$" + std::to_string(++n);
      p.Text(v);
    };
    auto integer = [&](const char* condition, int64_t v) {
      sql += std::string(" AND ") + condition + "$" + std::to_string(++n);
      p.Int(v);
    };
    if (!filter.entry_id.empty()) text("entry_id", filter.entry_id);
    if (filter.action) text("action", std::string(AuditActionName(*filter.action)));
    if (!filter.actor.empty()) text("actor", filter.actor);
    if (!filter.step_id.empty()) text("step_id", filter.step_id);
    if (!filter.workflow_id.empty()) text("workflow_id", filter.workflow_id);
    if (filter.since != 0) integer("at>=", filter.since);
    if (filter.until != 0) integer("at<", filter.until);
    if (before_sequence != 0) integer("sequence<", before_sequence);
    sql += " ORDER BY sequence DESC LIMIT $" + std::to_string(++n);
    p.Int(static_cast<int64_t>(limit));
    std::lock_guard lk(reader_mu_);
    WSSTEP_ASSIGN_OR_RETURN(ResultPtr r, reader_.Run(sql, std::move(p)));
    std::vector<AuditEvent> events;
    for (int i = 0; i < PQntuples(r.get()); ++i)
      events.push_back(ReadAuditColumns(Row(r.get(), i)));
    return events;
  }

  Result<std::unique_ptr<Transaction>> Begin() override {
    std::unique_lock lock(writer_mu_);
    WSSTEP_RETURN_IF_ERROR(writer_.Exec("BEGIN"));
    return std::unique_ptr<Transaction>(std::make_unique<PgTransaction>(std::move(lock), writer_));
  }

 private:
  const std::string location_;
  std::mutex writer_mu_;
  Connection writer_;  // guarded by writer_mu_; holds the plugin's advisory lock
  std::mutex reader_mu_;
  Connection reader_;  // guarded by reader_mu_
};

std::string HostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

}  // namespace

bool IsPostgresConnectionString(std::string_view store) {
  return store.rfind("postgres://", 0) == 0 || store.rfind("postgresql://", 0) == 0 ||
         store.find('=') != std::string_view::npos;
}

std::string PostgresLocation(std::string_view conninfo) {
  char* err = nullptr;
  PQconninfoOption* options = PQconninfoParse(std::string(conninfo).c_str(), &err);
  if (options == nullptr) {
    if (err != nullptr) PQfreemem(err);
    return "postgresql (unparsable connection string)";
  }
  std::string user, host, port, db;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    const std::string k = o->keyword;
    if (k == "user") user = o->val;
    if (k == "host" && host.empty()) host = o->val;
    if (k == "hostaddr" && host.empty()) host = o->val;
    if (k == "port") port = o->val;
    if (k == "dbname") db = o->val;
  }
  PQconninfoFree(options);
  return "postgresql://" + (user.empty() ? "" : user + "@") + host +
         (port.empty() ? "" : ":" + port) + "/" + db;
}

StorageFactory PostgresStorageFactory(std::string conninfo) {
  return [conninfo = std::move(conninfo)](
             const StorageOpenRequest& request) -> Result<std::unique_ptr<Storage>> {
    const std::string location = PostgresLocation(conninfo);
    char* parse_error = nullptr;
    PQconninfoOption* parsed = PQconninfoParse(conninfo.c_str(), &parse_error);
    if (parsed == nullptr) {
      std::string why = parse_error != nullptr ? parse_error : "not a libpq connection string";
      if (parse_error != nullptr) PQfreemem(parse_error);
      while (!why.empty() && why.back() == '\n') why.pop_back();
      return Error(Code::kInvalidArgument, "store: " + why,
                   "give a libpq connection string: postgresql://user@host:5432/db or "
                   "\"host=... dbname=...\"",
                   Side::kConfiguration);
    }
    PQconninfoFree(parsed);
    if (request.read_only) {
      return Error(Code::kStorageError,
                   location +
                       ": a read-only PostgreSQL store is not "
                       "supported",
                   "", Side::kStore);
    }
    const std::string app = "wsstep pid " + std::to_string(::getpid()) + " on " + HostName();
    WSSTEP_ASSIGN_OR_RETURN(Connection writer, Connection::Open(conninfo, location, app));
    WSSTEP_RETURN_IF_ERROR(LockDatabase(writer, location));
    WSSTEP_RETURN_IF_ERROR(Migrate(writer, location));
    WSSTEP_ASSIGN_OR_RETURN(Connection reader, Connection::Open(conninfo, location, app));
    return std::unique_ptr<Storage>(
        std::make_unique<PgStorage>(location, std::move(writer), std::move(reader)));
  };
}

}  // namespace wsstep::core

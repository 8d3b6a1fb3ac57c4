#include "core/store/pg_storage.h"

#include <libpq-fe.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/store/bulk_load.h"
#include "core/store/codec.h"
#include "core/store/entry_columns.h"
#include "core/store/pg_connection.h"
#include "core/store/pg_schema.h"
#include "core/store/validation.h"

namespace wsstep::core {
namespace {

// The writers' advisory lock key (a bigint, scoped to the database, held for a
// transaction): every plugin's write transactions, one at a time. The migration's is in
// pg_schema.cc.
constexpr int64_t kWriteLockKey = 0x7773737470000003;  // "wsstp" + 3

// The channel every commit that changed an entry notifies, with its change cursor.
constexpr const char* kChangeChannel = "wsstep_changes";

using pg::Connection;
using pg::kFirstRetryDelay;
using pg::Params;
using pg::ReadMeta;
using pg::ResultPtr;
using pg::Row;
using pg::StorageError;
using pg::Unavailable;
using pg::WriteMeta;

// The meta key holding the change cursor of the latest proxy credential change.
constexpr std::string_view kSecretsChangeKey = "secrets_change_seq";

// One write transaction, begun under the writers' advisory lock (held until it ends).
// Each entry it changes is stamped with the transaction's change cursor, and its commit
// notifies the other plugins.
class PgTransaction final : public Storage::Transaction {
 public:
  PgTransaction(std::unique_lock<std::mutex> lock, Connection& c) : lock_(std::move(lock)), c_(c) {}
  ~PgTransaction() override {
    if (!done_) (void)c_.Exec("ROLLBACK");
  }

  int64_t committed_cursor() const override { return committed_ ? cursor_ : 0; }

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
        .Bytes(EncodeMap(e.attributes))
        .Int(e.notifications.urgent_days);
    Status s = c_.Exec(EntryUpsertSql('$'), std::move(p));
    if (!s.ok() && s.error().detail.count("constraint") &&
        s.error().detail.at("constraint") == "entries_name_key") {
      return DuplicateName(e.name, e.name);
    }
    WSSTEP_RETURN_IF_ERROR(s);
    return Stamp(e.id);
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
    WSSTEP_RETURN_IF_ERROR(c_.Exec("DELETE FROM entries WHERE id=$1", Params().Text(entry_id)));
    WSSTEP_ASSIGN_OR_RETURN(int64_t cursor, Cursor());
    return c_.Exec(
        "INSERT INTO tombstones (entry_id, change_seq) VALUES ($1, $2) "
        "ON CONFLICT (entry_id) DO UPDATE SET change_seq=excluded.change_seq",
        Params().Text(entry_id).Int(cursor));
  }

  Status PutUsage(std::string_view entry_id, uint64_t added_uses,
                  UnixSeconds last_used_at) override {
    return c_.Exec(
        "UPDATE entries SET use_count=use_count+$1, last_used_at=GREATEST(last_used_at, $2) "
        "WHERE id=$3",
        Params().Int(static_cast<int64_t>(added_uses)).Int(last_used_at).Text(entry_id));
  }

  Status PutLastNotified(std::string_view entry_id, UnixSeconds at) override {
    WSSTEP_RETURN_IF_ERROR(c_.Exec("UPDATE entries SET last_notified_at=$1 WHERE id=$2",
                                   Params().Int(at).Text(entry_id)));
    return Stamp(entry_id);
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

  Status PutSecret(const StoredSecret& secret) override {
    WSSTEP_RETURN_IF_ERROR(
        c_.Exec("INSERT INTO secrets (name_key, name, username, sealed_value, key_id, created_at, "
                "updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (name_key) DO UPDATE SET "
                "username=excluded.username, sealed_value=excluded.sealed_value, "
                "key_id=excluded.key_id, updated_at=excluded.updated_at",
                Params()
                    .Text(AsciiLower(secret.name))
                    .Text(secret.name)
                    .Text(secret.username)
                    .Bytes(secret.sealed_value)
                    .Text(secret.key_id)
                    .Int(secret.created_at)
                    .Int(secret.updated_at)));
    return StampSecrets();
  }

  Status DeleteSecret(std::string_view name) override {
    WSSTEP_RETURN_IF_ERROR(
        c_.Exec("DELETE FROM secrets WHERE name_key=$1", Params().Text(AsciiLower(name))));
    return StampSecrets();
  }

  Result<size_t> ResealSecrets(std::string_view new_key_id, const Resealer& reseal) override {
    WSSTEP_ASSIGN_OR_RETURN(ResultPtr r, c_.Run("SELECT name, sealed_value FROM secrets "
                                                "ORDER BY name_key"));
    const int n = PQntuples(r.get());
    for (int i = 0; i < n; ++i) {
      const Row row(r.get(), i);
      const std::string name = row.Text(0);
      WSSTEP_ASSIGN_OR_RETURN(std::string sealed, reseal(name, row.Bytes(1)));
      WSSTEP_RETURN_IF_ERROR(
          c_.Exec("UPDATE secrets SET sealed_value=$1, key_id=$2 WHERE name_key=$3",
                  Params().Bytes(sealed).Text(new_key_id).Text(AsciiLower(name))));
    }
    if (n > 0) WSSTEP_RETURN_IF_ERROR(StampSecrets());
    return static_cast<size_t>(n);
  }

  Status Commit() override {
    if (cursor_ != 0) {
      // Delivered to the listeners when (and only if) the transaction commits.
      WSSTEP_RETURN_IF_ERROR(c_.Exec("SELECT pg_notify($1, $2)",
                                     Params().Text(kChangeChannel).Text(std::to_string(cursor_))));
    }
    done_ = true;
    WSSTEP_RETURN_IF_ERROR(c_.Exec("COMMIT"));
    committed_ = true;
    return {};
  }

 private:
  // This transaction's change cursor, taken on its first entry change.
  Result<int64_t> Cursor() {
    if (cursor_ == 0) {
      WSSTEP_ASSIGN_OR_RETURN(ResultPtr r, c_.Run("SELECT nextval('change_cursor')"));
      cursor_ = Row(r.get(), 0).Int(0);
    }
    return cursor_;
  }
  // The other plugins reload the proxy credentials when they see this cursor.
  Status StampSecrets() {
    WSSTEP_ASSIGN_OR_RETURN(int64_t cursor, Cursor());
    return WriteMeta(c_, kSecretsChangeKey, std::to_string(cursor));
  }
  Status Stamp(std::string_view entry_id) {
    WSSTEP_ASSIGN_OR_RETURN(int64_t cursor, Cursor());
    return c_.Exec("UPDATE entries SET change_seq=$1 WHERE id=$2",
                   Params().Int(cursor).Text(entry_id));
  }

  std::unique_lock<std::mutex> lock_;
  Connection& c_;
  bool done_ = false;
  bool committed_ = false;
  int64_t cursor_ = 0;
};

// Entries (with bindings and certificate facts) read in one transaction: all of them,
// or those changed after a cursor.
struct EntryRows {
  std::vector<EntryMetadata> entries;
  std::vector<int64_t> save_seq;
  int64_t max_change_seq = 0;
};

// `condition` filters the entries (a SQL condition on `entries`, $1 the cursor) or is
// empty. Runs inside the caller's transaction.
Result<EntryRows> ReadEntryRows(Connection& c, const std::string& condition, int64_t cursor) {
  EntryRows rows;
  std::vector<EntryMetadata>& entries = rows.entries;
  Params filter;
  std::string where;
  if (!condition.empty()) {
    where = " WHERE " + condition;
    filter.Int(cursor);
  }
  {
    WSSTEP_ASSIGN_OR_RETURN(ResultPtr r, c.Run("SELECT " + std::string(kEntryColumns) +
                                                   ", change_seq FROM entries" + where,
                                               filter));
    const int n = PQntuples(r.get());
    entries.reserve(static_cast<size_t>(n));
    rows.save_seq.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      const Row row(r.get(), i);
      rows.save_seq.push_back(ReadEntryColumns(row, entries.emplace_back()));
      rows.max_change_seq = std::max(rows.max_change_seq, row.Int(kEntryColumnCount));
    }
  }
  if (entries.empty()) return rows;
  const std::string children =
      condition.empty() ? "" : " WHERE entry_id IN (SELECT id FROM entries" + where + ")";
  // Child rows joined through an id index (COLLATE "C": byte order, as std::string).
  IdIndex by_id(entries);
  {
    WSSTEP_ASSIGN_OR_RETURN(
        ResultPtr r, c.Run("SELECT entry_id, host, port, environment FROM bindings" + children +
                               " ORDER BY entry_id, ordinal",
                           filter));
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      const Row row(r.get(), i);
      if (EntryMetadata* e = by_id.Find(row.View(0))) {
        e->bindings.push_back(Binding{row.Text(1), static_cast<uint16_t>(row.Int(2)), row.Text(3)});
      }
    }
  }
  {
    WSSTEP_ASSIGN_OR_RETURN(
        ResultPtr r,
        c.Run("SELECT entry_id, role, " + std::string(kCertificateColumns) + " FROM certificates" +
                  children + " ORDER BY entry_id, role, ordinal",
              filter));
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      const Row row(r.get(), i);
      EntryMetadata* e = by_id.Find(row.View(0));
      if (e == nullptr) continue;
      if (row.View(1) == "leaf") {
        e->certificate = ReadCertificateColumns(row, 2);
      } else {
        e->trusted.push_back(ReadCertificateColumns(row, 2));
      }
    }
  }
  PutInSaveOrder(entries, rows.save_seq);
  std::sort(rows.save_seq.begin(), rows.save_seq.end());
  return rows;
}

class PgStorage final : public Storage {
 public:
  PgStorage(std::string location, std::string node, Connection writer, Connection reader,
            Connection listener)
      : location_(std::move(location)),
        node_(std::move(node)),
        writer_(std::move(writer)),
        reader_(std::move(reader)),
        listener_(std::move(listener)) {}

  bool read_only() const override { return false; }
  const std::string& location() const override { return location_; }
  bool shared() const override { return true; }

  Result<std::optional<MasterKeyRecord>> ReadMasterKeyRecord() override {
    std::lock_guard lk(reader_mu_);
    WSSTEP_RETURN_IF_ERROR(reader_.Ready());
    WSSTEP_ASSIGN_OR_RETURN(std::optional<std::string> id, ReadMeta(reader_, "master_key_id"));
    if (!id) return std::optional<MasterKeyRecord>();
    MasterKeyRecord record;
    record.key_id = std::move(*id);
    WSSTEP_ASSIGN_OR_RETURN(record.check, ReadMeta(reader_, "key_check"));
    return std::optional<MasterKeyRecord>(std::move(record));
  }

  Result<LoadedEntries> LoadEntries() override {
    std::lock_guard lk(reader_mu_);
    return InSnapshot([&]() -> Result<LoadedEntries> {
      WSSTEP_ASSIGN_OR_RETURN(EntryRows rows, ReadEntryRows(reader_, "", 0));
      WSSTEP_ASSIGN_OR_RETURN(int64_t tombstones, MaxTombstone());
      WSSTEP_ASSIGN_OR_RETURN(int64_t secrets, SecretsCursor());
      LoadedEntries loaded;
      if (!rows.save_seq.empty()) loaded.latest_save_sequence = rows.save_seq.back();
      loaded.change_cursor = std::max({rows.max_change_seq, tombstones, secrets});
      loaded.entries = std::move(rows.entries);
      return loaded;
    });
  }

  Result<StorageChanges> ReadChanges(int64_t cursor) override {
    std::lock_guard lk(reader_mu_);
    return InSnapshot([&]() -> Result<StorageChanges> {
      WSSTEP_ASSIGN_OR_RETURN(EntryRows rows, ReadEntryRows(reader_, "change_seq > $1", cursor));
      StorageChanges changes;
      changes.cursor = std::max(cursor, rows.max_change_seq);
      WSSTEP_ASSIGN_OR_RETURN(ResultPtr r,
                              reader_.Run("SELECT entry_id, change_seq FROM tombstones WHERE "
                                          "change_seq > $1 ORDER BY change_seq",
                                          Params().Int(cursor)));
      for (int i = 0; i < PQntuples(r.get()); ++i) {
        const Row row(r.get(), i);
        changes.deleted.push_back(row.Text(0));
        changes.cursor = std::max(changes.cursor, row.Int(1));
      }
      WSSTEP_ASSIGN_OR_RETURN(int64_t secrets, SecretsCursor());
      if (secrets > cursor) {
        changes.secrets_changed = true;
        changes.cursor = std::max(changes.cursor, secrets);
      }
      changes.saved = std::move(rows.entries);
      changes.save_sequences = std::move(rows.save_seq);
      return changes;
    });
  }

  Result<bool> WaitForChange(std::chrono::milliseconds timeout) override {
    std::lock_guard lk(listener_mu_);
    bool reset = !listening_;
    if (Status s = listener_.Ready(&reset); !s.ok()) {
      std::this_thread::sleep_for(std::min(timeout, kFirstRetryDelay));
      return s.error();
    }
    if (reset) {
      // A new session: listen again; what was committed meanwhile is read from the cursor.
      WSSTEP_RETURN_IF_ERROR(listener_.Exec(std::string("LISTEN ") + kChangeChannel));
      listening_ = true;
      return true;
    }
    PGconn* conn = listener_.raw();
    if (TakeNotices(conn)) return true;
    pollfd pfd{PQsocket(conn), POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
    if (ready <= 0) return false;
    if (PQconsumeInput(conn) == 0 || listener_.broken()) {
      listening_ = false;
      return Unavailable(location_, PQerrorMessage(conn));
    }
    return TakeNotices(conn);
  }

  Result<bool> ClaimNotification(std::string_view entry_id, int64_t day,
                                 NotificationLevel level) override {
    std::lock_guard lk(reader_mu_);
    WSSTEP_ASSIGN_OR_RETURN(
        ResultPtr r,
        reader_.RunFirst(
            "INSERT INTO notification_claims (entry_id, day, level, claimed_by) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (entry_id, day, level) DO UPDATE "
            "SET claimed_by=notification_claims.claimed_by RETURNING claimed_by",
            Params().Text(entry_id).Int(day).Int(static_cast<int64_t>(level)).Text(node_)));
    const bool mine = PQntuples(r.get()) == 1 && Row(r.get(), 0).View(0) == node_;
    // Claims of days long past are of no use to anyone.
    if (mine) {
      (void)reader_.Exec("DELETE FROM notification_claims WHERE day < $1", Params().Int(day - 31));
    }
    return mine;
  }

  Result<std::vector<StoredSecret>> ReadSecrets() override {
    std::lock_guard lk(reader_mu_);
    WSSTEP_ASSIGN_OR_RETURN(ResultPtr r,
                            reader_.RunFirst("SELECT name, username, sealed_value, key_id, "
                                             "created_at, updated_at FROM secrets "
                                             "ORDER BY name_key"));
    std::vector<StoredSecret> secrets;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      const Row row(r.get(), i);
      StoredSecret& s = secrets.emplace_back();
      s.name = row.Text(0);
      s.username = row.Text(1);
      s.sealed_value = row.Bytes(2);
      s.key_id = row.Text(3);
      s.created_at = row.Int(4);
      s.updated_at = row.Int(5);
    }
    return secrets;
  }

  Result<std::optional<StoredMaterial>> ReadMaterial(std::string_view entry_id) override {
    std::lock_guard lk(reader_mu_);
    WSSTEP_ASSIGN_OR_RETURN(ResultPtr r,
                            reader_.RunFirst("SELECT " + std::string(kMaterialColumns) +
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
    WSSTEP_ASSIGN_OR_RETURN(ResultPtr r, reader_.RunFirst(sql, p));
    std::vector<AuditEvent> events;
    for (int i = 0; i < PQntuples(r.get()); ++i)
      events.push_back(ReadAuditColumns(Row(r.get(), i)));
    return events;
  }

  Result<std::unique_ptr<Transaction>> Begin() override {
    std::unique_lock lock(writer_mu_);
    WSSTEP_RETURN_IF_ERROR(writer_.RunFirst("BEGIN").status());
    // Every plugin's writes, one transaction at a time: change cursors rise in commit
    // order, and a writer that has caught up sees everything committed before it.
    if (Status s = writer_.Exec("SELECT pg_advisory_xact_lock($1)", Params().Int(kWriteLockKey));
        !s.ok()) {
      (void)writer_.Exec("ROLLBACK");
      return s.error();
    }
    return std::unique_ptr<Transaction>(std::make_unique<PgTransaction>(std::move(lock), writer_));
  }

 private:
  // Runs `read` in one REPEATABLE READ transaction on the reader: every statement sees
  // the same committed state. reader_mu_ held.
  template <typename Read>
  auto InSnapshot(Read read) -> decltype(read()) {
    WSSTEP_RETURN_IF_ERROR(
        reader_.RunFirst("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").status());
    auto result = read();
    (void)reader_.Exec(result.ok() ? "COMMIT" : "ROLLBACK");
    return result;
  }

  // The change cursor of the latest proxy credential change (0: none). reader_mu_ held.
  Result<int64_t> SecretsCursor() {
    WSSTEP_ASSIGN_OR_RETURN(std::optional<std::string> text, ReadMeta(reader_, kSecretsChangeKey));
    if (!text || text->empty()) return int64_t{0};
    return static_cast<int64_t>(std::strtoll(text->c_str(), nullptr, 10));
  }

  Result<int64_t> MaxTombstone() {
    WSSTEP_ASSIGN_OR_RETURN(ResultPtr r,
                            reader_.Run("SELECT COALESCE(MAX(change_seq), 0) FROM tombstones"));
    return Row(r.get(), 0).Int(0);
  }

  // Consumes the notices that arrived; true when there was one.
  static bool TakeNotices(PGconn* conn) {
    bool any = false;
    while (PGnotify* n = PQnotifies(conn)) {
      any = true;
      PQfreemem(n);
    }
    return any;
  }

  const std::string location_;
  const std::string node_;  // names this process in notification claims
  std::mutex writer_mu_;
  Connection writer_;  // guarded by writer_mu_
  std::mutex reader_mu_;
  Connection reader_;  // guarded by reader_mu_
  std::mutex listener_mu_;
  Connection listener_;     // guarded by listener_mu_; LISTENs on kChangeChannel
  bool listening_ = false;  // guarded by listener_mu_
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
    WSSTEP_RETURN_IF_ERROR(pg::Migrate(writer, location));
    WSSTEP_ASSIGN_OR_RETURN(Connection reader, Connection::Open(conninfo, location, app));
    WSSTEP_ASSIGN_OR_RETURN(Connection listener, Connection::Open(conninfo, location, app));
    // Unique per process and start: a claim made before a restart is not this one's.
    const std::string node =
        app + " started " + std::to_string(::time(nullptr)) + "." +
        std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
    return std::unique_ptr<Storage>(std::make_unique<PgStorage>(
        location, node, std::move(writer), std::move(reader), std::move(listener)));
  };
}

}  // namespace wsstep::core

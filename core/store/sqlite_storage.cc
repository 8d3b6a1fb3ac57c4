#include "core/store/sqlite_storage.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/db.h"
#include "core/store/codec.h"
#include "core/store/entry_columns.h"
#include "core/store/sqlite_rows.h"
#include "core/store/sqlite_schema.h"

namespace wsstep::core {
namespace {

// The largest store file that opening reads into the page cache first.
constexpr uint64_t kWarmCacheMaxBytes = uint64_t{1} << 30;

// Meta keys of the master key record.
constexpr std::string_view kMetaKeyId = "master_key_id";
constexpr std::string_view kMetaKeyCheck = "key_check";

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool Writable(const std::string& path) { return ::access(path.c_str(), W_OK) == 0; }

// One data directory, one writer: an exclusive flock on <data_dir>/wsstep.lock, held from
// open to close (the OS drops it when the process ends, however it ends). A second
// process — or a second store in this one — that opens the directory for writing is
// refused at once, naming the process that holds it (its pid is written in the file).
class DataDirLock {
 public:
  static Result<DataDirLock> Acquire(const std::string& dir) {
    const std::string path = dir + "/" + std::string(kDataDirLockFileName);
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
      return Error(Code::kStorageError,
                   path + ": cannot open the lock file: " + std::strerror(errno),
                   "check the data directory's permissions", Side::kStore);
    }
    DataDirLock lock(fd);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      if (err != EWOULDBLOCK) {
        return Error(Code::kStorageError, path + ": cannot lock: " + std::strerror(err), "",
                     Side::kStore);
      }
      char buf[32] = {};
      const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
      std::string holder(buf, n > 0 ? static_cast<size_t>(n) : 0);
      holder.erase(
          std::find_if(holder.begin(), holder.end(), [](char c) { return c < '0' || c > '9'; }),
          holder.end());
      Error e(Code::kStorageError,
              dir + ": the data directory is in use by another wsstep process" +
                  (holder.empty() ? std::string() : " (pid " + holder + ")"),
              "one data directory serves one plugin: stop the other process, or give this one "
              "its own data directory (--data-dir or WSSTEP_DATA_DIR)",
              Side::kStore);
      e.detail["data_dir"] = dir;
      if (!holder.empty()) e.detail["pid"] = holder;
      return e;
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 ||
        ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
      // The lock holds without the pid; a second process then cannot name us.
    }
    return lock;
  }

  DataDirLock(DataDirLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  DataDirLock& operator=(DataDirLock&& other) noexcept {
    if (this != &other) {
      Release();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;
  ~DataDirLock() { Release(); }

 private:
  explicit DataDirLock(int fd) : fd_(fd) {}
  void Release() {
    if (fd_ >= 0) ::close(fd_);  // closing the last descriptor drops the flock
    fd_ = -1;
  }
  int fd_ = -1;
};

Result<std::optional<std::string>> ReadMeta(Database& db, std::string_view key) {
  WSSTEP_ASSIGN_OR_RETURN(auto st, db.Prepare("SELECT value FROM meta WHERE key=?"));
  st.Bind(1, key);
  WSSTEP_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(st.ColumnBlob(0));
}

Status WriteMeta(Database& db, std::string_view key, std::string_view value) {
  WSSTEP_ASSIGN_OR_RETURN(auto st, db.Prepare("INSERT OR REPLACE INTO meta (key, value) "
                                              "VALUES (?, ?)"));
  st.Bind(1, key).BindBlob(2, value);
  return st.Run();
}

// A write transaction on the writer connection, holding the connection's lock for its
// whole life. Statements run once per row of a batch (use counters, audit events) are
// prepared on first use and kept until the transaction ends.
class SqliteTransaction final : public Storage::Transaction {
 public:
  SqliteTransaction(std::unique_lock<std::mutex> lock, Database& db, core::Transaction tx)
      : lock_(std::move(lock)), db_(db), tx_(std::move(tx)) {}

  Status PutEntry(const EntryMetadata& e, int64_t save_sequence) override {
    return WriteEntryRow(db_, e, save_sequence);
  }

  Status PutBindings(const EntryMetadata& e) override { return WriteBindingRows(db_, e); }

  Status PutMaterial(const EntryMetadata& e, const StoredMaterial& material) override {
    WSSTEP_RETURN_IF_ERROR(WriteCertificateRows(db_, e));
    return WriteMaterialRow(db_, e.id, material);
  }

  Status DeleteEntry(std::string_view entry_id) override {
    // Bindings, facts and material go with it (ON DELETE CASCADE).
    WSSTEP_ASSIGN_OR_RETURN(auto del, db_.Prepare("DELETE FROM entries WHERE id=?"));
    del.Bind(1, entry_id);
    return del.Run();
  }

  Status PutUsage(std::string_view entry_id, uint64_t added_uses,
                  UnixSeconds last_used_at) override {
    if (!usage_update_) {
      WSSTEP_ASSIGN_OR_RETURN(usage_update_,
                              db_.Prepare("UPDATE entries SET use_count=use_count+?, "
                                          "last_used_at=max(last_used_at, ?) WHERE id=?"));
    }
    usage_update_->Bind(1, static_cast<int64_t>(added_uses))
        .Bind(2, last_used_at)
        .Bind(3, entry_id);
    return usage_update_->Run();
  }

  Status PutLastNotified(std::string_view entry_id, UnixSeconds at) override {
    WSSTEP_ASSIGN_OR_RETURN(auto st, db_.Prepare("UPDATE entries SET last_notified_at=? "
                                                 "WHERE id=?"));
    st.Bind(1, at).Bind(2, entry_id);
    return st.Run();
  }

  Status AppendAudit(const AuditEvent& event) override {
    if (!audit_insert_) {
      WSSTEP_ASSIGN_OR_RETURN(audit_insert_, db_.Prepare(kInsertAuditRow));
    }
    return InsertAuditRow(*audit_insert_, event);
  }

  Status PutMasterKeyRecord(const MasterKeyRecord& record) override {
    WSSTEP_RETURN_IF_ERROR(WriteMeta(db_, kMetaKeyId, record.key_id));
    if (!record.check) return {};
    return WriteMeta(db_, kMetaKeyCheck, *record.check);
  }

  Result<size_t> ResealKeys(std::string_view new_key_id, const Resealer& reseal) override {
    // The ids first: the material table is rewritten while it is read.
    std::vector<std::string> ids;
    {
      WSSTEP_ASSIGN_OR_RETURN(auto q, db_.Prepare("SELECT entry_id FROM material WHERE "
                                                  "sealed_key IS NOT NULL"));
      for (;;) {
        WSSTEP_ASSIGN_OR_RETURN(bool row, q.Step());
        if (!row) break;
        ids.push_back(q.ColumnText(0));
      }
    }
    WSSTEP_ASSIGN_OR_RETURN(auto get, db_.Prepare("SELECT sealed_key FROM material WHERE "
                                                  "entry_id=?"));
    WSSTEP_ASSIGN_OR_RETURN(auto put, db_.Prepare("UPDATE material SET sealed_key=?, "
                                                  "key_id=? WHERE entry_id=?"));
    for (const auto& id : ids) {
      get.Bind(1, id);
      WSSTEP_ASSIGN_OR_RETURN(bool row, get.Step());
      if (!row) continue;
      std::string blob = get.ColumnBlob(0);
      get.Reset();
      WSSTEP_ASSIGN_OR_RETURN(std::string sealed, reseal(id, blob));
      put.BindBlob(1, sealed).Bind(2, new_key_id).Bind(3, id);
      WSSTEP_RETURN_IF_ERROR(put.Run());
    }
    return ids.size();
  }

  Status PutSecret(const StoredSecret& secret) override {
    WSSTEP_ASSIGN_OR_RETURN(
        auto st, db_.Prepare("INSERT INTO secrets (name_key, name, username, sealed_value, key_id, "
                             "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                             "ON CONFLICT (name_key) DO UPDATE SET username=excluded.username, "
                             "sealed_value=excluded.sealed_value, key_id=excluded.key_id, "
                             "updated_at=excluded.updated_at"));
    st.Bind(1, AsciiLower(secret.name))
        .Bind(2, secret.name)
        .Bind(3, secret.username)
        .BindBlob(4, secret.sealed_value)
        .Bind(5, secret.key_id)
        .Bind(6, secret.created_at)
        .Bind(7, secret.updated_at);
    return st.Run();
  }

  Status DeleteSecret(std::string_view name) override {
    WSSTEP_ASSIGN_OR_RETURN(auto del, db_.Prepare("DELETE FROM secrets WHERE name_key=?"));
    del.Bind(1, AsciiLower(name));
    return del.Run();
  }

  Result<size_t> ResealSecrets(std::string_view new_key_id, const Resealer& reseal) override {
    std::vector<std::pair<std::string, std::string>> sealed;  // (name, blob)
    {
      WSSTEP_ASSIGN_OR_RETURN(auto q, db_.Prepare("SELECT name, sealed_value FROM secrets"));
      for (;;) {
        WSSTEP_ASSIGN_OR_RETURN(bool row, q.Step());
        if (!row) break;
        sealed.emplace_back(q.ColumnText(0), q.ColumnBlob(1));
      }
    }
    WSSTEP_ASSIGN_OR_RETURN(auto put, db_.Prepare("UPDATE secrets SET sealed_value=?, key_id=? "
                                                  "WHERE name_key=?"));
    for (const auto& [name, blob] : sealed) {
      WSSTEP_ASSIGN_OR_RETURN(std::string resealed, reseal(name, blob));
      put.BindBlob(1, resealed).Bind(2, new_key_id).Bind(3, AsciiLower(name));
      WSSTEP_RETURN_IF_ERROR(put.Run());
    }
    return sealed.size();
  }

  Status Commit() override { return tx_.Commit(); }

 private:
  std::unique_lock<std::mutex> lock_;
  Database& db_;
  core::Transaction tx_;  // rolled back by its destructor unless committed
  std::optional<Statement> usage_update_;
  std::optional<Statement> audit_insert_;
};

class SqliteStorage final : public Storage {
 public:
  SqliteStorage(std::string path, bool read_only, std::optional<DataDirLock> lock,
                std::unique_ptr<Database> writer, std::unique_ptr<Database> reader)
      : lock_(std::move(lock)),
        path_(std::move(path)),
        read_only_(read_only),
        writer_(std::move(writer)),
        reader_(std::move(reader)) {}

  bool read_only() const override { return read_only_; }
  const std::string& location() const override { return path_; }

  Result<std::optional<MasterKeyRecord>> ReadMasterKeyRecord() override {
    std::lock_guard lk(reader_mu_);
    WSSTEP_ASSIGN_OR_RETURN(std::optional<std::string> id, ReadMeta(*reader_, kMetaKeyId));
    if (!id) return std::optional<MasterKeyRecord>();
    MasterKeyRecord record;
    record.key_id = std::move(*id);
    WSSTEP_ASSIGN_OR_RETURN(record.check, ReadMeta(*reader_, kMetaKeyCheck));
    return std::optional<MasterKeyRecord>(std::move(record));
  }

  Result<LoadedEntries> LoadEntries() override {
    std::lock_guard lk(reader_mu_);
    return LoadEntryRows(*reader_);
  }

  Result<std::optional<StoredMaterial>> ReadMaterial(std::string_view entry_id) override {
    std::lock_guard lk(reader_mu_);
    return ReadMaterialRow(*reader_, entry_id);
  }

  Result<std::vector<StoredSecret>> ReadSecrets() override {
    std::lock_guard lk(reader_mu_);
    WSSTEP_ASSIGN_OR_RETURN(auto q, reader_->Prepare("SELECT name, username, sealed_value, key_id, "
                                                     "created_at, updated_at FROM secrets "
                                                     "ORDER BY name_key"));
    std::vector<StoredSecret> secrets;
    for (;;) {
      WSSTEP_ASSIGN_OR_RETURN(bool row, q.Step());
      if (!row) break;
      StoredSecret& s = secrets.emplace_back();
      s.name = q.ColumnText(0);
      s.username = q.ColumnText(1);
      s.sealed_value = q.ColumnBlob(2);
      s.key_id = q.ColumnText(3);
      s.created_at = q.ColumnInt64(4);
      s.updated_at = q.ColumnInt64(5);
    }
    return secrets;
  }

  Result<std::vector<AuditEvent>> ReadAudit(const AuditFilter& filter, int64_t before_sequence,
                                            size_t limit) override {
    std::string sql = "SELECT " + std::string(kAuditColumns) + " FROM audit WHERE 1=1";
    std::vector<std::pair<int, std::string>> text_args;
    std::vector<std::pair<int, int64_t>> int_args;
    int n = 0;
    auto text = [&](const char* clause, const std::string& v) {
      sql += clause;
      text_args.emplace_back(++n, v);
    };
    auto integer = [&](const char* clause, int64_t v) {
      sql += clause;
      int_args.emplace_back(++n, v);
    };
    if (!filter.entry_id.empty()) text(" AND entry_id=?", filter.entry_id);
    if (filter.action) text(" AND action=?", std::string(AuditActionName(*filter.action)));
    if (!filter.actor.empty()) text(" AND actor=?", filter.actor);
    if (!filter.step_id.empty()) text(" AND step_id=?", filter.step_id);
    if (!filter.workflow_id.empty()) text(" AND workflow_id=?", filter.workflow_id);
    if (filter.since != 0) integer(" AND at>=?", filter.since);
    if (filter.until != 0) integer(" AND at<?", filter.until);
    if (before_sequence != 0) integer(" AND sequence<?", before_sequence);
    sql += " ORDER BY sequence DESC LIMIT ?";
    int_args.emplace_back(++n, static_cast<int64_t>(limit));

    std::vector<AuditEvent> events;
    std::lock_guard lk(reader_mu_);
    WSSTEP_ASSIGN_OR_RETURN(auto st, reader_->Prepare(sql));
    for (const auto& [i, v] : text_args) st.Bind(i, v);
    for (const auto& [i, v] : int_args) st.Bind(i, v);
    for (;;) {
      WSSTEP_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      events.push_back(ReadAuditRow(st));
    }
    return events;
  }

  Result<std::unique_ptr<Transaction>> Begin() override {
    if (read_only_) {
      return Error(Code::kStorageError, path_ + ": opened read-only; nothing can be written", "",
                   Side::kStore)
          .With("path", path_);
    }
    std::unique_lock lk(writer_mu_);
    WSSTEP_ASSIGN_OR_RETURN(core::Transaction tx, core::Transaction::Begin(*writer_));
    return std::unique_ptr<Transaction>(
        std::make_unique<SqliteTransaction>(std::move(lk), *writer_, std::move(tx)));
  }

 private:
  // Declared first: released after both connections have closed.
  std::optional<DataDirLock> lock_;  // none when read-only
  const std::string path_;
  const bool read_only_;
  // The one write transaction at a time. Held by the open SqliteTransaction.
  std::mutex writer_mu_;
  std::unique_ptr<Database> writer_;  // guarded by writer_mu_
  // Reads: material on an entry's first use, the audit log, startup. Never blocked by a
  // writer's fsync (WAL: readers see the last commit).
  std::mutex reader_mu_;
  std::unique_ptr<Database> reader_;  // guarded by reader_mu_
};

}  // namespace

Result<std::unique_ptr<Storage>> OpenSqliteStorage(const StorageOpenRequest& request) {
  std::string dir = request.data_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const std::string path = dir + "/" + std::string(kSqliteStoreFileName);
  bool read_only = request.read_only;
  // A directory or file we may not write: serve reads, refuse changes.
  if (!read_only && (!Writable(dir) || (FileExists(path) && !Writable(path)))) read_only = true;

  // A read-only store changes nothing, so it takes no lock (a backup or an inspection
  // may read a served store).
  std::optional<DataDirLock> lock;
  if (!read_only) {
    WSSTEP_ASSIGN_OR_RETURN(lock, DataDirLock::Acquire(dir));
  }

  Database::Options db_options;
  db_options.read_only = read_only;
  // Startup reads every entry's metadata; on a cold cache, read the file in order first
  // (core/db.h says why). Not for a file larger than an eighth of the memory.
  const long phys_pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  const uint64_t memory = phys_pages > 0 && page_size > 0
                              ? static_cast<uint64_t>(phys_pages) * static_cast<uint64_t>(page_size)
                              : 0;
  WarmPageCache(path, std::min<uint64_t>(kWarmCacheMaxBytes, memory / 8));
  WSSTEP_ASSIGN_OR_RETURN(std::unique_ptr<Database> writer, Database::Open(path, db_options));
  if (read_only) {
    WSSTEP_ASSIGN_OR_RETURN(int version, writer->SchemaVersion());
    if (version != SqliteStoreSchemaVersion()) {
      return Error(Code::kStorageError,
                   path + ": the store is read-only and its schema (version " +
                       std::to_string(version) + ") is not the one this build uses (" +
                       std::to_string(SqliteStoreSchemaVersion()) + ")",
                   "open it once with write access so it can be upgraded", Side::kStore);
    }
  } else {
    WSSTEP_RETURN_IF_ERROR(writer->Migrate(SqliteStoreMigrations()));
  }
  WSSTEP_ASSIGN_OR_RETURN(std::unique_ptr<Database> reader, Database::Open(path, db_options));
  return std::unique_ptr<Storage>(std::make_unique<SqliteStorage>(
      path, read_only, std::move(lock), std::move(writer), std::move(reader)));
}

}  // namespace wsstep::core

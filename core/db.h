// SQLite, owned: one Database per connection, one Statement per prepared statement, one
// Transaction per BEGIN. Every failure is a STORAGE_ERROR naming the database file and
// carrying SQLite's own message, so "disk full" or "read-only directory" reach the
// administrator as such. Used by the certificate store (core/store/store.h); nothing else in
// wsstep talks to SQLite.
//
//   WSSTEP_ASSIGN_OR_RETURN(auto db, Database::Open(dir + "/store.db", {}));
//   WSSTEP_RETURN_IF_ERROR(db->Migrate(kMigrations));
//   WSSTEP_ASSIGN_OR_RETURN(auto tx, Transaction::Begin(*db));
//   WSSTEP_ASSIGN_OR_RETURN(auto st, db->Prepare("INSERT INTO t(a, b) VALUES (?, ?)"));
//   st.Bind(1, int64_t{7}).Bind(2, "text");
//   WSSTEP_RETURN_IF_ERROR(st.Run());
//   WSSTEP_RETURN_IF_ERROR(tx.Commit());   // destroyed uncommitted: rolled back
//
// Thread safety: a Database and its Statements belong to one thread at a time (the store
// guards each connection with a mutex). Several connections to one file are fine (WAL).
#ifndef WSSTEP_CORE_DB_H_
#define WSSTEP_CORE_DB_H_

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/error.h"

namespace wsstep::core {

struct SqliteCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct SqliteFinalizer {
  void operator()(sqlite3_stmt* st) const { sqlite3_finalize(st); }
};

class Database;

// A prepared statement. Bind* record the first failure and Step()/Run() report it, so
// binds chain without a check after each. Indexes are 1-based for binds (SQLite's "?"
// numbering) and 0-based for columns, as in the SQLite API.
class Statement {
 public:
  Statement(Statement&&) noexcept = default;
  Statement& operator=(Statement&&) noexcept = default;

  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, std::string_view text);  // TEXT; copied by SQLite
  Statement& Bind(int index, const char* text) { return Bind(index, std::string_view(text)); }
  // TEXT, not copied: `text` must stay alive and unchanged until the statement is rebound,
  // reset or destroyed after its next Step()/Run(). For bulk writes (the audit batch).
  Statement& BindUncopied(int index, std::string_view text);
  Statement& BindBlob(int index, std::span<const uint8_t> bytes);  // BLOB; never a secret
  Statement& BindBlob(int index, std::string_view bytes);
  Statement& BindNull(int index);

  // Advances: true when a row is available, false when done. A statement that returned a
  // row keeps a read transaction open (and blocks COMMIT) until it is stepped to the end,
  // Reset() or destroyed.
  Result<bool> Step();
  // Steps to completion (for INSERT/UPDATE/DELETE), then resets for reuse.
  Status Run();
  // Makes the statement runnable again; keeps bindings unless ClearBindings() is called.
  void Reset();
  void ClearBindings();

  int64_t ColumnInt64(int column) const;
  std::string ColumnText(int column) const;           // NULL reads as ""
  std::string ColumnBlob(int column) const;           // NULL reads as ""
  std::string_view ColumnBlobView(int column) const;  // valid until the next Step/Reset
  bool ColumnIsNull(int column) const;

 private:
  friend class Database;
  Statement(Database* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  void NoteBind(int rc, int index);

  Database* db_;
  std::unique_ptr<sqlite3_stmt, SqliteFinalizer> stmt_;
  std::optional<Error> bind_error_;
};

// One schema step: applied once, in its own transaction, in increasing version order.
struct Migration {
  int version;
  std::string_view sql;  // one or more statements
};

class Database {
 public:
  struct Options {
    // Open without write access (a read-only data directory or file system). Writes then
    // fail with STORAGE_ERROR; reads work.
    bool read_only = false;
    int busy_timeout_ms = 5000;
  };

  // Opens (creating when absent and not read-only) the database file at `path`. A new
  // file is created with mode 0600 before SQLite sees it; SQLite gives its -wal and -shm
  // companions the same mode. Applies journal_mode=WAL, synchronous=FULL (a committed
  // transaction survives power loss), foreign_keys=ON, secure_delete=ON, busy_timeout.
  // The directory must exist.
  static Result<std::unique_ptr<Database>> Open(const std::string& path, const Options& options);
  ~Database();

  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs one or more statements that return no rows.
  Status Exec(std::string_view sql);
  Result<Statement> Prepare(std::string_view sql);

  // Creates `schema_version` if needed and applies every migration newer than the
  // recorded version, each in one transaction. A database written by a newer schema
  // than `migrations` knows is refused. Migrations must be sorted by version.
  Status Migrate(std::span<const Migration> migrations);
  // 0 for a database without migrations.
  Result<int> SchemaVersion();

  int64_t LastInsertRowId() const;
  int Changes() const;  // rows changed by the last statement
  bool read_only() const { return read_only_; }
  const std::string& path() const { return path_; }
  sqlite3* handle() const { return db_.get(); }

  // STORAGE_ERROR "<path>: <what>: <sqlite message>" with a hint matching the cause
  // (disk full, read-only, corrupt, locked).
  Error StorageError(std::string_view what) const;
  Error StorageError(std::string_view what, int rc) const;

 private:
  Database(std::string path, sqlite3* db, bool read_only)
      : path_(std::move(path)), db_(db), read_only_(read_only) {}

  std::string path_;
  std::unique_ptr<sqlite3, SqliteCloser> db_;
  bool read_only_;
};

// Brings the file at `path` into the page cache with large sequential reads of whatever
// parts of it are not there yet, when it is at most `max_bytes` long; returns the bytes it
// read (0 when the file was already cached, absent, or too long). Why: SQLite reads a
// b-tree one page at a time, and the tables a store loads when it opens lie interleaved
// with key material all over the file, so on a cold cache those reads are scattered and
// each waits for the disk (100,000 certificates: 1.7-1.9 s cold, where reading the whole
// 180 MB file in order takes 0.11 s and the open after it 0.65 s).
uint64_t WarmPageCache(const std::string& path, uint64_t max_bytes);

// BEGIN ... COMMIT, rolled back by the destructor unless Commit() succeeded. IMMEDIATE
// (the default) takes the write lock at BEGIN, so a writer never fails half-way for
// lock reasons; DEFERRED suits read-only transactions (a consistent multi-query read).
class Transaction {
 public:
  enum class Mode { kImmediate, kDeferred };
  static Result<Transaction> Begin(Database& db, Mode mode = Mode::kImmediate);
  Transaction(Transaction&& other) noexcept : db_(other.db_) { other.db_ = nullptr; }
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction();

  Status Commit();

 private:
  explicit Transaction(Database* db) : db_(db) {}
  Database* db_;  // null once committed or rolled back
};

// mkdir -p with mode 0700 for the directories it creates. Existing directories are
// left as they are. STORAGE_ERROR naming the directory on failure.
Status EnsurePrivateDirectory(const std::string& path);

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_DB_H_

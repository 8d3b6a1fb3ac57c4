#include "core/db.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace wsstep::core {
namespace {

constexpr const char* kDiskFullHint =
    "free space on the disk holding the data directory, or raise the file-size limit "
    "(ulimit -f) of the plugin's user, then retry";

// SQLite reports a write that hit ENOSPC or EFBIG either as SQLITE_FULL or as a generic
// "disk I/O error"; both mean the same to an administrator.
bool IsDiskFull(int rc, int system_errno) {
  if ((rc & 0xff) == SQLITE_FULL) return true;
  return (rc & 0xff) == SQLITE_IOERR && (system_errno == ENOSPC || system_errno == EFBIG);
}

std::string HintFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return kDiskFullHint;
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return "the data directory or database file is read-only; make it writable by the "
             "plugin's user, or use the store read-only";
    case SQLITE_CANTOPEN:
      return "check that the data directory exists and is accessible to the plugin's user";
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return "the database file is damaged or not a wsstep store; restore it from a backup";
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return "another process holds the store open for writing; run one plugin per data "
             "directory";
    case SQLITE_IOERR:
      return "the operating system reported an I/O error on the data directory";
    default:
      return "";
  }
}

// SQLite URI filenames treat '?', '#' and '%' specially.
std::string UriPath(const std::string& path) {
  std::string out = "file:";
  for (char c : path) {
    if (c == '?' || c == '#' || c == '%') {
      static constexpr char kHex[] = "0123456789ABCDEF";
      out += '%';
      out += kHex[(static_cast<unsigned char>(c) >> 4) & 0xf];
      out += kHex[static_cast<unsigned char>(c) & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

Error OpenError(const std::string& path, std::string_view what, int rc, std::string msg) {
  return Error(Code::kStorageError, path + ": " + std::string(what) + ": " + msg, HintFor(rc),
               Side::kStore);
}

}  // namespace

// ---- Statement ----

void Statement::NoteBind(int rc, int index) {
  if (rc != SQLITE_OK && !bind_error_) {
    bind_error_ = db_->StorageError("binding parameter " + std::to_string(index), rc);
  }
}

Statement& Statement::Bind(int index, int64_t value) {
  NoteBind(sqlite3_bind_int64(stmt_.get(), index, value), index);
  return *this;
}

Statement& Statement::Bind(int index, std::string_view text) {
  NoteBind(sqlite3_bind_text64(stmt_.get(), index, text.data(), text.size(), SQLITE_TRANSIENT,
                               SQLITE_UTF8),
           index);
  return *this;
}

Statement& Statement::BindUncopied(int index, std::string_view text) {
  static const char kEmpty = 0;  // a null pointer would bind NULL
  NoteBind(sqlite3_bind_text64(stmt_.get(), index, text.empty() ? &kEmpty : text.data(),
                               text.size(), SQLITE_STATIC, SQLITE_UTF8),
           index);
  return *this;
}

Statement& Statement::BindBlob(int index, std::span<const uint8_t> bytes) {
  // A zero-length blob with a null pointer would bind NULL; keep it a blob.
  static const uint8_t kEmpty = 0;
  const void* data = bytes.empty() ? &kEmpty : bytes.data();
  NoteBind(sqlite3_bind_blob64(stmt_.get(), index, data, bytes.size(), SQLITE_TRANSIENT), index);
  return *this;
}

Statement& Statement::BindBlob(int index, std::string_view bytes) {
  return BindBlob(index, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()),
                                                  bytes.size()));
}

Statement& Statement::BindNull(int index) {
  NoteBind(sqlite3_bind_null(stmt_.get(), index), index);
  return *this;
}

Result<bool> Statement::Step() {
  if (bind_error_) return *bind_error_;
  int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  Error e = db_->StorageError(
      "running \"" + std::string(sqlite3_sql(stmt_.get())).substr(0, 60) + "\"", rc);
  sqlite3_reset(stmt_.get());
  return e;
}

Status Statement::Run() {
  for (;;) {
    WSSTEP_ASSIGN_OR_RETURN(bool row, Step());
    if (!row) break;
  }
  Reset();
  return {};
}

void Statement::Reset() { sqlite3_reset(stmt_.get()); }

void Statement::ClearBindings() {
  sqlite3_clear_bindings(stmt_.get());
  bind_error_.reset();
}

int64_t Statement::ColumnInt64(int column) const {
  return sqlite3_column_int64(stmt_.get(), column);
}

std::string Statement::ColumnText(int column) const {
  const unsigned char* p = sqlite3_column_text(stmt_.get(), column);
  if (p == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(p),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_.get(), column)));
}

std::string Statement::ColumnBlob(int column) const { return std::string(ColumnBlobView(column)); }

std::string_view Statement::ColumnBlobView(int column) const {
  const void* p = sqlite3_column_blob(stmt_.get(), column);
  if (p == nullptr) return {};
  return {static_cast<const char*>(p),
          static_cast<size_t>(sqlite3_column_bytes(stmt_.get(), column))};
}

bool Statement::ColumnIsNull(int column) const {
  return sqlite3_column_type(stmt_.get(), column) == SQLITE_NULL;
}

// ---- page cache ----

uint64_t WarmPageCache(const std::string& path, uint64_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  uint64_t read_bytes = 0;
  struct stat st {};
  const long page = ::sysconf(_SC_PAGESIZE);
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
      static_cast<uint64_t>(st.st_size) <= max_bytes && page > 0) {
    const auto size = static_cast<size_t>(st.st_size);
    const size_t pages = (size + page - 1) / page;
    // Which pages are cached already: mincore on a mapping reads the page cache's state
    // without faulting anything in.
    std::vector<unsigned char> resident(pages, 0);
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    if (map != MAP_FAILED) {
      if (::mincore(map, size, resident.data()) != 0) std::fill(resident.begin(), resident.end(), 0);
      ::munmap(map, size);
    }
    constexpr size_t kChunk = 1u << 20;
    std::vector<char> buf(kChunk);
    for (size_t p = 0; p < pages;) {
      if (resident[p] & 1) {
        ++p;
        continue;
      }
      size_t end = p;
      while (end < pages && !(resident[end] & 1)) ++end;
      // pread the run [p, end) in order, a chunk at a time.
      for (uint64_t off = uint64_t{p} * page, stop = std::min<uint64_t>(uint64_t{end} * page, size);
           off < stop;) {
        const ssize_t n = ::pread(fd, buf.data(), std::min<uint64_t>(kChunk, stop - off),
                                  static_cast<off_t>(off));
        if (n <= 0) break;
        off += static_cast<uint64_t>(n);
        read_bytes += static_cast<uint64_t>(n);
      }
      p = end;
    }
  }
  ::close(fd);
  return read_bytes;
}

// ---- Database ----

Result<std::unique_ptr<Database>> Database::Open(const std::string& path, const Options& options) {
  int flags = SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX;
  std::string uri = UriPath(path);
  if (options.read_only) {
    flags |= SQLITE_OPEN_READONLY;
    if (!FileExists(path)) {
      return Error(Code::kStorageError, path + ": the database file does not exist",
                   "the store is read-only, so it cannot be created", Side::kStore);
    }
    // Without a -wal file there is nothing uncheckpointed, and SQLite could not create
    // the -shm index in a read-only directory: open the file as immutable.
    uri += FileExists(path + "-wal") ? "?mode=ro" : "?immutable=1";
  } else {
    flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (!FileExists(path)) {
      // Create it 0600 ourselves: SQLite would use the umask, and gives -wal/-shm the
      // mode of the main file.
      int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (fd < 0 && errno != EEXIST) {
        int err = errno;
        return Error(Code::kStorageError,
                     path + ": cannot create the database file: " + std::strerror(err),
                     err == ENOSPC ? HintFor(SQLITE_FULL)
                                   : (err == EROFS || err == EACCES ? HintFor(SQLITE_READONLY)
                                                                    : HintFor(SQLITE_CANTOPEN)),
                     Side::kStore);
      }
      if (fd >= 0) ::close(fd);
    }
  }

  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(uri.c_str(), &raw, flags, nullptr);
  std::unique_ptr<sqlite3, SqliteCloser> owned(raw);
  if (rc != SQLITE_OK) {
    std::string msg = raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    return OpenError(path, "cannot open the database", rc, msg);
  }
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, options.busy_timeout_ms);
  std::unique_ptr<Database> db(new Database(path, owned.release(), options.read_only));

  // Fail early on a file that is not a database: the first read of the schema does it.
  WSSTEP_RETURN_IF_ERROR(db->Exec("PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON;"));
  if (!options.read_only) {
    WSSTEP_ASSIGN_OR_RETURN(auto mode, db->Prepare("PRAGMA journal_mode=WAL"));
    WSSTEP_ASSIGN_OR_RETURN(bool row, mode.Step());
    if (!row || mode.ColumnText(0) != "wal") {
      return db->StorageError("cannot switch the database to WAL journal mode");
    }
  }
  WSSTEP_RETURN_IF_ERROR(db->Exec("PRAGMA synchronous=FULL;"));
  return db;
}

Database::~Database() = default;

Error Database::StorageError(std::string_view what) const {
  return StorageError(what, sqlite3_extended_errcode(db_.get()));
}

Error Database::StorageError(std::string_view what, int rc) const {
  // SQLite does not always record the system errno of a failed write (a WAL append that
  // hit EFBIG reports 0), but errno still holds it right after the failing call.
  const int saved_errno = errno;
  const int system_errno = sqlite3_system_errno(db_.get());
  std::string msg = sqlite3_errmsg(db_.get());
  // sqlite3_errmsg describes the most recent API call; a bind or a reset may have
  // replaced a more specific message, so fall back to the code's text.
  if (msg.empty() || msg == "not an error") msg = sqlite3_errstr(rc);
  if (IsDiskFull(rc, system_errno != 0 ? system_errno : saved_errno)) {
    Error e(Code::kStorageError,
            path_ + ": " + std::string(what) +
                ": the disk is full or a file-size limit was reached (" + msg + ")",
            kDiskFullHint, Side::kStore);
    e.With("path", path_).With("sqlite_code", std::to_string(rc));
    return e;
  }
  Error e = OpenError(path_, what, rc, msg);
  e.With("path", path_).With("sqlite_code", std::to_string(rc));
  return e;
}

Status Database::Exec(std::string_view sql) {
  std::string text(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db_.get(), text.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    const int saved_errno = errno;
    std::string msg = err != nullptr ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    if (IsDiskFull(rc, sqlite3_system_errno(db_.get())) || (rc & 0xff) == SQLITE_IOERR) {
      errno = saved_errno;
      return StorageError("running \"" + text.substr(0, 60) + "\"", rc);
    }
    Error e = OpenError(path_, "running \"" + text.substr(0, 60) + "\"", rc, msg);
    e.With("path", path_).With("sqlite_code", std::to_string(rc));
    return e;
  }
  return {};
}

Result<Statement> Database::Prepare(std::string_view sql) {
  sqlite3_stmt* st = nullptr;
  int rc = sqlite3_prepare_v2(db_.get(), sql.data(), static_cast<int>(sql.size()), &st, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(st);
    return StorageError("preparing \"" + std::string(sql.substr(0, 60)) + "\"", rc);
  }
  return Statement(this, st);
}

Result<int> Database::SchemaVersion() {
  WSSTEP_ASSIGN_OR_RETURN(
      auto exists,
      Prepare("SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'"));
  WSSTEP_ASSIGN_OR_RETURN(bool has_table, exists.Step());
  if (!has_table) return 0;
  WSSTEP_ASSIGN_OR_RETURN(auto st, Prepare("SELECT COALESCE(MAX(version), 0) FROM schema_version"));
  WSSTEP_ASSIGN_OR_RETURN(bool row, st.Step());
  return row ? static_cast<int>(st.ColumnInt64(0)) : 0;
}

Status Database::Migrate(std::span<const Migration> migrations) {
  WSSTEP_ASSIGN_OR_RETURN(int current, SchemaVersion());
  int newest = migrations.empty() ? 0 : migrations.back().version;
  if (current > newest) {
    return Error(Code::kStorageError,
                 path_ + ": the store was written by a newer wsstep (schema version " +
                     std::to_string(current) + "; this build knows up to " +
                     std::to_string(newest) + ")",
                 "run the newer wsstep, or restore a backup made by this version", Side::kStore);
  }
  for (const Migration& m : migrations) {
    if (m.version <= current) continue;
    WSSTEP_ASSIGN_OR_RETURN(auto tx, Transaction::Begin(*this));
    WSSTEP_RETURN_IF_ERROR(
        Exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
             "applied_at INTEGER NOT NULL)"));
    WSSTEP_RETURN_IF_ERROR(Exec(m.sql));
    WSSTEP_ASSIGN_OR_RETURN(auto rec, Prepare("INSERT INTO schema_version(version, applied_at) "
                                              "VALUES (?, CAST(strftime('%s','now') AS INTEGER))"));
    rec.Bind(1, int64_t{m.version});
    WSSTEP_RETURN_IF_ERROR(rec.Run());
    WSSTEP_RETURN_IF_ERROR(tx.Commit());
    current = m.version;
  }
  return {};
}

int64_t Database::LastInsertRowId() const { return sqlite3_last_insert_rowid(db_.get()); }
int Database::Changes() const { return sqlite3_changes(db_.get()); }

// ---- Transaction ----

Result<Transaction> Transaction::Begin(Database& db, Mode mode) {
  WSSTEP_RETURN_IF_ERROR(db.Exec(mode == Mode::kImmediate ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED"));
  return Transaction(&db);
}

Transaction::~Transaction() {
  if (db_ != nullptr && !sqlite3_get_autocommit(db_->handle())) {
    // Best effort: a failed COMMIT may already have rolled back.
    sqlite3_exec(db_->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

Status Transaction::Commit() {
  if (db_ == nullptr) {
    return Error(Code::kInternal, "transaction already finished");
  }
  Status st = db_->Exec("COMMIT");
  if (!st.ok()) return st;  // the destructor rolls back what is left
  db_ = nullptr;
  return {};
}

// ---- Directories ----

Status EnsurePrivateDirectory(const std::string& path) {
  if (path.empty()) {
    return Error(Code::kInvalidArgument, "the data directory is empty",
                 "set the data directory (flag, environment or configuration file)",
                 Side::kConfiguration);
  }
  std::string prefix;
  size_t pos = 0;
  while (pos != std::string::npos) {
    size_t next = path.find('/', pos + 1);
    prefix = path.substr(0, next);
    pos = next;
    if (prefix.empty() || prefix == "/") continue;
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
      int err = errno;
      return Error(Code::kStorageError,
                   prefix + ": cannot create the data directory: " + std::strerror(err),
                   "create it, or choose a directory the plugin's user may write", Side::kStore);
    }
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Error(Code::kStorageError, path + ": not a directory",
                 "choose a directory for the data directory", Side::kStore);
  }
  return {};
}

}  // namespace wsstep::core

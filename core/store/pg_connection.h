// The PostgreSQL backend's connection layer (core/store/pg_storage.h): libpq handles owned
// by RAII types, statement parameters and result rows, a connection that reconnects by
// itself after the server went away, and the `meta` table's reads and writes. Internal to
// the store; pg_schema.h and pg_storage.cc build on it.
//
//   WSSTEP_ASSIGN_OR_RETURN(pg::Connection c, pg::Connection::Open(conninfo, location, "wsstep"));
//   WSSTEP_ASSIGN_OR_RETURN(pg::ResultPtr r,
//                           c.RunFirst("SELECT name FROM secrets WHERE name_key=$1",
//                                      pg::Params().Text(key)));
//   for (int i = 0; i < PQntuples(r.get()); ++i) use(pg::Row(r.get(), i).Text(0));
//
// Errors: STORAGE_ERROR naming `location` with the server's message (and detail sqlstate,
// constraint); STORAGE_UNAVAILABLE while the connection is broken and not yet reset.
// Thread safety: a Connection is used by one thread at a time (its owner's lock).
#ifndef WSSTEP_CORE_STORE_PG_CONNECTION_H_
#define WSSTEP_CORE_STORE_PG_CONNECTION_H_

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"

namespace wsstep::core::pg {

// Reconnection attempts after a lost connection are at least this far apart, doubling
// up to the maximum.
inline constexpr std::chrono::milliseconds kFirstRetryDelay{100};
inline constexpr std::chrono::milliseconds kMaxRetryDelay{2000};

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

// STORAGE_ERROR naming `location`, with `what` (the server's message) trimmed.
Error StorageError(const std::string& location, const std::string& what);
// STORAGE_UNAVAILABLE: the database at `location` cannot be reached now.
Error Unavailable(const std::string& location, const std::string& what);

// One libpq connection and what runs on it. A connection that breaks (the server
// restarted, the network went away) is reset on a later use, at most once per back-off
// delay; until then its statements fail with STORAGE_UNAVAILABLE.
class Connection {
 public:
  Connection(ConnPtr conn, std::string location)
      : conn_(std::move(conn)), location_(std::move(location)) {}

  static Result<Connection> Open(const std::string& conninfo, const std::string& location,
                                 const std::string& application_name);

  bool broken() const { return PQstatus(conn_.get()) != CONNECTION_OK; }
  PGconn* raw() { return conn_.get(); }

  // Makes a broken connection usable again, or says why it is not (STORAGE_UNAVAILABLE).
  // Sets `*reset` when it reconnected.
  Status Ready(bool* reset = nullptr);

  // Runs `sql`; the result of a statement that returns rows or completes.
  Result<ResultPtr> Run(const std::string& sql, Params params = {});
  Status Exec(const std::string& sql, Params params = {}) {
    auto r = Run(sql, std::move(params));
    if (!r.ok()) return r.error();
    return {};
  }
  // The first statement of a unit of work: on a connection found broken only now (the
  // server restarted since its last use), reconnects once and runs it again.
  Result<ResultPtr> RunFirst(const std::string& sql, const Params& params = {});

  // Several statements without parameters (the schema).
  Status ExecScript(const char* sql);

 private:
  ConnPtr conn_;
  std::string location_;
  std::chrono::milliseconds delay_ = kFirstRetryDelay / 2;
  std::chrono::steady_clock::time_point next_attempt_{};
};

// The `meta` table: a value by key (nullopt: none), and an upsert.
Result<std::optional<std::string>> ReadMeta(Connection& c, std::string_view key);
Status WriteMeta(Connection& c, std::string_view key, std::string_view value);

}  // namespace wsstep::core::pg

#endif  // WSSTEP_CORE_STORE_PG_CONNECTION_H_

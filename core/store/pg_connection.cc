#include "core/store/pg_connection.h"

#include <algorithm>
#include <utility>

namespace wsstep::core::pg {
namespace {

// libpq's messages end in a newline.
std::string Trimmed(std::string msg) {
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  return msg;
}

}  // namespace

Error StorageError(const std::string& location, const std::string& what) {
  return Error(Code::kStorageError, location + ": " + Trimmed(what),
               "check that the PostgreSQL server is reachable and the login may use the "
               "database",
               Side::kStore)
      .With("location", location);
}

Error Unavailable(const std::string& location, const std::string& what) {
  return Error(Code::kStorageUnavailable,
               location + ": the database cannot be reached (" + Trimmed(what) + ")",
               "nothing was changed; steps go on with this plugin's copy of the store, and the "
               "plugin reconnects by itself: retry when the database is back",
               Side::kStore)
      .With("location", location);
}

Result<Connection> Connection::Open(const std::string& conninfo, const std::string& location,
                                    const std::string& application_name) {
  // The string's own settings win over the defaults before it; the application name
  // after it names this plugin in pg_stat_activity. Keepalives notice a silent peer.
  const char* keys[] = {"connect_timeout",
                        "keepalives_idle",
                        "keepalives_interval",
                        "keepalives_count",
                        "dbname",
                        "application_name",
                        nullptr};
  const char* values[] = {"10",   "10", "5", "3", conninfo.c_str(), application_name.c_str(),
                          nullptr};
  ConnPtr conn(PQconnectdbParams(keys, values, /*expand_dbname=*/1));
  if (!conn) return StorageError(location, "cannot allocate a connection");
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return StorageError(location, std::string("cannot connect: ") + PQerrorMessage(conn.get()));
  }
  // The server's notices ("relation ... already exists, skipping") are not for the
  // plugin's log, whose every line is one JSON object.
  PQsetNoticeProcessor(
      conn.get(), [](void*, const char*) {}, nullptr);
  return Connection(std::move(conn), location);
}

Status Connection::Ready(bool* reset) {
  if (!broken()) return {};
  const auto now = std::chrono::steady_clock::now();
  if (now < next_attempt_) return Unavailable(location_, "reconnecting");
  PQreset(conn_.get());
  if (broken()) {
    delay_ = std::min(kMaxRetryDelay, delay_ * 2);
    next_attempt_ = std::chrono::steady_clock::now() + delay_;
    return Unavailable(location_, PQerrorMessage(conn_.get()));
  }
  delay_ = kFirstRetryDelay / 2;
  next_attempt_ = {};
  if (reset != nullptr) *reset = true;
  return {};
}

Result<ResultPtr> Connection::Run(const std::string& sql, Params params) {
  ResultPtr r(PQexecParams(conn_.get(), sql.c_str(), params.size(), nullptr, params.values(),
                           params.lengths(), params.formats(), /*resultFormat=*/0));
  const ExecStatusType status = PQresultStatus(r.get());
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return r;
  if (broken()) return Unavailable(location_, PQerrorMessage(conn_.get()));
  const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
  Error e = StorageError(location_, PQresultErrorMessage(r.get()));
  if (state != nullptr) e.detail["sqlstate"] = state;
  const char* constraint = PQresultErrorField(r.get(), PG_DIAG_CONSTRAINT_NAME);
  if (constraint != nullptr) e.detail["constraint"] = constraint;
  return e;
}

Result<ResultPtr> Connection::RunFirst(const std::string& sql, const Params& params) {
  WSSTEP_RETURN_IF_ERROR(Ready());
  auto r = Run(sql, params);
  if (r.ok() || r.error().code != Code::kStorageUnavailable) return r;
  next_attempt_ = {};
  WSSTEP_RETURN_IF_ERROR(Ready());
  return Run(sql, params);
}

Status Connection::ExecScript(const char* sql) {
  ResultPtr r(PQexec(conn_.get(), sql));
  const ExecStatusType status = PQresultStatus(r.get());
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return {};
  return StorageError(location_, PQresultErrorMessage(r.get()));
}

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

}  // namespace wsstep::core::pg

#include "tests/support/postgres.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>

#include "tests/support/process.h"

namespace wsstep::testing {
namespace {

std::string ReadTrimmed(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

struct ConnCloser {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct ResultClearer {
  void operator()(PGresult* r) const { PQclear(r); }
};

// Replaces dbname=... in a keyword/value connection string.
std::string WithDatabase(const std::string& conninfo, const std::string& db) {
  const size_t at = conninfo.find("dbname=");
  if (at == std::string::npos) return conninfo + " dbname=" + db;
  const size_t end = conninfo.find(' ', at);
  return conninfo.substr(0, at) + "dbname=" + db +
         (end == std::string::npos ? "" : conninfo.substr(end));
}

}  // namespace

std::optional<std::string> SharedPostgres(std::string* why) {
  const std::string conninfo = ReadTrimmed(std::string(WSSTEP_TEST_POSTGRES_DIR) + "/conninfo");
  if (conninfo.empty()) {
    if (why != nullptr) {
      *why = std::string(WSSTEP_TEST_POSTGRES_DIR) +
             "/conninfo is missing: the postgres_start fixture did not run (run tests through "
             "ctest) or failed (its output says why)";
    }
    return std::nullopt;
  }
  if (PQping(conninfo.c_str()) != PQPING_OK) {
    if (why != nullptr) *why = "the shared PostgreSQL at '" + conninfo + "' does not answer";
    return std::nullopt;
  }
  return conninfo;
}

uint16_t SharedPostgresTcpPort() {
  const std::string port = ReadTrimmed(std::string(WSSTEP_TEST_POSTGRES_DIR) + "/tcp_port");
  return port.empty() ? 0 : static_cast<uint16_t>(std::stoi(port));
}

std::string PostgresExec(const std::string& conninfo, const std::string& sql) {
  std::unique_ptr<PGconn, ConnCloser> conn(PQconnectdb(conninfo.c_str()));
  if (PQstatus(conn.get()) != CONNECTION_OK) return PQerrorMessage(conn.get());
  std::unique_ptr<PGresult, ResultClearer> r(PQexec(conn.get(), sql.c_str()));
  const ExecStatusType status = PQresultStatus(r.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    return PQresultErrorMessage(r.get());
  }
  return "";
}

ScratchDatabase::ScratchDatabase() {
  std::string why;
  auto shared = SharedPostgres(&why);
  if (!shared) {
    error_ = why;
    return;
  }
  admin_ = *shared;
  static std::atomic<int> counter{0};
  name_ = "wsstep_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
  error_ = PostgresExec(admin_, "CREATE DATABASE " + name_);
  if (!error_.empty()) error_ = "CREATE DATABASE " + name_ + ": " + error_;
  conninfo_ = WithDatabase(admin_, name_);
}

ScratchDatabase::~ScratchDatabase() {
  if (name_.empty() || admin_.empty()) return;
  // WITH (FORCE) ends the connections a test left open (PostgreSQL 13+).
  (void)PostgresExec(admin_, "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
}

PrivatePostgres::PrivatePostgres() {
  char dir[] = "/tmp/wsstep-pgstate.XXXXXX";
  if (::mkdtemp(dir) == nullptr) {
    error_ = "mkdtemp failed";
    return;
  }
  state_ = dir;
  error_ = Run("start");
  if (error_.empty()) conninfo_ = ReadTrimmed(state_ + "/conninfo");
}

PrivatePostgres::~PrivatePostgres() {
  if (state_.empty()) return;
  (void)Run("stop");
  (void)RunCommand({"rm", "-rf", state_});
}

std::string PrivatePostgres::Pause() { return Run("pause"); }
std::string PrivatePostgres::Resume() { return Run("resume"); }

std::string PrivatePostgres::Run(const char* command) {
  CommandResult r =
      RunCommand({"bash", std::string(WSSTEP_SOURCE_DIR) + "/tests/support/postgres_fixture.sh",
                  command, state_},
                 {}, std::chrono::seconds(60));
  if (r.exit_code == 0) return "";
  return std::string("postgres_fixture.sh ") + command + " failed: " + r.output;
}

}  // namespace wsstep::testing

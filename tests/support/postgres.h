// The PostgreSQL 15 server the test suite shares: started once per ctest run by the
// postgres_start fixture (tests/support/postgres_fixture.sh), reached here through the
// files it leaves in WSSTEP_TEST_POSTGRES_DIR. Tests that need a clean database make their
// own scratch database and drop it.
//
//   testing::ScratchDatabase db;                       // CREATE DATABASE wsstep_test_<n>
//   ASSERT_TRUE(db.ok()) << db.error();
//   OpenWith(db.conninfo());                           // "host=/tmp/wsstep-pg.X port=...
//   dbname=..."
#ifndef WSSTEP_TESTS_SUPPORT_POSTGRES_H_
#define WSSTEP_TESTS_SUPPORT_POSTGRES_H_

#include <cstdint>
#include <optional>
#include <string>

namespace wsstep::testing {

// The shared server's connection string (the `postgres` database, superuser), or nullopt
// with `why` set when the fixture has not run or the server is not answering.
std::optional<std::string> SharedPostgres(std::string* why = nullptr);
// Its loopback TCP port; 0 if unknown.
uint16_t SharedPostgresTcpPort();

// Runs one SQL statement on `conninfo`; "" on success, else the server's message.
std::string PostgresExec(const std::string& conninfo, const std::string& sql);

// A fresh, empty database on the shared server for one test, dropped (with its
// connections ended) when destroyed.
class ScratchDatabase {
 public:
  ScratchDatabase();
  ~ScratchDatabase();
  ScratchDatabase(const ScratchDatabase&) = delete;
  ScratchDatabase& operator=(const ScratchDatabase&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& name() const { return name_; }
  // The libpq connection string of this database (unix socket).
  const std::string& conninfo() const { return conninfo_; }

 private:
  std::string admin_;  // the shared server's `postgres` database
  std::string name_;
  std::string conninfo_;
  std::string error_;
};

// A PostgreSQL server of one test's own (tests/support/postgres_fixture.sh in a temporary
// state directory), for tests that take the database away and bring it back. Starting
// one takes about 1.5 s; prefer ScratchDatabase.
//
//   PrivatePostgres pg;
//   ASSERT_TRUE(pg.ok()) << pg.error();
//   ... pg.conninfo() ...
//   ASSERT_EQ(pg.Pause(), "");    // the server stops; connections break
//   ASSERT_EQ(pg.Resume(), "");   // back, same address, same data
class PrivatePostgres {
 public:
  PrivatePostgres();
  ~PrivatePostgres();  // stops the server and removes everything
  PrivatePostgres(const PrivatePostgres&) = delete;
  PrivatePostgres& operator=(const PrivatePostgres&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  // The `postgres` database as superuser `wsstep`, over the unix socket.
  const std::string& conninfo() const { return conninfo_; }

  // "" on success, else what went wrong.
  std::string Pause();
  std::string Resume();

 private:
  std::string Run(const char* command);
  std::string state_;
  std::string conninfo_;
  std::string error_;
};

}  // namespace wsstep::testing

#endif  // WSSTEP_TESTS_SUPPORT_POSTGRES_H_

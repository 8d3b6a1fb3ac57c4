// The shared PostgreSQL fixture: a real PostgreSQL 15, reachable on its unix socket and
// on loopback TCP, with scratch databases that come and go.
#include "tests/support/postgres.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>

namespace wsstep::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(PostgresFixtureTest, TheSharedServerIsARealPostgres15OnAUnixSocketAndLoopback) {
  std::string why;
  const auto conninfo = SharedPostgres(&why);
  ASSERT_TRUE(conninfo.has_value()) << why;
  EXPECT_THAT(*conninfo, StartsWith("host=/tmp/wsstep-pg."));
  PGconn* conn = PQconnectdb(conninfo->c_str());
  ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
  EXPECT_EQ(PQserverVersion(conn) / 10000, 15);
  PQfinish(conn);

  ASSERT_NE(SharedPostgresTcpPort(), 0);
  const std::string tcp = "host=127.0.0.1 port=" + std::to_string(SharedPostgresTcpPort()) +
                          " user=wsstep dbname=postgres";
  EXPECT_EQ(PostgresExec(tcp, "SELECT 1"), "");
}

TEST(PostgresFixtureTest, AScratchDatabaseIsEmptyAndGoneAfterwards) {
  std::string name;
  {
    ScratchDatabase db;
    ASSERT_TRUE(db.ok()) << db.error();
    name = db.name();
    EXPECT_EQ(PostgresExec(db.conninfo(), "CREATE TABLE t (x int); INSERT INTO t VALUES (1)"), "");
    // Left open on purpose: the drop must end it.
    PGconn* open = PQconnectdb(db.conninfo().c_str());
    ASSERT_EQ(PQstatus(open), CONNECTION_OK) << PQerrorMessage(open);
    ScratchDatabase other;
    ASSERT_TRUE(other.ok()) << other.error();
    EXPECT_NE(other.name(), name);
    EXPECT_THAT(PostgresExec(other.conninfo(), "SELECT x FROM t"),
                HasSubstr("relation \"t\" does not exist"));
    PQfinish(open);
  }
  const auto admin = SharedPostgres();
  ASSERT_TRUE(admin.has_value());
  EXPECT_THAT(PostgresExec(*admin + " dbname=" + name, "SELECT 1"),
              HasSubstr("database \"" + name + "\" does not exist"));
}

}  // namespace
}  // namespace wsstep::testing

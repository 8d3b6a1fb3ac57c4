// The PostgreSQL backend's own contract, beyond the store suite it shares with SQLite
// (core/store/store_test.cc, Backends/StoreTest.*/Postgres): one plugin per database,
// schema versions, and errors that name the database and never the password.
#include "core/store/pg_storage.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "tests/support/postgres.h"

namespace wsstep::core {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::wsstep::testing::ScratchDatabase;

Result<std::unique_ptr<Storage>> OpenPg(const std::string& conninfo) {
  return PostgresStorageFactory(conninfo)({"/nonexistent-data-dir", false});
}

TEST(PgStorageTest, ASecondPluginOnTheDatabaseIsRefusedNamingTheFirst) {
  ScratchDatabase db;
  ASSERT_TRUE(db.ok()) << db.error();
  auto first = OpenPg(db.conninfo());
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = OpenPg(db.conninfo());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, Code::kStorageError);
  EXPECT_EQ(second.error().side, Side::kStore);
  EXPECT_THAT(
      second.error().message,
      HasSubstr("/" + db.name() + ": the database is in use by another wsstep plugin (wsstep pid " +
                std::to_string(::getpid()) + " on "));
  first->reset();  // the session ends, and its lock with it
  auto third = OpenPg(db.conninfo());
  EXPECT_TRUE(third.ok()) << third.status().ToString();
}

TEST(PgStorageTest, ADatabaseWithANewerSchemaIsRefused) {
  ScratchDatabase db;
  ASSERT_TRUE(db.ok()) << db.error();
  { ASSERT_TRUE(OpenPg(db.conninfo()).ok()); }
  ASSERT_EQ(::wsstep::testing::PostgresExec(
                db.conninfo(),
                "UPDATE meta SET value=convert_to('7', 'UTF8') WHERE key='schema_version'"),
            "");
  auto newer = OpenPg(db.conninfo());
  ASSERT_FALSE(newer.ok());
  EXPECT_EQ(newer.error().code, Code::kStorageError);
  EXPECT_THAT(newer.error().message,
              HasSubstr("/" + db.name() +
                        ": the database holds a wsstep store of schema version 7, newer than "
                        "this build's (1)"));
}

TEST(PgStorageTest, ALoopbackUriWorksAndErrorsNameTheDatabaseNotThePassword) {
  ScratchDatabase db;
  ASSERT_TRUE(db.ok()) << db.error();
  const std::string port = std::to_string(::wsstep::testing::SharedPostgresTcpPort());
  const std::string uri = "postgresql://wsstep@127.0.0.1:" + port + "/" + db.name();
  EXPECT_EQ(PostgresLocation(uri), uri);
  {
    auto tcp = OpenPg(uri);
    EXPECT_TRUE(tcp.ok()) << tcp.status().ToString();
  }

  // Nothing listens on port 9; the password never appears.
  auto down = OpenPg("postgresql://wsstep:s3cret-pw@127.0.0.1:9/wsstep?connect_timeout=2");
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.error().code, Code::kStorageError);
  EXPECT_THAT(down.error().message,
              HasSubstr("postgresql://wsstep@127.0.0.1:9/wsstep: cannot connect: "));
  EXPECT_THAT(down.error().ToString(), Not(HasSubstr("s3cret-pw")));

  auto no_db = OpenPg(db.conninfo() + "_missing");
  ASSERT_FALSE(no_db.ok());
  EXPECT_THAT(no_db.error().message,
              HasSubstr("database \"" + db.name() + "_missing\" does not exist"));

  auto malformed = OpenPg("postgresql://wsstep@[::1");
  ASSERT_FALSE(malformed.ok());
  EXPECT_EQ(malformed.error().code, Code::kInvalidArgument);
  EXPECT_THAT(malformed.error().message, HasSubstr("store: "));
}

TEST(PgStorageTest, WhatCountsAsAPostgresStore) {
  EXPECT_TRUE(IsPostgresConnectionString("postgres://db/wsstep"));
  EXPECT_TRUE(IsPostgresConnectionString("postgresql://u@db:5432/wsstep"));
  EXPECT_TRUE(IsPostgresConnectionString("host=db dbname=wsstep"));
  EXPECT_FALSE(IsPostgresConnectionString("/var/lib/wsstep"));
  EXPECT_FALSE(IsPostgresConnectionString("sqlite"));
  EXPECT_EQ(PostgresLocation("host=/tmp/x port=5 user=u password=p dbname=d"),
            "postgresql://u@/tmp/x:5/d");
}

}  // namespace
}  // namespace wsstep::core

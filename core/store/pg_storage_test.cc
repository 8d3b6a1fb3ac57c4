// The PostgreSQL backend's own contract, beyond the store suite it shares with SQLite
// (core/store/store_test.cc, Backends/StoreTest.*/Postgres): several stores (plugins) on
// one database, each following the others' changes; the database going away and coming
// back; schema versions; errors that name the database and never the password.
#include "core/store/pg_storage.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/store/store.h"
#include "core/store/store_testing.h"
#include "tests/support/postgres.h"

namespace wsstep::core {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::wsstep::core::testing::KeyPairRequest;
using ::wsstep::core::testing::OptionsFor;
using ::wsstep::core::testing::TempDir;
using ::wsstep::core::testing::TestClock;
using ::wsstep::testing::PrivatePostgres;
using ::wsstep::testing::ScratchDatabase;

Result<std::unique_ptr<Storage>> OpenPg(const std::string& conninfo) {
  return PostgresStorageFactory(conninfo)({"/nonexistent-data-dir", false});
}

// Two stores on one database, as two plugins on two nodes would have them: each with its
// own data directory, both given the same master key.
class SharedStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(db_.ok()) << db_.error();
    auto key = MasterKey::Generate();
    ASSERT_TRUE(key.ok());
    key_ = std::move(*key);
    a_ = OpenNode(dir_a_.path());
    b_ = OpenNode(dir_b_.path());
    ASSERT_TRUE(a_ && b_);
  }
  void TearDown() override {
    a_.reset();
    b_.reset();
  }

  std::unique_ptr<CertificateStore> OpenNode(const std::string& dir) {
    StoreOptions o = OptionsFor(dir, clock_);
    o.storage = PostgresStorageFactory(db_.conninfo());
    o.master_key = key_->Clone();
    auto s = CertificateStore::Open(std::move(o));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }

  // Waits (bounded: 10 s) until `done` holds; the nodes tell each other within a second.
  static bool Eventually(const std::function<bool()>& done) {
    for (int i = 0; i < 1000; ++i) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return done();
  }

  ScratchDatabase db_;
  TempDir dir_a_, dir_b_;
  TestClock clock_;
  std::optional<MasterKey> key_;
  std::unique_ptr<CertificateStore> a_, b_;
};

TEST_F(SharedStoreTest, EveryChangeOnOneNodeReachesTheOther) {
  const Binding api{"api.example.test", 443, "production"};
  const uint64_t watched_from = b_->LatestChangeSequence();
  auto created = a_->Create(KeyPairRequest("bank", "rsa", {api}), {"alice"}, nullptr);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  ASSERT_TRUE(Eventually([&] { return b_->Get("bank").ok(); }));
  ResolveRequest at_api;
  at_api.host = api.host;
  at_api.port = api.port;
  at_api.environment = api.environment;
  auto resolved = b_->ResolveForCall(at_api);
  ASSERT_TRUE(resolved.ok()) << resolved.status().ToString();
  EXPECT_EQ(resolved->chosen_id(), created->id);
  ASSERT_NE(resolved->credentials.identity, nullptr);  // B opened the key A sealed

  // A rotation: B's calls present the new certificate.
  UpdateRequest rotate;
  rotate.material = KeyPairRequest("x", "ec256").material;
  auto rotated = a_->Update("bank", std::move(rotate), {"alice"}, nullptr);
  ASSERT_TRUE(rotated.ok()) << rotated.status().ToString();
  ASSERT_TRUE(Eventually([&] { return b_->Get("bank")->version == rotated->version; }));
  resolved = b_->ResolveForCall(at_api);
  ASSERT_TRUE(resolved.ok());
  EXPECT_EQ(resolved->resolution.identity->certificate->sha256_fingerprint,
            rotated->certificate->sha256_fingerprint);

  // Disabled on A: no longer a candidate on B.
  UpdateRequest disable;
  disable.disabled = true;
  ASSERT_TRUE(a_->Update("bank", std::move(disable), {"alice"}, nullptr).ok());
  ASSERT_TRUE(Eventually([&] { return b_->Get("bank")->disabled; }));
  EXPECT_EQ(b_->ResolveForCall(at_api).error().code, Code::kCertificateNotFound);

  // Deleted on B: gone on A.
  ASSERT_TRUE(b_->Delete("bank", {"bob"}).ok());
  ASSERT_TRUE(Eventually([&] { return !a_->Get("bank").ok(); }));
  EXPECT_EQ(a_->Get("bank").error().code, Code::kNotFound);

  // B's watchers saw A's changes as its own: created, updated twice (B deleted it itself).
  std::string kinds;
  for (const auto& ev : b_->WaitForChanges(watched_from, std::chrono::milliseconds(0))) {
    kinds += std::string(ChangeKindName(ev.kind)) + " ";
  }
  EXPECT_EQ(kinds, "CREATED UPDATED UPDATED DELETED ");
}

TEST_F(SharedStoreTest, AProxyCredentialSetOnOneNodeIsUsedByTheOther) {
  ASSERT_TRUE(
      a_->SetProxyCredential("corp", "svc", SecretBytes("first-Pw"), {"alice"}, nullptr).ok());
  ASSERT_TRUE(Eventually([&] { return b_->ProxyCredential("corp").ok(); }));
  EXPECT_EQ(b_->ProxyCredential("corp")->password->view(), "first-Pw");

  // Changed on B: A's steps get the new password.
  ASSERT_TRUE(
      b_->SetProxyCredential("CORP", "svc", SecretBytes("second-Pw"), {"bob"}, nullptr).ok());
  ASSERT_TRUE(
      Eventually([&] { return a_->ProxyCredential("corp")->password->view() == "second-Pw"; }));

  // Deleted on A: gone on B.
  ASSERT_TRUE(a_->DeleteProxyCredential("corp", {"alice"}).ok());
  ASSERT_TRUE(Eventually([&] { return !b_->ProxyCredential("corp").ok(); }));
  EXPECT_EQ(b_->ProxyCredential("corp").code(), Code::kNotFound);
  EXPECT_TRUE(b_->ListProxyCredentials().empty());
}

TEST_F(SharedStoreTest, AChangeFirstCatchesUpSoNothingIsDecidedOnAStaleView) {
  // Made on A and at once (no waiting for the notice) on B: B's checks see A's entry.
  ASSERT_TRUE(a_->Create(KeyPairRequest("same", "rsa"), {"alice"}, nullptr).ok());
  auto twin = b_->Create(KeyPairRequest("same", "ec256"), {"bob"}, nullptr);
  ASSERT_FALSE(twin.ok());
  EXPECT_EQ(twin.error().code, Code::kDuplicateName);

  ASSERT_TRUE(a_->Create(KeyPairRequest("fresh", "rsa"), {"alice"}, nullptr).ok());
  UpdateRequest describe;
  describe.description = "updated on B right after A created it";
  auto updated = b_->Update("fresh", std::move(describe), {"bob"}, nullptr);
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  ASSERT_TRUE(Eventually([&] { return a_->Get("fresh")->description == updated->description; }));
}

TEST_F(SharedStoreTest, UsesAddUpAndANotificationIsClaimedByOneNode) {
  auto e = a_->Create(KeyPairRequest("used", "rsa"), {"alice"}, nullptr);
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE(Eventually([&] { return b_->Get("used").ok(); }));
  ResolveRequest r;
  r.host = "h.example.test";
  r.port = 443;
  r.environment = "production";
  for (int i = 0; i < 3; ++i) a_->RecordUse(e->id, r, {"engine"}, "OK");
  for (int i = 0; i < 2; ++i) b_->RecordUse(e->id, r, {"engine"}, "OK");
  ASSERT_TRUE(a_->Flush().ok());
  ASSERT_TRUE(b_->Flush().ok());
  TempDir dir_c;
  auto c = OpenNode(dir_c.path());
  ASSERT_TRUE(c);
  EXPECT_EQ(c->Get("used")->use_count, 5u);

  DueNotification due;
  due.entry_id = e->id;
  auto first = b_->ClaimNotification(due);
  auto second = a_->ClaimNotification(due);
  auto again = b_->ClaimNotification(due);
  ASSERT_TRUE(first.ok() && second.ok() && again.ok());
  EXPECT_TRUE(*first);
  EXPECT_FALSE(*second);
  EXPECT_TRUE(*again);  // still B's: its other watchers hand it over too

  // The same day's escalation to URGENT is a notification of its own: claimed anew (here
  // by A), not held back by B's claim of the WARNING.
  DueNotification urgent = due;
  urgent.level = NotificationLevel::kUrgent;
  auto urgent_a = a_->ClaimNotification(urgent);
  auto urgent_b = b_->ClaimNotification(urgent);
  ASSERT_TRUE(urgent_a.ok() && urgent_b.ok());
  EXPECT_TRUE(*urgent_a);
  EXPECT_FALSE(*urgent_b);
}

TEST_F(SharedStoreTest, WithoutTheDatabaseStepsGoOnAndChangesAreRefusedUntilItIsBack) {
  PrivatePostgres pg;
  ASSERT_TRUE(pg.ok()) << pg.error();
  std::vector<Status> states;
  std::mutex states_mu;
  auto open = [&](const std::string& dir) {
    StoreOptions o = OptionsFor(dir, clock_);
    o.storage = PostgresStorageFactory(pg.conninfo());
    o.master_key = key_->Clone();
    o.on_storage_state = [&](const Status& st) {
      std::lock_guard lk(states_mu);
      states.push_back(st);
    };
    auto s = CertificateStore::Open(std::move(o));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  };
  TempDir da, db;
  auto a = open(da.path());
  auto b = open(db.path());
  ASSERT_TRUE(a && b);
  const Binding api{"api.example.test", 443, "production"};
  ASSERT_TRUE(a->Create(KeyPairRequest("before", "rsa", {api}), {"alice"}, nullptr).ok());
  ResolveRequest at_api;
  at_api.host = api.host;
  at_api.port = api.port;
  at_api.environment = api.environment;
  ASSERT_TRUE(Eventually([&] { return b->ResolveForCall(at_api).ok(); }));

  ASSERT_EQ(pg.Pause(), "");
  // B resolves from its snapshot; B cannot write, and says why.
  EXPECT_TRUE(b->ResolveForCall(at_api).ok());
  auto refused = b->Create(KeyPairRequest("during", "ec256"), {"bob"}, nullptr);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Code::kStorageUnavailable);
  EXPECT_EQ(refused.error().side, Side::kStore);
  EXPECT_THAT(refused.error().message, HasSubstr(": the database cannot be reached ("));
  EXPECT_FALSE(b->Get("during").ok());  // nothing changed

  ASSERT_EQ(pg.Resume(), "");
  // A writes as soon as it can reconnect; B catches up without being asked.
  Result<EntryMetadata> after = Error(Code::kInternal, "not tried");
  ASSERT_TRUE(Eventually([&] {
    after = a->Create(KeyPairRequest("after", "ec256"), {"alice"}, nullptr);
    return after.ok();
  })) << after.status().ToString();
  ASSERT_TRUE(Eventually([&] { return b->Get("after").ok(); }));
  EXPECT_TRUE(b->Create(KeyPairRequest("during", "ec256"), {"bob"}, nullptr).ok());
  a.reset();
  b.reset();
  std::lock_guard lk(states_mu);
  ASSERT_GE(states.size(), 2u);  // each follower: lost, then back
  EXPECT_EQ(states.front().error().code, Code::kStorageUnavailable);
  EXPECT_TRUE(states.back().ok());
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
                        "this build's (5)"));
}

// A version 3 database (claims per entry and day) is migrated: an existing claim counts
// as the WARNING's, and the same day's URGENT can be claimed beside it.
TEST(PgStorageTest, AVersionThreeDatabaseGetsClaimsPerLevel) {
  ScratchDatabase db;
  ASSERT_TRUE(db.ok()) << db.error();
  { ASSERT_TRUE(OpenPg(db.conninfo()).ok()); }
  ASSERT_EQ(::wsstep::testing::PostgresExec(
                db.conninfo(),
                "ALTER TABLE notification_claims DROP CONSTRAINT notification_claims_pkey; "
                "ALTER TABLE notification_claims DROP COLUMN level; "
                "ALTER TABLE notification_claims ADD PRIMARY KEY (entry_id, day); "
                "INSERT INTO notification_claims (entry_id, day, claimed_by) "
                "VALUES ('e1', 20000, 'another-node'); "
                "DROP TABLE secrets; "  // came with version 5
                "UPDATE meta SET value=convert_to('3', 'UTF8') WHERE key='schema_version'"),
            "");
  auto migrated = OpenPg(db.conninfo());
  ASSERT_TRUE(migrated.ok()) << migrated.error().ToString();
  auto warning = (*migrated)->ClaimNotification("e1", 20000, NotificationLevel::kWarning);
  auto urgent = (*migrated)->ClaimNotification("e1", 20000, NotificationLevel::kUrgent);
  ASSERT_TRUE(warning.ok() && urgent.ok());
  EXPECT_FALSE(*warning) << "the other node's claim from before the migration stands";
  EXPECT_TRUE(*urgent);
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

  // A login the server does not know: its reason, naming the database.
  auto stranger = OpenPg(db.conninfo() + " user=nobody_here");
  ASSERT_FALSE(stranger.ok());
  EXPECT_EQ(stranger.error().code, Code::kStorageError);
  EXPECT_THAT(stranger.error().message, HasSubstr("postgresql://nobody_here@"));
  EXPECT_THAT(stranger.error().message, HasSubstr("role \"nobody_here\" does not exist"));

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

#include "core/store/sqlite_storage.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/store/sqlite_schema.h"
#include "tests/support/pki.h"

namespace wsstep::core {
namespace {

using ::wsstep::testing::TempDir;

EntryMetadata Entry(std::string id, std::string name) {
  EntryMetadata e;
  e.id = std::move(id);
  e.name = std::move(name);
  e.description = "d";
  e.type = EntryType::kTrustStore;
  e.source_format = SourceFormat::kDer;
  e.bindings = {{"a.example.test", 443, "default"}, {"*.example.test", 8443, "sandbox"}};
  CertificateInfo c;
  c.subject = "CN=ca";
  c.sans = {"a", "b"};
  c.not_before = 10;
  c.not_after = 20;
  e.trusted = {c, c};
  e.chain_subjects = {"CN=x", "CN=y"};
  e.attributes = {{"k", "v"}};
  e.notifications.enabled = true;
  e.notifications.frequency = NotificationFrequency::kWeekly;
  e.notifications.warning_days = 45;
  e.notifications.urgent_days = 9;
  e.created_at = 1;
  e.updated_at = 2;
  e.version = 3;
  return e;
}

class SqliteStorageTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }
  void Open(bool read_only = false) {
    storage_.reset();
    auto s = OpenSqliteStorage({dir_.path(), read_only});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    storage_ = std::move(s).value();
  }
  // Saves `e` (row, bindings, facts) with `material` as `save_sequence` in one commit.
  void Save(const EntryMetadata& e, int64_t save_sequence, const StoredMaterial& material = {}) {
    auto tx = storage_->Begin();
    ASSERT_TRUE(tx.ok()) << tx.status().ToString();
    ASSERT_TRUE((*tx)->PutEntry(e, save_sequence).ok());
    ASSERT_TRUE((*tx)->PutBindings(e).ok());
    ASSERT_TRUE((*tx)->PutMaterial(e, material).ok());
    ASSERT_TRUE((*tx)->Commit().ok());
  }
  LoadedEntries Load() {
    auto loaded = storage_->LoadEntries();
    EXPECT_TRUE(loaded.ok()) << loaded.status().ToString();
    return loaded.ok() ? std::move(loaded).value() : LoadedEntries{};
  }

  TempDir dir_;
  std::unique_ptr<Storage> storage_;
};

TEST_F(SqliteStorageTest, ANewFileHasTheSchemaAndIsPrivate) {
  EXPECT_EQ(storage_->location(), dir_.Path("store.db"));
  EXPECT_FALSE(storage_->read_only());
  struct stat st;
  ASSERT_EQ(::stat(dir_.Path("store.db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(Load().entries.size(), 0u);
  EXPECT_EQ(Load().latest_save_sequence, 0);
  EXPECT_FALSE(storage_->ReadMasterKeyRecord()->has_value());
  EXPECT_EQ(SqliteStoreSchemaVersion(), static_cast<int>(SqliteStoreMigrations().size()));
}

TEST_F(SqliteStorageTest, AWritableStoreLocksItsDirectoryUntilClosed) {
  const std::string pid = std::to_string(::getpid());
  auto second = OpenSqliteStorage({dir_.path(), false});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, Code::kStorageError);
  EXPECT_EQ(
      second.error().message,
      dir_.path() + ": the data directory is in use by another wsstep process (pid " + pid + ")");
  EXPECT_EQ(second.error().detail.at("pid"), pid);
  EXPECT_EQ(second.error().detail.at("data_dir"), dir_.path());
  // A read-only store changes nothing and takes no lock.
  auto reader = OpenSqliteStorage({dir_.path(), true});
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  EXPECT_TRUE((*reader)->read_only());
  // Closed, the directory is free again.
  storage_.reset();
  auto after = OpenSqliteStorage({dir_.path(), false});
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_FALSE((*after)->read_only());
}

TEST_F(SqliteStorageTest, EntriesLoadAsSavedInSaveOrder) {
  EntryMetadata a = Entry("aaa", "A"), b = Entry("bbb", "B"), c = Entry("ccc", "C");
  Save(b, 1);
  Save(a, 2);
  Save(c, 3);
  b.description = "saved again";
  b.bindings.pop_back();
  Save(b, 4);  // moves to the end
  Open();
  LoadedEntries loaded = Load();
  EXPECT_EQ(loaded.latest_save_sequence, 4);
  ASSERT_EQ(loaded.entries.size(), 3u);
  EXPECT_EQ(loaded.entries[0].id, "aaa");
  EXPECT_EQ(loaded.entries[1].id, "ccc");
  const EntryMetadata& got = loaded.entries[2];
  EXPECT_EQ(got.id, "bbb");
  EXPECT_EQ(got.description, "saved again");
  EXPECT_EQ(got.bindings, b.bindings);
  EXPECT_EQ(got.trusted, b.trusted);
  EXPECT_FALSE(got.certificate.has_value());
  EXPECT_EQ(got.chain_subjects, b.chain_subjects);
  EXPECT_EQ(got.attributes, b.attributes);
  EXPECT_EQ(got.notifications, b.notifications);
  EXPECT_EQ(got.type, EntryType::kTrustStore);
  EXPECT_EQ(got.source_format, SourceFormat::kDer);
  EXPECT_EQ(got.version, 3u);
}

TEST_F(SqliteStorageTest, AnUncommittedTransactionLeavesNothing) {
  {
    auto tx = storage_->Begin();
    ASSERT_TRUE(tx.ok());
    ASSERT_TRUE((*tx)->PutEntry(Entry("aaa", "A"), 1).ok());
    AuditEvent ev;
    ev.actor = "x";
    ASSERT_TRUE((*tx)->AppendAudit(ev).ok());
  }
  EXPECT_TRUE(Load().entries.empty());
  EXPECT_TRUE(storage_->ReadAudit({}, 0, 10)->empty());
  Save(Entry("aaa", "A"), 1);  // and the next transaction can begin
  EXPECT_EQ(Load().entries.size(), 1u);
}

TEST_F(SqliteStorageTest, ATakenNameIsDuplicateNameWhateverItsCase) {
  Save(Entry("aaa", "Bank"), 1);
  auto tx = storage_->Begin();
  ASSERT_TRUE(tx.ok());
  Status s = (*tx)->PutEntry(Entry("bbb", "BANK"), 2);
  EXPECT_EQ(s.code(), Code::kDuplicateName);
}

TEST_F(SqliteStorageTest, MaterialIsReadBackAndGoesWithItsEntry) {
  StoredMaterial m;
  m.version = 3;
  m.leaf_der = "leaf";
  m.chain_der = {"c1", "c2"};
  m.trusted_der = {"t"};
  m.sealed_key = std::string("\x01sealed\0bytes", 13);
  m.sealed_key_id = "0123456789abcdef";
  m.csr_pem = "-----BEGIN CERTIFICATE REQUEST-----";
  Save(Entry("aaa", "A"), 1, m);
  auto got = storage_->ReadMaterial("aaa");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->version, 3u);
  EXPECT_EQ((*got)->leaf_der, "leaf");
  EXPECT_EQ((*got)->chain_der, m.chain_der);
  EXPECT_EQ((*got)->trusted_der, m.trusted_der);
  EXPECT_EQ((*got)->sealed_key, m.sealed_key);
  EXPECT_EQ((*got)->sealed_key_id, m.sealed_key_id);
  EXPECT_EQ((*got)->csr_pem, m.csr_pem);

  auto tx = storage_->Begin();
  ASSERT_TRUE(tx.ok());
  ASSERT_TRUE((*tx)->DeleteEntry("aaa").ok());
  ASSERT_TRUE((*tx)->Commit().ok());
  EXPECT_FALSE(storage_->ReadMaterial("aaa")->has_value());
  EXPECT_TRUE(Load().entries.empty());
}

TEST_F(SqliteStorageTest, CountersAndNotificationStateAreNotSaves) {
  Save(Entry("aaa", "A"), 1);
  Save(Entry("bbb", "B"), 2);
  auto tx = storage_->Begin();
  ASSERT_TRUE(tx.ok());
  ASSERT_TRUE((*tx)->PutUsage("aaa", 42, 1234).ok());
  ASSERT_TRUE((*tx)->PutLastNotified("aaa", 999).ok());
  ASSERT_TRUE((*tx)->Commit().ok());
  LoadedEntries loaded = Load();
  ASSERT_EQ(loaded.entries.size(), 2u);
  EXPECT_EQ(loaded.entries[0].id, "aaa");  // kept its place
  EXPECT_EQ(loaded.entries[0].use_count, 42u);
  EXPECT_EQ(loaded.entries[0].last_used_at, 1234);
  EXPECT_EQ(loaded.entries[0].last_notified_at, 999);
}

TEST_F(SqliteStorageTest, AuditIsReadNewestFirstFilteredAndBounded) {
  auto tx = storage_->Begin();
  ASSERT_TRUE(tx.ok());
  for (int i = 0; i < 5; ++i) {
    AuditEvent ev;
    ev.at = 100 + i;
    ev.action = i % 2 == 0 ? AuditAction::kUse : AuditAction::kUpdate;
    ev.entry_id = "e" + std::to_string(i % 2);
    ev.port = 8443;
    ev.detail = "event " + std::to_string(i);
    ASSERT_TRUE((*tx)->AppendAudit(ev).ok());
  }
  ASSERT_TRUE((*tx)->Commit().ok());
  auto all = storage_->ReadAudit({}, 0, 10);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 5u);
  EXPECT_EQ(all->front().detail, "event 4");
  EXPECT_EQ(all->front().port, 8443);
  EXPECT_GT(all->front().sequence, all->back().sequence);

  AuditFilter uses;
  uses.action = AuditAction::kUse;
  uses.since = 101;
  auto some = storage_->ReadAudit(uses, all->front().sequence, 1);
  ASSERT_TRUE(some.ok());
  ASSERT_EQ(some->size(), 1u);
  EXPECT_EQ(some->front().detail, "event 2");  // below event 4, a USE, at >= 101
}

// The schema's triggers, not the store's discipline, keep the log append-only.
TEST_F(SqliteStorageTest, TheAuditTableRefusesUpdatesAndDeletes) {
  auto tx = storage_->Begin();
  ASSERT_TRUE(tx.ok());
  ASSERT_TRUE((*tx)->AppendAudit(AuditEvent{}).ok());
  ASSERT_TRUE((*tx)->Commit().ok());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.Path("store.db").c_str(), &db), SQLITE_OK);
  EXPECT_NE(sqlite3_exec(db, "DELETE FROM audit", nullptr, nullptr, nullptr), SQLITE_OK);
  EXPECT_NE(sqlite3_exec(db, "UPDATE audit SET actor='x'", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
}

TEST_F(SqliteStorageTest, MasterKeyRecordAndResealing) {
  StoredMaterial with_key;
  with_key.version = 1;
  with_key.sealed_key = "old-a";
  with_key.sealed_key_id = "old";
  Save(Entry("aaa", "A"), 1, with_key);
  Save(Entry("bbb", "B"), 2);  // no key
  auto tx = storage_->Begin();
  ASSERT_TRUE(tx.ok());
  ASSERT_TRUE((*tx)->PutMasterKeyRecord({"new", std::string("check")}).ok());
  auto n = (*tx)->ResealKeys("new", [](const std::string& id, std::string_view sealed) {
    return Result<std::string>("new:" + id + ":" + std::string(sealed));
  });
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1u);
  ASSERT_TRUE((*tx)->Commit().ok());
  auto record = storage_->ReadMasterKeyRecord();
  ASSERT_TRUE(record.ok() && record->has_value());
  EXPECT_EQ((*record)->key_id, "new");
  EXPECT_EQ((*record)->check, "check");
  auto m = storage_->ReadMaterial("aaa");
  EXPECT_EQ((*m)->sealed_key, "new:aaa:old-a");
  EXPECT_EQ((*m)->sealed_key_id, "new");
  EXPECT_FALSE((*storage_->ReadMaterial("bbb"))->sealed_key.has_value());
}

TEST_F(SqliteStorageTest, AResealingErrorStopsAndIsReturned) {
  StoredMaterial with_key;
  with_key.sealed_key = "old-a";
  Save(Entry("aaa", "A"), 1, with_key);
  auto tx = storage_->Begin();
  ASSERT_TRUE(tx.ok());
  auto n = (*tx)->ResealKeys("new", [](const std::string&, std::string_view) {
    return Result<std::string>(Error(Code::kMasterKeyError, "cannot open"));
  });
  EXPECT_EQ(n.code(), Code::kMasterKeyError);
}

TEST_F(SqliteStorageTest, ReadOnlyReadsAndRefusesToBegin) {
  Save(Entry("aaa", "A"), 1);
  Open(/*read_only=*/true);
  EXPECT_TRUE(storage_->read_only());
  EXPECT_EQ(Load().entries.size(), 1u);
  auto tx = storage_->Begin();
  ASSERT_EQ(tx.code(), Code::kStorageError);
  EXPECT_NE(tx.error().message.find(dir_.Path("store.db")), std::string::npos);
}

// A store written before the urgent notification level (schema version 1) is migrated
// when opened for writing: its entries keep everything and get the default, 7 days.
TEST_F(SqliteStorageTest, AVersionOneStoreIsMigratedAndItsEntriesGetTheUrgentDefault) {
  Save(Entry("aaa", "A"), 1);
  storage_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.Path("store.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "ALTER TABLE entries DROP COLUMN notify_urgent_days; "
                         "DROP TABLE secrets; "  // version 3
                         "DELETE FROM schema_version WHERE version > 1",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);
  Open();
  const auto loaded = Load();
  ASSERT_EQ(loaded.entries.size(), 1u);
  EXPECT_EQ(loaded.entries[0].notifications.urgent_days, 7);
  EXPECT_EQ(loaded.entries[0].notifications.warning_days, 45);
  EXPECT_EQ(loaded.entries[0].bindings, Entry("aaa", "A").bindings);
}

TEST_F(SqliteStorageTest, AReadOnlyStoreOfAnotherSchemaVersionIsRefused) {
  storage_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.Path("store.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "DELETE FROM schema_version WHERE version > 1; "
                         "UPDATE schema_version SET version = 0",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto s = OpenSqliteStorage({dir_.path(), true});
  ASSERT_EQ(s.code(), Code::kStorageError);
  EXPECT_NE(s.error().message.find("is not the one this build uses"), std::string::npos);
}

}  // namespace
}  // namespace wsstep::core

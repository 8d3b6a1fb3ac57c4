#include "core/db.h"
#include "tests/support/pki.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace wsstep::core {
namespace {

namespace fs = std::filesystem;

class DbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::wsstep::testing::MakeTempDir("wsstep-db-test-");  // in $TMPDIR; TearDown removes it
    path_ = dir_ + "/store.db";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<Database> OpenOrDie(Database::Options options = {}) {
    auto db = Database::Open(path_, options);
    EXPECT_TRUE(db.ok()) << db.status().ToString();
    return db.ok() ? std::move(db).value() : nullptr;
  }

  std::string dir_;
  std::string path_;
};

constexpr Migration kMigrations[] = {
    {1, "CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB, n INTEGER);"},
    {2, "ALTER TABLE t ADD COLUMN extra TEXT NOT NULL DEFAULT 'x';"},
};

TEST_F(DbTest, CreatesFile0600InWalModeWithFullSync) {
  auto db = OpenOrDie();
  ASSERT_NE(db, nullptr);
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  {
    auto mode = db->Prepare("PRAGMA journal_mode");
    ASSERT_TRUE(mode.ok());
    ASSERT_TRUE(mode->Step().value());
    EXPECT_EQ(mode->ColumnText(0), "wal");
    auto sync = db->Prepare("PRAGMA synchronous");
    ASSERT_TRUE(sync->Step().value());
    EXPECT_EQ(sync->ColumnInt64(0), 2);  // FULL
    auto fk = db->Prepare("PRAGMA foreign_keys");
    ASSERT_TRUE(fk->Step().value());
    EXPECT_EQ(fk->ColumnInt64(0), 1);
  }  // statements that returned a row hold a read transaction until reset or destroyed

  // The WAL companion inherits the 0600 mode once a write creates it.
  Status migrated = db->Migrate(kMigrations);
  ASSERT_TRUE(migrated.ok()) << migrated.ToString();
  ASSERT_EQ(stat((path_ + "-wal").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(DbTest, MigrationsApplyOnceInOrder) {
  {
    auto db = OpenOrDie();
    EXPECT_EQ(db->SchemaVersion().value(), 0);
    ASSERT_TRUE(db->Migrate(std::span(kMigrations, 1)).ok());
    EXPECT_EQ(db->SchemaVersion().value(), 1);
  }
  auto db = OpenOrDie();
  ASSERT_TRUE(db->Migrate(kMigrations).ok());
  EXPECT_EQ(db->SchemaVersion().value(), 2);
  ASSERT_TRUE(db->Migrate(kMigrations).ok());  // idempotent
  ASSERT_TRUE(db->Exec("INSERT INTO t(k) VALUES ('a')").ok());
  auto st = db->Prepare("SELECT extra FROM t");
  ASSERT_TRUE(st->Step().value());
  EXPECT_EQ(st->ColumnText(0), "x");
}

TEST_F(DbTest, FailedMigrationLeavesNothingBehind) {
  auto db = OpenOrDie();
  constexpr Migration kBad[] = {
      {1, "CREATE TABLE a (x INTEGER); CREATE TABLE a (y INTEGER);"},
  };
  Status st = db->Migrate(kBad);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), Code::kStorageError);
  EXPECT_NE(st.error().message.find(path_), std::string::npos) << st.ToString();
  EXPECT_NE(st.error().message.find("already exists"), std::string::npos) << st.ToString();
  EXPECT_EQ(db->SchemaVersion().value(), 0);
  auto q = db->Prepare("SELECT count(*) FROM sqlite_master WHERE name='a'");
  ASSERT_TRUE(q->Step().value());
  EXPECT_EQ(q->ColumnInt64(0), 0);
}

TEST_F(DbTest, RefusesNewerSchema) {
  {
    auto db = OpenOrDie();
    ASSERT_TRUE(db->Migrate(kMigrations).ok());
  }
  auto db = OpenOrDie();
  Status st = db->Migrate(std::span(kMigrations, 1));
  ASSERT_EQ(st.code(), Code::kStorageError);
  EXPECT_NE(st.error().message.find("newer wsstep (schema version 2"), std::string::npos)
      << st.ToString();
}

TEST_F(DbTest, TransactionRollsBackUnlessCommitted) {
  auto db = OpenOrDie();
  ASSERT_TRUE(db->Migrate(kMigrations).ok());
  {
    auto tx = Transaction::Begin(*db);
    ASSERT_TRUE(tx.ok());
    ASSERT_TRUE(db->Exec("INSERT INTO t(k) VALUES ('gone')").ok());
  }
  {
    auto tx = Transaction::Begin(*db);
    ASSERT_TRUE(db->Exec("INSERT INTO t(k) VALUES ('kept')").ok());
    ASSERT_TRUE(tx->Commit().ok());
  }
  auto st = db->Prepare("SELECT k FROM t ORDER BY k");
  ASSERT_TRUE(st->Step().value());
  EXPECT_EQ(st->ColumnText(0), "kept");
  EXPECT_FALSE(st->Step().value());
}

TEST_F(DbTest, BindsAndReadsEveryType) {
  auto db = OpenOrDie();
  ASSERT_TRUE(db->Migrate(kMigrations).ok());
  auto ins = db->Prepare("INSERT INTO t(k, v, n) VALUES (?, ?, ?)");
  ASSERT_TRUE(ins.ok());
  std::string blob("a\0b\xff", 4);
  ins->Bind(1, "key").BindBlob(2, blob).Bind(3, int64_t{-5});
  ASSERT_TRUE(ins->Run().ok());
  ins->Bind(1, "empty").BindBlob(2, std::string_view()).BindNull(3);
  ASSERT_TRUE(ins->Run().ok());

  auto sel = db->Prepare("SELECT v, n, v IS NULL, typeof(v) FROM t ORDER BY k");
  ASSERT_TRUE(sel->Step().value());  // "empty"
  EXPECT_EQ(sel->ColumnBlob(0), "");
  EXPECT_TRUE(sel->ColumnIsNull(1));
  EXPECT_EQ(sel->ColumnInt64(2), 0);
  EXPECT_EQ(sel->ColumnText(3), "blob");
  ASSERT_TRUE(sel->Step().value());  // "key"
  EXPECT_EQ(sel->ColumnBlob(0), blob);
  EXPECT_EQ(sel->ColumnInt64(1), -5);
  EXPECT_FALSE(sel->Step().value());
}

TEST_F(DbTest, UncopiedTextIsStoredAsGivenAndEmptyIsNotNull) {
  auto db = OpenOrDie();
  ASSERT_TRUE(db->Migrate(kMigrations).ok());
  auto ins = db->Prepare("INSERT INTO t(k, extra) VALUES (?, ?)");
  ASSERT_TRUE(ins.ok());
  for (std::string k : {"one", "two"}) {
    std::string extra = "caf\xc3\xa9 " + k;  // alive until Run, then gone
    ins->BindUncopied(1, k).BindUncopied(2, extra);
    ASSERT_TRUE(ins->Run().ok());
  }
  ins->BindUncopied(1, "zero").BindUncopied(2, std::string_view());
  ASSERT_TRUE(ins->Run().ok());
  auto sel = db->Prepare("SELECT k, extra, extra IS NULL FROM t ORDER BY k");
  ASSERT_TRUE(sel->Step().value());
  EXPECT_EQ(sel->ColumnText(0), "one");
  EXPECT_EQ(sel->ColumnText(1), "caf\xc3\xa9 one");
  ASSERT_TRUE(sel->Step().value());
  EXPECT_EQ(sel->ColumnText(0), "two");
  EXPECT_EQ(sel->ColumnText(1), "caf\xc3\xa9 two");
  ASSERT_TRUE(sel->Step().value());
  EXPECT_EQ(sel->ColumnText(0), "zero");
  EXPECT_EQ(sel->ColumnText(1), "");
  EXPECT_EQ(sel->ColumnInt64(2), 0);
  EXPECT_FALSE(sel->Step().value());
}

TEST_F(DbTest, ConstraintViolationIsStorageErrorWithPath) {
  auto db = OpenOrDie();
  ASSERT_TRUE(db->Migrate(kMigrations).ok());
  ASSERT_TRUE(db->Exec("INSERT INTO t(k) VALUES ('a')").ok());
  auto ins = db->Prepare("INSERT INTO t(k) VALUES (?)");
  ins->Bind(1, "a");
  Status st = ins->Run();
  ASSERT_EQ(st.code(), Code::kStorageError);
  EXPECT_NE(st.error().message.find(path_), std::string::npos);
  EXPECT_NE(st.error().message.find("UNIQUE constraint failed"), std::string::npos)
      << st.ToString();
  EXPECT_EQ(st.error().detail.at("path"), path_);
}

TEST_F(DbTest, BadBindIndexIsReportedAtStep) {
  auto db = OpenOrDie();
  ASSERT_TRUE(db->Migrate(kMigrations).ok());
  auto ins = db->Prepare("INSERT INTO t(k) VALUES (?)");
  ins->Bind(1, "a").Bind(7, int64_t{1});
  Status st = ins->Run();
  ASSERT_EQ(st.code(), Code::kStorageError);
  EXPECT_NE(st.error().message.find("binding parameter 7"), std::string::npos) << st.ToString();
}

TEST_F(DbTest, FullDiskFailsTheWriteAndReadsKeepWorking) {
  auto db = OpenOrDie();
  ASSERT_TRUE(db->Migrate(kMigrations).ok());
  ASSERT_TRUE(db->Exec("INSERT INTO t(k) VALUES ('before')").ok());
  // max_page_count is SQLite's own "the disk is full" switch.
  auto pages = db->Prepare("PRAGMA page_count");
  ASSERT_TRUE(pages->Step().value());
  ASSERT_TRUE(db->Exec("PRAGMA max_page_count=" + std::to_string(pages->ColumnInt64(0))).ok());
  auto ins = db->Prepare("INSERT INTO t(k, v) VALUES (?, ?)");
  Status st;
  for (int i = 0; i < 100 && st.ok(); ++i) {
    auto tx = Transaction::Begin(*db);
    ASSERT_TRUE(tx.ok());
    ins->Bind(1, "k" + std::to_string(i)).BindBlob(2, std::string(4000, 'x'));
    st = ins->Run();
    if (st.ok()) st = tx->Commit();
  }
  ASSERT_EQ(st.code(), Code::kStorageError);
  EXPECT_NE(st.error().message.find("full"), std::string::npos) << st.ToString();
  EXPECT_NE(st.error().hint.find("disk"), std::string::npos);
  auto sel = db->Prepare("SELECT count(*) FROM t WHERE k='before'");
  ASSERT_TRUE(sel.ok());
  ASSERT_TRUE(sel->Step().value());
  EXPECT_EQ(sel->ColumnInt64(0), 1);
}

TEST_F(DbTest, ReadOnlyOpenReadsAndRefusesWrites) {
  {
    auto db = OpenOrDie();
    ASSERT_TRUE(db->Migrate(kMigrations).ok());
    ASSERT_TRUE(db->Exec("INSERT INTO t(k) VALUES ('a')").ok());
  }
  auto db = OpenOrDie({.read_only = true});
  ASSERT_NE(db, nullptr);
  EXPECT_TRUE(db->read_only());
  auto sel = db->Prepare("SELECT k FROM t");
  ASSERT_TRUE(sel->Step().value());
  EXPECT_EQ(sel->ColumnText(0), "a");
  Status st = db->Exec("INSERT INTO t(k) VALUES ('b')");
  ASSERT_EQ(st.code(), Code::kStorageError);
  EXPECT_NE(st.error().message.find(path_), std::string::npos);
  EXPECT_NE(st.error().hint.find("read-only"), std::string::npos) << st.ToString();
}

TEST_F(DbTest, NotADatabaseIsStorageError) {
  FILE* f = fopen(path_.c_str(), "w");
  fputs("this is not sqlite, just some text long enough to look like a header........", f);
  fclose(f);
  auto db = Database::Open(path_, {});
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.code(), Code::kStorageError);
  EXPECT_NE(db.error().message.find(path_), std::string::npos) << db.error().ToString();
}

TEST_F(DbTest, MissingDirectoryIsStorageErrorNamingIt) {
  auto db = Database::Open(dir_ + "/nope/store.db", {});
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.code(), Code::kStorageError);
  EXPECT_NE(db.error().message.find(dir_ + "/nope/store.db"), std::string::npos);
}

TEST_F(DbTest, EnsurePrivateDirectoryCreates0700) {
  std::string nested = dir_ + "/a/b/c";
  ASSERT_TRUE(EnsurePrivateDirectory(nested).ok());
  struct stat st;
  ASSERT_EQ(stat(nested.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(stat((dir_ + "/a").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_TRUE(EnsurePrivateDirectory(nested).ok());  // exists: fine

  std::string file = dir_ + "/plain";
  fclose(fopen(file.c_str(), "w"));
  Status bad = EnsurePrivateDirectory(file + "/sub");
  ASSERT_EQ(bad.code(), Code::kStorageError);
  EXPECT_NE(bad.error().message.find(file), std::string::npos);
  EXPECT_EQ(EnsurePrivateDirectory("").code(), Code::kInvalidArgument);
}

// Fraction of `path`'s pages in the page cache.
double CachedFraction(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st {};
  ::fstat(fd, &st);
  const size_t size = static_cast<size_t>(st.st_size);
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> v((size + page - 1) / page);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return -1;
  const bool ok = ::mincore(map, size, v.data()) == 0;
  ::munmap(map, size);
  if (!ok) return -1;
  size_t in = 0;
  for (unsigned char c : v) in += c & 1;
  return static_cast<double>(in) / static_cast<double>(v.size());
}

// Writes `bytes` to `path`, syncs it and asks the kernel to drop its cached pages.
void WriteUncached(const std::string& path, size_t bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  std::string chunk(1 << 20, 'x');
  for (size_t done = 0; done < bytes; done += chunk.size()) {
    ASSERT_EQ(::write(fd, chunk.data(), chunk.size()), static_cast<ssize_t>(chunk.size()));
  }
  ASSERT_EQ(::fsync(fd), 0);
  ASSERT_EQ(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
  ::close(fd);
}

TEST_F(DbTest, WarmPageCacheReadsWhatIsNotCachedAndOnlyThat) {
  const std::string file = dir_ + "/cold";
  constexpr size_t kBytes = 16u << 20;
  WriteUncached(file, kBytes);
  const double before = CachedFraction(file);
  if (before > 0.5) GTEST_SKIP() << "this file system keeps the file cached (" << before << ")";
  const uint64_t read_bytes = WarmPageCache(file, kBytes);
  EXPECT_GT(read_bytes, 0u);
  EXPECT_LE(read_bytes, kBytes);
  EXPECT_GE(read_bytes, static_cast<uint64_t>((1.0 - before) * kBytes) - 4096);
  EXPECT_EQ(CachedFraction(file), 1.0);
  // Cached now: nothing to read.
  EXPECT_EQ(WarmPageCache(file, kBytes), 0u);
}

TEST_F(DbTest, WarmPageCacheLeavesAFileLongerThanTheLimitAndAbsentFilesAlone) {
  const std::string file = dir_ + "/big";
  WriteUncached(file, 4u << 20);
  const double before = CachedFraction(file);
  if (before > 0.5) GTEST_SKIP() << "this file system keeps the file cached (" << before << ")";
  EXPECT_EQ(WarmPageCache(file, (4u << 20) - 1), 0u);
  EXPECT_EQ(CachedFraction(file), before);
  EXPECT_EQ(WarmPageCache(dir_ + "/absent", 1u << 30), 0u);
}

}  // namespace
}  // namespace wsstep::core

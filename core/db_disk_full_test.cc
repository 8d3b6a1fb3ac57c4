// A write that hits a file-size limit (EFBIG, as a full disk gives ENOSPC) must reach the
// administrator as "the disk is full or a file-size limit was reached", naming store.db.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "core/db.h"

namespace wsstep::core {
namespace {

// Runs in a forked child so the file-size limit never applies to the test runner.
// Exit 0: the expected error; 1..: which expectation failed.
int WriteUntilTheLimit(const std::string& path) {
  ::signal(SIGXFSZ, SIG_IGN);  // a write past the limit fails with EFBIG instead
  auto db = Database::Open(path, {});
  if (!db.ok()) return 2;
  if (!(*db)->Exec("CREATE TABLE t (b BLOB)").ok()) return 3;
  struct rlimit limit {};
  limit.rlim_cur = limit.rlim_max = 256 * 1024;
  if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) return 4;
  const std::string blob(64 * 1024, 'x');
  for (int i = 0; i < 64; ++i) {
    auto st = (*db)->Prepare("INSERT INTO t (b) VALUES (?)");
    if (!st.ok()) return 5;
    st->BindBlob(1, std::string_view(blob));
    Status run = st->Run();
    if (run.ok()) continue;
    const Error& e = run.error();
    if (e.code != Code::kStorageError) return 6;
    if (e.message.find("store.db") == std::string::npos) return 7;
    if (e.message.find("the disk is full or a file-size limit was reached") ==
        std::string::npos) {
      return 8;
    }
    if (e.hint.find("file-size limit") == std::string::npos) return 9;
    return 0;
  }
  return 10;  // never failed
}

TEST(DbDiskFullTest, FileSizeLimitSaysDiskFullOrLimit) {
  const std::string dir = ::testing::TempDir() + "/db_disk_full_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) ::_exit(WriteUntilTheLimit(dir + "/store.db"));
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace wsstep::core

// Listen addresses: unix and TCP forms, the loopback rule, private socket directories.
#include "plugin/process/listen.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <vector>

namespace wsstep::plugin {
namespace {

TEST(ListenTest, ParsesUnixAndTcpForms) {
  EXPECT_EQ(ParseListenAddress("unix:///run/w.sock")->path, "/run/w.sock");
  EXPECT_EQ(ParseListenAddress("unix:/run/w.sock")->path, "/run/w.sock");
  EXPECT_EQ(ParseListenAddress("/run/w.sock")->GrpcUri(), "unix:///run/w.sock");
  auto tcp = ParseListenAddress("tcp://127.0.0.1:7443");
  ASSERT_TRUE(tcp.ok());
  EXPECT_EQ(tcp->kind, ListenAddress::Kind::kTcp);
  EXPECT_EQ(tcp->port, 7443);
  EXPECT_EQ(ParseListenAddress("[::1]:0")->GrpcUri(), "[::1]:0");
  EXPECT_FALSE(ParseListenAddress("::1:80").ok());
  EXPECT_FALSE(ParseListenAddress("localhost:99999").ok());
  EXPECT_FALSE(ParseListenAddress("unix://" + std::string(200, 'a')).ok());
}

TEST(ListenTest, RefusesRemoteTcpUnlessAllowed) {
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.3.2.1"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_FALSE(IsLoopbackHost("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackHost("10.1.2.3"));
  const auto remote = *ParseListenAddress("0.0.0.0:7443");
  EXPECT_EQ(CheckListenPolicy(remote, false).code(), Code::kInvalidArgument);
  EXPECT_TRUE(CheckListenPolicy(remote, true).ok());
  EXPECT_TRUE(CheckListenPolicy(*ParseListenAddress("/tmp/x.sock"), false).ok());
}

TEST(ListenTest, PreparesPrivateDirectories) {
  auto dir = MakePrivateTempDir("");
  ASSERT_TRUE(dir.ok()) << dir.error().ToString();
  struct stat st {};
  ASSERT_EQ(::stat(dir->c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  const std::string nested = *dir + "/a/b/plugin.sock";
  ASSERT_TRUE(PrepareUnixSocketPath(nested).ok());
  ASSERT_EQ(::stat((*dir + "/a/b").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // A regular file where the socket should go is never removed.
  { std::ofstream(*dir + "/a/b/plugin.sock") << "data"; }
  EXPECT_EQ(PrepareUnixSocketPath(nested).code(), Code::kInvalidArgument);
  ::unlink(nested.c_str());
  ::rmdir((*dir + "/a/b").c_str());
  ::rmdir((*dir + "/a").c_str());
  ::rmdir(dir->c_str());
}

// A unix socket at `path`, bound; listening when `listen` (nobody listens after close).
int BoundSocket(const std::string& path, bool listen) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << path;
  if (listen) {
    EXPECT_EQ(::listen(fd, 1), 0);
  }
  return fd;
}

// Sets modification times a minute into the past, as a plugin killed a while ago leaves.
void MakeOld(const std::string& path) {
  timespec times[2];
  ::clock_gettime(CLOCK_REALTIME, &times[0]);
  times[0].tv_sec -= 60;
  times[1] = times[0];
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << path;
}

TEST(ListenTest, SweepsOnlyOldSocketDirectoriesNobodyListensIn) {
  const char* tmp = std::getenv("TMPDIR");
  std::string base_templ =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/wsstep-sweep-test-XXXXXX";
  ASSERT_NE(::mkdtemp(base_templ.data()), nullptr);
  const std::string base = base_templ;
  auto dir = [&](const std::string& name) {
    const std::string d = base + "/" + name;
    EXPECT_EQ(::mkdir(d.c_str(), 0700), 0) << d;
    return d;
  };
  // Stale: a socket whose server is gone; and an empty directory.
  const std::string dead = dir("wsstep-Dead01");
  ::close(BoundSocket(dead + "/plugin.sock", false));
  const std::string empty = dir("wsstep-Empty1");
  // Kept: a live server; a regular file; another name; a fresh dead socket.
  const std::string live = dir("wsstep-Live01");
  const int live_fd = BoundSocket(live + "/plugin.sock", true);
  const std::string file = dir("wsstep-File01");
  { std::ofstream(file + "/notes.txt") << "mine"; }
  const std::string other = dir("wsstep-data");
  const std::string fresh = dir("wsstep-Fresh1");
  ::close(BoundSocket(fresh + "/plugin.sock", false));
  for (const std::string& p : {dead + "/plugin.sock", dead, empty, live + "/plugin.sock", live,
                               file + "/notes.txt", file, other}) {
    MakeOld(p);
  }

  std::vector<std::string> removed = SweepStaleSocketDirs(base);
  std::sort(removed.begin(), removed.end());
  EXPECT_EQ(removed, (std::vector<std::string>{dead, empty}));
  namespace fs = std::filesystem;
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_FALSE(fs::exists(empty));
  EXPECT_TRUE(fs::exists(live + "/plugin.sock"));
  EXPECT_TRUE(fs::exists(file + "/notes.txt"));
  EXPECT_TRUE(fs::exists(other));
  EXPECT_TRUE(fs::exists(fresh + "/plugin.sock"));
  // Once more: nothing left to remove.
  EXPECT_TRUE(SweepStaleSocketDirs(base).empty());
  ::close(live_fd);
  fs::remove_all(base);
}

}  // namespace
}  // namespace wsstep::plugin

// Listen addresses: unix and TCP forms, the loopback rule, private socket directories.
#include "plugin/process/listen.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

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

}  // namespace
}  // namespace wsstep::plugin

// Crash safety of the certificate store (PRODUCT.md §6: "a crash mid-write loses nothing
// that was acknowledged"): a child process changes the store and reports each
// acknowledged change through a pipe; it is SIGKILLed at a random moment; the store must
// then open, and hold every acknowledged change intact. Plus the master-key refusals that
// must leave the data untouched.
#include <gtest/gtest.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sqlite3.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <sstream>

#include "core/store/store.h"
#include "core/store/store_testing.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace wsstep::core {
namespace {

using namespace wsstep::core::testing;  // NOLINT

// Lines the child wrote before it died. A line is written with one write() of less than
// PIPE_BUF bytes, so it arrives whole or not at all.
std::vector<std::string> SplitLines(const std::string& all) {
  std::vector<std::string> lines;
  std::istringstream in(all);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

void WriteLine(int fd, const std::string& line) {
  std::string l = line + "\n";
  if (::write(fd, l.data(), l.size()) != static_cast<ssize_t>(l.size())) ::_exit(5);
}

// Runs `child(write_fd)` in a child process, kills it with SIGKILL as soon as it has
// written `lines_before_kill` lines (it is then busy with its next change: the kill lands
// somewhere in it, at a point the test does not choose), and returns what it acknowledged.
// Reading the pipe is the wait: no guess at how long the child needs to get there.
std::vector<std::string> RunAndKill(const std::function<void(int)>& child,
                                    size_t lines_before_kill) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    child(fds[1]);
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string all;
  char buf[4096];
  ssize_t n = 0;
  auto line_count = [&] { return static_cast<size_t>(std::count(all.begin(), all.end(), '\n')); };
  // A child that stops writing (it failed, or it hangs) ends the wait at EOF or after a
  // generous safety bound; the checks below then fail.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (line_count() < lines_before_kill && std::chrono::steady_clock::now() < give_up) {
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, 1000) <= 0) continue;
    if ((n = ::read(fds[0], buf, sizeof(buf))) <= 0) break;
    all.append(buf, static_cast<size_t>(n));
  }
  EXPECT_GE(line_count(), lines_before_kill) << "the child stopped acknowledging changes";
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  while ((n = ::read(fds[0], buf, sizeof(buf))) > 0) all.append(buf, static_cast<size_t>(n));
  std::vector<std::string> lines = SplitLines(all);
  ::close(fds[0]);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "the child ended on its own (status " << status << ") before it was killed";
  return lines;
}

std::string IntegrityCheck(const std::string& db_path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return "cannot open";
  }
  std::string result;
  sqlite3_exec(
      db, "PRAGMA integrity_check",
      [](void* out, int, char** values, char**) {
        *static_cast<std::string*>(out) += values[0] != nullptr ? values[0] : "";
        return 0;
      },
      &result, nullptr);
  sqlite3_close(db);
  return result;
}

// The entry's key decrypts and matches its certificate, through the call path.
void ExpectUsable(CertificateStore& store, const std::string& id) {
  ResolveRequest req;
  req.host = "crash.test";
  req.certificate_name = id;
  auto call = store.ResolveForCall(req);
  ASSERT_TRUE(call.ok()) << id << ": " << call.status().ToString();
  ASSERT_NE(call->credentials.identity, nullptr);
  EXPECT_EQ(X509_check_private_key(call->credentials.identity->leaf.get(),
                                   call->credentials.identity->key.get()),
            1)
      << id;
}

class StoreCrashTest : public ::testing::Test {
 protected:
  std::mt19937 rng_{static_cast<uint32_t>(std::random_device{}())};
  TempDir dir_;
  TestClock clock_;

  size_t RandomCount(int lo, int hi) {
    return static_cast<size_t>(std::uniform_int_distribution<int>(lo, hi)(rng_));
  }
};

TEST_F(StoreCrashTest, KilledWhileCreatingLosesNothingAcknowledged) {
  const std::string cert = ReadFile(Pki("client/ec256.pem"));
  const std::string key = ReadFile(Pki("client/ec256.key.pem"));
  std::string fingerprint;
  // name -> id of every acknowledged entry, over all rounds.
  std::map<std::string, std::string> acknowledged;
  for (int round = 0; round < 6; ++round) {
    // The first round is killed right after its first create (the store was just made),
    // the others after a random number of them.
    const size_t kill_after = round == 0 ? 1 : RandomCount(1, 20);
    auto lines = RunAndKill(
        [&](int fd) {
          auto s = CertificateStore::Open(OptionsFor(dir_.path(), clock_));
          if (!s.ok()) ::_exit(3);
          for (int i = 0;; ++i) {
            CreateRequest r;
            r.name = "r" + std::to_string(round) + "-" + std::to_string(i);
            r.material.content = SecretBytes(cert);
            r.material.key = SecretBytes(key);
            auto e = (*s)->Create(std::move(r), {"crash"}, nullptr);
            if (!e.ok()) ::_exit(4);
            WriteLine(fd, e->name + " " + e->id);
            (*s)->RecordUse(e->id, {"crash.test", 443, "default"}, {"crash"}, "OK");
          }
        },
        kill_after);
    for (const auto& line : lines) {
      auto space = line.find(' ');
      acknowledged[line.substr(0, space)] = line.substr(space + 1);
    }
    ASSERT_EQ(IntegrityCheck(dir_.Path("store.db")), "ok") << "round " << round;

    auto s = CertificateStore::Open(OptionsFor(dir_.path(), clock_));
    ASSERT_TRUE(s.ok()) << "round " << round << ": " << s.status().ToString();
    // At most the one create in flight may have committed without its acknowledgement.
    EXPECT_GE((*s)->size(), acknowledged.size());
    EXPECT_LE((*s)->size(), acknowledged.size() + static_cast<size_t>(round) + 1);
    for (const auto& [name, id] : acknowledged) {
      auto e = (*s)->Get(id);
      ASSERT_TRUE(e.ok()) << "round " << round << ": acknowledged " << name << " is gone";
      EXPECT_EQ(e->name, name);
      ASSERT_TRUE(e->certificate.has_value());
      if (fingerprint.empty()) fingerprint = e->certificate->sha256_fingerprint;
      EXPECT_EQ(e->certificate->sha256_fingerprint, fingerprint);
      EXPECT_TRUE(e->has_private_key);
      EXPECT_EQ(e->version, 1u);
      ExpectUsable(**s, id);
    }
    std::printf("round %d: killed after %zu acknowledged creates, %zu entries acknowledged in total\n",
                round, lines.size(), acknowledged.size());
  }
  EXPECT_GT(acknowledged.size(), 0u);
}

TEST_F(StoreCrashTest, KilledWhileRotatingTheMasterKeyKeepsEveryKeyReadable) {
  std::vector<std::string> ids;
  {
    auto s = CertificateStore::Open(OptionsFor(dir_.path(), clock_));
    ASSERT_TRUE(s.ok());
    for (int i = 0; i < 5; ++i) {
      ids.push_back(
          (*s)->Create(KeyPairRequest("k" + std::to_string(i), "ec256"), {}, nullptr)->id);
    }
  }
  for (int round = 0; round < 6; ++round) {
    auto lines = RunAndKill(
        [&](int fd) {
          auto s = CertificateStore::Open(OptionsFor(dir_.path(), clock_));
          if (!s.ok()) ::_exit(3);
          for (;;) {
            auto key = MasterKey::Generate();
            WriteLine(fd, "rotating " + key->id());
            std::string id = key->id();
            if (!(*s)->RotateMasterKey(std::move(key).value(), {"crash"}).ok()) ::_exit(4);
            WriteLine(fd, "rotated " + id);
          }
        },
        // Killed after a "rotating" line (mid-rotation) or a "rotated" one (between two).
        RandomCount(1, 12));
    std::string last_done, in_flight;
    for (const auto& line : lines) {
      if (line.starts_with("rotated ")) last_done = line.substr(8);
      if (line.starts_with("rotating ")) in_flight = line.substr(9);
    }
    auto s = CertificateStore::Open(OptionsFor(dir_.path(), clock_));
    ASSERT_TRUE(s.ok()) << "round " << round << ": " << s.status().ToString();
    std::string id = (*s)->master_key_id();
    if (!last_done.empty()) {
      EXPECT_TRUE(id == last_done || id == in_flight)
          << "round " << round << ": key " << id << ", last rotated " << last_done;
    }
    EXPECT_FALSE(std::filesystem::exists(dir_.Path("master.key.new")));
    for (const auto& f : std::filesystem::directory_iterator(dir_.path())) {
      EXPECT_EQ(f.path().filename().string().find(".tmp-"), std::string::npos) << f.path();
    }
    EXPECT_EQ(MasterKey::LoadFile(dir_.Path("master.key"))->id(), id);
    for (const auto& e : ids) ExpectUsable(**s, e);
    std::printf("round %d: %zu rotation lines, store key %s (%s)\n", round, lines.size(),
                id.c_str(), id == in_flight ? "the one in flight" : "the last completed");
  }
}

TEST_F(StoreCrashTest, ReopenShowsExactlyWhatWasThere) {
  std::vector<EntryMetadata> before;
  std::vector<AuditEvent> audit_before;
  {
    auto s = CertificateStore::Open(OptionsFor(dir_.path(), clock_));
    ASSERT_TRUE(s.ok());
    CertificateStore& store = **s;
    Binding api{"api.example.test", 443, "production"};
    auto a = store.Create(KeyPairRequest("a", "rsa", {api}), {"alice"}, nullptr);
    ASSERT_TRUE(a.ok());
    CreateRequest trust = TrustRequest("trust", "trust/bundle.pem", {api});
    trust.private_trust_only = true;
    trust.description = "bank CAs";
    ASSERT_TRUE(store.Create(std::move(trust), {"alice"}, nullptr).ok());
    CreateRequest p12 = FileRequest("p12", EntryType::kPkcs12, "p12/rsa-legacy.p12", kP12Password);
    p12.notifications.frequency = NotificationFrequency::kWeekly;
    p12.notifications.warning_days = 14;
    p12.notifications.alert_ref = "ops-mail";
    ASSERT_TRUE(store.Create(std::move(p12), {"bob"}, nullptr).ok());
    ASSERT_TRUE(store.Create(KeyPairRequest("gone", "ec384"), {"bob"}, nullptr).ok());
    clock_.Advance(100);
    UpdateRequest u;
    u.revoked = true;
    u.bindings = std::vector<Binding>{{"*.example.test", 8443, "sandbox"}};
    ASSERT_TRUE(store.Update("a", std::move(u), {"carol"}, nullptr).ok());
    ASSERT_TRUE(store.Delete("gone", {"carol"}).ok());
    store.RecordUse(a->id, {"api.example.test", 443, "production"}, {"engine", "s1", "w1"}, "OK");
    ASSERT_TRUE(store.AcknowledgeNotification("p12", clock_.now->load() - 5).ok());
    ASSERT_TRUE(store.Flush().ok());
    before = store.List({})->entries;
    audit_before = store.ListAudit({.page_size = 1000})->events;
  }
  auto s = CertificateStore::Open(OptionsFor(dir_.path(), clock_));
  ASSERT_TRUE(s.ok());
  auto after = (*s)->List({})->entries;
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) {
    ExpectSameEntry(after[i], before[i]);
    EXPECT_EQ(after[i].use_count, before[i].use_count);
    EXPECT_EQ(after[i].last_used_at, before[i].last_used_at);
  }
  EXPECT_EQ(before[0].name, "a");
  EXPECT_EQ(before[0].use_count, 1u);
  auto audit_after = (*s)->ListAudit({.page_size = 1000})->events;
  ASSERT_EQ(audit_after.size(), audit_before.size());
  for (size_t i = 0; i < audit_before.size(); ++i) {
    EXPECT_EQ(audit_after[i].sequence, audit_before[i].sequence);
    EXPECT_EQ(audit_after[i].action, audit_before[i].action);
    EXPECT_EQ(audit_after[i].detail, audit_before[i].detail);
  }
  EXPECT_EQ(audit_before.size(), 8u);  // 4 creates, update, delete, use, acknowledge
}

TEST_F(StoreCrashTest, WrongOrMissingMasterKeyIsRefusedWithoutTouchingTheData) {
  std::string id;
  {
    auto s = CertificateStore::Open(OptionsFor(dir_.path(), clock_));
    ASSERT_TRUE(s.ok());
    id = (*s)->Create(KeyPairRequest("a", "rsa"), {}, nullptr)->id;
  }
  const std::string key_file = ReadFile(dir_.Path("master.key"));
  const std::string store_key_id = MasterKey::LoadFile(dir_.Path("master.key"))->id();
  const std::string db = ReadFile(dir_.Path("store.db"));

  auto other = MasterKey::Generate();
  ASSERT_TRUE(other->WriteFile(dir_.Path("master.key")).ok());
  auto wrong = CertificateStore::Open(OptionsFor(dir_.path(), clock_));
  ASSERT_EQ(wrong.code(), Code::kMasterKeyError);
  EXPECT_EQ(wrong.error().message, "the master key (id " + other->id() +
                                       ") does not match the key this store was written with (id " +
                                       store_key_id + ")");
  EXPECT_EQ(ReadFile(dir_.Path("store.db")), db);
  EXPECT_FALSE(std::filesystem::exists(dir_.Path("store.db-wal")) &&
               std::filesystem::file_size(dir_.Path("store.db-wal")) > 0);

  // The same key given directly (e.g. from WSSTEP_MASTER_KEY) is refused alike.
  StoreOptions direct = OptionsFor(dir_.path(), clock_);
  direct.master_key = other->Clone();
  EXPECT_EQ(CertificateStore::Open(std::move(direct)).code(), Code::kMasterKeyError);

  std::filesystem::remove(dir_.Path("master.key"));
  auto missing = CertificateStore::Open(OptionsFor(dir_.path(), clock_));
  ASSERT_EQ(missing.code(), Code::kMasterKeyError);
  EXPECT_EQ(missing.error().message,
            dir_.Path("master.key") + ": the master key file is missing, and the store in " +
                dir_.path() + " was written with master key id " + store_key_id);
  EXPECT_FALSE(std::filesystem::exists(dir_.Path("master.key")));  // never made up
  EXPECT_EQ(ReadFile(dir_.Path("store.db")), db);

  WriteFile(dir_.Path("master.key"), key_file);
  auto s = CertificateStore::Open(OptionsFor(dir_.path(), clock_));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ExpectUsable(**s, id);
}

TEST_F(StoreCrashTest, KeyFileGivenByPathIsCreatedOnceAndThenRequired) {
  TempDir keys;
  StoreOptions o = OptionsFor(dir_.path(), clock_);
  o.master_key_file = keys.Path("wsstep.key");
  std::string id;
  {
    auto s = CertificateStore::Open(std::move(o));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    id = (*s)->Create(KeyPairRequest("a", "rsa"), {}, nullptr)->id;
  }
  EXPECT_TRUE(std::filesystem::exists(keys.Path("wsstep.key")));
  EXPECT_FALSE(std::filesystem::exists(dir_.Path("master.key")));
  // Not found at the default place: refused, not recreated.
  EXPECT_EQ(CertificateStore::Open(OptionsFor(dir_.path(), clock_)).code(), Code::kMasterKeyError);
  StoreOptions again = OptionsFor(dir_.path(), clock_);
  again.master_key_file = keys.Path("wsstep.key");
  auto s = CertificateStore::Open(std::move(again));
  ASSERT_TRUE(s.ok());
  ExpectUsable(**s, id);
}

}  // namespace
}  // namespace wsstep::core

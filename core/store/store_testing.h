// Helpers shared by the certificate store's tests (core/store/store_test.cc,
// core/store/store_crash_test.cc): the storage backend under test, a movable clock,
// store options, requests built from the generated PKI, whole-entry comparison, and
// running code in a child process. Test-only; header-only so that core's library does
// not carry it.
#ifndef WSSTEP_CORE_STORE_STORE_TESTING_H_
#define WSSTEP_CORE_STORE_STORE_TESTING_H_

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/store/pg_storage.h"
#include "core/store/sqlite_storage.h"
#include "core/store/storage.h"
#include "core/store/store.h"
#include "tests/support/pki.h"

namespace wsstep::core::testing {

// The shared test support (tests/support/pki.h): the generated PKI, files, TempDir.
using ::wsstep::testing::PkiDir;
using ::wsstep::testing::ReadFile;
using ::wsstep::testing::TempDir;
using ::wsstep::testing::WriteFile;

inline std::string Pki(std::string_view rel) { return ::wsstep::testing::PkiPath(rel); }
inline SecretBytes ReadSecret(const std::string& path) {
  return ::wsstep::testing::ReadSecretFile(path);
}

// A clock tests move by hand; starts at the real time (the PKI's validity is relative to
// when it was generated).
struct TestClock {
  std::shared_ptr<std::atomic<UnixSeconds>> now =
      std::make_shared<std::atomic<UnixSeconds>>(static_cast<UnixSeconds>(std::time(nullptr)));
  Clock clock() const {
    auto n = now;
    return [n] { return n->load(); };
  }
  void Advance(UnixSeconds s) { *now += s; }
};

// The storage backends the store's tests run against. Every store the tests open goes
// through OptionsFor, which uses the backend of the running test: SQLite unless a
// parameterized fixture (StoreTest) switched this thread to PostgreSQL with a scratch
// database of the shared test server (tests/support/postgres.h). Tests that look at the
// SQLite file itself say so in their names or comments.
enum class Backend { kSqlite, kPostgres };
inline std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kSqlite ? "Sqlite" : "Postgres";
}
// The PostgreSQL database of the running test; "" while it runs on SQLite.
inline std::string& TestPostgresConnInfo() {
  thread_local std::string conninfo;
  return conninfo;
}
inline StorageFactory TestStorage() {
  const std::string& pg = TestPostgresConnInfo();
  return pg.empty() ? StorageFactory(OpenSqliteStorage) : PostgresStorageFactory(pg);
}

inline StoreOptions OptionsFor(const std::string& dir, const TestClock& clock) {
  StoreOptions o;
  o.data_dir = dir;
  o.clock = clock.clock();
  o.storage = TestStorage();
  return o;
}

// An entry of `type` from one PKI file, e.g. ("trust", kTrustStore, "trust/bundle.pem").
inline CreateRequest FileRequest(std::string name, EntryType type, std::string_view file,
                                 std::optional<std::string_view> password = std::nullopt,
                                 std::vector<Binding> bindings = {}) {
  CreateRequest r;
  r.name = std::move(name);
  r.type = type;
  r.material.content = ReadSecret(Pki(file));
  r.material.content_name = std::string(file);
  if (password) r.material.password = SecretBytes(*password);
  r.bindings = std::move(bindings);
  return r;
}

// KEY_PAIR from client/<base>.pem + client/<base>.key.pem.
inline CreateRequest KeyPairRequest(std::string name, std::string_view base,
                                    std::vector<Binding> bindings = {}) {
  CreateRequest r =
      FileRequest(std::move(name), EntryType::kKeyPair, "client/" + std::string(base) + ".pem",
                  std::nullopt, std::move(bindings));
  r.material.key = ReadSecret(Pki("client/" + std::string(base) + ".key.pem"));
  r.material.key_name = std::string(base) + ".key.pem";
  return r;
}

inline CreateRequest TrustRequest(std::string name, std::string_view file,
                                  std::vector<Binding> bindings = {}) {
  return FileRequest(std::move(name), EntryType::kTrustStore, file, std::nullopt,
                     std::move(bindings));
}

// The password of the openssl-made PKCS#12 files of the test PKI (tests/support/pki.h).
inline constexpr std::string_view kP12Password = ::wsstep::testing::pki::kP12Password;

// Runs `body` in a forked child; returns its exit code, or -1 if a signal ended it. For
// what must not happen in the test process itself: dropping privileges, file size limits,
// being killed. Bodies report failures by returning distinct non-zero codes (and print
// why on stderr).
inline int RunInChild(const std::function<int()>& body) {
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = ::fork();
  if (pid == 0) {
    int rc = 99;
    try {
      rc = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
    }
    std::fflush(stderr);
    ::_exit(rc);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Everything the API shows about an entry, for "what was stored is what comes back".
inline void ExpectSameEntry(const EntryMetadata& a, const EntryMetadata& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.description, b.description);
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.source_format, b.source_format);
  EXPECT_EQ(a.bindings, b.bindings);
  EXPECT_EQ(a.certificate, b.certificate);
  EXPECT_EQ(a.chain_subjects, b.chain_subjects);
  EXPECT_EQ(a.trusted, b.trusted);
  EXPECT_EQ(a.key_alias, b.key_alias);
  EXPECT_EQ(a.attributes, b.attributes);
  EXPECT_EQ(a.has_private_key, b.has_private_key);
  EXPECT_EQ(a.has_password, b.has_password);
  EXPECT_EQ(a.private_trust_only, b.private_trust_only);
  EXPECT_EQ(a.disabled, b.disabled);
  EXPECT_EQ(a.revoked, b.revoked);
  EXPECT_EQ(a.pending_certificate, b.pending_certificate);
  EXPECT_EQ(a.created_at, b.created_at);
  EXPECT_EQ(a.updated_at, b.updated_at);
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.notifications, b.notifications);
  EXPECT_EQ(a.last_notified_at, b.last_notified_at);
}

}  // namespace wsstep::core::testing

#endif  // WSSTEP_CORE_STORE_STORE_TESTING_H_

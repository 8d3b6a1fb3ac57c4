// The real plugin with its store in PostgreSQL (WSSTEP_STORE, a scratch database of the
// shared test server): certificates imported over gRPC serve steps against an mTLS origin
// and survive a restart with a fresh data directory (they live in the database); two
// plugins on one database serve one inventory, each change made through either reaching
// the other's steps, and a plugin killed mid-import leaves the other writing; a plugin
// with another master key refuses to start and says why.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "tests/e2e/e2e_util.h"
#include "tests/mock_engine/mock_engine.h"
#include "tests/support/nginx.h"
#include "tests/support/pki.h"
#include "tests/support/postgres.h"
#include "tests/support/tls_server.h"

namespace wsstep::e2e {
namespace {

using mock_engine::MockEngine;
using ::testing::HasSubstr;

// base64 of 32 bytes: every node of one database is given the same master key.
constexpr const char* kMasterKey = "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=";
constexpr const char* kOtherKey = "bGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGxsbGw=";

class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(db_.ok()) << db_.error();
    origin_ = std::make_unique<testing::TlsServer>(MtlsOriginConfig(nullptr));
    ASSERT_TRUE(origin_->Start()) << origin_->start_error();
  }
  void TearDown() override { origin_->Stop(); }
  std::vector<std::pair<std::string, std::string>> Env(const char* key = kMasterKey) const {
    return {{"WSSTEP_STORE", db_.conninfo()}, {"WSSTEP_MASTER_KEY", key}};
  }
  std::string Url() const { return "https://localhost:" + std::to_string(origin_->port()) + "/pg"; }

  testing::ScratchDatabase db_;
  std::unique_ptr<testing::TlsServer> origin_;
};

TEST_F(PostgresStoreTest, StepsUseCertificatesKeptInPostgresAcrossRestarts) {
  v1::Certificate entry;
  {
    MockEngine first;
    ASSERT_TRUE(first.Start(Env())) << first.start_error();
    entry = ImportRsaIdentity(first, origin_->port());
    ASSERT_FALSE(entry.id().empty());
    auto r = first.Rest(mock_engine::GetStep(Url()), "", Opts("pg-1"));
    ASSERT_TRUE(r.ok()) << r.status.error_message();
    ASSERT_TRUE(r.response.outcome().has_http()) << r.response.outcome().error().message();
    EXPECT_EQ(r.response.outcome().tls().client_certificate().certificate_id(), entry.id());
    EXPECT_EQ(first.Stop(), 0);
  }
  // Another plugin, another (empty) data directory, the same database and master key.
  MockEngine second;
  ASSERT_TRUE(second.Start(Env())) << second.start_error();
  auto listed = second.List({});
  ASSERT_TRUE(listed.ok()) << listed.status.error_message();
  ASSERT_EQ(listed.response.certificates_size(), 2);  // the key pair and the trust store
  auto r = second.Rest(mock_engine::GetStep(Url()), "", Opts("pg-2"));
  ASSERT_TRUE(r.ok()) << r.status.error_message();
  ASSERT_TRUE(r.response.outcome().has_http()) << r.response.outcome().error().message();
  EXPECT_EQ(r.response.outcome().tls().client_certificate().certificate_id(), entry.id());
  // What the origin saw: the stored certificate, both times.
  const auto connections = origin_->connections();
  ASSERT_FALSE(connections.empty());
  EXPECT_EQ(connections.back().client_cert_fingerprint,
            r.response.outcome().tls().client_certificate().sha256_fingerprint());
  EXPECT_EQ(second.Stop(), 0);
}

// Waits (bounded: 10 s) until `done` holds.
bool Eventually(const std::function<bool()>& done) {
  for (int i = 0; i < 500; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

// The certificate the origin saw on a step through `engine`, or "" when the step did
// not get an HTTP answer (`why` says what it got).
std::string PresentedThrough(MockEngine& engine, const std::string& url, std::string* why) {
  auto r = engine.Rest(mock_engine::GetStep(url), "", Opts("pg-cluster"));
  if (!r.ok()) {
    *why = r.status.error_message();
    return "";
  }
  if (!r.response.outcome().has_http()) {
    *why = r.response.outcome().error().message();
    return "";
  }
  return r.response.outcome().tls().client_certificate().sha256_fingerprint();
}

TEST_F(PostgresStoreTest, TwoPluginsServeOneInventoryAndEachChangeReachesBoth) {
  testing::NginxConfig config;
  config.verify_client = testing::NginxVerifyClient::kOn;
  testing::NginxServer nginx(config);
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();
  const std::string echo = nginx.base_url() + "/echo";
  // A step through `engine`: the certificate nginx saw ("" when the step got no 200), and
  // the entry the plugin chose.
  struct Seen {
    std::string nginx_saw;
    std::string chosen_id;
  };
  auto step = [&](MockEngine& engine) {
    Seen seen;
    auto r = engine.Rest(mock_engine::GetStep(echo), "", Opts("pg-cluster"));
    if (!r.ok()) return seen;
    const auto& outcome = r.response.outcome();
    seen.chosen_id = outcome.tls().client_certificate().certificate_id();
    if (outcome.has_http() && outcome.http().status() == 200) {
      seen.nginx_saw = testing::NginxEcho::Parse(outcome.http().body()).client_fingerprint;
    }
    return seen;
  };

  MockEngine a, b;
  ASSERT_TRUE(a.Start(Env())) << a.start_error();
  ASSERT_TRUE(b.Start(Env())) << b.start_error();
  // Imported through A; B serves it without a restart. Steps alternate between them.
  const v1::Certificate entry = ImportRsaIdentity(a, nginx.port());
  ASSERT_FALSE(entry.id().empty());
  const std::string old_print = entry.certificate().sha256_fingerprint();
  ASSERT_TRUE(Eventually([&] { return step(b).nginx_saw == old_print; }));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(step(a).nginx_saw, old_print);
    EXPECT_EQ(step(b).nginx_saw, old_print);
  }

  // Rotated through A mid-run: A at once, and B, present the new certificate to nginx.
  v1::UpdateCertificateRequest rotate;
  rotate.mutable_certificate()->set_id(entry.id());
  *rotate.mutable_material() =
      mock_engine::KeyPairFromFiles("id", "client/ec256.pem", "client/ec256.key.pem", {})
          .material();
  auto rotated = a.Update(rotate);
  ASSERT_TRUE(rotated.ok()) << rotated.status.error_message();
  const std::string new_print = rotated.response.certificate().certificate().sha256_fingerprint();
  ASSERT_EQ(new_print, testing::Sha256FingerprintOfPemFile(testing::PkiPath("client/ec256.pem")));
  EXPECT_EQ(step(a).nginx_saw, new_print);
  ASSERT_TRUE(Eventually([&] { return step(b).nginx_saw == new_print; }));
  EXPECT_EQ(step(a).nginx_saw, new_print);

  // Deleted through B: A stops presenting it (nginx then sees no certificate at all).
  v1::DeleteCertificateRequest remove;
  remove.set_id(entry.id());
  remove.set_force(true);  // the steps above used it
  ASSERT_TRUE(b.Delete(remove).ok());
  ASSERT_TRUE(Eventually([&] { return step(a).chosen_id.empty(); }));
  EXPECT_EQ(step(a).nginx_saw, "");
  EXPECT_EQ(step(b).chosen_id, "");

  // One audit log: A lists what was done through B, B what was done through A.
  v1::ListAuditEventsRequest audit;
  audit.set_certificate_id(entry.id());
  for (MockEngine* engine : {&a, &b}) {
    auto events = engine->Audit(audit);
    ASSERT_TRUE(events.ok()) << events.status.error_message();
    std::string actions;
    for (const auto& ev : events.response.events()) {
      if (ev.action() != v1::AUDIT_ACTION_USE) actions += v1::AuditAction_Name(ev.action()) + " ";
    }
    EXPECT_EQ(actions, "AUDIT_ACTION_DELETE AUDIT_ACTION_UPDATE AUDIT_ACTION_CREATE ");
  }
  EXPECT_EQ(a.Stop(), 0);
  EXPECT_EQ(b.Stop(), 0);
}

TEST_F(PostgresStoreTest, APluginKilledMidImportLeavesTheOtherWritingWithEveryAcknowledgedEntry) {
  MockEngine a, b;
  ASSERT_TRUE(a.Start(Env())) << a.start_error();
  ASSERT_TRUE(b.Start(Env())) << b.start_error();
  std::atomic<int> acknowledged{0};
  std::thread importer([&] {
    for (int i = 0; i < 200; ++i) {
      auto r = a.Create(mock_engine::KeyPairFromFiles("bulk-" + std::to_string(i), "client/rsa.pem",
                                                      "client/rsa.key.pem", {}));
      if (!r.ok()) return;  // the plugin is gone
      acknowledged = i + 1;
    }
  });
  ASSERT_TRUE(Eventually([&] { return acknowledged.load() >= 5; }));
  ::kill(a.process().pid(), SIGKILL);
  importer.join();

  // B writes at once (A's transaction, if any, died with its session) and lists every
  // entry A acknowledged.
  auto mine = b.Create(
      mock_engine::KeyPairFromFiles("after-the-kill", "client/rsa.pem", "client/rsa.key.pem", {}));
  ASSERT_TRUE(mine.ok()) << mine.status.error_message();
  // A restarted node too.
  MockEngine restarted;
  ASSERT_TRUE(restarted.Start(Env())) << restarted.start_error();
  for (MockEngine* node : {&b, &restarted}) {
    for (int i = 0; i < acknowledged.load(); ++i) {
      v1::GetCertificateRequest get;
      get.set_name("bulk-" + std::to_string(i));
      EXPECT_TRUE(node->Get(get).ok()) << get.name();
    }
  }
  EXPECT_EQ(b.Stop(), 0);
  EXPECT_EQ(restarted.Stop(), 0);
}

TEST_F(PostgresStoreTest, WhileTheDatabaseIsDownStepsGoOnAndChangesAnswerStorageUnavailable) {
  testing::PrivatePostgres pg;
  ASSERT_TRUE(pg.ok()) << pg.error();
  const std::vector<std::pair<std::string, std::string>> env = {{"WSSTEP_STORE", pg.conninfo()},
                                                                {"WSSTEP_MASTER_KEY", kMasterKey}};
  MockEngine a, b;
  ASSERT_TRUE(a.Start(env)) << a.start_error();
  ASSERT_TRUE(b.Start(env)) << b.start_error();
  const v1::Certificate entry = ImportRsaIdentity(a, origin_->port());
  ASSERT_FALSE(entry.id().empty());
  std::string why;
  ASSERT_TRUE(Eventually([&] { return !PresentedThrough(b, Url(), &why).empty(); })) << why;

  ASSERT_EQ(pg.Pause(), "");
  // B's steps go on with B's copy of the store.
  EXPECT_EQ(PresentedThrough(b, Url(), &why), entry.certificate().sha256_fingerprint()) << why;
  // A change is refused, retryably, saying why; nothing is changed.
  auto refused = b.Create(mock_engine::KeyPairFromFiles("during-outage", "client/ec256.pem",
                                                        "client/ec256.key.pem", {}));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(refused.details.reason, "STORAGE_UNAVAILABLE");
  EXPECT_THAT(refused.status.error_message(), HasSubstr(": the database cannot be reached ("));
  // B says so in its log, once, as one JSON line at level error.
  ASSERT_TRUE(Eventually([&] {
    return b.StderrText().find("the shared store cannot be reached") != std::string::npos;
  }));

  ASSERT_EQ(pg.Resume(), "");
  // A change through A as soon as A has reconnected; B catches up by itself.
  ASSERT_TRUE(Eventually([&] {
    return a
        .Create(mock_engine::KeyPairFromFiles("after-outage", "client/ec256.pem",
                                              "client/ec256.key.pem", {}))
        .ok();
  }));
  ASSERT_TRUE(Eventually([&] {
    v1::GetCertificateRequest get;
    get.set_name("after-outage");
    return b.Get(get).ok();
  }));
  EXPECT_THAT(b.StderrText(), HasSubstr("the shared store is reachable again"));
  std::istringstream log(b.StderrText());
  for (std::string line; std::getline(log, line);) {
    EXPECT_TRUE(line.empty() || line.front() == '{') << "not a JSON line: " << line;
  }
  EXPECT_EQ(a.Stop(), 0);
  EXPECT_EQ(b.Stop(), 0);
}

TEST_F(PostgresStoreTest, StoreCopyMovesAnEmbeddedStoreIntoPostgresWithItsKeysStillSealed) {
  testing::TempDir work{"wsstep-store-copy-"};
  const std::string dir = work.Path("data");
  v1::Certificate entry;
  {
    MockEngine embedded;
    ASSERT_TRUE(embedded.Start({{"WSSTEP_DATA_DIR", dir}})) << embedded.start_error();
    entry = ImportRsaIdentity(embedded, origin_->port());
    ASSERT_FALSE(entry.id().empty());
    auto r = embedded.Rest(mock_engine::GetStep(Url()), "", Opts("before-copy"));
    ASSERT_TRUE(r.ok() && r.response.outcome().has_http());
    // A directory its plugin still serves is refused, and nothing is copied.
    auto busy = testing::RunCommand(
        {WSSTEP_BINARY, "store", "copy", "--from", dir, "--to", db_.conninfo()});
    EXPECT_EQ(busy.exit_code, 4) << busy.output;
    EXPECT_THAT(busy.output, HasSubstr("the data directory is in use by another wsstep process"));
    EXPECT_EQ(embedded.Stop(), 0);
  }

  auto copied = testing::RunCommand(
      {WSSTEP_BINARY, "--json", "store", "copy", "--from", dir, "--to", db_.conninfo()});
  ASSERT_EQ(copied.exit_code, 0) << copied.output;
  const auto report = nlohmann::json::parse(copied.output.substr(copied.output.find('{')));
  EXPECT_EQ(report["entries"], 2);  // the key pair and the trust store
  EXPECT_EQ(report["private_keys"], 1);
  EXPECT_GE(report["audit_events"].get<int>(), 3);  // two creations and the step's use
  EXPECT_THAT(report["to"].get<std::string>(), ::testing::StartsWith("postgresql://wsstep@"));
  EXPECT_THAT(report["to"].get<std::string>(), ::testing::EndsWith("/" + db_.name()));

  // Twice is refused: the target is no longer empty.
  auto again =
      testing::RunCommand({WSSTEP_BINARY, "store", "copy", "--from", dir, "--to", db_.conninfo()});
  EXPECT_EQ(again.exit_code, 4) << again.output;
  EXPECT_THAT(again.output, HasSubstr("already holds 2 entries; nothing was copied"));

  // A plugin on the database with the directory's key file: the same certificate serves
  // the step, and the audit log came along.
  MockEngine shared;
  ASSERT_TRUE(shared.Start(
      {{"WSSTEP_STORE", db_.conninfo()}, {"WSSTEP_MASTER_KEY_FILE", dir + "/master.key"}}))
      << shared.start_error();
  auto r = shared.Rest(mock_engine::GetStep(Url()), "", Opts("after-copy"));
  ASSERT_TRUE(r.ok()) << r.status.error_message();
  ASSERT_TRUE(r.response.outcome().has_http()) << r.response.outcome().error().message();
  EXPECT_EQ(r.response.outcome().tls().client_certificate().certificate_id(), entry.id());
  EXPECT_EQ(origin_->connections().back().client_cert_fingerprint,
            entry.certificate().sha256_fingerprint());
  v1::ListAuditEventsRequest audit;
  audit.set_certificate_id(entry.id());
  audit.add_actions(v1::AUDIT_ACTION_USE);
  auto uses = shared.Audit(audit);
  ASSERT_TRUE(uses.ok());
  ASSERT_GE(uses.response.events_size(), 1);
  EXPECT_EQ(uses.response.events(uses.response.events_size() - 1).step_id(), "before-copy");
  EXPECT_EQ(shared.Stop(), 0);
}

TEST_F(PostgresStoreTest, APluginWithAnotherMasterKeyDoesNotStart) {
  MockEngine first;
  ASSERT_TRUE(first.Start(Env())) << first.start_error();
  ASSERT_FALSE(ImportRsaIdentity(first, origin_->port()).id().empty());

  MockEngine wrong_key;
  ASSERT_FALSE(wrong_key.Start(Env(kOtherKey)));
  EXPECT_THAT(wrong_key.start_error(), HasSubstr("MASTER_KEY_ERROR"));
  EXPECT_EQ(first.Stop(), 0);
}

}  // namespace
}  // namespace wsstep::e2e

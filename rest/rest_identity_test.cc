// The core security property: connections and TLS sessions never cross identities, while
// each identity still gets keep-alive and session resumption. Plus chain sending and
// private-only trust.
#include <gtest/gtest.h>

#include <atomic>
#include <set>

#include "rest/engine.h"
#include "rest/rest_test_util.h"

namespace wsstep::rest {
namespace {

using namespace std::chrono_literals;
using testing::ClientAuth;
using testing::ServerResponse;
using testing::TlsServer;
using testing::TlsVersions;
using namespace testutil;

struct VersionCase {
  TlsVersions versions;
  std::string expected;
};

class IdentitySeparationTest : public ::testing::TestWithParam<VersionCase> {};

TEST_P(IdentitySeparationTest, AlternatingIdentitiesEachPresentTheirOwnCertificate) {
  auto config = ServerConfig("localhost", ClientAuth::kRequired);
  config.versions = GetParam().versions;
  // Every 25th request on a connection closes it, so each identity also makes new
  // connections, which must resume that identity's TLS session.
  config.handler = [](const testing::ServerRequest& req) {
    ServerResponse r;
    r.body = req.target;
    r.close_connection = req.target.find("close") != std::string::npos;
    return r;
  };
  TlsServer server(std::move(config));
  ASSERT_TRUE(server.Start()) << server.start_error();

  // One worker: every call goes through the same curl multi handle, so nothing kept per
  // multi (rather than per partition) can carry one identity's state to the other.
  EngineOptions options;
  options.workers = 1;
  RestEngine engine(options);
  core::CallCredentials a = Creds("rsa");
  core::CallCredentials b = Creds("second");
  const std::string fp_a = a.identity->fingerprint;
  const std::string fp_b = b.identity->fingerprint;
  ASSERT_NE(fp_a, fp_b);

  constexpr int kRequests = 200;
  for (int i = 0; i < kRequests; ++i) {
    bool use_a = i % 2 == 0;
    std::string path = "/r" + std::to_string(i) + (i % 50 >= 48 ? "-close" : "");
    auto r = engine.Execute(Get(server.BaseUrl() + path), use_a ? a : b, Soon());
    ASSERT_TRUE(r.ok()) << i << ": " << r.error().ToString();
    ASSERT_EQ(r->body, path);
    ASSERT_TRUE(r->tls.client_certificate.has_value()) << i;
    EXPECT_EQ(r->tls.client_certificate->fingerprint, use_a ? fp_a : fp_b);
    EXPECT_EQ(r->tls.protocol, GetParam().expected);
  }

  // What the server saw: every request carried the certificate of the identity that sent it.
  auto records = server.requests();
  ASSERT_EQ(records.size(), static_cast<size_t>(kRequests));
  std::map<int, std::string> connection_identity;
  for (int i = 0; i < kRequests; ++i) {
    const auto& rec = records[i];
    std::string expected = (std::stoi(rec.request.target.substr(2)) % 2 == 0) ? fp_a : fp_b;
    EXPECT_EQ(rec.client_cert_fingerprint, expected) << rec.request_line;
    auto [it, inserted] = connection_identity.emplace(rec.connection_id, rec.client_cert_fingerprint);
    EXPECT_EQ(it->second, rec.client_cert_fingerprint) << "connection " << rec.connection_id
                                                       << " carried two identities";
  }

  // Reuse within each identity: connections << requests, and resumed sessions.
  for (const auto& fp : {fp_a, fp_b}) {
    PartitionStats s = engine.StatsForIdentity(fp);
    SCOPED_TRACE(fp);
    EXPECT_EQ(s.requests, 100u);
    EXPECT_LE(s.new_connections, 8u);
    EXPECT_GE(s.reused_connections, 92u);
    EXPECT_GE(s.resumed_sessions, 2u);
    EXPECT_EQ(s.full_handshakes, 1u);
  }
  int resumed_on_server = 0;
  for (const auto& c : server.connections()) {
    EXPECT_TRUE(c.handshake_ok);
    EXPECT_TRUE(c.client_cert_fingerprint == fp_a || c.client_cert_fingerprint == fp_b);
    resumed_on_server += c.session_resumed ? 1 : 0;
  }
  EXPECT_GE(resumed_on_server, 4);
}

INSTANTIATE_TEST_SUITE_P(Versions, IdentitySeparationTest,
                         ::testing::Values(VersionCase{TlsVersions::kTls12Only, "TLSv1.2"},
                                           VersionCase{TlsVersions::kTls13Only, "TLSv1.3"}),
                         [](const auto& info) { return info.param.expected.substr(0, 3) +
                                                       info.param.expected.substr(4, 1) +
                                                       info.param.expected.substr(6, 1); });

TEST(IdentityTest, ConcurrentIdentitiesNeverShareAConnection) {
  TlsServer server(ServerConfig("localhost", ClientAuth::kRequired));
  ASSERT_TRUE(server.Start()) << server.start_error();
  EngineOptions options;
  options.workers = 6;
  RestEngine engine(options);
  std::vector<core::CallCredentials> creds = {Creds("rsa"), Creds("second"), Creds("ec256")};
  std::mutex mu;
  std::condition_variable cv;
  int pending = 0;
  std::vector<std::string> failures;
  for (int i = 0; i < 120; ++i) {
    const auto& c = creds[i % 3];
    std::string path = "/id" + std::to_string(i % 3) + "/" + std::to_string(i);
    {
      std::lock_guard<std::mutex> lock(mu);
      ++pending;
    }
    engine.Submit(Get(server.BaseUrl() + path), c, Soon(), {}, [&, fp = c.identity->fingerprint](
                                                                   Result<RestResult> r) {
      std::lock_guard<std::mutex> lock(mu);
      if (!r.ok()) {
        failures.push_back(r.error().ToString());
      } else if (!r->tls.client_certificate || r->tls.client_certificate->fingerprint != fp) {
        failures.push_back("wrong certificate reported: " +
                           (r->tls.client_certificate ? r->tls.client_certificate->fingerprint
                                                      : std::string("none")) +
                           " resumed=" + std::to_string(r->tls.session_resumed) +
                           " reused=" + std::to_string(r->tls.connection_reused));
      }
      if (--pending == 0) cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, 30s, [&] { return pending == 0; }));
  EXPECT_TRUE(failures.empty()) << failures.front();
  std::map<int, std::string> connection_identity;
  for (const auto& rec : server.requests()) {
    std::string expected = creds[rec.request.target[3] - '0'].identity->fingerprint;
    EXPECT_EQ(rec.client_cert_fingerprint, expected) << rec.request_line;
    auto [it, inserted] = connection_identity.emplace(rec.connection_id, rec.client_cert_fingerprint);
    EXPECT_EQ(it->second, rec.client_cert_fingerprint);
  }
}

TEST(IdentityTest, NoReuseMakesANewConnectionEveryTimeResumingOnlyItsOwnIdentitysSession) {
  TlsServer server(ServerConfig("localhost", ClientAuth::kRequired));
  ASSERT_TRUE(server.Start()) << server.start_error();
  EngineOptions options;
  options.workers = 1;  // one curl multi handle for both identities
  RestEngine engine(options);
  core::CallCredentials a = Creds("rsa");
  core::CallCredentials b = Creds("second");
  constexpr int kRequests = 10;
  for (int i = 0; i < kRequests; ++i) {
    const bool use_a = i % 2 == 0;
    RestStep step = Get(server.BaseUrl() + "/");
    step.reuse_connections = false;
    auto r = engine.Execute(std::move(step), use_a ? a : b, Soon());
    ASSERT_TRUE(r.ok()) << i << ": " << r.error().ToString();
    EXPECT_FALSE(r->tls.connection_reused) << i;
    // Each identity's first connection makes a full handshake; its later ones resume.
    EXPECT_EQ(r->tls.session_resumed, i >= 2) << i;
  }
  // What the server saw: a connection per request, each carrying the certificate of the
  // identity that sent it, resumed or not.
  auto connections = server.connections();
  ASSERT_EQ(connections.size(), static_cast<size_t>(kRequests));
  for (int i = 0; i < kRequests; ++i) {
    const auto& c = connections[i];
    EXPECT_TRUE(c.handshake_ok) << i;
    EXPECT_EQ(c.session_resumed, i >= 2) << i;
    EXPECT_EQ(c.client_cert_fingerprint, (i % 2 == 0 ? a : b).identity->fingerprint) << i;
  }
  for (const auto* creds : {&a, &b}) {
    PartitionStats s = engine.StatsForIdentity(creds->identity->fingerprint);
    EXPECT_EQ(s.new_connections, 5u);
    EXPECT_EQ(s.full_handshakes, 1u);
    EXPECT_EQ(s.resumed_sessions, 4u);
  }
}

TEST(IdentityTest, WithoutSessionResumptionEveryNewConnectionMakesAFullHandshake) {
  TlsServer server(ServerConfig("localhost", ClientAuth::kRequired));
  ASSERT_TRUE(server.Start()) << server.start_error();
  RestEngine engine;
  core::CallCredentials a = Creds("rsa");
  for (int i = 0; i < 5; ++i) {
    RestStep step = Get(server.BaseUrl() + "/");
    step.reuse_connections = false;
    step.resume_tls_sessions = false;
    auto r = engine.Execute(std::move(step), a, Soon());
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_FALSE(r->tls.connection_reused);
    EXPECT_FALSE(r->tls.session_resumed);
  }
  EXPECT_EQ(server.connection_count(), 5u);
  for (const auto& c : server.connections()) {
    EXPECT_FALSE(c.session_resumed);
    EXPECT_EQ(c.client_cert_fingerprint, a.identity->fingerprint);
  }
  EXPECT_EQ(engine.StatsForIdentity(a.identity->fingerprint).full_handshakes, 5u);
}

TEST(IdentityTest, LeafSignedByTheIntermediateIsAcceptedBecauseWeSendTheChain) {
  // The server trusts only the root; the client leaf is issued by the intermediate.
  TlsServer server(ServerConfig("localhost", ClientAuth::kRequired, "ca/root.pem"));
  ASSERT_TRUE(server.Start()) << server.start_error();
  RestEngine engine;
  // Our trust holds only the root too, so OpenSSL cannot complete the chain on its own
  // from the trust store: what reaches the server is what the identity carries.
  core::CallCredentials with_chain;
  with_chain.identity = LoadIdentity("rsa");
  with_chain.trust = LoadTrust("ca/root.pem");
  auto r = engine.Execute(Get(server.BaseUrl() + "/"), with_chain, Soon());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 200);

  // Without the chain the server cannot build a path to its root.
  core::CallCredentials leaf_only = with_chain;
  leaf_only.identity = LoadIdentity("rsa", /*with_chain=*/false);
  auto refused = engine.Execute(Get(server.BaseUrl() + "/"), leaf_only, Soon());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Code::kClientCertRejected) << refused.error().ToString();
  EXPECT_EQ(refused.error().detail.at("alert"), "unknown_ca");
}

TEST(IdentityTest, PrivateTrustOnlyIgnoresTheSystemCas) {
  // The "system" CAs of this engine contain other-root; the server is signed by it.
  EngineOptions options;
  options.system_trust.ca_file = PkiPath("ca/other-root.pem");
  // One worker: both calls go through the same curl multi handle, whose CA cache would
  // otherwise hand the first call's trust store to the second (a regression test).
  options.workers = 1;
  RestEngine engine(options);
  TlsServer server(ServerConfig("other-ca", ClientAuth::kNone));
  ASSERT_TRUE(server.Start()) << server.start_error();

  core::CallCredentials with_system = Creds("", /*private_trust=*/false);
  auto ok = engine.Execute(Get(server.BaseUrl() + "/"), with_system, Soon());
  ASSERT_TRUE(ok.ok()) << ok.error().ToString();

  core::CallCredentials private_creds = Creds("", /*private_trust=*/true);
  auto refused = engine.Execute(Get(server.BaseUrl() + "/"), private_creds, Soon());
  ASSERT_FALSE(refused.ok()) << "the private-only call trusted a system CA";
  EXPECT_EQ(refused.error().code, Code::kServerCertUntrusted) << refused.error().ToString();

  RestStep step = Get(server.BaseUrl() + "/");
  step.tls.private_trust_only = true;
  auto refused_by_step = engine.Execute(std::move(step), with_system, Soon());
  ASSERT_FALSE(refused_by_step.ok());
  EXPECT_EQ(refused_by_step.error().code, Code::kServerCertUntrusted);
}

TEST(IdentityTest, DefaultSystemTrustDoesNotKnowThePrivateRoot) {
  // With OpenSSL's default system CAs (Debian's /etc/ssl/certs) the test root is unknown:
  // trust comes only from the store built for the partition.
  RestEngine engine;
  TlsServer server(ServerConfig("localhost", ClientAuth::kNone));
  ASSERT_TRUE(server.Start()) << server.start_error();
  auto r = engine.Execute(Get(server.BaseUrl() + "/"), core::CallCredentials{}, Soon());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kServerCertUntrusted) << r.error().ToString();
}

TEST(IdentityTest, TotalsByEntryKeepCountingWhenPartitionsAreDropped) {
  // One partition at a time: every switch of identity drops the other's partition. The
  // totals per entry (what metrics counters read) still only grow.
  auto config = ServerConfig("localhost", ClientAuth::kRequired);
  TlsServer server(std::move(config));
  ASSERT_TRUE(server.Start()) << server.start_error();
  EngineOptions options;
  options.workers = 1;
  options.max_partitions = 1;
  RestEngine engine(options);
  const core::CallCredentials a = Creds("rsa");
  const core::CallCredentials b = Creds("second");
  for (int i = 0; i < 6; ++i) {
    auto r = engine.Execute(Get(server.BaseUrl() + "/t"), i % 2 == 0 ? a : b, Soon());
    ASSERT_TRUE(r.ok()) << i << ": " << r.error().ToString();
  }
  EXPECT_EQ(engine.Stats().size(), 1u) << "the older partition was dropped";
  std::map<std::string, PartitionStats> totals;
  for (const auto& t : engine.TotalsByEntry()) totals[t.identity_entry_id] = t;
  ASSERT_EQ(totals.size(), 2u);
  for (const std::string& id : {a.identity->entry_id, b.identity->entry_id}) {
    ASSERT_TRUE(totals.count(id)) << id;
    EXPECT_EQ(totals[id].requests, 3u) << id;
    // Each return of an identity is a new partition, so a new connection.
    EXPECT_EQ(totals[id].new_connections, 3u) << id;
    EXPECT_EQ(totals[id].full_handshakes + totals[id].resumed_sessions, 3u) << id;
  }
}

}  // namespace
}  // namespace wsstep::rest

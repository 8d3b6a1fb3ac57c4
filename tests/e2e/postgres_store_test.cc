// The real plugin with its store in PostgreSQL (WSSTEP_STORE, a scratch database of the
// shared test server): certificates imported over gRPC serve steps against an mTLS origin
// and survive a restart with a fresh data directory (they live in the database); a second
// plugin on the same database, or one with another master key, refuses to start and says
// why.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/e2e/e2e_util.h"
#include "tests/mock_engine/mock_engine.h"
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

TEST_F(PostgresStoreTest, ASecondPluginOnTheDatabaseOrAWrongKeyDoesNotStart) {
  MockEngine first;
  ASSERT_TRUE(first.Start(Env())) << first.start_error();
  ASSERT_FALSE(ImportRsaIdentity(first, origin_->port()).id().empty());

  MockEngine second;
  ASSERT_FALSE(second.Start(Env()));
  EXPECT_THAT(second.start_error(), HasSubstr("/" + db_.name() +
                                              ": the database is in use by another wsstep plugin "
                                              "(wsstep pid " +
                                              std::to_string(first.process().pid()) + " on "));
  EXPECT_EQ(first.Stop(), 0);

  MockEngine wrong_key;
  ASSERT_FALSE(wrong_key.Start(Env(kOtherKey)));
  EXPECT_THAT(wrong_key.start_error(), HasSubstr("MASTER_KEY_ERROR"));
}

}  // namespace
}  // namespace wsstep::e2e

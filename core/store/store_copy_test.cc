// CopyStore: a whole store moved between storages with its keys still sealed, all or
// nothing, into an empty target unless told otherwise, never across master keys.
#include "core/store/store_copy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/store/sqlite_storage.h"
#include "core/store/store.h"
#include "core/store/store_testing.h"

namespace wsstep::core {
namespace {

using ::testing::HasSubstr;
using ::wsstep::core::testing::KeyPairRequest;
using ::wsstep::core::testing::OptionsFor;
using ::wsstep::core::testing::TempDir;
using ::wsstep::core::testing::TestClock;

class StoreCopyTest : public ::testing::Test {
 protected:
  // A store in `dir` with `names` (key pairs), opened with `key`, then closed.
  void Fill(const TempDir& dir, const MasterKey& key, std::vector<std::string> names) {
    StoreOptions o = OptionsFor(dir.path(), clock_);
    o.master_key = key.Clone();
    auto store = CertificateStore::Open(std::move(o));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    for (const auto& n : names) {
      ASSERT_TRUE((*store)->Create(KeyPairRequest(n, "rsa"), {"alice"}, nullptr).ok());
    }
  }
  std::unique_ptr<Storage> Open(const TempDir& dir) {
    auto s = OpenSqliteStorage({dir.path(), false});
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }

  TestClock clock_;
  TempDir from_dir_, to_dir_;
  MasterKey key_ = MasterKey::Generate().value();
};

TEST_F(StoreCopyTest, EverythingArrivesAndTheCopyOpensWithTheSourcesKey) {
  Fill(from_dir_, key_, {"a", "b"});
  {
    StoreOptions o = OptionsFor(from_dir_.path(), clock_);
    o.master_key = key_.Clone();
    auto store = CertificateStore::Open(std::move(o));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE(
        (*store)->SetProxyCredential("corp", "svc", SecretBytes("Pw-1"), {"alice"}, nullptr).ok());
  }
  auto from = Open(from_dir_);
  auto to = Open(to_dir_);
  auto copied = CopyStore(*from, *to, {});
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  EXPECT_EQ(copied->entries, 2u);
  EXPECT_EQ(copied->private_keys, 2u);
  EXPECT_EQ(copied->audit_events, 3u);  // the two creations, the credential
  EXPECT_EQ(copied->proxy_credentials, 1u);
  EXPECT_EQ(copied->master_key_id, key_.id());
  from.reset();
  to.reset();

  StoreOptions o = OptionsFor(to_dir_.path(), clock_);
  o.master_key = key_.Clone();
  auto store = CertificateStore::Open(std::move(o));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto b = (*store)->Get("b");
  ASSERT_TRUE(b.ok());
  ResolveRequest named;
  named.host = "x.example.test";
  named.port = 443;
  named.environment = "production";
  named.certificate_name = "b";
  auto resolved = (*store)->ResolveForCall(named);
  ASSERT_TRUE(resolved.ok()) << resolved.status().ToString();
  EXPECT_NE(resolved->credentials.identity, nullptr);  // the sealed key opens
  auto login = (*store)->ProxyCredential("corp");      // so does the sealed password
  ASSERT_TRUE(login.ok()) << login.status().ToString();
  EXPECT_EQ(login->password->view(), "Pw-1");
  auto audit = (*store)->ListAudit({});
  ASSERT_TRUE(audit.ok());
  ASSERT_EQ(audit->events.size(), 3u);
  EXPECT_EQ(audit->events[0].entry_name, "corp");  // newest first, order kept
  EXPECT_EQ(audit->events[1].entry_name, "b");
}

TEST_F(StoreCopyTest, ANonEmptyTargetOrAnotherMasterKeyIsRefusedAndNothingIsWritten) {
  Fill(from_dir_, key_, {"a", "b"});
  Fill(to_dir_, key_, {"b"});
  auto from = Open(from_dir_);
  auto to = Open(to_dir_);
  auto refused = CopyStore(*from, *to, {});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Code::kFailedPrecondition);
  EXPECT_THAT(refused.error().message, HasSubstr("already holds 1 entries; nothing was copied"));
  // Told to add: the name "b" is taken there, so nothing is added at all.
  auto clash = CopyStore(*from, *to, {.into_non_empty = true});
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.error().code, Code::kDuplicateName);
  EXPECT_EQ(to->LoadEntries()->entries.size(), 1u);

  TempDir other;
  Fill(other, *MasterKey::Generate(), {"c"});
  auto foreign = Open(other);
  auto mixed = CopyStore(*foreign, *to, {.into_non_empty = true});
  ASSERT_FALSE(mixed.ok());
  EXPECT_EQ(mixed.error().code, Code::kFailedPrecondition);
  EXPECT_THAT(mixed.error().message, HasSubstr("is sealed under master key " + key_.id()));
  EXPECT_EQ(to->LoadEntries()->entries.size(), 1u);
}

TEST_F(StoreCopyTest, AProxyCredentialNameTakenInTheTargetIsRefusedAndNothingIsWritten) {
  auto with_credential = [&](const TempDir& dir, const std::string& name) {
    StoreOptions o = OptionsFor(dir.path(), clock_);
    o.master_key = key_.Clone();
    auto store = CertificateStore::Open(std::move(o));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE((*store)->SetProxyCredential(name, "svc", SecretBytes("Pw"), {"a"}, nullptr).ok());
  };
  Fill(from_dir_, key_, {"a"});
  with_credential(from_dir_, "CORP");
  with_credential(to_dir_, "corp");
  auto from = Open(from_dir_);
  auto to = Open(to_dir_);
  auto clash = CopyStore(*from, *to, {.into_non_empty = true});
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.error().code, Code::kDuplicateName);
  EXPECT_THAT(clash.error().message, HasSubstr("already holds a proxy credential named \"corp\""));
  EXPECT_TRUE(to->LoadEntries()->entries.empty());
  EXPECT_EQ(to->ReadSecrets()->size(), 1u);
}

}  // namespace
}  // namespace wsstep::core

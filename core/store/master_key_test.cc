#include "core/store/master_key.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/store/storage_testing.h"
#include "tests/support/pki.h"

namespace wsstep::core {
namespace {

using ::wsstep::testing::TempDir;

TEST(StoreMasterKeyTest, TheRecordRecognizesOnlyItsKey) {
  Vault vault(MasterKey::Generate().value());
  MasterKeyRecord record = MasterKeyRecordFor(vault).value();
  EXPECT_EQ(record.key_id, vault.key_id());
  ASSERT_TRUE(record.check.has_value());
  EXPECT_TRUE(CheckMasterKey(vault, record).ok());

  Vault other(MasterKey::Generate().value());
  EXPECT_EQ(CheckMasterKey(other, record).code(), Code::kMasterKeyError);
  // Another key that claims the recorded id is caught by the check value.
  MasterKeyRecord forged = MasterKeyRecordFor(other).value();
  forged.key_id = vault.key_id();
  EXPECT_EQ(CheckMasterKey(vault, forged).code(), Code::kMasterKeyError);
  // A record from before the check value existed: the id alone decides.
  EXPECT_TRUE(CheckMasterKey(vault, {vault.key_id(), std::nullopt}).ok());
}

TEST(StoreMasterKeyTest, TheKeyFileIsTheConfiguredOneElseMasterKeyInTheDataDirectory) {
  EXPECT_EQ(MasterKeyFilePath("/var/lib/wsstep", ""), "/var/lib/wsstep/master.key");
  EXPECT_EQ(MasterKeyFilePath("/var/lib/wsstep//", ""), "/var/lib/wsstep/master.key");
  EXPECT_EQ(MasterKeyFilePath("/var/lib/wsstep", "/etc/wsstep/key"), "/etc/wsstep/key");
}

TEST(StoreMasterKeyTest, ANewStoreGetsAKeyFileAnExistingOneNeverDoes) {
  TempDir dir;
  const std::string path = dir.Path("master.key");
  auto created = ObtainMasterKey(std::nullopt, path, dir.path(), std::nullopt, false);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(MasterKey::LoadFile(path)->id(), created->id());
  std::filesystem::remove(path);
  auto missing = ObtainMasterKey(std::nullopt, path, dir.path(), created->id(), false);
  ASSERT_EQ(missing.code(), Code::kMasterKeyError);
  EXPECT_EQ(missing.error().detail.at("store_key_id"), created->id());
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(StoreMasterKeyTest, StaleTemporariesOfTheKeyFileAreRemoved) {
  TempDir dir;
  ::wsstep::testing::WriteFile(dir.Path("master.key.tmp-abc123"), "half");
  ::wsstep::testing::WriteFile(dir.Path("master.key.new.tmp-x"), "half");
  ::wsstep::testing::WriteFile(dir.Path("other.tmp-1"), "not ours");
  RemoveStaleKeyTemporaries(dir.Path("master.key"));
  EXPECT_FALSE(std::filesystem::exists(dir.Path("master.key.tmp-abc123")));
  EXPECT_FALSE(std::filesystem::exists(dir.Path("master.key.new.tmp-x")));
  EXPECT_TRUE(std::filesystem::exists(dir.Path("other.tmp-1")));
}

TEST(StoreMasterKeyTest, ResealingMovesEveryKeyToTheNewVault) {
  Vault old_vault(MasterKey::Generate().value());
  Vault new_vault(MasterKey::Generate().value());
  testing::MemoryStorage storage;
  StoredMaterial m;
  m.sealed_key = old_vault.Seal(SecretBytes("pkcs8 bytes"), SealedKeyAad("e1")).value();
  storage.material["e1"] = m;
  storage.material["e2"] = StoredMaterial{};  // no key
  auto tx = storage.Begin().value();
  EXPECT_EQ(ResealStoredKeys(*tx, old_vault, new_vault).value(), 1u);
  ASSERT_TRUE(tx->Commit().ok());
  const StoredMaterial& after = storage.material["e1"];
  EXPECT_EQ(after.sealed_key_id, new_vault.key_id());
  EXPECT_EQ(new_vault.Open(*after.sealed_key, SealedKeyAad("e1"))->view(), "pkcs8 bytes");
  // Bound to its entry: the blob does not open as another entry's.
  EXPECT_FALSE(new_vault.Open(*after.sealed_key, SealedKeyAad("e2")).ok());
}

}  // namespace
}  // namespace wsstep::core

#include "core/vault.h"
#include "tests/support/pki.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace wsstep::core {
namespace {

namespace fs = std::filesystem;

MasterKey KeyOf(char fill) {
  auto k = MasterKey::FromBytes(SecretBytes(std::string(32, fill)), "test");
  EXPECT_TRUE(k.ok());
  return std::move(k).value();
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class VaultFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::wsstep::testing::MakeTempDir("wsstep-vault-test-");  // in $TMPDIR; TearDown removes it
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST(MasterKeyTest, IdIsFirstEightBytesOfSha256InHex) {
  MasterKey k = KeyOf('k');
  uint8_t md[32];
  unsigned int len = 0;
  std::string raw(32, 'k');
  EVP_Digest(raw.data(), raw.size(), md, &len, EVP_sha256(), nullptr);
  char hex[17];
  for (int i = 0; i < 8; ++i) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  EXPECT_EQ(k.id(), std::string(hex));
  EXPECT_EQ(k.id().size(), 16u);
}

TEST(MasterKeyTest, GeneratedKeysDiffer) {
  auto a = MasterKey::Generate();
  auto b = MasterKey::Generate();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->bytes().size(), 32u);
  EXPECT_NE(a->id(), b->id());
}

TEST(MasterKeyTest, WrongSizeIsMasterKeyErrorNamingTheSource) {
  auto k = MasterKey::FromBytes(SecretBytes(std::string(31, 'x')), "WSSTEP_MASTER_KEY");
  ASSERT_EQ(k.code(), Code::kMasterKeyError);
  EXPECT_EQ(k.error().message, "WSSTEP_MASTER_KEY: a master key is 32 bytes, got 31");
}

TEST(MasterKeyTest, FromBase64) {
  // base64 of 32 bytes of 'k'.
  const std::string b64 = "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=";
  auto k = MasterKey::FromBase64("  " + b64 + "\n", "WSSTEP_MASTER_KEY");
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  EXPECT_EQ(k->id(), KeyOf('k').id());

  auto bad = MasterKey::FromBase64("not*base64!", "WSSTEP_MASTER_KEY");
  ASSERT_EQ(bad.code(), Code::kMasterKeyError);
  EXPECT_EQ(bad.error().message, "WSSTEP_MASTER_KEY: not base64 of a 32-byte master key");
  auto short_key = MasterKey::FromBase64("a2tr", "env");
  ASSERT_EQ(short_key.code(), Code::kMasterKeyError);
  EXPECT_NE(short_key.error().message.find("got 3"), std::string::npos);
}

TEST(VaultTest, SealOpenRoundTripWithLayout) {
  Vault v(KeyOf('a'));
  SecretBytes secret(std::string("private key bytes, very secret \0 bytes", 38));
  auto blob = v.Seal(secret, "entry/e1/key");
  ASSERT_TRUE(blob.ok());
  EXPECT_EQ(blob->size(), secret.size() + kSealOverhead);
  EXPECT_EQ(static_cast<uint8_t>((*blob)[0]), 0x01);
  EXPECT_EQ(Vault::KeyIdOf(*blob).value(), v.key_id());
  EXPECT_EQ(blob->find("very secret"), std::string::npos);

  auto plain = v.Open(*blob, "entry/e1/key");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(plain->view(), secret.view());

  // Fresh nonce each time.
  auto again = v.Seal(secret, "entry/e1/key");
  EXPECT_NE(*again, *blob);
}

TEST(VaultTest, EmptyPlaintextSeals) {
  Vault v(KeyOf('a'));
  auto blob = v.Seal(SecretBytes(), "x");
  ASSERT_TRUE(blob.ok());
  auto plain = v.Open(*blob, "x");
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->empty());
}

TEST(VaultTest, BlobMovedToAnotherRowFailsAuthentication) {
  Vault v(KeyOf('a'));
  auto blob = v.Seal(SecretBytes(std::string("secret")), "entry/e1/key");
  auto moved = v.Open(*blob, "entry/e2/key");
  ASSERT_EQ(moved.code(), Code::kStorageError);
  EXPECT_EQ(moved.error().message,
            "sealed value entry/e2/key: failed authentication (damaged, or copied from another "
            "row)");
}

TEST(VaultTest, AnyFlippedBitFails) {
  Vault v(KeyOf('a'));
  auto blob = v.Seal(SecretBytes(std::string("secret value")), "r");
  for (size_t i = 0; i < blob->size(); ++i) {
    std::string bad = *blob;
    bad[i] ^= 0x01;
    auto r = v.Open(bad, "r");
    EXPECT_FALSE(r.ok()) << "byte " << i;
  }
  EXPECT_EQ(v.Open(blob->substr(0, 10), "r").code(), Code::kStorageError);
}

TEST(VaultTest, WrongKeyNamesBothIds) {
  Vault writer(KeyOf('a'));
  Vault reader(KeyOf('b'));
  auto blob = writer.Seal(SecretBytes(std::string("secret")), "r");
  auto r = reader.Open(*blob, "r");
  ASSERT_EQ(r.code(), Code::kMasterKeyError);
  EXPECT_EQ(r.error().message, "the master key (id " + reader.key_id() +
                                   ") does not match the key this store was written with (id " +
                                   writer.key_id() + ")");
}

TEST(VaultTest, RetiredKeysStillOpenAndNeedReseal) {
  Vault old_vault(KeyOf('a'));
  auto blob = old_vault.Seal(SecretBytes(std::string("secret")), "r");
  Vault rotated(KeyOf('b'), [] {
    std::vector<MasterKey> v;
    v.push_back(KeyOf('a'));
    return v;
  }());
  EXPECT_EQ(rotated.key_id(), KeyOf('b').id());
  EXPECT_TRUE(rotated.NeedsReseal(*blob));
  auto plain = rotated.Open(*blob, "r");
  ASSERT_TRUE(plain.ok());
  auto resealed = rotated.Seal(*plain, "r");
  EXPECT_FALSE(rotated.NeedsReseal(*resealed));
  EXPECT_EQ(Vault::KeyIdOf(*resealed).value(), KeyOf('b').id());
  EXPECT_EQ(Vault(KeyOf('b')).Open(*resealed, "r")->view(), "secret");
}

TEST_F(VaultFileTest, WriteFileIs0600Base64AndLoadsBack) {
  auto k = MasterKey::Generate();
  std::string path = dir_ + "/master.key";
  ASSERT_TRUE(k->WriteFile(path).ok());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string text = ReadAll(path);
  EXPECT_EQ(text.size(), 45u);  // 44 base64 characters and a newline
  EXPECT_EQ(text.back(), '\n');
  auto loaded = MasterKey::LoadFile(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->id(), k->id());
  // No temporary files are left behind.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST_F(VaultFileTest, WriteFileReplacesAtomically) {
  std::string path = dir_ + "/master.key";
  ASSERT_TRUE(KeyOf('a').WriteFile(path).ok());
  ASSERT_TRUE(KeyOf('b').WriteFile(path).ok());
  EXPECT_EQ(MasterKey::LoadFile(path)->id(), KeyOf('b').id());
}

TEST_F(VaultFileTest, LoadsRawThirtyTwoBytes) {
  std::string path = dir_ + "/raw.key";
  std::ofstream(path, std::ios::binary) << std::string(32, 'k');
  auto k = MasterKey::LoadFile(path);
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->id(), KeyOf('k').id());
}

TEST_F(VaultFileTest, MissingOrBadFileIsMasterKeyErrorWithoutContent) {
  std::string missing = dir_ + "/none.key";
  auto m = MasterKey::LoadFile(missing);
  ASSERT_EQ(m.code(), Code::kMasterKeyError);
  EXPECT_EQ(m.error().message,
            missing + ": cannot read the master key file: No such file or directory");

  std::string bad = dir_ + "/bad.key";
  std::ofstream(bad) << "SECRETISH-GARBAGE";
  auto b = MasterKey::LoadFile(bad);
  ASSERT_EQ(b.code(), Code::kMasterKeyError);
  EXPECT_EQ(b.error().message, bad + ": not a master key file (expected the base64 of 32 bytes)");
  EXPECT_EQ(b.error().ToString().find("SECRETISH"), std::string::npos);
}

TEST_F(VaultFileTest, WriteIntoMissingDirectoryIsStorageError) {
  Status st = KeyOf('a').WriteFile(dir_ + "/nope/master.key");
  ASSERT_EQ(st.code(), Code::kStorageError);
  EXPECT_NE(st.error().message.find(dir_ + "/nope/master.key"), std::string::npos);
}

TEST_F(VaultFileTest, RenameDurably) {
  std::string a = dir_ + "/a";
  std::ofstream(a) << "x";
  ASSERT_TRUE(RenameDurably(a, dir_ + "/b").ok());
  EXPECT_FALSE(fs::exists(a));
  EXPECT_EQ(ReadAll(dir_ + "/b"), "x");
  EXPECT_EQ(RenameDurably(a, dir_ + "/c").code(), Code::kStorageError);
}

}  // namespace
}  // namespace wsstep::core

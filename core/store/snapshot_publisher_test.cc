#include "core/store/snapshot_publisher.h"

#include <gtest/gtest.h>

#include <ctime>

#include "core/store/storage_testing.h"
#include "core/store/upload.h"
#include "tests/support/pki.h"

namespace wsstep::core {
namespace {

using testing::MemoryStorage;
using ::wsstep::testing::PkiPath;
using ::wsstep::testing::ReadSecretFile;

const Binding kApi{"api.example.test", 443, "default"};

class SnapshotPublisherTest : public ::testing::Test {
 protected:
  SnapshotPublisherTest() {
    vault_.store(std::make_shared<const Vault>(MasterKey::Generate().value()));
  }

  // The key pair client/<base> as entry `id` at `version`: its metadata, and (unless
  // `store` is false) its material in storage. `parsed` receives the parsed material.
  EntryMetadata KeyPair(const std::string& id, std::string_view base, uint64_t version,
                        bool store = true, ParsedMaterial* parsed = nullptr) {
    SecretBytes cert = ReadSecretFile(PkiPath("client/" + std::string(base) + ".pem"));
    SecretBytes key = ReadSecretFile(PkiPath("client/" + std::string(base) + ".key.pem"));
    ImportInput in;
    in.type = EntryType::kKeyPair;
    in.content = &cert;
    in.key = &key;
    in.now = now_;
    PreparedUpload p = PrepareUpload(in).value();
    EXPECT_TRUE(SealPreparedKey(p, *vault_.load(), id).ok());
    p.stored.version = version;
    EntryMetadata e = std::move(p.facts);
    e.id = id;
    e.name = "client " + id;
    e.type = EntryType::kKeyPair;
    e.bindings = {kApi};
    e.version = version;
    if (store) storage_.material[id] = p.stored;
    if (parsed != nullptr) *parsed = std::move(p.parsed);
    return e;
  }

  Result<ResolvedCall> ResolveApi() {
    ResolveRequest r;
    r.host = kApi.host;
    r.now = now_;
    return publisher_.ResolveWithCredentials(r, true);
  }

  const UnixSeconds now_ = static_cast<UnixSeconds>(std::time(nullptr));
  MemoryStorage storage_;
  std::atomic<std::shared_ptr<const Vault>> vault_;
  SnapshotPublisher publisher_{storage_, vault_};
};

TEST_F(SnapshotPublisherTest, AnIdentityIsBuiltFromStorageOnceThenServedFromItsSlot) {
  EntryMetadata e = KeyPair("e1", "rsa", 1);
  publisher_.Publish({e});
  auto first = ResolveApi();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_NE(first->credentials.identity, nullptr);
  EXPECT_EQ(first->credentials.identity->fingerprint, e.certificate->sha256_fingerprint);
  EXPECT_EQ(storage_.material_reads, 1);
  auto second = ResolveApi();
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->credentials.identity, first->credentials.identity);
  EXPECT_EQ(storage_.material_reads, 1);

  // Publishing another change carries the slot over: still no read.
  EntryMetadata other = KeyPair("e2", "ec256", 1);
  other.bindings = {{"other.example.test", 443, "default"}};
  publisher_.Publish(publisher_.EntriesWith({&other}, "", false));
  EXPECT_EQ(ResolveApi()->credentials.identity, first->credentials.identity);
  EXPECT_EQ(storage_.material_reads, 1);
}

TEST_F(SnapshotPublisherTest, APrebuiltSlotNeedsNoStorage) {
  ParsedMaterial parsed;
  EntryMetadata e = KeyPair("e1", "rsa", 1, /*store=*/false, &parsed);
  publisher_.Prebuild(e, parsed);
  publisher_.Publish({e});
  auto call = ResolveApi();
  ASSERT_TRUE(call.ok()) << call.status().ToString();
  EXPECT_EQ(call->credentials.identity->entry_id, "e1");
  EXPECT_EQ(storage_.material_reads, 0);
}

TEST_F(SnapshotPublisherTest, ACallKeepsTheIdentityItStartedWithAcrossARotation) {
  ParsedMaterial v1, v2;
  EntryMetadata e = KeyPair("e1", "rsa", 1, false, &v1);
  publisher_.Prebuild(e, v1);
  publisher_.Publish({e});
  auto in_flight = ResolveApi();
  ASSERT_TRUE(in_flight.ok());

  EntryMetadata rotated = KeyPair("e1", "ec256", 2, false, &v2);
  publisher_.Prebuild(rotated, v2);
  publisher_.Publish(publisher_.EntriesWith({&rotated}, "", false));
  auto next = ResolveApi();
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->credentials.identity->version, 2u);
  EXPECT_EQ(in_flight->credentials.identity->version, 1u);
  EXPECT_EQ(in_flight->credentials.identity->fingerprint, e.certificate->sha256_fingerprint);
  EXPECT_EQ(in_flight->snapshot->FindById("e1")->version, 1u);
}

TEST_F(SnapshotPublisherTest, StoredMaterialNewerThanEverySnapshotIsAStorageError) {
  EntryMetadata e = KeyPair("e1", "rsa", 1);
  storage_.material["e1"].version = 2;  // written, never published
  publisher_.Publish({e});
  auto call = ResolveApi();
  ASSERT_EQ(call.code(), Code::kStorageError);
  EXPECT_NE(call.error().message.find("changed repeatedly"), std::string::npos);
}

TEST_F(SnapshotPublisherTest, DamagedMaterialNamesTheEntry) {
  EntryMetadata e = KeyPair("e1", "rsa", 1);
  storage_.material["e1"].leaf_der = "not DER";
  publisher_.Publish({e});
  auto call = ResolveApi();
  ASSERT_EQ(call.code(), Code::kStorageError);
  EXPECT_NE(call.error().message.find("certificate 'client e1' (id e1)"), std::string::npos)
      << call.error().message;
}

TEST_F(SnapshotPublisherTest, EntriesWithReplacesAppendsAndRemoves) {
  EntryMetadata a, b, c;
  a.id = "a";
  b.id = "b";
  c.id = "c";
  publisher_.Publish({a, b, c});
  EntryMetadata b2 = b;
  b2.description = "changed";
  auto ids = [](const Snapshot::Entries& v) {
    std::string out;
    for (const auto& e : v) out += e->id;
    return out;
  };
  EXPECT_EQ(ids(publisher_.EntriesWith({&b2}, "", false)), "acb");  // saved: moves last
  EXPECT_EQ(ids(publisher_.EntriesWith({&b2}, "", true)), "abc");   // not a save
  EXPECT_EQ(ids(publisher_.EntriesWith({}, "a", true)), "bc");
  EXPECT_EQ(publisher_.EntriesWith({&b2}, "", true)[1]->description, "changed");
  // Entries not edited are shared with the published snapshot, not copied.
  const auto current = publisher_.current()->snapshot;
  const auto next = publisher_.EntriesWith({&b2}, "", false);
  EXPECT_EQ(next[0].get(), current->entries()[0].get());
  EXPECT_EQ(next[1].get(), current->entries()[2].get());
  EXPECT_NE(next[2].get(), current->entries()[1].get());
  EXPECT_EQ(current->PositionOf(current->entries()[2].get()), 2);
  EXPECT_EQ(current->PositionOf(next[2].get()), -1);
}

}  // namespace
}  // namespace wsstep::core

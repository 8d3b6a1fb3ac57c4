#include "core/store/entry_changes.h"

#include <gtest/gtest.h>

namespace wsstep::core {
namespace {

EntryMetadata Current() {
  EntryMetadata e;
  e.id = "e1";
  e.name = "bank";
  e.description = "old";
  e.bindings = {{"a.example.test", 443, "default"}};
  e.version = 4;
  e.created_at = 10;
  e.updated_at = 20;
  e.pending_certificate = true;
  return e;
}

TEST(EntryChangesTest, NewEntryTakesTheRequestAndTheFacts) {
  CreateRequest r;
  r.name = "bank";
  r.type = EntryType::kPkcs12;
  r.bindings = {{"a.example.test", 443, "default"}};
  r.disabled = true;
  EntryMetadata facts;
  facts.has_private_key = true;
  facts.source_format = SourceFormat::kPkcs12;
  EntryMetadata e = NewEntry("id1", r, std::move(facts), 100);
  EXPECT_EQ(e.id, "id1");
  EXPECT_EQ(e.name, "bank");
  EXPECT_EQ(e.type, EntryType::kPkcs12);
  EXPECT_TRUE(e.disabled);
  EXPECT_TRUE(e.has_private_key);
  EXPECT_EQ(e.source_format, SourceFormat::kPkcs12);
  EXPECT_EQ(e.created_at, 100);
  EXPECT_EQ(e.updated_at, 100);
  EXPECT_EQ(e.version, 1u);
}

TEST(EntryChangesTest, APendingKeyEntryNamesItsAlgorithm) {
  KeyGenerationRequest r;
  r.name = "pending";
  r.csr.key_algorithm = "EC";
  r.csr.curve = "P-256";
  EntryMetadata e = NewPendingKeyEntry("id1", r, 5);
  EXPECT_TRUE(e.pending_certificate);
  EXPECT_TRUE(e.has_private_key);
  EXPECT_EQ(e.type, EntryType::kKeyPair);
  EXPECT_EQ(e.attributes.at("key_algorithm"), "EC");
  EXPECT_EQ(e.attributes.at("curve"), "P-256");
}

TEST(EntryChangesTest, AnUpdateSaysWhatChanged) {
  EntryMetadata e = Current();
  UpdateRequest r;
  r.name = "bank";  // the same: not a change
  r.description = "new";
  r.bindings = std::vector<Binding>{{"b.example.test", 443, "default"}};
  r.disabled = true;
  r.revoked = false;  // already not revoked
  AppliedUpdate applied = ApplyUpdate(e, r, nullptr, 30);
  EXPECT_EQ(applied.detail, "description, bindings, disabled");
  EXPECT_TRUE(applied.bindings_changed);
  EXPECT_EQ(e.description, "new");
  EXPECT_EQ(e.updated_at, 30);
  EXPECT_EQ(e.version, 4u);  // no new material

  EntryMetadata same = Current();
  UpdateRequest nothing;
  nothing.bindings = same.bindings;
  applied = ApplyUpdate(same, nothing, nullptr, 40);
  EXPECT_EQ(applied.detail, "no change");
  EXPECT_FALSE(applied.bindings_changed);
  EXPECT_EQ(same.updated_at, 40);
}

TEST(EntryChangesTest, RevocationIsFinal) {
  EntryMetadata e = Current();
  UpdateRequest unrevoke;
  unrevoke.revoked = false;
  UpdateRequest enable;
  enable.disabled = false;
  EXPECT_TRUE(CheckRevocationIsFinal(e, unrevoke).ok());  // not revoked: nothing to keep
  e.revoked = true;
  EXPECT_EQ(CheckRevocationIsFinal(e, unrevoke).code(), Code::kFailedPrecondition);
  EXPECT_TRUE(CheckRevocationIsFinal(e, enable).ok());  // not disabled: enabling changes nothing
  e.disabled = true;
  EXPECT_EQ(CheckRevocationIsFinal(e, enable).code(), Code::kFailedPrecondition);
  UpdateRequest keep;
  keep.revoked = true;
  keep.disabled = true;
  keep.name = "bank-revoked";
  EXPECT_TRUE(CheckRevocationIsFinal(e, keep).ok());

  UpdateRequest revoke;
  revoke.revoked = true;
  EntryMetadata fresh = Current();
  EXPECT_EQ(ApplyUpdate(fresh, revoke, nullptr, 30).detail, "revoked");
}

TEST(EntryChangesTest, NewMaterialIsTheNextVersionAndEndsPending) {
  EntryMetadata e = Current();
  EntryMetadata facts;
  facts.has_private_key = true;
  facts.key_alias = "alias";
  UpdateRequest r;
  AppliedUpdate applied = ApplyUpdate(e, r, &facts, 30);
  EXPECT_EQ(applied.detail, "material (version 5)");
  EXPECT_EQ(e.version, 5u);
  EXPECT_EQ(e.key_alias, "alias");
  EXPECT_FALSE(e.pending_certificate);
  EXPECT_EQ(e.name, "bank");  // the rest stays
}

}  // namespace
}  // namespace wsstep::core

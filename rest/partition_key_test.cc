// The trust part of a partition's key: the same trust set gives the same key whatever the
// order its ids come in (the store keeps them sorted, and such a list is joined without a
// copy), and different sets never share one.
#include <gtest/gtest.h>

#include <string>

#include "core/identity.h"
#include "rest/partition.h"

namespace wsstep::rest {
namespace {

core::TrustAnchors Anchors(std::vector<std::string> ids) {
  core::TrustAnchors anchors;
  anchors.entry_ids = std::move(ids);
  return anchors;
}

TEST(TrustStoreCacheKeyTest, TheSameIdsInAnyOrderGiveTheSameKey) {
  const core::TrustAnchors sorted = Anchors({"a@2", "b@1", "c@7"});
  const core::TrustAnchors unsorted = Anchors({"c@7", "a@2", "b@1"});
  EXPECT_EQ(TrustStoreCache::Key(&sorted, false), "system+a@2,b@1,c@7");
  EXPECT_EQ(TrustStoreCache::Key(&unsorted, false), "system+a@2,b@1,c@7");
  EXPECT_EQ(TrustStoreCache::Key(&sorted, true), "private:a@2,b@1,c@7");
  EXPECT_EQ(TrustStoreCache::Key(&unsorted, true), "private:a@2,b@1,c@7");
  // The caller's list is left as it came.
  EXPECT_EQ(unsorted.entry_ids, (std::vector<std::string>{"c@7", "a@2", "b@1"}));
}

TEST(TrustStoreCacheKeyTest, NoAnchorsIsTheSystemOrAnEmptyPrivateSet) {
  const core::TrustAnchors none;
  EXPECT_EQ(TrustStoreCache::Key(nullptr, false), "system");
  EXPECT_EQ(TrustStoreCache::Key(&none, false), "system");
  EXPECT_EQ(TrustStoreCache::Key(nullptr, true), "private:");
  EXPECT_EQ(TrustStoreCache::Key(&none, true), "private:");
}

TEST(TrustStoreCacheKeyTest, AnotherVersionOrSetIsAnotherKey) {
  const core::TrustAnchors one = Anchors({"a@1"});
  const core::TrustAnchors newer = Anchors({"a@2"});
  const core::TrustAnchors more = Anchors({"a@1", "b@1"});
  EXPECT_NE(TrustStoreCache::Key(&one, false), TrustStoreCache::Key(&newer, false));
  EXPECT_NE(TrustStoreCache::Key(&one, false), TrustStoreCache::Key(&more, false));
  EXPECT_NE(TrustStoreCache::Key(&one, false), TrustStoreCache::Key(&one, true));
}

TEST(TrustStoreCacheKeyTest, AppendKeyAddsToWhatIsThere) {
  const core::TrustAnchors anchors = Anchors({"b@1", "a@1"});
  std::string key = "id=x;trust=";
  TrustStoreCache::AppendKey(&anchors, false, key);
  EXPECT_EQ(key, "id=x;trust=system+a@1,b@1");
}

}  // namespace
}  // namespace wsstep::rest

#include "core/store/bulk_load.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

namespace wsstep::core {
namespace {

std::vector<EntryMetadata> EntriesWithIds(const std::vector<std::string>& ids) {
  std::vector<EntryMetadata> out(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) out[i].id = ids[i];
  return out;
}

TEST(BulkLoadTest, IdIndexFindsEveryIdInAscendingOrderAcrossPrefixTies) {
  // Equal first 8 bytes, shorter ids, and ids shorter than 8 bytes.
  auto entries = EntriesWithIds({"abcdefgh2", "b", "abcdefgh10", "abcdefgh", "a", "abc"});
  IdIndex index(entries);
  // As ORDER BY entry_id returns child rows: ascending, an id repeated (several bindings),
  // and ids of no entry in between.
  const std::vector<std::string> rows = {"a",         "a",         "ab",         "abc",
                                         "abcdefgh",  "abcdefgh1", "abcdefgh10", "abcdefgh10",
                                         "abcdefgh2", "abcdefgh3", "b",          "c"};
  std::vector<std::string> found;
  for (const std::string& id : rows) {
    EntryMetadata* e = index.Find(id);
    found.push_back(e == nullptr ? "-" : e->id);
  }
  const std::vector<std::string> expected = {"a",         "a", "-",          "abc",
                                             "abcdefgh",  "-", "abcdefgh10", "abcdefgh10",
                                             "abcdefgh2", "-", "b",          "-"};
  EXPECT_EQ(found, expected);
}

TEST(BulkLoadTest, IdIndexFindsIdsThatComeOutOfOrder) {
  std::mt19937 rng(11);
  std::vector<std::string> ids;
  for (int i = 0; i < 500; ++i) ids.push_back("entry-" + std::to_string(i * 7));
  auto entries = EntriesWithIds(ids);
  IdIndex index(entries);
  std::vector<std::string> asked = ids;
  for (int i = 0; i < 500; ++i) asked.push_back("entry-" + std::to_string(i * 7 + 3));  // none
  std::shuffle(asked.begin(), asked.end(), rng);
  for (const std::string& id : asked) {
    EntryMetadata* e = index.Find(id);
    const bool exists = std::find(ids.begin(), ids.end(), id) != ids.end();
    ASSERT_EQ(e != nullptr, exists) << id;
    if (exists) {
      EXPECT_EQ(e->id, id);
      EXPECT_EQ(e,
                &entries[static_cast<size_t>(std::find(ids.begin(), ids.end(), id) - ids.begin())]);
    }
  }
}

TEST(BulkLoadTest, PutInSaveOrderFollowsTheSequenceForAnyPermutation) {
  std::mt19937 rng(7);
  for (size_t n : {0u, 1u, 2u, 17u, 1000u}) {
    std::vector<int64_t> seq(n);
    std::iota(seq.begin(), seq.end(), 1);
    std::shuffle(seq.begin(), seq.end(), rng);
    std::vector<EntryMetadata> entries(n);
    for (size_t i = 0; i < n; ++i) entries[i].id = "e" + std::to_string(seq[i]);
    PutInSaveOrder(entries, seq);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(entries[i].id, "e" + std::to_string(i + 1)) << n;
  }
}

TEST(BulkLoadTest, PutInSaveOrderKeepsEntriesAlreadyInOrder) {
  auto entries = EntriesWithIds({"x", "y", "z"});
  PutInSaveOrder(entries, {3, 10, 11});  // gaps are fine
  EXPECT_EQ(entries[0].id, "x");
  EXPECT_EQ(entries[2].id, "z");
}

}  // namespace
}  // namespace wsstep::core

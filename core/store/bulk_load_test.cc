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

TEST(BulkLoadTest, SortedByIdBreaksPrefixTiesOnTheWholeId) {
  // Equal first 8 bytes, shorter ids, and ids shorter than 8 bytes.
  auto entries = EntriesWithIds({"abcdefgh2", "b", "abcdefgh10", "abcdefgh", "a", "abc"});
  std::vector<uint32_t> order = SortedById(entries);
  std::vector<std::string> ids;
  for (uint32_t i : order) ids.push_back(entries[i].id);
  std::vector<std::string> expected = {"a", "abc", "abcdefgh", "abcdefgh10", "abcdefgh2", "b"};
  EXPECT_EQ(ids, expected);
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

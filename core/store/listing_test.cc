#include "core/store/listing.h"

#include <gtest/gtest.h>

namespace wsstep::core {
namespace {

EntryMetadata Named(std::string name, std::string host, EntryType type = EntryType::kKeyPair) {
  EntryMetadata e;
  e.id = "id-" + name;
  e.name = std::move(name);
  e.type = type;
  e.bindings = {{std::move(host), 443, "default"}};
  return e;
}

EntryMetadata AsIs(const EntryMetadata& e) { return e; }

std::string Names(const ListPage& page) {
  std::string out;
  for (const auto& e : page.entries) out += (out.empty() ? "" : ",") + e.name;
  return out;
}

TEST(ListingTest, ByNameIgnoringCaseInPages) {
  Snapshot s({Named("delta", "d.test"), Named("Alpha", "a.test"), Named("charlie", "c.test"),
              Named("BRAVO", "b.test")});
  ListFilter f;
  f.page_size = 3;
  auto first = ListEntries(s, f, 0, AsIs);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(Names(*first), "Alpha,BRAVO,charlie");
  EXPECT_EQ(first->total_size, 4u);
  f.page_token = first->next_page_token;
  auto second = ListEntries(s, f, 0, AsIs);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(Names(*second), "delta");
  EXPECT_TRUE(second->next_page_token.empty());
}

TEST(ListingTest, Filters) {
  Snapshot s({Named("exact", "api.example.test"), Named("wild", "*.example.test"),
              Named("trust", "api.example.test", EntryType::kTrustStore),
              Named("elsewhere", "other.test")});
  ListFilter by_host;
  by_host.host = "API.example.test.";
  EXPECT_EQ(Names(*ListEntries(s, by_host, 0, AsIs)), "exact,trust,wild");
  ListFilter by_type = by_host;
  by_type.type = EntryType::kTrustStore;
  EXPECT_EQ(Names(*ListEntries(s, by_type, 0, AsIs)), "trust");
  ListFilter by_name;
  by_name.name_contains = "ELSE";
  EXPECT_EQ(Names(*ListEntries(s, by_name, 0, AsIs)), "elsewhere");
  ListFilter by_port;
  by_port.port = 8443;
  EXPECT_EQ(ListEntries(s, by_port, 0, AsIs)->total_size, 0u);
}

TEST(ListingTest, EntriesAreShownThroughTheCallback) {
  Snapshot s({Named("a", "a.test")});
  auto page = ListEntries(s, {}, 0, [](const EntryMetadata& e) {
    EntryMetadata shown = e;
    shown.use_count = 7;
    return shown;
  });
  EXPECT_EQ(page->entries[0].use_count, 7u);
}

TEST(ListingTest, BadPageTokenAndSize) {
  Snapshot s(std::vector<EntryMetadata>{});
  ListFilter f;
  f.page_token = "zz";
  EXPECT_EQ(ListEntries(s, f, 0, AsIs).error().detail.at("field"), "page_token");
  f.page_token = "";
  f.page_size = 1001;
  EXPECT_EQ(ListEntries(s, f, 0, AsIs).error().detail.at("field"), "page_size");
}

}  // namespace
}  // namespace wsstep::core

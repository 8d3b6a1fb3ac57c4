#include "core/store/listing.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "core/store/codec.h"
#include "core/store/validation.h"

namespace wsstep::core {

Result<ListPage> ListEntries(const Snapshot& snapshot, const ListFilter& filter, UnixSeconds now,
                             const std::function<EntryMetadata(const EntryMetadata&)>& shown) {
  WSSTEP_ASSIGN_OR_RETURN(size_t page_size, PageSize(filter.page_size));
  // The token is the last name of the previous page, lowered, in hex.
  std::string after;
  if (!filter.page_token.empty()) {
    auto decoded = Unhex(filter.page_token);
    if (!decoded || decoded->empty()) {
      return Invalid("page_token", "not a token returned by a previous List");
    }
    after = std::move(*decoded);
  }
  const std::string host = NormalizeHost(filter.host);
  const std::string needle = AsciiLower(filter.name_contains);
  const bool by_binding = !host.empty() || filter.port || !filter.environment.empty();

  struct Match {
    std::string key;
    const EntryMetadata* e;
  };
  std::vector<Match> matches;
  size_t total = 0;
  for (const auto& shared : snapshot.entries()) {
    const EntryMetadata& e = *shared;
    if (filter.type && e.type != *filter.type) continue;
    if (filter.status && StatusAt(e, now) != *filter.status) continue;
    if (by_binding) {
      bool any = std::any_of(e.bindings.begin(), e.bindings.end(), [&](const Binding& b) {
        return (host.empty() || b.host == host || HostMatches(b.host, host)) &&
               (!filter.port || b.port == *filter.port) &&
               (filter.environment.empty() || b.environment == filter.environment);
      });
      if (!any) continue;
    }
    std::string key = AsciiLower(e.name);
    if (!needle.empty() && key.find(needle) == std::string::npos) continue;
    ++total;
    if (!after.empty() && key <= after) continue;
    matches.push_back({std::move(key), &e});
  }
  size_t take = std::min(page_size, matches.size());
  std::partial_sort(matches.begin(), matches.begin() + static_cast<long>(take), matches.end(),
                    [](const Match& a, const Match& b) { return a.key < b.key; });
  ListPage page;
  page.total_size = total;
  for (size_t i = 0; i < take; ++i) page.entries.push_back(shown(*matches[i].e));
  if (matches.size() > take && take > 0) page.next_page_token = Hex(matches[take - 1].key);
  return page;
}

}  // namespace wsstep::core

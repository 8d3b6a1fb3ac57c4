// CertificateStore::List over a snapshot: the filter, the order (by name, ignoring ASCII
// case) and the paging, with no lock and no storage. Internal to the store.
//
//   WSSTEP_ASSIGN_OR_RETURN(ListPage page, ListEntries(*snapshot, filter, now, WithUsage));
#ifndef WSSTEP_CORE_STORE_LISTING_H_
#define WSSTEP_CORE_STORE_LISTING_H_

#include <functional>

#include "core/error.h"
#include "core/resolver.h"
#include "core/store/store.h"

namespace wsstep::core {

// The page of `snapshot`'s entries that `filter` asks for, statuses taken at `now`. Each
// entry on the page is shown as `shown` returns it (the store adds live use counters).
// INVALID_ARGUMENT naming page_size or page_token.
Result<ListPage> ListEntries(const Snapshot& snapshot, const ListFilter& filter, UnixSeconds now,
                             const std::function<EntryMetadata(const EntryMetadata&)>& shown);

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_STORE_LISTING_H_

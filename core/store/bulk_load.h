// Loading 100,000s of entries at startup (PRODUCT.md §5: startup ≤ 0.5 s, ≤ 0.5 KiB of
// resident memory per entry), whatever the backend reads them from. Startup cost is
// dominated by memory: these helpers sort and reorder without a per-entry allocation
// and without comparisons that chase pointers. Internal to the store's backends.
//
//   std::vector<EntryMetadata> entries;   // read in table order, save_seq[i] beside each
//   std::vector<uint32_t> by_id = SortedById(entries);   // merge-join child rows by id
//   ...
//   PutInSaveOrder(entries, save_seq);
#ifndef WSSTEP_CORE_STORE_BULK_LOAD_H_
#define WSSTEP_CORE_STORE_BULK_LOAD_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/model.h"

namespace wsstep::core {

// Entry positions in id order. Ids are compared by their first 8 bytes (big-endian, so
// integer order is byte order) kept beside the position, and in full only on a tie:
// sorting through the strings themselves missed the cache at every comparison.
std::vector<uint32_t> SortedById(const std::vector<EntryMetadata>& entries);

// Reorders `entries` in place so that `save_sequence` (one per entry, aligned with it)
// ascends. In place because a second vector would double the memory touched; the keys
// are sorted beside the positions because an indirect comparison would miss the cache on
// every step (a sixth of Open's instructions went to these sorts). Cheap when the
// entries already are in order (rows come in insertion order, which is save order unless
// entries were updated).
void PutInSaveOrder(std::vector<EntryMetadata>& entries, const std::vector<int64_t>& save_sequence);

// Asks for transparent huge pages behind a large, not yet touched buffer. Touching fresh
// memory page by page is what dominates loading 100,000s of entries (each 4 KiB page is a
// fault, and faults are slow on virtual machines); with huge pages it is one per 2 MiB.
// Advisory: ignored where THP is off, and for buffers under 8 MiB.
void AdviseHugePages(void* p, size_t bytes);

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_STORE_BULK_LOAD_H_

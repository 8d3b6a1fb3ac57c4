// Loading 100,000s of entries at startup (PRODUCT.md §5: startup ≤ 0.5 s, ≤ 0.5 KiB of
// resident memory per entry), whatever the backend reads them from. Startup cost is
// dominated by memory: these helpers sort and reorder without a per-entry allocation
// and without comparisons that chase pointers. Internal to the store's backends.
//
//   std::vector<EntryMetadata> entries;   // read in table order, save_seq[i] beside each
//   IdIndex by_id(entries);   // then by_id.Find(row_entry_id) for each child row
//   ...
//   PutInSaveOrder(entries, save_seq);
#ifndef WSSTEP_CORE_STORE_BULK_LOAD_H_
#define WSSTEP_CORE_STORE_BULK_LOAD_H_

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/model.h"

namespace wsstep::core {

// Finds entries by id for the child rows (bindings, certificate facts) a backend reads
// after the entries. Each id's first 8 bytes (big-endian, so integer order is byte order)
// are kept beside its position and sorted, so a lookup compares in sequential memory and
// reads an entry's own id only on a prefix tie and to confirm a match: a binary search
// or merge join through the entries' strings missed the cache at every comparison.
// Lookups in ascending id order (ORDER BY entry_id) resume where the previous one ended
// and prefetch the entries of the next few ids; an id that comes out of order is found by
// a binary search. `entries` must outlive the
// index and keep its order and ids while the index is used.
class IdIndex {
 public:
  explicit IdIndex(std::vector<EntryMetadata>& entries);
  // The entry with this id; null if there is none.
  EntryMetadata* Find(std::string_view id);

 private:
  struct Key {
    uint64_t prefix;
    uint32_t pos;
  };
  // Whether the id of `k`'s entry sorts before `id` (whose prefix is `prefix`).
  bool Before(const Key& k, uint64_t prefix, std::string_view id) const;

  std::vector<EntryMetadata>& entries_;
  std::vector<Key> keys_;  // in id order
  size_t next_ = 0;        // where the next ascending lookup starts
};

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

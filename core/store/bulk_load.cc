#include "core/store/bulk_load.h"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <utility>

namespace wsstep::core {

std::vector<uint32_t> SortedById(const std::vector<EntryMetadata>& entries) {
  struct Key {
    uint64_t prefix;
    uint32_t pos;
  };
  std::vector<Key> keys(entries.size());
  for (uint32_t i = 0; i < keys.size(); ++i) {
    const std::string& id = entries[i].id;
    uint64_t prefix = 0;
    for (size_t b = 0; b < 8; ++b) {
      prefix = prefix << 8 | (b < id.size() ? static_cast<unsigned char>(id[b]) : 0u);
    }
    keys[i] = Key{prefix, i};
  }
  std::sort(keys.begin(), keys.end(), [&](const Key& a, const Key& b) {
    if (a.prefix != b.prefix) return a.prefix < b.prefix;
    return entries[a.pos].id < entries[b.pos].id;
  });
  std::vector<uint32_t> out(keys.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = keys[i].pos;
  return out;
}

void PutInSaveOrder(std::vector<EntryMetadata>& entries, const std::vector<int64_t>& save_sequence) {
  std::vector<std::pair<int64_t, uint32_t>> keyed(entries.size());
  for (uint32_t i = 0; i < keyed.size(); ++i) keyed[i] = {save_sequence[i], i};
  if (!std::is_sorted(keyed.begin(), keyed.end())) std::sort(keyed.begin(), keyed.end());
  std::vector<uint32_t> order(entries.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = keyed[i].second;
  std::vector<std::pair<int64_t, uint32_t>>().swap(keyed);
  // order[i] = where the element for position i currently is; follow the cycles.
  for (size_t i = 0; i < order.size(); ++i) {
    size_t cur = i;
    while (order[cur] != i) {
      size_t next = order[cur];
      std::swap(entries[cur], entries[next]);
      order[cur] = static_cast<uint32_t>(cur);
      cur = next;
    }
    order[cur] = static_cast<uint32_t>(cur);
  }
}

void AdviseHugePages(void* p, size_t bytes) {
  constexpr uintptr_t kHuge = 2u << 20;
  if (bytes < 4 * kHuge) return;
  auto begin = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  auto end = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(kHuge - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

HeapReservation::HeapReservation(size_t bytes) {
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
  if (bytes < (16u << 20)) return;
  // Large growth steps while loading; a free that shrinks the heap keeps this much too.
  active_ = ::mallopt(M_TOP_PAD, static_cast<int>(std::min<size_t>(bytes, 1u << 30))) == 1;
  if (!active_) return;
  // A block larger than the free top of the heap makes malloc grow it now, by the pad.
  const size_t probe = ::mallinfo2().keepcost + 4096;
  if (probe >= (64u << 10)) return;  // could be served by mmap instead: no growth
  char* before = static_cast<char*>(::sbrk(0));
  probe_ = ::malloc(probe);
  char* after = static_cast<char*>(::sbrk(0));
  if (after > before) AdviseHugePages(before, static_cast<size_t>(after - before));
#else
  (void)bytes;
#endif
}

HeapReservation::~HeapReservation() {
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
  ::free(probe_);
  if (active_) ::mallopt(M_TOP_PAD, kGlibcDefaultTopPad);
#endif
}

}  // namespace wsstep::core

#include "core/store/bulk_load.h"

#include <sys/mman.h>

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

void PutInSaveOrder(std::vector<EntryMetadata>& entries,
                    const std::vector<int64_t>& save_sequence) {
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

}  // namespace wsstep::core

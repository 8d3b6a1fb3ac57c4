#include "core/store/bulk_load.h"

#include <sys/mman.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>

namespace wsstep::core {

namespace {

// How many lookups ahead IdIndex::Find prefetches an entry.
constexpr size_t kPrefetchAhead = 8;

// The first 8 bytes of `id`, big-endian, zero-padded: integer order is byte order.
uint64_t IdPrefix(std::string_view id) {
  uint64_t prefix = 0;
  for (size_t b = 0; b < 8; ++b) {
    prefix = prefix << 8 | (b < id.size() ? static_cast<unsigned char>(id[b]) : 0u);
  }
  return prefix;
}

}  // namespace

IdIndex::IdIndex(std::vector<EntryMetadata>& entries) : entries_(entries), keys_(entries.size()) {
  for (uint32_t i = 0; i < keys_.size(); ++i) keys_[i] = Key{IdPrefix(entries[i].id), i};
  std::sort(keys_.begin(), keys_.end(), [&](const Key& a, const Key& b) {
    if (a.prefix != b.prefix) return a.prefix < b.prefix;
    return entries_[a.pos].id < entries_[b.pos].id;
  });
}

bool IdIndex::Before(const Key& k, uint64_t prefix, std::string_view id) const {
  if (k.prefix != prefix) return k.prefix < prefix;
  return std::string_view(entries_[k.pos].id) < id;
}

EntryMetadata* IdIndex::Find(std::string_view id) {
  const uint64_t prefix = IdPrefix(id);
  size_t pos = next_;
  if (pos > 0 && !Before(keys_[pos - 1], prefix, id)) {
    // At or before the previous key: out of order, search from the start.
    pos = static_cast<size_t>(
        std::lower_bound(keys_.begin(), keys_.end(), id,
                         [&](const Key& k, std::string_view v) { return Before(k, prefix, v); }) -
        keys_.begin());
  } else {
    while (pos < keys_.size() && Before(keys_[pos], prefix, id)) ++pos;
  }
  next_ = pos;
  // Child rows come in id order, so the entries of the next keys are the next to be read
  // (the id) and written (the caller attaches the row to the bindings or the leaf's
  // facts): each was a cache miss, the entries being in table order (a seventh of Open's
  // time with 100,000 entries). Prefetch them a few lookups ahead, from the id to the
  // end of the leaf's facts.
  if (pos + kPrefetchAhead < keys_.size()) {
    const EntryMetadata& ahead = entries_[keys_[pos + kPrefetchAhead].pos];
    const char* end = reinterpret_cast<const char*>(&ahead.certificate + 1);
    for (const char* p = reinterpret_cast<const char*>(&ahead); p < end; p += 64) {
      __builtin_prefetch(p, 1);
    }
  }
  if (pos == keys_.size() || keys_[pos].prefix != prefix) return nullptr;
  EntryMetadata& e = entries_[keys_[pos].pos];
  return e.id == id ? &e : nullptr;
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

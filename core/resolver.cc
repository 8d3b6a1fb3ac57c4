#include "core/resolver.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iterator>
#include <span>
#include <utility>

namespace wsstep::core {
namespace {

constexpr size_t kMaxBindingsShown = 5;

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

std::string_view StripTrailingDots(std::string_view h) {
  while (!h.empty() && h.back() == '.') h.remove_suffix(1);
  return h;
}

// Host equality under NormalizeHost without building normalized copies.
bool SameHost(std::string_view a, std::string_view b) {
  a = StripTrailingDots(a);
  b = StripTrailingDots(b);
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

uint16_t EffectivePort(uint16_t port) { return port == 0 ? kDefaultPort : port; }
std::string_view EffectiveEnvironment(std::string_view env) {
  return env.empty() ? kDefaultEnvironment : env;
}

// "example.com" for the pattern "*.example.com"; nullopt if the pattern is no wildcard.
std::optional<std::string_view> WildcardSuffix(std::string_view pattern) {
  if (pattern.size() < 3 || pattern[0] != '*' || pattern[1] != '.') return std::nullopt;
  std::string_view suffix = StripTrailingDots(pattern.substr(2));
  if (suffix.empty()) return std::nullopt;
  return suffix;
}

bool IsIpLiteral(std::string_view host) {
  if (host.find(':') != std::string_view::npos) return true;  // IPv6
  return std::all_of(host.begin(), host.end(),
                     [](char c) { return c == '.' || (c >= '0' && c <= '9'); });
}

// The part of `host` a one-label wildcard has to name: "example.com" for
// "a.example.com". nullopt when no wildcard may match the host at all.
std::optional<std::string_view> WildcardParent(std::string_view host) {
  host = StripTrailingDots(host);
  if (host.find('*') != std::string_view::npos || IsIpLiteral(host)) return std::nullopt;
  size_t dot = host.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 >= host.size()) return std::nullopt;
  return host.substr(dot + 1);
}

// FNV-1a with a final avalanche, fed the bytes the index compares (hosts lowered and
// without trailing dots), so a lookup hashes its query in place, allocation-free.
class KeyHasher {
 public:
  KeyHasher& Host(std::string_view h) {
    for (char c : StripTrailingDots(h)) Byte(static_cast<unsigned char>(AsciiLower(c)));
    return Separator();
  }
  KeyHasher& Lowered(std::string_view s) {
    for (char c : s) Byte(static_cast<unsigned char>(AsciiLower(c)));
    return Separator();
  }
  KeyHasher& Exact(std::string_view s) {
    for (char c : s) Byte(static_cast<unsigned char>(c));
    return Separator();
  }
  KeyHasher& Port(uint16_t p) {
    Byte(p & 0xff);
    Byte(p >> 8);
    return *this;
  }
  uint64_t Finish() const {
    uint64_t x = h_;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
  }

 private:
  void Byte(unsigned char b) {
    h_ ^= b;
    h_ *= 0x100000001b3ULL;
  }
  // 0xff never occurs in UTF-8, so "ab"+"c" and "a"+"bc" hash apart.
  KeyHasher& Separator() {
    Byte(0xff);
    return *this;
  }
  uint64_t h_ = 0xcbf29ce484222325ULL;
};

uint64_t BindingKey(std::string_view host, uint16_t port, std::string_view env) {
  return KeyHasher().Host(host).Port(EffectivePort(port)).Exact(EffectiveEnvironment(env)).Finish();
}

// A hash multimap from 64-bit key hashes to entry positions, built for a snapshot of up
// to 100,000 entries that is rebuilt on every store change, where fresh pages are the
// main cost (page faults dominate building on this VM): one flat open-addressing
// table of 8-byte slots (load <= 4/5, linear probing), sized once, no per-key allocation
// and no sorting. A slot keeps 32 bits of the hash as a tag so probing rarely touches an
// entry. Positions rather than pointers keep a copied Snapshot valid. Tags may collide, so
// callers verify every candidate against the entry itself.
class HashIndex {
 public:
  explicit HashIndex(size_t expected) {
    size_t capacity = 16;
    while (capacity * 4 < expected * 5) capacity *= 2;
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
  }

  void Add(uint64_t hash, size_t entry) {
    size_t s = hash & mask_;
    while (slots_[s].entry != kEmpty) s = (s + 1) & mask_;
    slots_[s] = Slot{Tag(hash), static_cast<uint32_t>(entry)};
  }

  // Calls visit(entry) for each entry added under a hash that may equal `hash`, in no
  // particular order, once per Add().
  template <typename Visit>
  void ForEach(uint64_t hash, Visit&& visit) const {
    // Keys are already well mixed: the low bits place, the high bits tag.
    for (size_t s = hash & mask_; slots_[s].entry != kEmpty; s = (s + 1) & mask_) {
      if (slots_[s].tag == Tag(hash)) visit(slots_[s].entry);
    }
  }

 private:
  static constexpr uint32_t kEmpty = UINT32_MAX;
  static uint32_t Tag(uint64_t hash) { return static_cast<uint32_t>(hash >> 32); }
  struct Slot {
    uint32_t tag = 0;
    uint32_t entry = kEmpty;
  };
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

struct BindingCounts {
  size_t exact = 0;
  size_t wildcard = 0;
};

BindingCounts CountBindings(const Snapshot::Entries& entries) {
  BindingCounts n;
  for (const auto& e : entries) {
    for (const Binding& b : e->bindings) ++(WildcardSuffix(b.host) ? n.wildcard : n.exact);
  }
  return n;
}

bool SamePortAndEnvironment(const Binding& b, uint16_t port, std::string_view env) {
  return EffectivePort(b.port) == port && EffectiveEnvironment(b.environment) == env;
}

// Sorted, once each: snapshot order.
void SortUnique(std::vector<uint32_t>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

}  // namespace

struct Snapshot::Index {
  Index(size_t entries, BindingCounts bindings)
      : ids(entries), names(entries), exact(bindings.exact), wildcard(bindings.wildcard) {}
  HashIndex ids;       // exact id
  HashIndex names;     // name, ASCII case-insensitive
  HashIndex exact;     // (host, port, environment) of non-wildcard bindings
  HashIndex wildcard;  // (suffix after "*.", port, environment) of wildcard bindings
};

Snapshot::Entries Snapshot::Share(std::vector<EntryMetadata> entries) {
  // The vector itself becomes the entries' one owner, and each entry a view into it (an
  // aliasing shared_ptr): no allocation, control block or move per entry, which is most
  // of what loading 100,000 entries would otherwise add to the store's startup and
  // memory. An entry replaced later keeps its place in the block until the block's last
  // entry is replaced or deleted.
  auto block = std::make_shared<const std::vector<EntryMetadata>>(std::move(entries));
  Entries out;
  out.reserve(block->size());
  for (const EntryMetadata& e : *block) out.emplace_back(block, &e);
  return out;
}

Snapshot::Snapshot(std::vector<EntryMetadata> entries) : Snapshot(Share(std::move(entries))) {}

Snapshot::Snapshot(Entries entries) : entries_(std::move(entries)) {
  auto index = std::make_shared<Index>(entries_.size(), CountBindings(entries_));
  for (size_t i = 0; i < entries_.size(); ++i) {
    const EntryMetadata& e = *entries_[i];
    index->ids.Add(KeyHasher().Exact(e.id).Finish(), i);
    index->names.Add(KeyHasher().Lowered(e.name).Finish(), i);
    for (const Binding& b : e.bindings) {
      if (auto suffix = WildcardSuffix(b.host)) {
        index->wildcard.Add(BindingKey(*suffix, b.port, b.environment), i);
      } else {
        index->exact.Add(BindingKey(b.host, b.port, b.environment), i);
      }
    }
  }
  index_ = std::move(index);
}

const EntryMetadata* Snapshot::FindById(std::string_view id) const {
  const ptrdiff_t i = PositionOfId(id);
  return i < 0 ? nullptr : entries_[i].get();
}

ptrdiff_t Snapshot::PositionOfId(std::string_view id) const {
  ptrdiff_t found = -1;  // the first in snapshot order, should ids repeat
  index_->ids.ForEach(KeyHasher().Exact(id).Finish(), [&](uint32_t i) {
    if (entries_[i]->id == id && (found < 0 || i < found)) found = i;
  });
  return found;
}

ptrdiff_t Snapshot::PositionOf(const EntryMetadata* e) const {
  if (e == nullptr) return -1;
  ptrdiff_t found = -1;
  index_->ids.ForEach(KeyHasher().Exact(e->id).Finish(), [&](uint32_t i) {
    if (entries_[i].get() == e) found = i;
  });
  return found;
}

const EntryMetadata* Snapshot::FindByName(std::string_view name) const {
  size_t found = SIZE_MAX;
  index_->names.ForEach(KeyHasher().Lowered(name).Finish(), [&](uint32_t i) {
    const EntryMetadata& e = *entries_[i];
    if (e.name.size() == name.size() &&
        std::equal(e.name.begin(), e.name.end(), name.begin(),
                   [](char a, char b) { return AsciiLower(a) == AsciiLower(b); }) &&
        i < found) {
      found = i;
    }
  });
  return found == SIZE_MAX ? nullptr : entries_[found].get();
}

Snapshot::Matches Snapshot::FindBound(std::string_view host, uint16_t port,
                                      std::string_view environment) const {
  Matches m;
  port = EffectivePort(port);
  environment = EffectiveEnvironment(environment);
  auto fill = [this](const std::vector<uint32_t>& positions,
                     std::vector<const EntryMetadata*>& out) {
    out.reserve(positions.size());
    for (uint32_t i : positions) out.push_back(entries_[i].get());
  };
  index_->exact.ForEach(BindingKey(host, port, environment), [&](uint32_t i) {
    for (const Binding& b : entries_[i]->bindings) {
      if (!WildcardSuffix(b.host) && SamePortAndEnvironment(b, port, environment) &&
          SameHost(b.host, host)) {
        m.exact_positions.push_back(i);
        return;
      }
    }
  });
  SortUnique(m.exact_positions);
  fill(m.exact_positions, m.exact);
  auto parent = WildcardParent(host);
  if (!parent) return m;
  index_->wildcard.ForEach(BindingKey(*parent, port, environment), [&](uint32_t i) {
    for (const Binding& b : entries_[i]->bindings) {
      auto suffix = WildcardSuffix(b.host);
      if (suffix && SamePortAndEnvironment(b, port, environment) && SameHost(*suffix, *parent)) {
        // An entry bound both exactly and by wildcard counts as exact.
        if (!std::binary_search(m.exact_positions.begin(), m.exact_positions.end(), i)) {
          m.wildcard_positions.push_back(i);
        }
        return;
      }
    }
  });
  SortUnique(m.wildcard_positions);
  fill(m.wildcard_positions, m.wildcard);
  return m;
}

bool HostMatches(std::string_view pattern, std::string_view host) {
  if (auto suffix = WildcardSuffix(pattern)) {
    auto parent = WildcardParent(host);
    return parent && SameHost(*suffix, *parent);
  }
  return SameHost(pattern, host);
}

bool IsKeyBearing(const EntryMetadata& e) {
  return e.has_private_key && e.certificate.has_value() &&
         e.type != EntryType::kMobileProvisioning && !e.pending_certificate;
}

bool IsTrustEntry(const EntryMetadata& e) {
  return !e.trusted.empty() &&
         (e.type == EntryType::kTrustStore || e.type == EntryType::kJavaKeystore);
}

std::string Iso8601Utc(UnixSeconds t) {
  using namespace std::chrono;
  const sys_seconds tp{seconds{t}};
  const sys_days day = floor<days>(tp);
  const year_month_day ymd{day};
  const hh_mm_ss<seconds> hms{tp - day};
  const int y = static_cast<int>(ymd.year());
  if (y >= 0 && y <= 9999) {
    // Every resolution's explanation carries two of these: formatting the digits here
    // costs a tenth of snprintf (which was half of a resolution's instructions).
    char out[20];
    auto put = [&out](size_t at, unsigned value, size_t width) {
      for (size_t i = width; i-- > 0; value /= 10) out[at + i] = static_cast<char>('0' + value % 10);
    };
    put(0, static_cast<unsigned>(y), 4);
    out[4] = '-';
    put(5, static_cast<unsigned>(ymd.month()), 2);
    out[7] = '-';
    put(8, static_cast<unsigned>(ymd.day()), 2);
    out[10] = 'T';
    put(11, static_cast<unsigned>(hms.hours().count()), 2);
    out[13] = ':';
    put(14, static_cast<unsigned>(hms.minutes().count()), 2);
    out[16] = ':';
    put(17, static_cast<unsigned>(hms.seconds().count()), 2);
    out[19] = 'Z';
    return std::string(out, sizeof(out));
  }
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

namespace {

// Normalized call coordinates, and their forms for messages.
struct Target {
  std::string host;
  uint16_t port;
  std::string_view environment;
  UnixSeconds now;
  bool explain;  // ResolveRequest::explain

  // "api.example.com:443 (production)"
  std::string Where() const {
    return host + ":" + std::to_string(port) + " (" + std::string(environment) + ")";
  }
};

std::string BindingText(const Binding& b) {
  return NormalizeHost(b.host) + ":" + std::to_string(EffectivePort(b.port)) + " (" +
         std::string(EffectiveEnvironment(b.environment)) + ")";
}

std::string BindingsText(const EntryMetadata& e) {
  std::string out;
  for (size_t i = 0; i < e.bindings.size() && i < kMaxBindingsShown; ++i) {
    if (i > 0) out += ", ";
    out += BindingText(e.bindings[i]);
  }
  if (e.bindings.size() > kMaxBindingsShown) {
    out += " and " + std::to_string(e.bindings.size() - kMaxBindingsShown) + " more";
  }
  return out;
}

bool BoundTo(const EntryMetadata& e, const Target& t) {
  return std::any_of(e.bindings.begin(), e.bindings.end(), [&](const Binding& b) {
    return SamePortAndEnvironment(b, t.port, t.environment) && HostMatches(b.host, t.host);
  });
}

// A key-bearing entry may be presented when StatusAt() says VALID or EXPIRING_SOON.
bool Usable(CertStatus status) {
  return status == CertStatus::kValid || status == CertStatus::kExpiringSoon;
}

std::string UnusableReason(const EntryMetadata& e, CertStatus status) {
  switch (status) {
    case CertStatus::kDisabled:
      return "disabled";
    case CertStatus::kRevoked:
      return "revoked";
    case CertStatus::kPendingCertificate:
      return "waiting for its issued certificate (key and CSR only)";
    case CertStatus::kNotYetValid:
      return "not valid before " + Iso8601Utc(e.certificate->not_before);
    case CertStatus::kExpired:
      return "expired on " + Iso8601Utc(e.certificate->not_after);
    default:
      return "usable";
  }
}

struct Candidate {
  const EntryMetadata* entry;
  size_t order;  // position in the snapshot: the last tie-break
  bool wildcard;
  CertStatus status;  // StatusAt(now)
};

// The latest-wins order: greatest not_before, then most recently saved.
bool Newer(const Candidate& a, const Candidate& b) {
  const auto& ca = *a.entry->certificate;
  const auto& cb = *b.entry->certificate;
  if (ca.not_before != cb.not_before) return ca.not_before > cb.not_before;
  if (a.entry->updated_at != b.entry->updated_at) return a.entry->updated_at > b.entry->updated_at;
  return a.order > b.order;
}

std::string OlderReason(const EntryMetadata& loser, const EntryMetadata& winner) {
  const std::string head = "older than '" + winner.name + "' ";
  const UnixSeconds lnb = loser.certificate->not_before;
  const UnixSeconds wnb = winner.certificate->not_before;
  if (lnb != wnb) {
    return head + "(not before " + Iso8601Utc(lnb) + "; '" + winner.name + "' not before " +
           Iso8601Utc(wnb) + ")";
  }
  if (loser.updated_at != winner.updated_at) {
    return head + "(same not before " + Iso8601Utc(lnb) + ", saved earlier)";
  }
  return head + "(same not before " + Iso8601Utc(lnb) + " and save time, earlier in the store)";
}

Rejection Reject(const EntryMetadata& e, std::string reason, CertStatus status) {
  return Rejection{e.id, e.name, std::move(reason), status};
}

void AppendEntryLine(std::string& out, std::string_view label, const EntryMetadata& e,
                     std::string_view how) {
  out += "  ";
  out += label;
  out += " '";
  out += e.name;
  out += "' (id ";
  out += e.id;
  out += ")";
  if (e.certificate) {
    out += ", not before ";
    out += Iso8601Utc(e.certificate->not_before);
    out += ", not after ";
    out += Iso8601Utc(e.certificate->not_after);
  }
  if (!how.empty()) {
    out += ", ";
    out += how;
  }
  out += "\n";
}

void AppendRejections(std::string& out, const std::vector<Rejection>& rejected) {
  for (const auto& r : rejected) {
    out += "  rejected '";
    out += r.name;
    out += "' (id ";
    out += r.entry_id;
    out += "): ";
    out += r.reason;
    out += "\n";
  }
}

// Gathers the trust entries bound at the target, rejecting unusable ones.
void GatherTrust(const Snapshot::Matches& m, const Target& t, Resolution& out) {
  // Exact and wildcard matches together, in snapshot order.
  std::vector<const EntryMetadata*> bound;
  bound.reserve(m.exact.size() + m.wildcard.size());
  for (size_t x = 0, w = 0; x < m.exact.size() || w < m.wildcard.size();) {
    const bool take_exact =
        w == m.wildcard.size() ||
        (x < m.exact.size() && m.exact_positions[x] < m.wildcard_positions[w]);
    bound.push_back(take_exact ? m.exact[x++] : m.wildcard[w++]);
  }
  for (const EntryMetadata* e : bound) {
    if (!IsTrustEntry(*e)) continue;
    if (e->disabled || e->revoked) {
      out.rejected.push_back(Reject(*e,
                                    e->disabled ? "trust store disabled" : "trust store revoked",
                                    e->disabled ? CertStatus::kDisabled : CertStatus::kRevoked));
      continue;
    }
    bool any_current = false;
    bool any_future = false;
    UnixSeconds last_expiry = 0;
    UnixSeconds first_start = 0;
    for (const CertificateInfo& c : e->trusted) {
      if (t.now < c.not_before) {
        first_start = any_future ? std::min(first_start, c.not_before) : c.not_before;
        any_future = true;
      } else if (t.now > c.not_after) {
        last_expiry = std::max(last_expiry, c.not_after);
      } else {
        any_current = true;
      }
    }
    if (any_current) {
      out.trust.push_back(e);
      out.private_trust_only = out.private_trust_only || e->private_trust_only;
    } else if (any_future) {
      out.rejected.push_back(
          Reject(*e,
                 "trust store skipped: none of its certificates is valid yet (the first from " +
                     Iso8601Utc(first_start) + ")",
                 CertStatus::kNotYetValid));
    } else {
      out.rejected.push_back(
          Reject(*e,
                 "trust store skipped: all " + std::to_string(e->trusted.size()) +
                     " of its certificates expired (the last on " + Iso8601Utc(last_expiry) + ")",
                 CertStatus::kExpired));
    }
  }
}

void AppendTrust(std::string& out, const Resolution& r, const Target& t) {
  out += "trust for " + t.Where() + ": ";
  if (r.trust.empty()) {
    out += "no trust store bound; the system CAs\n";
    return;
  }
  for (size_t i = 0; i < r.trust.size(); ++i) {
    if (i > 0) out += ", ";
    out += "'" + r.trust[i]->name + "' (id " + r.trust[i]->id + ")";
  }
  out += r.private_trust_only ? "; private trust only (the system CAs do not count)\n"
                              : "; plus the system CAs\n";
}

Error ResolutionError(Code code, std::string message, std::string hint, Side side, const Target& t,
                      std::string explanation) {
  Error e(code, std::move(message), std::move(hint), side);
  e.With("host", t.host)
      .With("port", std::to_string(t.port))
      .With("environment", std::string(t.environment))
      .With("explanation", std::move(explanation));
  return e;
}

Result<Resolution> ResolveNamed(const Snapshot& snapshot, const Target& t, std::string_view name,
                                const Snapshot::Matches& m, Resolution r) {
  const EntryMetadata* e = snapshot.FindByName(name);
  if (e == nullptr) e = snapshot.FindById(name);
  std::string explanation =
      "client certificate for " + t.Where() + ": the step names '" + std::string(name) + "'\n";
  auto fail = [&](Code code, std::string message, std::string hint, Side side) {
    explanation += "  refused: " + message + "\n";
    return ResolutionError(code, std::move(message), std::move(hint), side, t,
                           std::move(explanation));
  };
  if (e == nullptr) {
    return fail(Code::kCertificateNotFound, "no certificate named '" + std::string(name) + "'",
                "Check the certificate name in the step, or upload the certificate.",
                Side::kStore);
  }
  if (!IsKeyBearing(*e)) {
    std::string why = e->type == EntryType::kMobileProvisioning
                          ? "is a mobile provisioning profile, which is never used for TLS"
                      : e->pending_certificate
                          ? "is waiting for its issued certificate (only its key and CSR exist)"
                          : "has no private key, so it cannot be presented as a client certificate";
    return fail(Code::kCertificateNotFound, "certificate '" + e->name + "' " + why,
                "Name a certificate that has a private key, or attach the issued certificate.",
                Side::kStore)
        .With("certificate", e->name);
  }
  if (!e->bindings.empty() && !BoundTo(*e, t)) {
    // Never send a certificate to a host it is not bound to, even when named.
    return fail(Code::kCertificateNotFound,
                "certificate '" + e->name + "' is bound to " + BindingsText(*e) + ", not to " +
                    t.Where(),
                "Bind the certificate to " + t.host + ":" + std::to_string(t.port) +
                    " in environment " + std::string(t.environment) +
                    ", or name a certificate bound there.",
                Side::kStore)
        .With("certificate", e->name);
  }
  const CertStatus status = StatusAt(*e, t.now);
  switch (status) {
    case CertStatus::kDisabled:
    case CertStatus::kRevoked:
      return fail(Code::kCertificateNotFound,
                  "certificate '" + e->name + "' is " + UnusableReason(*e, status),
                  "Enable the certificate or name another one.", Side::kStore)
          .With("certificate", e->name);
    case CertStatus::kExpired:
      return fail(Code::kCertificateExpired,
                  "certificate '" + e->name + "' " + UnusableReason(*e, status),
                  "Upload a renewed certificate.", Side::kStore)
          .With("certificate", e->name)
          .With("expired_on", Iso8601Utc(e->certificate->not_after));
    case CertStatus::kNotYetValid:
      return fail(Code::kCertificateNotYetValid,
                  "certificate '" + e->name + "' is " + UnusableReason(*e, status),
                  "Wait until it becomes valid, or check the clock of this machine.", Side::kStore)
          .With("certificate", e->name)
          .With("valid_from", Iso8601Utc(e->certificate->not_before));
    default:
      break;
  }
  r.identity = e;
  for (const auto* list : {&m.exact, &m.wildcard}) {
    for (const EntryMetadata* other : *list) {
      if (other == e || !IsKeyBearing(*other)) continue;
      r.rejected.push_back(
          Reject(*other, "the step names '" + e->name + "'", StatusAt(*other, t.now)));
    }
  }
  if (!t.explain) return r;
  AppendEntryLine(explanation, "chosen", *e,
                  e->bindings.empty() ? "named by the step (unbound)" : "named by the step");
  AppendRejections(explanation, r.rejected);
  AppendTrust(explanation, r, t);
  r.explanation = std::move(explanation);
  return r;
}

}  // namespace

Result<Resolution> Resolve(const Snapshot& snapshot, const ResolveRequest& request,
                           bool require_identity) {
  const Target t{NormalizeHost(request.host), EffectivePort(request.port),
                 EffectiveEnvironment(request.environment), request.now, request.explain};
  const Snapshot::Matches m = snapshot.FindBound(t.host, t.port, t.environment);

  Resolution r;
  GatherTrust(m, t, r);
  if (!request.certificate_name.empty()) {
    return ResolveNamed(snapshot, t, request.certificate_name, m, std::move(r));
  }

  // Candidates, and bound entries that are not candidates (for the explanation only).
  std::vector<Candidate> exact;
  std::vector<Candidate> wildcard;
  for (const bool is_wildcard : {false, true}) {
    const auto& list = is_wildcard ? m.wildcard : m.exact;
    const auto& positions = is_wildcard ? m.wildcard_positions : m.exact_positions;
    for (size_t j = 0; j < list.size(); ++j) {
      const EntryMetadata* e = list[j];
      if (IsKeyBearing(*e)) {
        (is_wildcard ? wildcard : exact)
            .push_back({e, positions[j], is_wildcard, StatusAt(*e, t.now)});
      } else if (e->pending_certificate) {
        r.rejected.push_back(Reject(*e, UnusableReason(*e, CertStatus::kPendingCertificate),
                                    CertStatus::kPendingCertificate));
      } else if (e->type == EntryType::kMobileProvisioning) {
        r.rejected.push_back(
            Reject(*e, "mobile provisioning profile: never used for TLS", StatusAt(*e, t.now)));
      }
    }
  }

  // The latest usable one in `list`, or null.
  auto latest = [](const std::vector<Candidate>& list) -> const Candidate* {
    const Candidate* best = nullptr;
    for (const Candidate& c : list) {
      if (Usable(c.status) && (best == nullptr || Newer(c, *best))) best = &c;
    }
    return best;
  };
  const Candidate* chosen = latest(exact);
  const bool fell_back_to_wildcard = chosen == nullptr;
  if (chosen == nullptr) chosen = latest(wildcard);

  for (const auto* list : {&exact, &wildcard}) {
    for (const Candidate& c : *list) {
      if (&c == chosen) continue;
      const EntryMetadata& e = *c.entry;
      if (!Usable(c.status)) {
        r.rejected.push_back(Reject(e, UnusableReason(e, c.status), c.status));
      } else if (c.wildcard && !chosen->wildcard) {
        r.rejected.push_back(
            Reject(e, "wildcard binding; an exact binding exists ('" + chosen->entry->name + "')",
                   c.status));
      } else {
        r.rejected.push_back(Reject(e, OlderReason(e, *chosen->entry), c.status));
      }
    }
  }

  if (chosen != nullptr && !t.explain) {
    r.identity = chosen->entry;
    return r;
  }
  std::string explanation = "client certificate for " + t.Where() + ":\n";
  if (chosen != nullptr) {
    r.identity = chosen->entry;
    std::string how;
    if (chosen->wildcard) {
      how = fell_back_to_wildcard && !exact.empty()
                ? "wildcard binding (no exactly-bound certificate is usable)"
                : "wildcard binding";
    } else {
      how = "exact binding";
    }
    AppendEntryLine(explanation, "chosen", *chosen->entry, how);
    AppendRejections(explanation, r.rejected);
    AppendTrust(explanation, r, t);
    r.explanation = std::move(explanation);
    return r;
  }

  // Nothing usable: say why, naming the most useful certificate.
  const Candidate* first_future = nullptr;  // becomes valid first
  const Candidate* newest_expired = nullptr;
  size_t candidates = 0;
  for (const auto* list : {&exact, &wildcard}) {
    for (const Candidate& c : *list) {
      ++candidates;
      const CertificateInfo& cert = *c.entry->certificate;
      if (c.status == CertStatus::kNotYetValid &&
          (first_future == nullptr ||
           cert.not_before < first_future->entry->certificate->not_before)) {
        first_future = &c;
      }
      if (c.status == CertStatus::kExpired &&
          (newest_expired == nullptr ||
           cert.not_after > newest_expired->entry->certificate->not_after ||
           (cert.not_after == newest_expired->entry->certificate->not_after &&
            Newer(c, *newest_expired)))) {
        newest_expired = &c;
      }
    }
  }
  const std::string coords =
      t.host + ":" + std::to_string(t.port) + " in environment " + std::string(t.environment);
  auto fail = [&](Code code, std::string message, std::string hint, Side side) {
    explanation += "  none chosen: " + message + "\n";
    AppendRejections(explanation, r.rejected);
    AppendTrust(explanation, r, t);
    return ResolutionError(code, std::move(message), std::move(hint), side, t,
                           std::move(explanation));
  };
  if (candidates == 0) {
    if (!require_identity) {
      if (!t.explain) return r;
      explanation += "  none bound: no client certificate is presented\n";
      AppendRejections(explanation, r.rejected);
      AppendTrust(explanation, r, t);
      r.explanation = std::move(explanation);
      return r;
    }
    return fail(Code::kCertificateNotFound,
                "SSL Certificate Not Found: no client certificate is bound to " + coords,
                "Bind a client certificate to " + t.host + ":" + std::to_string(t.port) +
                    " in environment " + std::string(t.environment) +
                    ", or switch off \"Enable SSL certificate verification\" if the server does "
                    "not ask for one.",
                Side::kStore);
  }
  if (first_future != nullptr) {
    const EntryMetadata& e = *first_future->entry;
    return fail(Code::kCertificateNotYetValid,
                "client certificate '" + e.name + "' bound to " + coords + " is not valid before " +
                    Iso8601Utc(e.certificate->not_before),
                "Wait until it becomes valid, check the clock of this machine, or bind a "
                "currently valid certificate.",
                Side::kStore)
        .With("certificate", e.name)
        .With("valid_from", Iso8601Utc(e.certificate->not_before));
  }
  if (newest_expired != nullptr) {
    const EntryMetadata& e = *newest_expired->entry;
    return fail(Code::kCertificateExpired,
                "client certificate '" + e.name + "' bound to " + coords + " expired on " +
                    Iso8601Utc(e.certificate->not_after),
                "Upload a renewed certificate and bind it to " + t.host + ":" +
                    std::to_string(t.port) + ".",
                Side::kStore)
        .With("certificate", e.name)
        .With("expired_on", Iso8601Utc(e.certificate->not_after));
  }
  return fail(Code::kCertificateNotFound,
              "SSL Certificate Not Found: every client certificate bound to " + coords +
                  " is disabled or revoked",
              "Enable a certificate bound there, or bind a new one.", Side::kStore);
}

}  // namespace wsstep::core

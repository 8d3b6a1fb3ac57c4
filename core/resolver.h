// Choosing the certificate and trust for a call (PRODUCT.md §1 "Binding" and
// "Resolution"). Pure and in-memory: it works on an immutable Snapshot of entry metadata,
// so a lookup never touches the database, a file or a password.
#ifndef WSSTEP_CORE_RESOLVER_H_
#define WSSTEP_CORE_RESOLVER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/model.h"

namespace wsstep::core {

// An immutable view of every entry's metadata, indexed for resolution. Built by the store
// after each change and published atomically (std::shared_ptr<const Snapshot>). Entries
// are shared between snapshots: a change copies pointers, not entries, so publishing one
// change to a store of 100,000 entries costs an index rebuild, not 100,000 deep copies.
// An entry's place in the snapshot is its position in entries(), not its address.
class Snapshot {
 public:
  using Entries = std::vector<std::shared_ptr<const EntryMetadata>>;

  // Entries later in `entries` count as more recently saved when their updated_at is
  // equal (the last tie-break of resolution).
  explicit Snapshot(Entries entries);
  explicit Snapshot(std::vector<EntryMetadata> entries);
  // `entries` as shared entries: they share one block (the vector, kept whole while any
  // of them is in use), so sharing 100,000 entries allocates nothing per entry.
  static Entries Share(std::vector<EntryMetadata> entries);

  const Entries& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }
  const EntryMetadata* FindById(std::string_view id) const;
  const EntryMetadata* FindByName(std::string_view name) const;  // case-insensitive
  // The position of `e` in entries(), or -1 when `e` is not one of this snapshot's.
  ptrdiff_t PositionOf(const EntryMetadata* e) const;
  // The position of the entry with this id, or -1.
  ptrdiff_t PositionOfId(std::string_view id) const;

  // Entries with a binding matching (host, port, environment), exact host matches and
  // wildcard matches kept apart (exact beats wildcard), each in snapshot order with its
  // position beside it. host must be normalized.
  struct Matches {
    std::vector<const EntryMetadata*> exact;
    std::vector<const EntryMetadata*> wildcard;
    std::vector<uint32_t> exact_positions;     // aligned with exact
    std::vector<uint32_t> wildcard_positions;  // aligned with wildcard
  };
  Matches FindBound(std::string_view host, uint16_t port, std::string_view environment) const;

 private:
  Entries entries_;
  // Implementation-defined indexes (hash maps keyed by host/port/environment, ids, names).
  struct Index;
  std::shared_ptr<const Index> index_;
};

struct ResolveRequest {
  std::string host;  // any case, trailing dot allowed
  uint16_t port = kDefaultPort;
  std::string environment = std::string(kDefaultEnvironment);
  std::string certificate_name;  // the step names one explicitly (name or id); empty: none
  UnixSeconds now = 0;
  // False: a successful resolution comes without Resolution::explanation (the per-step
  // path, which never shows it; building it costs more than the lookup). Failures
  // always explain themselves.
  bool explain = true;
};

// Why a candidate was not chosen.
struct Rejection {
  std::string entry_id;
  std::string name;
  std::string reason;  // "expired on 2026-01-02T00:00:00Z", "disabled", "revoked",
                       // "not valid before ...", "older than <chosen>", "wildcard binding;
                       // an exact binding exists"
  CertStatus status = CertStatus::kValid;
};

struct Resolution {
  const EntryMetadata* identity = nullptr;          // null: no client certificate is bound
  std::vector<Rejection> rejected;                  // every candidate not chosen, with its reason
  std::vector<const EntryMetadata*> trust;          // trust entries bound there (valid ones)
  bool private_trust_only = false;                  // some bound trust entry says so
  std::string explanation;                          // multi-line, human readable
};

// Resolves the client certificate and trust for a call. Fails with
// CERTIFICATE_NOT_FOUND (no key-bearing candidate; or a named certificate that does not
// exist or is bound to another host/port/environment), CERTIFICATE_EXPIRED (candidates,
// but all expired: names the newest and its expiry), CERTIFICATE_NOT_YET_VALID (all
// candidates not yet valid). The error detail carries "host", "port", "environment" and
// "explanation". When `require_identity` is false, "no candidate" is not an error (trust
// only, e.g. a call that presents no client certificate).
Result<Resolution> Resolve(const Snapshot& snapshot, const ResolveRequest& request,
                           bool require_identity = true);

// True if a binding host pattern ("api.example.com" or "*.example.com") matches host
// (both normalized). A wildcard matches exactly one label.
bool HostMatches(std::string_view pattern, std::string_view host);

// --- Additions (implementation detail made public for the store and the API) ---------
//
// Resolution rules in full, as implemented by Resolve():
// - host: ASCII case-insensitive, trailing dots ignored. A binding "*.example.com"
//   matches exactly one non-empty label before "example.com"; never "example.com" itself,
//   never "a.b.example.com", never an IP address literal, never a host containing '*'.
// - port 0 means 443; an empty environment means "default". Environments compare exactly
//   (case-sensitive): "production" and "Production" are different environments.
// - Step names a certificate (request.certificate_name): looked up by name
//   (case-insensitive), then by id. Checked in this order: it exists, it is key-bearing,
//   it is bound to (host, port, environment) or has no bindings at all, it is not
//   disabled or revoked (CERTIFICATE_NOT_FOUND for all of these), it is within its
//   validity dates (CERTIFICATE_EXPIRED / CERTIFICATE_NOT_YET_VALID).
// - Otherwise the candidates are the key-bearing entries bound there. Exact beats
//   wildcard only when an exactly-bound candidate is usable: if every exactly-bound
//   candidate is expired, not yet valid, disabled or revoked, usable wildcard candidates
//   are used instead (an unusable exact binding must not cut a host off from a working
//   wildcard certificate). Among usable candidates the latest wins: greatest certificate
//   not_before, then greatest updated_at, then later in the snapshot's entry order.
// - No usable candidate: none bound -> CERTIFICATE_NOT_FOUND ("SSL Certificate Not
//   Found: ..."); some not yet valid -> CERTIFICATE_NOT_YET_VALID naming the one that
//   becomes valid first (a renewal uploaded early: waiting fixes it, unlike an expired
//   one); otherwise some expired -> CERTIFICATE_EXPIRED naming the newest (greatest
//   not_after) and its expiry; only disabled/revoked ones -> CERTIFICATE_NOT_FOUND.
//   Details: "host", "port", "environment", "explanation", plus "certificate" and
//   "expired_on" / "valid_from" (ISO 8601 UTC) where a certificate is named.
// - Trust: trust entries bound there, exact and wildcard alike, in snapshot order,
//   minus disabled/revoked ones and those with no certificate currently within its
//   validity dates (listed in Resolution::rejected with a reason starting "trust store").
//   private_trust_only is true if any kept trust entry says so.
// - Pending (CSR) entries and mobile provisioning profiles bound there are listed in
//   Resolution::rejected for the explanation but never count as candidates.

// Has a private key that may be presented in a TLS handshake: has_private_key, a
// certificate, not a mobile provisioning profile, not waiting for its certificate.
bool IsKeyBearing(const EntryMetadata& e);
// Carries trusted certificates for server verification: TRUST_STORE or JAVA_KEYSTORE
// with a non-empty `trusted` list.
bool IsTrustEntry(const EntryMetadata& e);

// "2026-01-02T03:04:05Z". Thread-safe and lock-free (no gmtime/tz database).
std::string Iso8601Utc(UnixSeconds t);

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_RESOLVER_H_

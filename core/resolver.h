// Choosing the certificate and trust for a call (PRODUCT.md §1 "Binding" and
// "Resolution"). Pure and in-memory: it works on an immutable Snapshot of entry metadata,
// so a lookup never touches the database, a file or a password.
#ifndef WSSTEP_CORE_RESOLVER_H_
#define WSSTEP_CORE_RESOLVER_H_

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
// after each change and published atomically (std::shared_ptr<const Snapshot>).
class Snapshot {
 public:
  // `saved_order` breaks ties: entries later in `entries` count as more recently saved
  // when their updated_at is equal.
  explicit Snapshot(std::vector<EntryMetadata> entries);

  const std::vector<EntryMetadata>& entries() const { return entries_; }
  const EntryMetadata* FindById(std::string_view id) const;
  const EntryMetadata* FindByName(std::string_view name) const;  // case-insensitive

  // Entries with a binding matching (host, port, environment), exact host matches and
  // wildcard matches kept apart (exact beats wildcard). host must be normalized.
  struct Matches {
    std::vector<const EntryMetadata*> exact;
    std::vector<const EntryMetadata*> wildcard;
  };
  Matches FindBound(std::string_view host, uint16_t port, std::string_view environment) const;

 private:
  std::vector<EntryMetadata> entries_;
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

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_RESOLVER_H_

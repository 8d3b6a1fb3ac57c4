// Parsed TLS material, built once per stored entry version and shared, immutable, by
// every call that uses it. This is the contract between the store (core/) and the
// transfer engine (rest/): rest/ never sees files, formats or passwords, only these.
#ifndef WSSTEP_CORE_IDENTITY_H_
#define WSSTEP_CORE_IDENTITY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/ossl.h"

namespace wsstep::core {

// A client certificate with its private key and chain.
struct Identity {
  std::string entry_id;
  std::string name;
  uint64_t version = 0;     // EntryMetadata::version the material was built from
  std::string fingerprint;  // SHA-256 of the leaf, "ab:cd:..."
  ossl::X509Ptr leaf;
  std::vector<ossl::X509Ptr> chain;  // intermediates, leaf excluded, in sending order
  ossl::EvpPkeyPtr key;
};

// Certificates trusted for a call, gathered from the trust-store entries bound there.
struct TrustAnchors {
  std::vector<std::string> entry_ids;  // with versions: "id@version", for cache keys
  std::vector<ossl::X509Ptr> certs;
};

// What a call to (host, port, environment) gets from the store.
struct CallCredentials {
  std::shared_ptr<const Identity> identity;  // null: present no client certificate
  std::shared_ptr<const TrustAnchors> trust; // null or empty: system CAs only
  bool private_trust_only = false;           // true: the system CAs do not count
};

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_IDENTITY_H_

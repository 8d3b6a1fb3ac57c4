// How the certificate store's requests change an entry's metadata: pure functions over
// EntryMetadata, with no storage, no locks and no parsing (the caller has validated the
// request and parsed its material). Internal to the store.
//
//   EntryMetadata e = NewEntry(NewEntryId(), request, std::move(prepared.facts), now);
//   ...
//   EntryMetadata updated = current;
//   AppliedUpdate applied = ApplyUpdate(updated, request, &prepared.facts, now);
//   audit.detail = applied.detail;   // "name, bindings", "material (version 3)", "no change"
#ifndef WSSTEP_CORE_STORE_ENTRY_CHANGES_H_
#define WSSTEP_CORE_STORE_ENTRY_CHANGES_H_

#include <cstdint>
#include <string>

#include "core/model.h"
#include "core/store/store.h"

namespace wsstep::core {

// Entry `id` from `request` (its text and bindings moved out) and its material's facts,
// created and updated at `now`, version 1.
EntryMetadata NewEntry(std::string id, CreateRequest& request, EntryMetadata&& facts,
                       UnixSeconds now);

// The pending KEY_PAIR entry `id` of a generated key (status PENDING_CERTIFICATE until
// a certificate is attached); its attributes name the key algorithm and curve.
EntryMetadata NewPendingKeyEntry(std::string id, KeyGenerationRequest& request, UnixSeconds now);

// Replaces the fields DescribeMaterial owns with those of new material (`facts`), as
// `version` of the entry; clears pending_certificate.
void ApplyMaterialFacts(EntryMetadata& e, EntryMetadata&& facts, uint64_t version);

struct AppliedUpdate {
  std::string detail;             // what changed, for the audit log; "no change" when nothing
  bool bindings_changed = false;  // the bindings must be rewritten
};

// Revocation is final (PRODUCT.md §1): FAILED_PRECONDITION naming `e` when `request`
// would withdraw its revocation or enable it while it is revoked and disabled. OK for
// everything else, including setting the flags to the values they already have.
Status CheckRevocationIsFinal(const EntryMetadata& e, const UpdateRequest& request);

// Applies the fields `request` sets to `e`, and `new_facts` (new material, when the
// request has some) as the next version; `e` is updated at `now`.
AppliedUpdate ApplyUpdate(EntryMetadata& e, const UpdateRequest& request, EntryMetadata* new_facts,
                          UnixSeconds now);

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_STORE_ENTRY_CHANGES_H_

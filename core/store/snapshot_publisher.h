// The certificate store's in-memory state: the published Snapshot of every entry's
// metadata that readers and resolution use without a lock, and beside it the TLS
// material of each entry version (its Identity and TrustAnchors), built from storage on
// the version's first use and shared by every snapshot in which that version appears.
// This is what makes calls cheap (no SQL, no decryption, no parsing after the first) and
// rotation safe (a call keeps the snapshot, and so the Identity, it started with).
// Internal to the store.
//
//   SnapshotPublisher publisher(storage, vault);
//   publisher.Publish(std::move(loaded.entries));                  // under the write lock
//   ...
//   WSSTEP_ASSIGN_OR_RETURN(ResolvedCall call, publisher.ResolveWithCredentials(req, true));
//   ...
//   publisher.Prebuild(updated, prepared.parsed);                  // after a commit
//   publisher.Publish(publisher.EntriesWith({&updated}, "", false));
//
// Thread safety: Publish, Prebuild and EntriesWith-then-Publish are the writer's (the
// caller serializes them under its write lock); everything else may be called from any
// thread, concurrently with them.
#ifndef WSSTEP_CORE_STORE_SNAPSHOT_PUBLISHER_H_
#define WSSTEP_CORE_STORE_SNAPSHOT_PUBLISHER_H_

#include <openssl/x509.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/identity.h"
#include "core/material.h"
#include "core/mutex.h"
#include "core/resolver.h"
#include "core/store/storage.h"
#include "core/store/store.h"
#include "core/vault.h"

namespace wsstep::core {

// Lazily built TLS material of one entry version (and name). Built once: later calls
// read it without a lock.
struct MaterialSlot {
  MaterialSlot(std::string id_, std::string name_, uint64_t version_)
      : id(std::move(id_)), name(std::move(name_)), version(version_) {}
  const std::string id;
  const std::string name;
  const uint64_t version;

  Mutex mu;  // held while building (identity and trust are read without it once ready)
  std::atomic<bool> ready{false};
  // Written once before `ready` turns true; read-only after.
  std::shared_ptr<const Identity> identity;
  std::shared_ptr<const TrustAnchors> trust;

  // Names this slot's trust in TrustAnchors::entry_ids: "id@version".
  std::string TrustKey() const { return id + "@" + std::to_string(version); }
};

// One published state: the resolver's snapshot and, aligned with its entries, the slots
// of the entries used so far (null until an entry's first use in this snapshot).
struct Published {
  std::shared_ptr<const Snapshot> snapshot;
  std::unique_ptr<std::atomic<MaterialSlot*>[]> slots;
  mutable Mutex mu;  // guards `owned`, slot creation and `trust_sets`
  mutable std::vector<std::shared_ptr<MaterialSlot>> owned
      ABSL_GUARDED_BY(mu);  // keeps `slots` alive
  // Trust anchors of several trust entries together, by "id@v;id@v;...".
  mutable std::unordered_map<std::string, std::shared_ptr<const TrustAnchors>> trust_sets
      ABSL_GUARDED_BY(mu);

  // Index of `e` in the snapshot's entries, or -1 if it is not one of them.
  ptrdiff_t IndexOf(const EntryMetadata* e) const;
};

class SnapshotPublisher {
 public:
  // Slots are built from `storage`'s material, unsealed with whatever vault `vault` holds
  // at the time (a master key rotation replaces it). Both outlive the publisher.
  SnapshotPublisher(Storage& storage, const std::atomic<std::shared_ptr<const Vault>>& vault);

  // ---- The writer's ----

  // Builds and publishes a snapshot of `entries` (in save order). Costs the index of the
  // entries and one pass over the slots in use. Slots of deleted or superseded versions go.
  void Publish(Snapshot::Entries entries);
  void Publish(std::vector<EntryMetadata> entries);
  // The current entries with `changed` replaced or appended, and `removed_id` dropped.
  // A replaced entry moves to the end (most recently saved) unless `keep_position`.
  // Entries not edited are shared with the current snapshot, not copied.
  Snapshot::Entries EntriesWith(const std::vector<const EntryMetadata*>& changed,
                                std::string_view removed_id, bool keep_position) const;
  // The same for several changes at once: `saved` replaced or appended at the end (in
  // this order), `in_place` replaced where they are, the entries of `removed` dropped.
  struct Edit {
    std::vector<const EntryMetadata*> saved;
    std::vector<const EntryMetadata*> in_place;
    std::vector<std::string_view> removed;
  };
  Snapshot::Entries EntriesWith(const Edit& edit) const;
  // A slot pre-built from freshly parsed material for `e` (committed, not yet published),
  // so that the first call after a change needs no decryption.
  void Prebuild(const EntryMetadata& e, const ParsedMaterial& parsed);

  // ---- Anyone's ----

  // The current state (an atomic load).
  std::shared_ptr<const Published> current() const { return published_.load(); }

  // Resolves `request` (its `now` set) against the current snapshot and fills the call's
  // credentials from the slots, building them on first use. Retries on a newer snapshot
  // when an entry changed while its material was loaded. Errors as core::Resolve, plus
  // STORAGE_ERROR / MASTER_KEY_ERROR when stored material cannot be read.
  Result<ResolvedCall> ResolveWithCredentials(const ResolveRequest& request,
                                              bool require_identity) const;

  // Certificates of the enabled trust entries bound at any of `bindings`, for the
  // CHAIN_INCOMPLETE check of an upload. `keep` owns what the pointers point into.
  std::vector<X509*> BoundTrust(const std::vector<Binding>& bindings,
                                std::vector<std::shared_ptr<const TrustAnchors>>& keep) const;

 private:
  MaterialSlot* SlotFor(const Published& pub, const EntryMetadata* e) const;
  Result<bool> LoadSlot(MaterialSlot& slot) const;
  Result<bool> EnsureLoaded(MaterialSlot& slot) const;
  Result<bool> TrustFor(const Published& pub, const std::vector<const EntryMetadata*>& trust,
                        std::shared_ptr<const TrustAnchors>& out) const;

  Storage& storage_;
  const std::atomic<std::shared_ptr<const Vault>>& vault_;
  std::atomic<std::shared_ptr<const Published>> published_;
  // The slot of each entry version built or in use, carried from snapshot to snapshot.
  mutable Mutex slots_mu_;
  mutable std::unordered_map<std::string, std::shared_ptr<MaterialSlot>> slots_by_id_
      ABSL_GUARDED_BY(slots_mu_);
};

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_STORE_SNAPSHOT_PUBLISHER_H_

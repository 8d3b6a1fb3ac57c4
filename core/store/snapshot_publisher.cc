#include "core/store/snapshot_publisher.h"

#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "core/ossl.h"
#include "core/store/master_key.h"

namespace wsstep::core {
namespace {

// Attempts of ResolveWithCredentials before it gives up on a store that keeps changing.
constexpr int kResolveAttempts = 4;

// Parsed objects -> slot contents. `slot` is not yet visible to other threads.
void FillSlot(MaterialSlot& slot, X509* leaf, const std::vector<ossl::X509Ptr>& chain,
              EVP_PKEY* key, const std::vector<ossl::X509Ptr>& trusted) {
  if (leaf != nullptr && key != nullptr) {
    auto id = std::make_shared<Identity>();
    id->entry_id = slot.id;
    id->name = slot.name;
    id->version = slot.version;
    id->fingerprint = ossl::Sha256Fingerprint(leaf);
    id->leaf = ossl::UpRef(leaf);
    for (const auto& c : chain) id->chain.push_back(ossl::UpRef(c.get()));
    id->key = ossl::UpRef(key);
    slot.identity = std::move(id);
  }
  if (!trusted.empty()) {
    auto t = std::make_shared<TrustAnchors>();
    t->entry_ids.push_back(slot.TrustKey());
    for (const auto& c : trusted) t->certs.push_back(ossl::UpRef(c.get()));
    slot.trust = std::move(t);
  }
  slot.ready.store(true, std::memory_order_release);
}

}  // namespace

ptrdiff_t Published::IndexOf(const EntryMetadata* e) const { return snapshot->PositionOf(e); }

SnapshotPublisher::SnapshotPublisher(Storage& storage,
                                     const std::atomic<std::shared_ptr<const Vault>>& vault)
    : storage_(storage), vault_(vault) {}

void SnapshotPublisher::Publish(std::vector<EntryMetadata> entries) {
  Publish(Snapshot::Share(std::move(entries)));
}

void SnapshotPublisher::Publish(Snapshot::Entries entries) {
  auto pub = std::make_shared<Published>();
  pub->snapshot = std::make_shared<const Snapshot>(std::move(entries));
  const Snapshot& snap = *pub->snapshot;
  pub->slots.reset(new std::atomic<MaterialSlot*>[snap.size()]());
  {
    // Nothing else sees `pub` yet; its lock is taken (first, as SlotFor does) so the
    // analysis sees `owned` written under it.
    MutexLock own(pub->mu);
    MutexLock lk(slots_mu_);
    for (auto it = slots_by_id_.begin(); it != slots_by_id_.end();) {
      const ptrdiff_t i = snap.PositionOfId(it->first);
      const EntryMetadata* e = i < 0 ? nullptr : snap.entries()[i].get();
      const MaterialSlot& slot = *it->second;
      if (e == nullptr || e->version > slot.version) {
        it = slots_by_id_.erase(it);  // deleted, or superseded
        continue;
      }
      if (e->version == slot.version && e->name == slot.name) {
        pub->slots[i].store(it->second.get(), std::memory_order_relaxed);
        pub->owned.push_back(it->second);
      }
      ++it;
    }
  }
  published_.store(std::move(pub));
}

Snapshot::Entries SnapshotPublisher::EntriesWith(const std::vector<const EntryMetadata*>& changed,
                                                 std::string_view removed_id,
                                                 bool keep_position) const {
  Edit edit;
  (keep_position ? edit.in_place : edit.saved) = changed;
  if (!removed_id.empty()) edit.removed.push_back(removed_id);
  return EntriesWith(edit);
}

Snapshot::Entries SnapshotPublisher::EntriesWith(const Edit& edit) const {
  auto pub = published_.load();
  const Snapshot& old = *pub->snapshot;
  // Only the edited entries are copied; every other entry is shared with `old`. The
  // positions to drop or replace come from the index, so the pass over `old` copies
  // pointers and compares nothing.
  std::unordered_map<size_t, const EntryMetadata*> replaced;  // position -> new value
  std::vector<bool> dropped(old.size(), false);
  for (std::string_view id : edit.removed) {
    if (ptrdiff_t i = old.PositionOfId(id); i >= 0) dropped[i] = true;
  }
  for (const auto* c : edit.saved) {  // re-appended at the end
    if (ptrdiff_t i = old.PositionOfId(c->id); i >= 0) dropped[i] = true;
  }
  for (const auto* c : edit.in_place) {
    if (ptrdiff_t i = old.PositionOfId(c->id); i >= 0) replaced[i] = c;
  }
  Snapshot::Entries out;
  out.reserve(old.size() + edit.saved.size());
  for (size_t i = 0; i < old.size(); ++i) {
    if (dropped[i]) continue;
    auto it = replaced.empty() ? replaced.end() : replaced.find(i);
    out.push_back(it != replaced.end() ? std::make_shared<const EntryMetadata>(*it->second)
                                       : old.entries()[i]);
  }
  for (const auto* c : edit.saved) out.push_back(std::make_shared<const EntryMetadata>(*c));
  return out;
}

void SnapshotPublisher::Prebuild(const EntryMetadata& e, const ParsedMaterial& parsed) {
  auto slot = std::make_shared<MaterialSlot>(e.id, e.name, e.version);
  FillSlot(*slot, parsed.leaf.get(), parsed.chain, parsed.key.get(), parsed.trusted);
  MutexLock lk(slots_mu_);
  slots_by_id_[e.id] = std::move(slot);
}

// Lock-free once created. Null if `e` is not in pub's snapshot.
MaterialSlot* SnapshotPublisher::SlotFor(const Published& pub, const EntryMetadata* e) const {
  ptrdiff_t i = pub.IndexOf(e);
  if (i < 0) return nullptr;
  if (MaterialSlot* s = pub.slots[i].load(std::memory_order_acquire)) return s;
  MutexLock lk(pub.mu);
  if (MaterialSlot* s = pub.slots[i].load(std::memory_order_relaxed)) return s;
  std::shared_ptr<MaterialSlot> slot;
  {
    MutexLock sl(slots_mu_);
    auto it = slots_by_id_.find(e->id);
    if (it != slots_by_id_.end() && it->second->version == e->version &&
        it->second->name == e->name) {
      slot = it->second;  // built for a newer snapshot already, same version
    } else {
      slot = std::make_shared<MaterialSlot>(e->id, e->name, e->version);
      // Never replace the slot of a newer version (this snapshot may be an old one).
      if (it == slots_by_id_.end() || it->second->version < e->version) {
        slots_by_id_[e->id] = slot;
      }
    }
  }
  pub.owned.push_back(slot);
  pub.slots[i].store(slot.get(), std::memory_order_release);
  return slot.get();
}

// Builds `slot` from storage. False: the stored version is newer than the slot's (the
// entry changed after the caller's snapshot was taken).
Result<bool> SnapshotPublisher::LoadSlot(MaterialSlot& slot) const {
  MutexLock lk(slot.mu);
  if (slot.ready.load(std::memory_order_acquire)) return true;
  WSSTEP_ASSIGN_OR_RETURN(std::optional<StoredMaterial> stored, storage_.ReadMaterial(slot.id));
  if (!stored || stored->version != slot.version) return false;
  const StoredMaterial& m = *stored;
  auto damaged = [&](const Error& e) {
    return Error(Code::kStorageError,
                 "certificate '" + slot.name + "' (id " + slot.id +
                     "): stored material cannot be read: " + e.message,
                 "upload the certificate again, or restore the store from a backup", Side::kStore);
  };
  ossl::X509Ptr leaf;
  std::vector<ossl::X509Ptr> chain, trusted;
  ossl::EvpPkeyPtr key;
  if (!m.leaf_der.empty()) {
    auto c = CertificateFromDer(m.leaf_der);
    if (!c.ok()) return damaged(c.error());
    leaf = std::move(c).value();
  }
  for (const auto& der : m.chain_der) {
    auto c = CertificateFromDer(der);
    if (!c.ok()) return damaged(c.error());
    chain.push_back(std::move(c).value());
  }
  for (const auto& der : m.trusted_der) {
    auto c = CertificateFromDer(der);
    if (!c.ok()) return damaged(c.error());
    trusted.push_back(std::move(c).value());
  }
  if (m.sealed_key) {
    auto v = vault_.load();
    WSSTEP_ASSIGN_OR_RETURN(SecretBytes pkcs8, v->Open(*m.sealed_key, SealedKeyAad(slot.id)));
    auto k = KeyFromPkcs8Der(pkcs8);
    if (!k.ok()) return damaged(k.error());
    key = std::move(k).value();
  }
  FillSlot(slot, leaf.get(), chain, key.get(), trusted);
  return true;
}

// Ensures `slot` is built; false when it is stale (see LoadSlot).
Result<bool> SnapshotPublisher::EnsureLoaded(MaterialSlot& slot) const {
  if (slot.ready.load(std::memory_order_acquire)) return true;
  return LoadSlot(slot);
}

// The trust anchors of `trust` entries. Null when there are none. False: stale.
Result<bool> SnapshotPublisher::TrustFor(const Published& pub,
                                         const std::vector<const EntryMetadata*>& trust,
                                         std::shared_ptr<const TrustAnchors>& out) const {
  out.reset();
  if (trust.empty()) return true;
  std::vector<MaterialSlot*> slots;
  slots.reserve(trust.size());
  for (const auto* e : trust) {
    MaterialSlot* s = SlotFor(pub, e);
    if (s == nullptr) return false;
    WSSTEP_ASSIGN_OR_RETURN(bool fresh, EnsureLoaded(*s));
    if (!fresh) return false;
    slots.push_back(s);
  }
  if (slots.size() == 1) {
    out = slots.front()->trust;
    return true;
  }
  std::string key;
  for (const auto* s : slots) key += s->TrustKey() + ";";
  MutexLock lk(pub.mu);
  auto it = pub.trust_sets.find(key);
  if (it != pub.trust_sets.end()) {
    out = it->second;
    return true;
  }
  auto anchors = std::make_shared<TrustAnchors>();
  for (const auto* s : slots) {
    if (s->trust == nullptr) continue;
    anchors->entry_ids.push_back(s->TrustKey());
    for (const auto& c : s->trust->certs) anchors->certs.push_back(ossl::UpRef(c.get()));
  }
  out = anchors;
  pub.trust_sets.emplace(std::move(key), std::move(anchors));
  return true;
}

Result<ResolvedCall> SnapshotPublisher::ResolveWithCredentials(const ResolveRequest& req,
                                                               bool require_identity) const {
  for (int attempt = 0; attempt < kResolveAttempts; ++attempt) {
    auto pub = published_.load();
    WSSTEP_ASSIGN_OR_RETURN(Resolution res, Resolve(*pub->snapshot, req, require_identity));
    ResolvedCall call;
    if (res.identity != nullptr) {
      MaterialSlot* slot = SlotFor(*pub, res.identity);
      if (slot == nullptr) {
        return Error(Code::kInternal, "the resolver returned an entry outside its snapshot");
      }
      WSSTEP_ASSIGN_OR_RETURN(bool fresh, EnsureLoaded(*slot));
      if (!fresh) continue;  // changed since this snapshot: use the newer one
      if (slot->identity == nullptr) {
        return Error(Code::kStorageError,
                     "certificate '" + slot->name + "' (id " + slot->id +
                         "): no private key is stored for it",
                     "upload the certificate with its private key again", Side::kStore);
      }
      call.credentials.identity = slot->identity;
    }
    WSSTEP_ASSIGN_OR_RETURN(bool trust_fresh, TrustFor(*pub, res.trust, call.credentials.trust));
    if (!trust_fresh) continue;
    call.credentials.private_trust_only = res.private_trust_only;
    call.snapshot = pub->snapshot;
    call.resolution = std::move(res);
    return call;
  }
  return Error(Code::kStorageError,
               "the certificate store changed repeatedly while resolving " + req.host + ":" +
                   std::to_string(req.port),
               "retry the step", Side::kStore);
}

std::vector<X509*> SnapshotPublisher::BoundTrust(
    const std::vector<Binding>& bindings,
    std::vector<std::shared_ptr<const TrustAnchors>>& keep) const {
  std::vector<X509*> out;
  auto pub = published_.load();
  std::unordered_set<std::string_view> seen;
  for (const auto& b : bindings) {
    auto matches = pub->snapshot->FindBound(b.host, b.port, b.environment);
    for (const auto* list : {&matches.exact, &matches.wildcard}) {
      for (const EntryMetadata* e : *list) {
        if (!IsTrustEntry(*e) || e->disabled || e->revoked || !seen.insert(e->id).second) {
          continue;
        }
        MaterialSlot* s = SlotFor(*pub, e);
        if (s == nullptr) continue;
        auto loaded = EnsureLoaded(*s);
        if (!loaded.ok() || !*loaded || s->trust == nullptr) continue;
        keep.push_back(s->trust);
        for (const auto& c : s->trust->certs) out.push_back(c.get());
      }
    }
  }
  return out;
}

}  // namespace wsstep::core

// CertificateStore (core/store/store.h): the public API, orchestrating the pieces of
// core/store/. Each change validates its input and parses its material first, then, under
// the write lock, writes one storage transaction and publishes the next snapshot, and
// last tells the change feed. Reads go to the published snapshot.
#include "core/store/store.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <utility>

#include "core/db.h"
#include "core/material.h"
#include "core/mutex.h"
#include "core/store/change_feed.h"
#include "core/store/codec.h"
#include "core/store/entry_changes.h"
#include "core/store/listing.h"
#include "core/store/master_key.h"
#include "core/store/snapshot_publisher.h"
#include "core/store/sqlite_storage.h"
#include "core/store/upload.h"
#include "core/store/use_recorder.h"
#include "core/store/validation.h"

namespace wsstep::core {

namespace {

const EntryMetadata* Find(const Snapshot& s, std::string_view id_or_name) {
  const EntryMetadata* e = s.FindByName(id_or_name);
  return e != nullptr ? e : s.FindById(id_or_name);
}

Status CheckNameFree(const Snapshot& s, std::string_view name, std::string_view self_id) {
  const EntryMetadata* other = s.FindByName(name);
  if (other != nullptr && other->id != self_id) return DuplicateName(name, other->name);
  return {};
}

Error ChangedWhileAttaching(const std::string& name) {
  return Error(Code::kFailedPrecondition,
               "certificate '" + name + "' changed while the certificate was attached", "retry",
               Side::kConfiguration);
}

}  // namespace

struct CertificateStore::Impl {
  StoreOptions options;
  std::string key_path;  // empty when the key was given directly
  bool read_only = false;

  std::unique_ptr<Storage> storage;
  // Serializes changes: every storage transaction is begun under it, and a change's
  // checks, writes and publication happen within one hold of it.
  Mutex write_mu;
  int64_t next_save_sequence ABSL_GUARDED_BY(write_mu) = 1;
  int64_t change_cursor ABSL_GUARDED_BY(write_mu) = 0;  // shared storages
  std::optional<MasterKey> current_key ABSL_GUARDED_BY(write_mu);
  // (entry id, UTC day) of the NOTIFY events written since the store opened.
  std::set<std::pair<std::string, int64_t>> notify_audited ABSL_GUARDED_BY(write_mu);

  std::atomic<std::shared_ptr<const Vault>> vault;  // replaced by a master key rotation
  // Opened proxy credentials; replaced (under write_mu) by each change of them.
  std::atomic<std::shared_ptr<const ProxyCredentialSet>> proxy_credentials{
      ProxyCredentialSet::Empty()};
  std::unique_ptr<SnapshotPublisher> publisher;
  std::unique_ptr<UseRecorder> uses;
  std::unique_ptr<ChangeFeed> changes;

  // Shared storages: the thread that follows the other plugins' changes.
  std::thread follower;
  std::atomic<bool> stopping{false};

  UnixSeconds Now() const { return options.clock(); }

  // Begins a change: the storage's transaction, and with a shared storage (then the only
  // writer until it ends) the others' changes applied first, so that the change's checks
  // see everything committed before it. write_mu held.
  Result<std::unique_ptr<Storage::Transaction>> BeginChange()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu) {
    WSSTEP_ASSIGN_OR_RETURN(auto tx, storage->Begin());
    if (storage->shared()) WSSTEP_RETURN_IF_ERROR(CatchUp());
    return tx;
  }

  // The published state for a change to `id_or_name`. With a shared storage, caught up
  // first when the entry is not in it: another plugin may have created it a moment ago.
  std::shared_ptr<const Published> CurrentFor(std::string_view id_or_name) {
    auto pub = publisher->current();
    if (!storage->shared() || Find(*pub->snapshot, id_or_name) != nullptr) return pub;
    {
      MutexLock lk(write_mu);
      (void)CatchUp();  // unreachable: the change fails on its own, saying why
    }
    return publisher->current();
  }

  // Commits a change begun by BeginChange. write_mu held.
  Status CommitChange(Storage::Transaction& tx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu) {
    WSSTEP_RETURN_IF_ERROR(tx.Commit());
    if (tx.committed_cursor() > 0) change_cursor = tx.committed_cursor();
    return {};
  }

  // Reads and opens every proxy credential. write_mu held (or the store not yet shown).
  Status LoadProxyCredentials() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu) {
    WSSTEP_ASSIGN_OR_RETURN(std::vector<StoredSecret> stored, storage->ReadSecrets());
    proxy_credentials.store(ProxyCredentialSet::Open(stored, *vault.load()));
    return {};
  }

  // Applies the changes other plugins committed since change_cursor: one new snapshot,
  // and their events on the change feed; their proxy credentials. write_mu held.
  Status CatchUp() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu) {
    WSSTEP_ASSIGN_OR_RETURN(StorageChanges changed, storage->ReadChanges(change_cursor));
    if (changed.secrets_changed) WSSTEP_RETURN_IF_ERROR(LoadProxyCredentials());
    change_cursor = std::max(change_cursor, changed.cursor);
    if (changed.saved.empty() && changed.deleted.empty()) return {};
    auto pub = publisher->current();
    const Snapshot& before = *pub->snapshot;
    SnapshotPublisher::Edit edit;
    std::vector<std::pair<ChangeKind, const EntryMetadata*>> events;
    for (size_t i = 0; i < changed.saved.size(); ++i) {
      const EntryMetadata& e = changed.saved[i];
      const EntryMetadata* known = before.FindById(e.id);
      // A save moves the entry to the end of the resolution order; an acknowledged
      // notification (a change that is not a save) leaves it in place.
      if (known != nullptr && changed.save_sequences[i] < next_save_sequence) {
        edit.in_place.push_back(&e);
        continue;
      }
      edit.saved.push_back(&e);
      next_save_sequence = std::max(next_save_sequence, changed.save_sequences[i] + 1);
      events.emplace_back(known != nullptr ? ChangeKind::kUpdated : ChangeKind::kCreated, &e);
    }
    std::vector<EntryMetadata> gone;
    for (const auto& id : changed.deleted) {
      const EntryMetadata* known = before.FindById(id);
      if (known == nullptr) continue;
      gone.push_back(*known);
      edit.removed.push_back(known->id);
    }
    publisher->Publish(publisher->EntriesWith(edit));
    for (const auto& [kind, e] : events) changes->Append(kind, e->id, e->name);
    for (const auto& e : gone) {
      uses->Forget(e.id);
      changes->Append(ChangeKind::kDeleted, e.id, e.name);
    }
    return {};
  }

  // Follows the other plugins' changes until the store closes: at each notice, and every
  // few seconds in case one was lost. While the database cannot be reached, steps go on
  // from the snapshot; on reconnecting, everything committed meanwhile is read from the
  // cursor. Reports each change of reachability to options.on_storage_state.
  void Follow() {
    constexpr auto kPollEvery = std::chrono::seconds(10);
    auto last_read = std::chrono::steady_clock::now();
    bool reachable = true;
    auto report = [&](const Status& st) {
      if (st.ok() == reachable) return;
      reachable = st.ok();
      if (options.on_storage_state) options.on_storage_state(st);
    };
    while (!stopping.load()) {
      Result<bool> notice = storage->WaitForChange(std::chrono::milliseconds(250));
      if (!notice.ok()) {
        report(notice.error());
        continue;
      }
      const auto now = std::chrono::steady_clock::now();
      if (!*notice && now - last_read < kPollEvery && reachable) continue;
      Status st;
      {
        MutexLock lk(write_mu);
        st = CatchUp();
      }
      if (st.ok()) last_read = now;
      report(st);
    }
  }

  Error ReadOnlyError() const {
    return Error(Code::kStorageError,
                 options.data_dir + ": the store is read-only; the change was not made",
                 "make the data directory and store.db writable by the plugin's user, then "
                 "restart",
                 Side::kStore)
        .With("path", storage->location());
  }

  // Parses an upload against the trust bound at `bindings` now. Import failures are
  // audited (no secret: the code and message).
  Result<PreparedUpload> ParseUpload(EntryType type, MaterialUpload& upload,
                                     const std::vector<Binding>& bindings, const AuditContext& ctx,
                                     std::string_view entry_id, std::string_view entry_name,
                                     const SecretBytes* key_override, std::string_view key_name) {
    std::vector<std::shared_ptr<const TrustAnchors>> keep;
    ImportInput in = ImportInputFor(type, upload, key_override, key_name);
    in.bound_trust = publisher->BoundTrust(bindings, keep);
    in.now = Now();
    auto prepared = PrepareUpload(in);
    if (!prepared.ok()) AuditImportFailure(prepared.error(), ctx, entry_id, entry_name);
    return prepared;
  }

  void AuditImportFailure(const Error& error, const AuditContext& ctx, std::string_view entry_id,
                          std::string_view entry_name) {
    if (read_only) return;
    AuditEvent ev;
    ev.at = Now();
    ev.action = AuditAction::kImportFailure;
    ev.actor = ctx.actor;
    ev.entry_id = std::string(entry_id);
    ev.entry_name = std::string(entry_name);
    ev.step_id = ctx.step_id;
    ev.workflow_id = ctx.workflow_id;
    ev.outcome = std::string(CodeName(error.code));
    ev.code = std::string(CodeName(error.code));
    ev.detail = error.message;  // messages never carry secrets
    MutexLock lk(write_mu);
    auto tx = storage->Begin();
    if (!tx.ok()) return;
    if ((*tx)->AppendAudit(ev).ok()) (void)(*tx)->Commit();
  }

  // Writes `e` as saved at `save_sequence`: its row, its bindings when they changed, and
  // its facts and material when `stored` is set. Under write_mu (save_sequence is read there).
  static Status WriteEntry(Storage::Transaction& tx, const EntryMetadata& e, int64_t save_sequence,
                           const StoredMaterial* stored, bool bindings_changed) {
    WSSTEP_RETURN_IF_ERROR(tx.PutEntry(e, save_sequence));
    if (bindings_changed) WSSTEP_RETURN_IF_ERROR(tx.PutBindings(e));
    if (stored != nullptr) WSSTEP_RETURN_IF_ERROR(tx.PutMaterial(e, *stored));
    return {};
  }

  // Commits one saved entry (`e`, with `stored` material when it changed) and its audit
  // event in `tx` (from BeginChange), then publishes it as the most recently saved entry.
  Status SaveOne(Storage::Transaction& tx, const EntryMetadata& e, const StoredMaterial* stored,
                 bool bindings_changed, const AuditEvent& event, const ParsedMaterial* prebuild)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu) {
    WSSTEP_RETURN_IF_ERROR(WriteEntry(tx, e, next_save_sequence, stored, bindings_changed));
    WSSTEP_RETURN_IF_ERROR(tx.AppendAudit(event));
    WSSTEP_RETURN_IF_ERROR(CommitChange(tx));
    ++next_save_sequence;
    if (prebuild != nullptr) publisher->Prebuild(e, *prebuild);
    publisher->Publish(publisher->EntriesWith({&e}, "", false));
    return {};
  }
};

// ---------------------------------------------------------------------------------------
// Open and close.

CertificateStore::CertificateStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

CertificateStore::~CertificateStore() {
  impl_->stopping.store(true);
  if (impl_->follower.joinable()) impl_->follower.join();
  impl_->uses->Stop();
  if (!impl_->read_only) (void)impl_->uses->Flush();
}

Result<std::unique_ptr<CertificateStore>> CertificateStore::Open(StoreOptions options) {
  EnsureProvidersLoaded();
  if (options.data_dir.empty()) {
    return Invalid("data_dir", "required (the directory that holds the store)");
  }
  while (options.data_dir.size() > 1 && options.data_dir.back() == '/') options.data_dir.pop_back();
  if (!options.read_only) WSSTEP_RETURN_IF_ERROR(EnsurePrivateDirectory(options.data_dir));
  if (!options.storage) options.storage = OpenSqliteStorage;

  auto impl = std::make_unique<Impl>();
  Impl& s = *impl;
  WSSTEP_ASSIGN_OR_RETURN(s.storage, options.storage({options.data_dir, options.read_only}));
  s.read_only = s.storage->read_only();
  if (!options.master_key) {
    s.key_path = MasterKeyFilePath(options.data_dir, options.master_key_file);
  }

  WSSTEP_ASSIGN_OR_RETURN(std::optional<MasterKeyRecord> record, s.storage->ReadMasterKeyRecord());
  std::optional<std::string> stored_id;
  if (record) stored_id = record->key_id;
  if (!s.key_path.empty() && !s.read_only) RemoveStaleKeyTemporaries(s.key_path);
  WSSTEP_ASSIGN_OR_RETURN(MasterKey key, ObtainMasterKey(std::move(options.master_key), s.key_path,
                                                         options.data_dir, stored_id, s.read_only));
  auto vault = std::make_shared<const Vault>(key.Clone());
  if (record) {
    WSSTEP_RETURN_IF_ERROR(CheckMasterKey(*vault, *record));
  } else if (!s.read_only) {
    WSSTEP_ASSIGN_OR_RETURN(MasterKeyRecord fresh, MasterKeyRecordFor(*vault));
    WSSTEP_ASSIGN_OR_RETURN(auto tx, s.storage->Begin());
    WSSTEP_RETURN_IF_ERROR(tx->PutMasterKeyRecord(fresh));
    WSSTEP_RETURN_IF_ERROR(tx->Commit());
  }
  s.vault.store(vault);
  WSSTEP_ASSIGN_OR_RETURN(LoadedEntries loaded, s.storage->LoadEntries());
  {
    // Nothing else sees the store yet; held so the analysis sees every write under it.
    MutexLock lk(s.write_mu);
    s.current_key = std::move(key);
    s.next_save_sequence = loaded.latest_save_sequence + 1;
    s.change_cursor = loaded.change_cursor;
    WSSTEP_RETURN_IF_ERROR(s.LoadProxyCredentials());
  }
  s.options = std::move(options);
  s.publisher = std::make_unique<SnapshotPublisher>(*s.storage, s.vault);
  s.uses = std::make_unique<UseRecorder>(*s.storage, s.write_mu, s.options.clock,
                                         s.options.use_flush_interval);
  s.changes = std::make_unique<ChangeFeed>(s.options.clock);
  {
    MutexLock lk(s.write_mu);
    s.publisher->Publish(std::move(loaded.entries));
  }
  if (!s.read_only) s.uses->Start();
  if (s.storage->shared()) s.follower = std::thread([&s] { s.Follow(); });
  return std::unique_ptr<CertificateStore>(new CertificateStore(std::move(impl)));
}

// ---------------------------------------------------------------------------------------
// Entries.

Result<EntryMetadata> CertificateStore::Create(CreateRequest request, const AuditContext& ctx,
                                               std::vector<Error>* warnings) {
  std::vector<CreateRequest> one;
  one.push_back(std::move(request));
  WSSTEP_ASSIGN_OR_RETURN(auto created, CreateMany(std::move(one), ctx, warnings));
  return std::move(created.front());
}

Result<std::vector<EntryMetadata>> CertificateStore::CreateMany(std::vector<CreateRequest> requests,
                                                                const AuditContext& ctx,
                                                                std::vector<Error>* warnings) {
  Impl& s = *impl_;
  if (s.read_only) return s.ReadOnlyError();
  if (requests.empty()) return std::vector<EntryMetadata>();
  struct Item {
    EntryMetadata meta;
    PreparedUpload prepared;
  };
  std::vector<Item> items;
  items.reserve(requests.size());
  std::vector<Error> all_warnings;
  const UnixSeconds now = s.Now();
  {
    auto pub = s.publisher->current();
    std::unordered_map<std::string, std::string> batch_names;
    for (auto& r : requests) {
      WSSTEP_RETURN_IF_ERROR(ValidateName(r.name));
      WSSTEP_RETURN_IF_ERROR(ValidateDescription(r.description));
      WSSTEP_RETURN_IF_ERROR(ValidateNotifications(r.notifications));
      WSSTEP_RETURN_IF_ERROR(NormalizeBindings(r.bindings, r.type));
      // Refused uploads are audited, these two as well as those the parser refuses.
      if (Status name_free = CheckNameFree(*pub->snapshot, r.name, ""); !name_free.ok()) {
        s.AuditImportFailure(name_free.error(), ctx, "", r.name);
        return name_free;
      }
      if (r.material.content.empty()) {
        Error empty(
            Code::kInvalidCertificateFormat, r.material.content_name + ": the file is empty",
            "upload the certificate, key store or bundle file itself", Side::kConfiguration);
        s.AuditImportFailure(empty, ctx, "", r.name);
        return empty;
      }
      auto [it, fresh] = batch_names.emplace(AsciiLower(r.name), r.name);
      if (!fresh) return DuplicateName(r.name, it->second);
    }
    for (auto& r : requests) {
      Item item;
      item.meta.id = NewEntryId();
      WSSTEP_ASSIGN_OR_RETURN(item.prepared, s.ParseUpload(r.type, r.material, r.bindings, ctx, "",
                                                           r.name, nullptr, ""));
      WSSTEP_RETURN_IF_ERROR(SealPreparedKey(item.prepared, *s.vault.load(), item.meta.id));
      item.meta = NewEntry(std::move(item.meta.id), r, std::move(item.prepared.facts), now);
      item.prepared.stored.version = item.meta.version;
      for (auto& w : item.prepared.parsed.warnings) all_warnings.push_back(std::move(w));
      items.push_back(std::move(item));
    }
  }

  std::vector<EntryMetadata> result;
  {
    MutexLock lk(s.write_mu);
    WSSTEP_ASSIGN_OR_RETURN(auto tx, s.BeginChange());
    auto pub = s.publisher->current();
    for (const auto& item : items) {
      WSSTEP_RETURN_IF_ERROR(CheckNameFree(*pub->snapshot, item.meta.name, ""));
      if (pub->snapshot->FindById(item.meta.id) != nullptr) {
        return Error(Code::kInternal, "entry id collision; retry");
      }
    }
    int64_t save_sequence = s.next_save_sequence;
    for (const auto& item : items) {
      WSSTEP_RETURN_IF_ERROR(
          Impl::WriteEntry(*tx, item.meta, save_sequence++, &item.prepared.stored, true));
      WSSTEP_RETURN_IF_ERROR(
          tx->AppendAudit(EntryAuditEvent(AuditAction::kCreate, ctx, item.meta,
                                          std::string(EntryTypeName(item.meta.type)), s.Now())));
    }
    WSSTEP_RETURN_IF_ERROR(s.CommitChange(*tx));
    s.next_save_sequence = save_sequence;
    std::vector<const EntryMetadata*> changed;
    for (const auto& item : items) {
      changed.push_back(&item.meta);
      s.publisher->Prebuild(item.meta, item.prepared.parsed);
    }
    s.publisher->Publish(s.publisher->EntriesWith(changed, "", false));
    for (const auto& item : items) result.push_back(item.meta);
  }
  for (const auto& e : result) s.changes->Append(ChangeKind::kCreated, e.id, e.name, ctx.actor);
  if (warnings != nullptr) {
    for (auto& w : all_warnings) warnings->push_back(std::move(w));
  }
  return result;
}

Result<EntryMetadata> CertificateStore::Get(std::string_view id_or_name) const {
  auto pub = impl_->publisher->current();
  const EntryMetadata* e = Find(*pub->snapshot, id_or_name);
  if (e == nullptr) return NotFound(id_or_name);
  return impl_->uses->WithUsage(*e);
}

Result<ListPage> CertificateStore::List(const ListFilter& filter) const {
  auto pub = impl_->publisher->current();
  return ListEntries(*pub->snapshot, filter, impl_->Now(),
                     [&](const EntryMetadata& e) { return impl_->uses->WithUsage(e); });
}

Result<EntryMetadata> CertificateStore::Update(std::string_view id_or_name, UpdateRequest request,
                                               const AuditContext& ctx,
                                               std::vector<Error>* warnings) {
  Impl& s = *impl_;
  if (s.read_only) return s.ReadOnlyError();
  std::string id;
  EntryType type;
  std::string old_name;
  std::vector<Binding> target_bindings;
  {
    auto pub = s.CurrentFor(id_or_name);
    const EntryMetadata* e = Find(*pub->snapshot, id_or_name);
    if (e == nullptr) return NotFound(id_or_name);
    // Before the material is parsed: a refused change leaves no trace, not even an
    // import failure in the audit log.
    WSSTEP_RETURN_IF_ERROR(CheckRevocationIsFinal(*e, request));
    id = e->id;
    type = e->type;
    old_name = e->name;
    target_bindings = e->bindings;
    if (request.name) {
      WSSTEP_RETURN_IF_ERROR(ValidateName(*request.name));
      WSSTEP_RETURN_IF_ERROR(CheckNameFree(*pub->snapshot, *request.name, id));
    }
  }
  if (request.description) WSSTEP_RETURN_IF_ERROR(ValidateDescription(*request.description));
  if (request.notifications) WSSTEP_RETURN_IF_ERROR(ValidateNotifications(*request.notifications));
  if (request.bindings) {
    WSSTEP_RETURN_IF_ERROR(NormalizeBindings(*request.bindings, type));
    target_bindings = *request.bindings;
  }
  std::optional<PreparedUpload> prepared;
  if (request.material) {
    WSSTEP_ASSIGN_OR_RETURN(
        PreparedUpload p,
        s.ParseUpload(type, *request.material, target_bindings, ctx, id, old_name, nullptr, ""));
    WSSTEP_RETURN_IF_ERROR(SealPreparedKey(p, *s.vault.load(), id));
    prepared = std::move(p);
  }

  EntryMetadata updated;
  {
    MutexLock lk(s.write_mu);
    WSSTEP_ASSIGN_OR_RETURN(auto tx, s.BeginChange());
    auto pub = s.publisher->current();
    const EntryMetadata* current = pub->snapshot->FindById(id);
    if (current == nullptr) return NotFound(id_or_name);
    if (request.name) WSSTEP_RETURN_IF_ERROR(CheckNameFree(*pub->snapshot, *request.name, id));
    WSSTEP_RETURN_IF_ERROR(CheckRevocationIsFinal(*current, request));  // revoked meanwhile
    updated = *current;
    AppliedUpdate applied =
        ApplyUpdate(updated, request, prepared ? &prepared->facts : nullptr, s.Now());
    if (prepared) prepared->stored.version = updated.version;
    WSSTEP_RETURN_IF_ERROR(
        s.SaveOne(*tx, updated, prepared ? &prepared->stored : nullptr, applied.bindings_changed,
                  EntryAuditEvent(AuditAction::kUpdate, ctx, updated, applied.detail, s.Now()),
                  prepared ? &prepared->parsed : nullptr));
  }
  s.changes->Append(ChangeKind::kUpdated, updated.id, updated.name, ctx.actor);
  if (warnings != nullptr && prepared) {
    for (auto& w : prepared->parsed.warnings) warnings->push_back(std::move(w));
  }
  return s.uses->WithUsage(std::move(updated));
}

Status CertificateStore::Delete(std::string_view id_or_name, const AuditContext& ctx) {
  Impl& s = *impl_;
  if (s.read_only) return s.ReadOnlyError();
  EntryMetadata gone;
  {
    MutexLock lk(s.write_mu);
    WSSTEP_ASSIGN_OR_RETURN(auto tx, s.BeginChange());
    auto pub = s.publisher->current();
    const EntryMetadata* e = Find(*pub->snapshot, id_or_name);
    if (e == nullptr) return NotFound(id_or_name);
    gone = *e;
    WSSTEP_RETURN_IF_ERROR(tx->DeleteEntry(gone.id));
    WSSTEP_RETURN_IF_ERROR(tx->AppendAudit(EntryAuditEvent(
        AuditAction::kDelete, ctx, gone,
        std::string(EntryTypeName(gone.type)) + ", version " + std::to_string(gone.version),
        s.Now())));
    WSSTEP_RETURN_IF_ERROR(s.CommitChange(*tx));
    s.publisher->Publish(s.publisher->EntriesWith({}, gone.id, true));
  }
  s.uses->Forget(gone.id);
  s.changes->Append(ChangeKind::kDeleted, gone.id, gone.name, ctx.actor);
  return {};
}

// ---------------------------------------------------------------------------------------
// Resolution and use.

Result<ResolvedCall> CertificateStore::Explain(const ResolveRequest& request,
                                               bool require_identity) const {
  ResolvedCall call;
  call.snapshot = impl_->publisher->current()->snapshot;
  ResolveRequest explained = request;
  explained.explain = true;  // the point of this call
  if (explained.now == 0) explained.now = impl_->Now();
  WSSTEP_ASSIGN_OR_RETURN(call.resolution, Resolve(*call.snapshot, explained, require_identity));
  return call;
}

Result<ResolvedCall> CertificateStore::ResolveForCall(const ResolveRequest& request,
                                                      bool require_identity) const {
  if (request.now != 0) return impl_->publisher->ResolveWithCredentials(request, require_identity);
  ResolveRequest timed = request;
  timed.now = impl_->Now();
  return impl_->publisher->ResolveWithCredentials(timed, require_identity);
}

void CertificateStore::RecordUse(std::string_view entry_id, const ResolveRequest& request,
                                 const AuditContext& ctx, std::string_view outcome) const {
  const Impl& s = *impl_;
  if (s.read_only) return;
  AuditEvent ev;
  ev.at = s.Now();
  ev.action = AuditAction::kUse;
  ev.actor = ctx.actor;
  ev.entry_id = std::string(entry_id);
  ev.host = NormalizeHost(request.host);
  ev.port = request.port == 0 ? kDefaultPort : request.port;
  ev.environment =
      request.environment.empty() ? std::string(kDefaultEnvironment) : request.environment;
  ev.step_id = ctx.step_id;
  ev.workflow_id = ctx.workflow_id;
  ev.outcome = std::string(outcome);
  std::optional<Usage> counted;
  if (!entry_id.empty()) {
    auto pub = s.publisher->current();
    if (const EntryMetadata* e = pub->snapshot->FindById(entry_id)) {
      ev.entry_name = e->name;
      counted = Usage{e->last_used_at, e->use_count};
    }
  }
  s.uses->Record(std::move(ev), counted ? &*counted : nullptr);
}

Status CertificateStore::Flush() const {
  if (impl_->read_only) return {};
  return impl_->uses->Flush();
}

// ---------------------------------------------------------------------------------------
// Audit.

Result<AuditPage> CertificateStore::ListAudit(const AuditFilter& filter) const {
  WSSTEP_ASSIGN_OR_RETURN(size_t page_size, PageSize(filter.page_size));
  WSSTEP_ASSIGN_OR_RETURN(int64_t before, AuditPageStart(filter.page_token));
  AuditPage page;
  // One more than a page: whether there is a next one.
  WSSTEP_ASSIGN_OR_RETURN(page.events, impl_->storage->ReadAudit(filter, before, page_size + 1));
  if (page.events.size() > page_size) {
    page.events.resize(page_size);
    page.next_page_token = AuditPageToken(page.events.back());
  }
  return page;
}

// ---------------------------------------------------------------------------------------
// Notifications.

std::vector<DueNotification> CertificateStore::DueNotifications() const {
  auto pub = impl_->publisher->current();
  return core::DueNotifications(pub->snapshot->entries(), impl_->Now());
}

Status CertificateStore::AcknowledgeNotification(std::string_view id, UnixSeconds sent_at,
                                                 const AuditContext& ctx) {
  Impl& s = *impl_;
  if (s.read_only) return s.ReadOnlyError();
  MutexLock lk(s.write_mu);
  WSSTEP_ASSIGN_OR_RETURN(auto tx, s.BeginChange());
  auto pub = s.publisher->current();
  const EntryMetadata* e = Find(*pub->snapshot, id);
  if (e == nullptr) return NotFound(id);
  EntryMetadata acked = *e;
  acked.last_notified_at = std::max(acked.last_notified_at, sent_at);
  WSSTEP_RETURN_IF_ERROR(tx->PutLastNotified(acked.id, acked.last_notified_at));
  WSSTEP_RETURN_IF_ERROR(tx->AppendAudit(EntryAuditEvent(
      AuditAction::kAcknowledge, ctx, acked,
      "expiry notification acknowledged; the next one falls due by its frequency", s.Now())));
  WSSTEP_RETURN_IF_ERROR(s.CommitChange(*tx));
  // Not a save: the entry keeps its place in the resolution order.
  s.publisher->Publish(s.publisher->EntriesWith({&acked}, "", true));
  return {};
}

Result<bool> CertificateStore::ClaimNotification(const DueNotification& due) const {
  return impl_->storage->ClaimNotification(due.entry_id, UtcDay(impl_->Now()), due.level);
}

void CertificateStore::RecordNotificationsHanded(const std::vector<DueNotification>& handed,
                                                 const AuditContext& ctx) const {
  Impl& s = *impl_;
  if (s.read_only || handed.empty()) return;
  const UnixSeconds now = s.Now();
  MutexLock lk(s.write_mu);
  auto pub = s.publisher->current();
  auto tx = s.storage->Begin();
  if (!tx.ok()) return;
  bool any = false;
  for (const DueNotification& n : handed) {
    if (!s.notify_audited.emplace(n.entry_id, UtcDay(now)).second) continue;
    const EntryMetadata* e = pub->snapshot->FindById(n.entry_id);
    if (e == nullptr) continue;
    AuditEvent ev = EntryAuditEvent(
        AuditAction::kNotify, ctx, *e,
        "expiry notification handed to the host: " + std::to_string(n.days_remaining) +
            " days left" + (n.alert_ref.empty() ? "" : ", alert " + n.alert_ref),
        now);
    if (!(*tx)->AppendAudit(ev).ok()) return;
    any = true;
  }
  if (any) (*tx)->Commit().IgnoreError();
}

// ---------------------------------------------------------------------------------------
// Key generation.

Result<GeneratedKey> CertificateStore::GenerateKeyAndCsr(KeyGenerationRequest request,
                                                         const AuditContext& ctx) {
  Impl& s = *impl_;
  if (s.read_only) return s.ReadOnlyError();
  WSSTEP_RETURN_IF_ERROR(ValidateName(request.name));
  WSSTEP_RETURN_IF_ERROR(ValidateDescription(request.description));
  WSSTEP_RETURN_IF_ERROR(ValidateNotifications(request.notifications));
  WSSTEP_RETURN_IF_ERROR(NormalizeBindings(request.bindings, EntryType::kKeyPair));
  WSSTEP_RETURN_IF_ERROR(CheckNameFree(*s.publisher->current()->snapshot, request.name, ""));
  WSSTEP_ASSIGN_OR_RETURN(GeneratedCsr generated, core::GenerateKeyAndCsr(request.csr));

  EntryMetadata m = NewPendingKeyEntry(NewEntryId(), request, s.Now());
  StoredMaterial stored;
  stored.version = m.version;
  {
    auto v = s.vault.load();
    WSSTEP_ASSIGN_OR_RETURN(std::string blob, v->Seal(generated.key_pkcs8_der, SealedKeyAad(m.id)));
    WSSTEP_ASSIGN_OR_RETURN(stored.sealed_key_id, Vault::KeyIdOf(blob));
    stored.sealed_key = std::move(blob);
  }
  stored.csr_pem = generated.csr_pem;
  {
    MutexLock lk(s.write_mu);
    WSSTEP_ASSIGN_OR_RETURN(auto tx, s.BeginChange());
    WSSTEP_RETURN_IF_ERROR(CheckNameFree(*s.publisher->current()->snapshot, m.name, ""));
    WSSTEP_RETURN_IF_ERROR(s.SaveOne(
        *tx, m, &stored, true,
        EntryAuditEvent(AuditAction::kGenerateKey, ctx, m, "key and CSR generated", s.Now()),
        nullptr));
  }
  s.changes->Append(ChangeKind::kCreated, m.id, m.name, ctx.actor);
  return GeneratedKey{std::move(m), std::move(generated.csr_pem)};
}

Result<std::string> CertificateStore::GetCsr(std::string_view id_or_name) const {
  auto pub = impl_->publisher->current();
  const EntryMetadata* e = Find(*pub->snapshot, id_or_name);
  if (e == nullptr) return NotFound(id_or_name);
  WSSTEP_ASSIGN_OR_RETURN(std::optional<StoredMaterial> m, impl_->storage->ReadMaterial(e->id));
  if (!m || !m->csr_pem) {
    return Error(Code::kNotFound,
                 "certificate '" + e->name + "' has no certificate signing request",
                 "only entries made by key generation have one, until their certificate is "
                 "attached",
                 Side::kConfiguration);
  }
  return std::move(*m->csr_pem);
}

Result<PublicMaterial> CertificateStore::ExportPublic(std::string_view id_or_name) const {
  auto pub = impl_->publisher->current();
  const EntryMetadata* e = Find(*pub->snapshot, id_or_name);
  if (e == nullptr) return NotFound(id_or_name);
  WSSTEP_ASSIGN_OR_RETURN(std::optional<StoredMaterial> m, impl_->storage->ReadMaterial(e->id));
  PublicMaterial out;
  if (!m) return out;
  out.leaf_der = std::move(m->leaf_der);
  out.chain_der = std::move(m->chain_der);
  out.trusted_der = std::move(m->trusted_der);
  return out;
}

Result<EntryMetadata> CertificateStore::AttachCertificate(std::string_view id_or_name,
                                                          SecretBytes certificate,
                                                          std::string_view content_name,
                                                          const AuditContext& ctx,
                                                          std::vector<Error>* warnings) {
  Impl& s = *impl_;
  if (s.read_only) return s.ReadOnlyError();
  std::string id, name;
  uint64_t based_on = 0;
  std::vector<Binding> bindings;
  {
    auto pub = s.CurrentFor(id_or_name);
    const EntryMetadata* e = Find(*pub->snapshot, id_or_name);
    if (e == nullptr) return NotFound(id_or_name);
    if (e->type != EntryType::kKeyPair || !e->has_private_key) {
      return Error(Code::kFailedPrecondition,
                   "certificate '" + e->name + "' is not a key pair with a stored private key",
                   "attach certificates to entries created by key generation (or key pairs)",
                   Side::kConfiguration);
    }
    id = e->id;
    name = e->name;
    based_on = e->version;
    bindings = e->bindings;
  }
  // The stored key, to check the certificate against and to keep.
  SecretBytes pkcs8;
  {
    WSSTEP_ASSIGN_OR_RETURN(std::optional<StoredMaterial> m, s.storage->ReadMaterial(id));
    if (!m || !m->sealed_key || m->version != based_on) return ChangedWhileAttaching(name);
    WSSTEP_ASSIGN_OR_RETURN(pkcs8, s.vault.load()->Open(*m->sealed_key, SealedKeyAad(id)));
  }
  MaterialUpload upload;
  upload.content = std::move(certificate);
  upload.content_name = content_name.empty() ? "certificate" : std::string(content_name);
  WSSTEP_ASSIGN_OR_RETURN(
      PreparedUpload p, s.ParseUpload(EntryType::kKeyPair, upload, bindings, ctx, id, name, &pkcs8,
                                      "the private key of '" + name + "'"));
  WSSTEP_RETURN_IF_ERROR(SealPreparedKey(p, *s.vault.load(), id));

  EntryMetadata updated;
  {
    MutexLock lk(s.write_mu);
    WSSTEP_ASSIGN_OR_RETURN(auto tx, s.BeginChange());
    auto pub = s.publisher->current();
    const EntryMetadata* current = pub->snapshot->FindById(id);
    if (current == nullptr) return NotFound(id_or_name);
    if (current->version != based_on) return ChangedWhileAttaching(name);
    updated = *current;
    ApplyMaterialFacts(updated, std::move(p.facts), current->version + 1);
    p.stored.version = updated.version;
    updated.updated_at = s.Now();
    WSSTEP_RETURN_IF_ERROR(s.SaveOne(
        *tx, updated, &p.stored, false,
        EntryAuditEvent(AuditAction::kAttachCertificate, ctx, updated,
                        "certificate " + (updated.certificate ? updated.certificate->subject
                                                              : std::string("attached")),
                        s.Now()),
        &p.parsed));
  }
  s.changes->Append(ChangeKind::kUpdated, updated.id, updated.name, ctx.actor);
  if (warnings != nullptr) {
    for (auto& w : p.parsed.warnings) warnings->push_back(std::move(w));
  }
  return s.uses->WithUsage(std::move(updated));
}

// ---------------------------------------------------------------------------------------
// Proxy credentials.

Result<ProxyCredentialInfo> CertificateStore::SetProxyCredential(std::string_view name,
                                                                 std::string_view username,
                                                                 const SecretBytes& password,
                                                                 const AuditContext& ctx,
                                                                 bool* created) {
  Impl& s = *impl_;
  WSSTEP_RETURN_IF_ERROR(ValidateProxyCredential(name, username, password));
  if (s.read_only) return s.ReadOnlyError();
  MutexLock lk(s.write_mu);
  WSSTEP_ASSIGN_OR_RETURN(auto tx, s.BeginChange());
  auto before = s.proxy_credentials.load();
  const ProxyCredentialInfo* existing = before->Info(name);
  const UnixSeconds now = s.Now();
  ProxyCredentialInfo info;
  info.name = existing != nullptr ? existing->name : std::string(name);
  info.username = std::string(username);
  info.created_at = existing != nullptr ? existing->created_at : now;
  info.updated_at = now;

  auto vault = s.vault.load();
  StoredSecret stored;
  stored.name = info.name;
  stored.username = info.username;
  WSSTEP_ASSIGN_OR_RETURN(stored.sealed_value, vault->Seal(password, ProxyCredentialAad(name)));
  stored.key_id = vault->key_id();
  stored.created_at = info.created_at;
  stored.updated_at = info.updated_at;
  WSSTEP_RETURN_IF_ERROR(tx->PutSecret(stored));

  std::string detail =
      existing == nullptr ? "created, user " + info.username
      : existing->username != info.username
          ? "user " + existing->username + " -> " + info.username + ", password set"
          : "password set";
  const AuditEvent ev =
      ContextAuditEvent(AuditAction::kSetProxyCredential, ctx, info.name, std::move(detail), now);
  WSSTEP_RETURN_IF_ERROR(tx->AppendAudit(ev));
  WSSTEP_RETURN_IF_ERROR(s.CommitChange(*tx));
  if (created != nullptr) *created = existing == nullptr;
  s.proxy_credentials.store(before->With(
      info,
      ProxyLogin{info.name, info.username, std::make_shared<const SecretBytes>(password.Clone())}));
  return info;
}

std::vector<ProxyCredentialInfo> CertificateStore::ListProxyCredentials() const {
  return impl_->proxy_credentials.load()->List();
}

Status CertificateStore::DeleteProxyCredential(std::string_view name, const AuditContext& ctx) {
  Impl& s = *impl_;
  if (s.read_only) return s.ReadOnlyError();
  MutexLock lk(s.write_mu);
  WSSTEP_ASSIGN_OR_RETURN(auto tx, s.BeginChange());
  auto before = s.proxy_credentials.load();
  const ProxyCredentialInfo* existing = before->Info(name);
  if (existing == nullptr) return before->Find(name).error();
  WSSTEP_RETURN_IF_ERROR(tx->DeleteSecret(existing->name));
  const AuditEvent ev = ContextAuditEvent(AuditAction::kDeleteProxyCredential, ctx, existing->name,
                                          "user " + existing->username, s.Now());
  WSSTEP_RETURN_IF_ERROR(tx->AppendAudit(ev));
  WSSTEP_RETURN_IF_ERROR(s.CommitChange(*tx));
  s.proxy_credentials.store(before->Without(name));
  return {};
}

Result<ProxyLogin> CertificateStore::ProxyCredential(std::string_view name) const {
  return impl_->proxy_credentials.load()->Find(name);
}

// ---------------------------------------------------------------------------------------
// Master key rotation.

Status CertificateStore::RotateMasterKey(MasterKey new_key, const AuditContext& ctx) {
  Impl& s = *impl_;
  if (s.read_only) return s.ReadOnlyError();
  MutexLock lk(s.write_mu);
  auto old_vault = s.vault.load();
  const std::string old_id = old_vault->key_id();
  if (new_key.id() == old_id) {
    return Invalid("master_key", "the new master key is the current one (id " + old_id + ")");
  }
  const std::string pending = s.key_path.empty() ? "" : s.key_path + ".new";
  if (!pending.empty()) WSSTEP_RETURN_IF_ERROR(new_key.WriteFile(pending));
  std::vector<MasterKey> retired;
  retired.push_back(s.current_key->Clone());
  auto new_vault = std::make_shared<const Vault>(new_key.Clone(), std::move(retired));

  auto reencrypt = [&]() -> Status {
    WSSTEP_ASSIGN_OR_RETURN(auto tx, s.storage->Begin());
    WSSTEP_ASSIGN_OR_RETURN(size_t resealed, ResealStoredKeys(*tx, *old_vault, *new_vault));
    WSSTEP_ASSIGN_OR_RETURN(size_t secrets, ResealStoredSecrets(*tx, *old_vault, *new_vault));
    WSSTEP_ASSIGN_OR_RETURN(MasterKeyRecord record, MasterKeyRecordFor(*new_vault));
    WSSTEP_RETURN_IF_ERROR(tx->PutMasterKeyRecord(record));
    const AuditEvent ev =
        ContextAuditEvent(AuditAction::kRotateMasterKey, ctx, "",
                          "master key " + old_id + " replaced by " + new_vault->key_id() + "; " +
                              std::to_string(resealed) + " keys and " + std::to_string(secrets) +
                              " proxy credentials re-encrypted",
                          s.Now());
    WSSTEP_RETURN_IF_ERROR(tx->AppendAudit(ev));
    return tx->Commit();
  };
  Status st = reencrypt();
  if (!st.ok()) {
    if (!pending.empty()) ::unlink(pending.c_str());
    return st;
  }
  // Readers that fetched a blob before the commit still find its (now retired) key.
  s.vault.store(new_vault);
  s.current_key = std::move(new_key);
  if (!pending.empty()) {
    Status renamed = RenameDurably(pending, s.key_path);
    if (!renamed.ok()) {
      Error e = renamed.error();
      e.message = "the store was re-encrypted under the new master key, but installing " +
                  s.key_path + " failed (" + e.message + "); the next start completes it";
      return e;
    }
  }
  return {};
}

std::string CertificateStore::master_key_id() const { return impl_->vault.load()->key_id(); }
const std::string& CertificateStore::master_key_file() const { return impl_->key_path; }

// ---------------------------------------------------------------------------------------
// Snapshots, changes and facts.

std::shared_ptr<const Snapshot> CertificateStore::snapshot() const {
  return impl_->publisher->current()->snapshot;
}

std::vector<ChangeEvent> CertificateStore::WaitForChanges(uint64_t after_sequence,
                                                          std::chrono::milliseconds timeout) const {
  return impl_->changes->WaitAfter(after_sequence, timeout);
}

uint64_t CertificateStore::LatestChangeSequence() const { return impl_->changes->latest(); }

UnixSeconds CertificateStore::Now() const { return impl_->Now(); }
bool CertificateStore::read_only() const { return impl_->read_only; }
const std::string& CertificateStore::data_dir() const { return impl_->options.data_dir; }
size_t CertificateStore::size() const {
  return impl_->publisher->current()->snapshot->entries().size();
}

}  // namespace wsstep::core

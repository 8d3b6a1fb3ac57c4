// The certificate store's persistence seam: what CertificateStore (core/store/store.h) needs
// from a database, and nothing of how a database provides it. The store keeps every
// entry's metadata in memory and asks its Storage only to load them at startup, to make
// each change durable, to fetch an entry's material on its first use, and to keep the
// audit log. SQLite is the first backend (core/store/sqlite_storage.h); a backend is
// chosen with StoreOptions::storage.
//
//   WSSTEP_ASSIGN_OR_RETURN(std::unique_ptr<Storage> storage,
//                           OpenSqliteStorage({.data_dir = dir}));
//   WSSTEP_ASSIGN_OR_RETURN(LoadedEntries loaded, storage->LoadEntries());
//   int64_t save_sequence = loaded.latest_save_sequence;
//
//   WSSTEP_ASSIGN_OR_RETURN(auto tx, storage->Begin());
//   WSSTEP_RETURN_IF_ERROR(tx->PutEntry(entry, save_sequence + 1));
//   WSSTEP_RETURN_IF_ERROR(tx->PutBindings(entry));
//   WSSTEP_RETURN_IF_ERROR(tx->AppendAudit(event));
//   WSSTEP_RETURN_IF_ERROR(tx->Commit());   // destroyed uncommitted: nothing is written
//   ++save_sequence;
//
// Errors: STORAGE_ERROR naming where the data is and what failed (with the backend's own
// message: "disk full", "read-only"); DUPLICATE_NAME from PutEntry. A read-only storage
// refuses Begin (and every write) with STORAGE_ERROR; its reads work. A shared storage
// whose database cannot be reached answers STORAGE_UNAVAILABLE (retryable) and reconnects
// on later calls.
//
// Shared storages (PostgreSQL) are written by several plugin processes at once. Their
// transactions are serialized among all of them, every change is numbered by a change
// cursor in commit order, and the store follows the others' changes:
//
//   WSSTEP_ASSIGN_OR_RETURN(StorageChanges c, storage->ReadChanges(cursor));  // catch up
//   WSSTEP_ASSIGN_OR_RETURN(bool changed, storage->WaitForChange(250ms));      // follow
//
// Thread safety: reads may be called from any thread, concurrently with each other and
// with an open transaction, and never wait for a transaction to commit. Transactions are
// the caller's to serialize: the store begins one only under its write lock, and uses it
// on that thread.
#ifndef WSSTEP_CORE_STORE_STORAGE_H_
#define WSSTEP_CORE_STORE_STORAGE_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/model.h"
#include "core/store/audit.h"

namespace wsstep::core {

// The certificates and sealed private key of one version of an entry, as stored: DER and
// a vault blob (core/vault.h), never parsed or decrypted by the storage.
struct StoredMaterial {
  uint64_t version = 0;  // the entry version this material belongs to
  std::string leaf_der;  // empty: none
  std::vector<std::string> chain_der;
  std::vector<std::string> trusted_der;
  std::optional<std::string> sealed_key;  // the PKCS#8 DER, sealed; nullopt: no key
  std::string sealed_key_id;              // master key id of sealed_key (Vault::KeyIdOf)
  std::optional<std::string> csr_pem;     // GenerateKeyAndCsr entries until attached
};

// A named proxy credential as stored (the store's `proxy-credential` secrets): the
// password only as a vault blob, bound to the credential's name (ProxyCredentialAad).
struct StoredSecret {
  std::string name;          // as first given; unique, compared case-insensitively
  std::string username;      // not secret
  std::string sealed_value;  // the password, sealed
  std::string key_id;        // master key id of sealed_value (Vault::KeyIdOf)
  UnixSeconds created_at = 0;
  UnixSeconds updated_at = 0;
};

// How the store recognizes its master key at startup: the id of the key everything is
// sealed under, and a known value sealed with it (a wrong key with a forged id fails to
// open it).
struct MasterKeyRecord {
  std::string key_id;
  std::optional<std::string> check;  // sealed canary; absent in stores that predate it
};

// Every entry's metadata, and where the change sequence stood when they were read.
struct LoadedEntries {
  // In save order: the entry saved least recently first (Snapshot's tie-break order).
  // use_count, last_used_at and last_notified_at as last written.
  std::vector<EntryMetadata> entries;
  // The greatest save sequence of any entry (0 when there is none). The store gives each
  // later save the next number.
  int64_t latest_save_sequence = 0;
  // Shared storages: where ReadChanges continues from to see every later change.
  int64_t change_cursor = 0;
};

// What changed in a shared storage after a change cursor, made by any process.
struct StorageChanges {
  // Entries created or changed (saved, or their notification acknowledged), with their
  // bindings and certificate facts as LoadEntries reads them, in save order.
  std::vector<EntryMetadata> saved;
  std::vector<int64_t> save_sequences;  // aligned with `saved`
  std::vector<std::string> deleted;     // ids of entries deleted
  bool secrets_changed = false;         // a proxy credential was set or deleted
  int64_t cursor = 0;                   // where the next ReadChanges continues
};

// The store's first request to a backend.
struct StorageOpenRequest {
  std::string data_dir;    // the store's directory; exists (the store creates it)
  bool read_only = false;  // the caller asks for no writes (a backend may decide so too)
};

class Storage {
 public:
  class Transaction;

  virtual ~Storage() = default;

  // True when every write will be refused: asked for, or found necessary when opening
  // (the SQLite backend: a data directory or database file the process may not write).
  virtual bool read_only() const = 0;
  // Where the data is, for messages: the SQLite database file's path.
  virtual const std::string& location() const = 0;

  // ---- Reads ----

  // Nullopt for a store that has never recorded a master key (a new store).
  virtual Result<std::optional<MasterKeyRecord>> ReadMasterKeyRecord() = 0;
  // Every entry's metadata with its bindings and certificate facts, without any material.
  // Called once, at startup; a store of 100,000s of entries must load in well under a
  // second and allocate little beyond the entries themselves.
  virtual Result<LoadedEntries> LoadEntries() = 0;
  // The material of `entry_id`'s current version; nullopt when the entry has none (it
  // was deleted).
  virtual Result<std::optional<StoredMaterial>> ReadMaterial(std::string_view entry_id) = 0;
  // Every stored proxy credential (sealed), ordered by name. Read at startup and, for
  // shared storages, again when StorageChanges::secrets_changed says so.
  virtual Result<std::vector<StoredSecret>> ReadSecrets() = 0;
  // Up to `limit` audit events matching `filter` (its page_size and page_token are the
  // caller's business), newest first, with sequence below `before_sequence` (0: any).
  virtual Result<std::vector<AuditEvent>> ReadAudit(const AuditFilter& filter,
                                                    int64_t before_sequence, size_t limit) = 0;

  // ---- Writes ----

  // Begins the one write transaction. STORAGE_ERROR when read-only or when the backend
  // cannot start one. A shared storage also waits for every other process's transaction
  // to end: from Begin to Commit this process is the only writer.
  virtual Result<std::unique_ptr<Transaction>> Begin() = 0;

  // ---- Sharing with other processes ----

  // True when other plugin processes may write this storage at the same time.
  virtual bool shared() const { return false; }
  // Changes committed after `cursor` (LoadedEntries::change_cursor, then the last
  // StorageChanges::cursor). Only shared storages have any.
  virtual Result<StorageChanges> ReadChanges(int64_t cursor) {
    StorageChanges none;
    none.cursor = cursor;
    return none;
  }
  // Waits up to `timeout` for another process's commit. True when one may have happened
  // (also after a reconnect: notices may have been lost); then ReadChanges tells what.
  // STORAGE_UNAVAILABLE while the database cannot be reached. Only shared storages wait.
  virtual Result<bool> WaitForChange(std::chrono::milliseconds /*timeout*/) { return false; }
  // Claims the expiry notification of `entry_id` at `level` due on UTC day `day` for
  // this process, so that exactly one process hands it to its host (a WARNING and, the
  // same day, the escalation to URGENT are two notifications). True when this process
  // holds the claim (it made it now or earlier). A storage no other process writes
  // always holds it.
  virtual Result<bool> ClaimNotification(std::string_view /*entry_id*/, int64_t /*day*/,
                                         NotificationLevel /*level*/) {
    return true;
  }
};

// The writes of one atomic change: all of them, or (destroyed before Commit, or Commit
// failed) none. Writes replace what is stored for the entry; they never merge.
class Storage::Transaction {
 public:
  virtual ~Transaction() = default;

  // The entry's own fields (not its bindings, facts or material), inserted or replaced,
  // as saved at `save_sequence` (greater than every earlier save). DUPLICATE_NAME when
  // another entry has the name, compared case-insensitively.
  virtual Status PutEntry(const EntryMetadata& e, int64_t save_sequence) = 0;
  // Replaces the entry's bindings with e.bindings (in order).
  virtual Status PutBindings(const EntryMetadata& e) = 0;
  // Replaces the entry's material: the certificate facts of e.certificate and e.trusted,
  // and `material` (DER, sealed key, CSR) for material.version.
  virtual Status PutMaterial(const EntryMetadata& e, const StoredMaterial& material) = 0;
  // Removes the entry with its bindings, facts and material. Its audit events stay.
  virtual Status DeleteEntry(std::string_view entry_id) = 0;

  // Uses RecordUse counted, written back in batches: adds `added_uses` to the entry's
  // use_count and raises its last_used_at to `last_used_at` (never lowers it), so that
  // processes sharing the storage add up. Not a save.
  virtual Status PutUsage(std::string_view entry_id, uint64_t added_uses,
                          UnixSeconds last_used_at) = 0;
  // When the entry's expiry notification was last sent. Not a save.
  virtual Status PutLastNotified(std::string_view entry_id, UnixSeconds at) = 0;

  // Appends to the audit log; the storage assigns the event's sequence. `event`'s text
  // need only live until the call returns.
  virtual Status AppendAudit(const AuditEvent& event) = 0;

  virtual Status PutMasterKeyRecord(const MasterKeyRecord& record) = 0;
  // Re-seals every stored private key: `reseal(entry_id, sealed)` returns the blob to
  // store instead, sealed under `new_key_id`. Returns how many keys were re-sealed. The
  // first error from `reseal` stops it and is returned.
  using Resealer =
      std::function<Result<std::string>(const std::string& entry_id, std::string_view sealed)>;
  virtual Result<size_t> ResealKeys(std::string_view new_key_id, const Resealer& reseal) = 0;

  // Inserts the proxy credential, or replaces the one of the same name (compared
  // case-insensitively; the stored name keeps its first spelling).
  virtual Status PutSecret(const StoredSecret& secret) = 0;
  // Removes the proxy credential named `name` (case-insensitively); nothing if none.
  virtual Status DeleteSecret(std::string_view name) = 0;
  // Re-seals every stored proxy credential as ResealKeys does keys; `reseal` is given
  // the credential's name. Returns how many.
  virtual Result<size_t> ResealSecrets(std::string_view new_key_id, const Resealer& reseal) = 0;

  // Makes every write of this transaction durable (it survives a crash and power loss).
  virtual Status Commit() = 0;
  // Shared storages, after Commit: the change cursor this transaction's entry changes
  // were given (0 when it changed no entry). Nothing committed between the caller's last
  // ReadChanges and this transaction, so the caller may continue from here.
  virtual int64_t committed_cursor() const { return 0; }
};

// Opens the storage of the store in request.data_dir. StoreOptions::storage; the SQLite
// backend's is OpenSqliteStorage (core/store/sqlite_storage.h).
using StorageFactory =
    std::function<Result<std::unique_ptr<Storage>>(const StorageOpenRequest& request)>;

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_STORE_STORAGE_H_

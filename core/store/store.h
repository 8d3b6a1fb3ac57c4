// The certificate store (PRODUCT.md §1): the one C++ API that rest/ and plugin/ use to
// import, read, change and delete certificates, to resolve the credentials of a call, to
// read the audit log and to drive expiry notifications.
//
//   StoreOptions options;
//   options.data_dir = "/var/lib/wsstep";          // created 0700 if missing
//   WSSTEP_ASSIGN_OR_RETURN(auto store, CertificateStore::Open(std::move(options)));
//
//   CreateRequest req;
//   req.name = "bank-client";
//   req.type = EntryType::kPkcs12;
//   req.material.content = SecretBytes(p12_bytes);
//   req.material.content_name = "client.p12";
//   req.material.password = SecretBytes(password);
//   req.bindings = {{"api.bank.example", 443, "production"}};
//   std::vector<Error> warnings;                    // CHAIN_INCOMPLETE lands here
//   WSSTEP_ASSIGN_OR_RETURN(EntryMetadata e, store->Create(std::move(req), {"alice"}, &warnings));
//
//   // At call time (hot path: no SQL, no decryption, no parsing after the first call):
//   ResolveRequest request;
//   request.host = "api.bank.example";
//   request.environment = "production";
//   WSSTEP_ASSIGN_OR_RETURN(ResolvedCall call, store->ResolveForCall(request));
//   ... hand call.credentials to the transfer engine ...
//   store->RecordUse(call.chosen_id(), request, {"engine", step_id, workflow_id}, "OK");
//
// Storage: by default one SQLite file `store.db` in the data directory (WAL,
// synchronous=FULL, schema migrations), behind the seam of core/store/storage.h
// (StoreOptions::storage). A shared storage (PostgreSQL, core/store/pg_storage.h) serves
// several plugins at once: each keeps its own snapshot, catches up with the others'
// changes before each change of its own, and follows them from a thread of its own
// (within a second: the database notifies every commit). Metadata and certificates are stored in
// clear; each private key is stored only as its unencrypted PKCS#8, sealed with AES-256-GCM under
// the master key (core/vault.h) and bound to its row. Passwords and uploaded files are never
// stored.
//
// Consistency: every change is one storage transaction; when it has committed, a new
// immutable Snapshot of all metadata is published atomically. Readers (Get, List,
// ResolveForCall, ...) never wait for writers and never see a half-applied change; a call
// that resolved against the previous snapshot keeps its Identity alive until it finishes,
// so rotating a certificate never disturbs calls in flight. Changes are serialized.
//
// Master key (first that is set wins): StoreOptions::master_key (e.g. decoded from the
// WSSTEP_MASTER_KEY environment variable by the caller), StoreOptions::master_key_file,
// else `<data_dir>/master.key`. A key file that does not exist is created (0600) only for
// a new store; an existing store opened without its key fails with MASTER_KEY_ERROR and is
// left untouched, as is a store opened with another key ("the master key (id X) does
// not match the key this store was written with (id Y)").
//
// Thread safety: every method may be called from any thread, concurrently.
//
// The implementation lives in core/store/: store.cc orchestrates the pieces named there
// (storage, snapshot publishing, use recording, the change feed, validation).
#ifndef WSSTEP_CORE_STORE_STORE_H_
#define WSSTEP_CORE_STORE_STORE_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/csr.h"
#include "core/error.h"
#include "core/identity.h"
#include "core/model.h"
#include "core/notifications.h"
#include "core/resolver.h"
#include "core/secret.h"
#include "core/store/audit.h"
#include "core/store/proxy_credentials.h"
#include "core/store/storage.h"
#include "core/vault.h"

namespace wsstep::core {

struct StoreOptions {
  // Directory holding store.db (and master.key by default). Created 0700 when missing.
  std::string data_dir;
  // Master key given directly; wins over any key file. The store never writes it anywhere.
  std::optional<MasterKey> master_key;
  // Master key file; empty means <data_dir>/master.key.
  std::string master_key_file;
  // Open without writing: every change fails with STORAGE_ERROR, reads and resolution
  // work. Chosen automatically when the data directory or the database file is not
  // writable.
  bool read_only = false;
  // The store's notion of "now": statuses, expiry checks, notifications, timestamps.
  Clock clock = SystemClock();
  // Use records (RecordUse) are written in batches at most this far apart.
  std::chrono::milliseconds use_flush_interval{500};
  // Where entries, the audit log and the store's state are kept (core/store/storage.h).
  // Empty: SQLite, store.db in data_dir (OpenSqliteStorage, core/store/sqlite_storage.h).
  StorageFactory storage;
  // Shared storages (PostgreSQL): told each time the database becomes unreachable (the
  // STORAGE_UNAVAILABLE error) or reachable again (OK), from the store's own thread.
  std::function<void(const Status&)> on_storage_state;
};

// An uploaded file (or pair of files) and what is needed to read it. Only the parsed,
// normalized result is kept: the upload and its passwords are dropped (and zeroized).
struct MaterialUpload {
  SourceFormat declared_format = SourceFormat::kAuto;  // kAuto: detect from the content
  SecretBytes content;                       // the main file: certificate(s), PKCS#12, JKS, ...
  std::optional<SecretBytes> key;            // KEY_PAIR: the private key as a separate file
  std::string content_name = "certificate";  // file names, used in error messages
  std::string key_name = "private key";
  std::optional<SecretBytes> password;      // nullopt: none given; empty: the empty password
  std::optional<SecretBytes> key_password;  // JKS/JCEKS key password when it differs
  std::string alias;                        // key entry to take when there are several
};

struct CreateRequest {
  std::string name;  // required, unique (case-insensitive), at most 200 characters
  std::string description;
  EntryType type = EntryType::kKeyPair;
  MaterialUpload material;
  std::vector<Binding> bindings;    // hosts are normalized; empty: usable only when named
  bool private_trust_only = false;  // trust stores: the system CAs do not count
  NotificationSettings notifications;
  // Stored disabled, in the same transaction: the entry is never a candidate, not even
  // for a moment after it is created.
  bool disabled = false;
};

// Only the fields that are set change. Changing `material` bumps the entry's version (the
// new certificate/key is used by calls that start after the update returns).
struct UpdateRequest {
  std::optional<std::string> name;
  std::optional<std::string> description;
  std::optional<std::vector<Binding>> bindings;
  std::optional<NotificationSettings> notifications;
  std::optional<bool> private_trust_only;
  std::optional<bool> disabled;
  std::optional<bool> revoked;
  std::optional<MaterialUpload> material;  // parsed as the entry's type
};

struct ListFilter {
  // Entries with a binding that would serve this host (exact or wildcard), or whose
  // binding pattern equals it; empty: any.
  std::string host;
  std::optional<uint16_t> port;      // with or without host: a binding on this port
  std::string environment;           // a binding in this environment; empty: any
  std::optional<CertStatus> status;  // StatusAt(entry, store's now)
  std::optional<EntryType> type;
  std::string name_contains;  // case-insensitive substring of the name
  size_t page_size = 100;     // 0 means 100; at most 1000
  std::string page_token;     // from the previous page
};

struct ListPage {
  std::vector<EntryMetadata> entries;  // ordered by name, case-insensitive
  std::string next_page_token;         // empty: no more
  size_t total_size = 0;               // entries matching the filter, all pages
};

// A resolution with what the call needs. `resolution`'s pointers point into `snapshot`,
// which this object keeps alive.
struct ResolvedCall {
  std::shared_ptr<const Snapshot> snapshot;
  Resolution resolution;
  CallCredentials credentials;  // filled by ResolveForCall; empty from Explain

  // The chosen entry's id, or "" when no client certificate is presented.
  std::string_view chosen_id() const {
    return resolution.identity != nullptr ? std::string_view(resolution.identity->id)
                                          : std::string_view();
  }
};

struct KeyGenerationRequest {
  std::string name;  // of the pending KEY_PAIR entry
  std::string description;
  std::vector<Binding> bindings;
  NotificationSettings notifications;
  CsrRequest csr;  // key algorithm and subject fields (core/csr.h)
};

// The public side of an entry, as stored (DER): what `cert export` hands to partners.
// Never holds a private key.
struct PublicMaterial {
  std::string leaf_der;                  // empty: the entry has no leaf
  std::vector<std::string> chain_der;    // the leaf's chain, in the order it is sent
  std::vector<std::string> trusted_der;  // trust-store / JKS trusted / provisioning certs
};

struct GeneratedKey {
  EntryMetadata entry;  // pending_certificate = true; status PENDING_CERTIFICATE
  std::string csr_pem;  // hand this to the CA; the private key never leaves the store
};

// A change to the set of entries, for the plugin's WatchEvents stream.
enum class ChangeKind {
  kCreated,
  kUpdated,  // metadata, bindings, flags, material, attached certificate
  kDeleted,
  kResync,  // the watcher fell too far behind: events were dropped; list again
};
std::string_view ChangeKindName(ChangeKind k);  // "CREATED", ...

struct ChangeEvent {
  uint64_t sequence = 0;  // increasing, without gaps
  ChangeKind kind = ChangeKind::kCreated;
  std::string entry_id;
  std::string entry_name;
  UnixSeconds at = 0;
  // Who made it (the AuditContext's actor); empty for a change another plugin sharing
  // the storage made (its audit log names them).
  std::string actor;
};

class CertificateStore {
 public:
  // Opens or creates the store in options.data_dir: runs schema migrations, loads the
  // master key (see the file comment), checks it against the store, completes an
  // interrupted key rotation, and loads every entry's metadata into the first snapshot
  // without decrypting or parsing any key. With 100,000 entries this takes 0.3-0.6 s on a
  // two-core machine (more while the file is not in the page cache; scripts/bench.sh
  // --only store measures it) and about 115 MiB; it changes no allocator setting of the
  // process.
  // Errors: STORAGE_ERROR (directory, file, SQLite), MASTER_KEY_ERROR.
  static Result<std::unique_ptr<CertificateStore>> Open(StoreOptions options);

  // Writes pending use records, then closes. Calls must have finished.
  ~CertificateStore();
  CertificateStore(const CertificateStore&) = delete;
  CertificateStore& operator=(const CertificateStore&) = delete;

  // ---- Entries ----

  // Parses and validates the upload, then stores it. Errors: INVALID_ARGUMENT (name,
  // bindings: the message names the field), DUPLICATE_NAME, every import code of
  // core/material.h (each also written to the audit log as IMPORT_FAILURE, without any
  // secret), STORAGE_ERROR. Warnings (CHAIN_INCOMPLETE) are appended to `warnings` when
  // it is not null; the check counts the certificates of trust stores bound at any of the
  // request's bindings.
  Result<EntryMetadata> Create(CreateRequest request, const AuditContext& ctx,
                               std::vector<Error>* warnings);
  // Creates all or none, in one transaction and one snapshot: bulk imports and tests.
  Result<std::vector<EntryMetadata>> CreateMany(std::vector<CreateRequest> requests,
                                                const AuditContext& ctx,
                                                std::vector<Error>* warnings);

  // By name (case-insensitive), else by id: the order the resolver uses for a certificate
  // a step names. Every `id_or_name` parameter below works the same way. NOT_FOUND naming
  // what was asked for.
  Result<EntryMetadata> Get(std::string_view id_or_name) const;
  Result<ListPage> List(const ListFilter& filter) const;

  // Errors as Create, plus NOT_FOUND. Disabling, revoking and binding changes take effect
  // for calls that start after the update returns.
  Result<EntryMetadata> Update(std::string_view id_or_name, UpdateRequest request,
                               const AuditContext& ctx, std::vector<Error>* warnings);
  // Irreversible; audited with the entry's name.
  Status Delete(std::string_view id_or_name, const AuditContext& ctx);

  // ---- Resolution ----

  // The decision for (host, port, environment[, named certificate]) with the reason
  // for every rejected candidate, without loading any key: the ResolveCertificate API.
  // Errors as core::Resolve (CERTIFICATE_NOT_FOUND / _EXPIRED / _NOT_YET_VALID, with
  // detail "explanation"). request.now == 0 means the store's now.
  Result<ResolvedCall> Explain(const ResolveRequest& request, bool require_identity = true) const;

  // The hot path: resolves against the current snapshot and returns the credentials.
  // The Identity of an entry version (decrypt + parse) and the TrustAnchors of a set of
  // trust entries are built on first use and cached; later calls do no SQL, no
  // decryption and no parsing. Errors as Explain, plus STORAGE_ERROR / MASTER_KEY_ERROR
  // if the sealed key cannot be read.
  Result<ResolvedCall> ResolveForCall(const ResolveRequest& request,
                                      bool require_identity = true) const;

  // Records that a step used the store for a call: bumps the entry's use_count and
  // last_used_at (visible at once through Get/List) and appends a USE audit event with
  // the request's host/port/environment, ctx's ids and `outcome` ("OK" or a catalog code
  // name). `entry_id` may be empty (a call that presented no client certificate). Cheap:
  // no I/O on the caller's thread; records are written in batches within
  // StoreOptions::use_flush_interval, by Flush(), and at close. A crash may lose the last
  // batch of use records (never an acknowledged change). A read-only store keeps none.
  void RecordUse(std::string_view entry_id, const ResolveRequest& request, const AuditContext& ctx,
                 std::string_view outcome) const;
  // Writes pending use records now.
  Status Flush() const;

  // ---- Audit ----

  Result<AuditPage> ListAudit(const AuditFilter& filter) const;

  // ---- Expiry notifications ----

  // Notifications due at the store's now (core/notifications.h rules: enabled entries
  // within their warning days, at most once per frequency since last_notified_at).
  std::vector<DueNotification> DueNotifications() const;
  // The host sent the notification for `id` at `sent_at`: remembered across restarts so
  // it is not due again before the frequency allows. NOT_FOUND, STORAGE_ERROR.
  // Audited as ACKNOWLEDGE.
  Status AcknowledgeNotification(std::string_view id, UnixSeconds sent_at,
                                 const AuditContext& ctx = AuditContext("plugin"));
  // Whether this plugin hands `due` to its host today: with a store shared by several
  // plugins exactly one of them does (the first to claim it in the database); alone, it
  // always does. STORAGE_UNAVAILABLE while the database cannot be reached (ask again).
  Result<bool> ClaimNotification(const DueNotification& due) const;
  // The host was handed these due notifications (WatchEvents, ListPendingNotifications):
  // audited as NOTIFY, once per entry and UTC day while the store is open. Best effort:
  // a failed audit write does not fail the hand-over.
  void RecordNotificationsHanded(const std::vector<DueNotification>& handed,
                                 const AuditContext& ctx) const;

  // ---- Key generation inside the store ----

  // Generates a private key and a CSR, and stores the key sealed in a new pending
  // KEY_PAIR entry (status PENDING_CERTIFICATE, never a resolution candidate). Only the
  // CSR is returned. Errors: INVALID_ARGUMENT, DUPLICATE_NAME, core/csr.h errors,
  // STORAGE_ERROR.
  Result<GeneratedKey> GenerateKeyAndCsr(KeyGenerationRequest request, const AuditContext& ctx);
  // The CSR of an entry created by GenerateKeyAndCsr. NOT_FOUND if it has none.
  Result<std::string> GetCsr(std::string_view id_or_name) const;
  // The entry's certificates (leaf, chain, trusted), never its key. NOT_FOUND.
  Result<PublicMaterial> ExportPublic(std::string_view id_or_name) const;
  // Attaches the issued certificate (PEM or DER, optionally followed by its chain) to a
  // KEY_PAIR entry; it must match the entry's key (KEY_CERT_MISMATCH otherwise). Works for
  // a pending entry and for renewing the certificate of an existing key. Clears
  // pending_certificate and bumps the version. Errors as Create, plus NOT_FOUND and
  // FAILED_PRECONDITION (not a KEY_PAIR entry with a key).
  Result<EntryMetadata> AttachCertificate(std::string_view id_or_name, SecretBytes certificate,
                                          std::string_view content_name, const AuditContext& ctx,
                                          std::vector<Error>* warnings);

  // ---- Proxy credentials ----

  // Creates the named proxy credential, or replaces its user and password; `created`
  // (when not null) says which. The password is sealed under the master key (bound to
  // the name) and kept nowhere else. Audited as SET_PROXY_CREDENTIAL without the password.
  // Errors: INVALID_ARGUMENT naming name / username / password
  // (core/store/proxy_credentials.h), STORAGE_ERROR.
  Result<ProxyCredentialInfo> SetProxyCredential(std::string_view name, std::string_view username,
                                                 const SecretBytes& password,
                                                 const AuditContext& ctx, bool* created);
  // Every proxy credential, ordered by name; never a password.
  std::vector<ProxyCredentialInfo> ListProxyCredentials() const;
  // Audited as DELETE_PROXY_CREDENTIAL. NOT_FOUND, STORAGE_ERROR.
  Status DeleteProxyCredential(std::string_view name, const AuditContext& ctx);
  // The hot path of a step that names a credential: no I/O, no decryption (the passwords
  // were opened when the store loaded or changed them; with a shared storage, another
  // plugin's change is followed like an entry's). NOT_FOUND naming `name`.
  Result<ProxyLogin> ProxyCredential(std::string_view name) const;

  // ---- Master key ----

  // Re-encrypts every sealed value (private keys, proxy passwords) under `new_key`. Crash-safe
  // order:
  //   1. with a key file: `new_key` is written to "<key file>.new" (0600, atomic);
  //   2. one transaction re-seals every secret and records the new key id;
  //   3. with a key file: "<key file>.new" is renamed over "<key file>".
  // Open() finishes an interrupted rotation: if "<key file>.new" exists it uses whichever
  // of the two files matches the store's recorded key id and completes (or discards) the
  // rename. With StoreOptions::master_key (no file), only step 2 runs: persist the new
  // key before calling, and supply it from the next start on. Calls are not interrupted.
  Status RotateMasterKey(MasterKey new_key, const AuditContext& ctx);
  std::string master_key_id() const;
  // The master key file in use; empty when the key was given directly
  // (StoreOptions::master_key), when rotation needs the new key from the caller.
  const std::string& master_key_file() const;

  // ---- Snapshots and changes ----

  // The current snapshot (atomic load). Note: its use_count/last_used_at are those of the
  // last change or start; Get/List show live values.
  std::shared_ptr<const Snapshot> snapshot() const;

  // Events with sequence > after_sequence, waiting up to `timeout` for the first one
  // (returns empty on timeout). The store keeps the latest 4096 events; a watcher behind
  // that gets one kResync event first. Start a stream with LatestChangeSequence().
  std::vector<ChangeEvent> WaitForChanges(uint64_t after_sequence,
                                          std::chrono::milliseconds timeout) const;
  uint64_t LatestChangeSequence() const;

  // ---- Facts ----

  UnixSeconds Now() const;  // the store's clock
  bool read_only() const;
  const std::string& data_dir() const;
  size_t size() const;  // entries in the current snapshot

 private:
  struct Impl;
  explicit CertificateStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_STORE_STORE_H_

#include "core/store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "core/db.h"
#include "core/enum_names.h"
#include "core/material.h"
#include "core/ossl.h"
#include "core/store/bulk_load.h"
#include "core/store/codec.h"
#include "core/store/validation.h"

namespace wsstep::core {
namespace {

// ---------------------------------------------------------------------------------------
// Schema. Metadata is in clear so startup reads it without the master key; the DER of
// every certificate lives apart (table `material`) so that startup does not read it;
// the private key is only ever stored sealed (material.sealed_key).

constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value BLOB NOT NULL
);
CREATE TABLE entries (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  name_key TEXT NOT NULL UNIQUE,          -- ASCII lower case: names are case-insensitive
  description TEXT NOT NULL,
  type TEXT NOT NULL,
  source_format TEXT NOT NULL,
  key_alias TEXT NOT NULL,
  has_private_key INTEGER NOT NULL,
  has_password INTEGER NOT NULL,
  private_trust_only INTEGER NOT NULL,
  disabled INTEGER NOT NULL,
  revoked INTEGER NOT NULL,
  pending_certificate INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  last_used_at INTEGER NOT NULL DEFAULT 0,
  use_count INTEGER NOT NULL DEFAULT 0,
  version INTEGER NOT NULL,
  save_seq INTEGER NOT NULL,              -- order of saves: resolution tie-break
  notify_enabled INTEGER NOT NULL,
  notify_warning_days INTEGER NOT NULL,
  notify_frequency TEXT NOT NULL,
  notify_alert_ref TEXT NOT NULL,
  last_notified_at INTEGER NOT NULL,
  chain_subjects BLOB NOT NULL,           -- length-prefixed list
  attributes BLOB NOT NULL                -- length-prefixed key, value, key, value...
);
CREATE INDEX entries_by_save_seq ON entries(save_seq);
CREATE TABLE bindings (
  entry_id TEXT NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
  ordinal INTEGER NOT NULL,
  host TEXT NOT NULL,
  port INTEGER NOT NULL,
  environment TEXT NOT NULL,
  PRIMARY KEY (entry_id, ordinal)
) WITHOUT ROWID;
CREATE INDEX bindings_by_target ON bindings(host, port, environment);
CREATE TABLE certificates (             -- facts of the leaf and trusted certificates
  entry_id TEXT NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
  role TEXT NOT NULL CHECK (role IN ('leaf', 'trusted')),
  ordinal INTEGER NOT NULL,
  subject TEXT NOT NULL,
  issuer TEXT NOT NULL,
  serial TEXT NOT NULL,
  not_before INTEGER NOT NULL,
  not_after INTEGER NOT NULL,
  sans BLOB NOT NULL,
  key_algorithm TEXT NOT NULL,
  key_bits INTEGER NOT NULL,
  curve TEXT NOT NULL,
  sha256_fingerprint TEXT NOT NULL,
  is_ca INTEGER NOT NULL,
  PRIMARY KEY (entry_id, role, ordinal)
) WITHOUT ROWID;
CREATE TABLE material (                 -- read on an entry version's first use only
  entry_id TEXT PRIMARY KEY REFERENCES entries(id) ON DELETE CASCADE,
  version INTEGER NOT NULL,
  leaf_der BLOB NOT NULL,                 -- empty: none
  chain_der BLOB NOT NULL,                -- length-prefixed list
  trusted_der BLOB NOT NULL,              -- length-prefixed list
  sealed_key BLOB,                        -- vault blob of the PKCS#8 DER; NULL: no key
  key_id TEXT,                            -- master key id of sealed_key
  csr_pem TEXT                            -- GenerateKeyAndCsr entries until attached
);
CREATE TABLE audit (
  sequence INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  action TEXT NOT NULL,
  actor TEXT NOT NULL,
  entry_id TEXT NOT NULL,
  entry_name TEXT NOT NULL,
  host TEXT NOT NULL,
  port INTEGER NOT NULL,
  environment TEXT NOT NULL,
  step_id TEXT NOT NULL,
  workflow_id TEXT NOT NULL,
  outcome TEXT NOT NULL,
  code TEXT NOT NULL,
  detail TEXT NOT NULL
);
CREATE INDEX audit_by_entry ON audit(entry_id, sequence);
CREATE INDEX audit_by_time ON audit(at);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
)sql"},
};

constexpr std::string_view kDbFileName = "store.db";
constexpr std::string_view kKeyFileName = "master.key";
constexpr std::string_view kKeyCheckPlain = "wsstep master key check";
constexpr std::string_view kKeyCheckAad = "meta/key_check";
constexpr size_t kMaxPendingUses = 100'000;
constexpr size_t kUseBatchWakeup = 1024;
constexpr size_t kMaxChangeEvents = 4096;
constexpr int kResolveAttempts = 4;

std::string SealedKeyAad(std::string_view entry_id) {
  return "entry/" + std::string(entry_id) + "/key";
}

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// Replaces the fields DescribeMaterial owns with those of new material (`facts`), as a
// new version of the entry.
void ApplyMaterialFacts(EntryMetadata& e, EntryMetadata&& facts, uint64_t version) {
  e.certificate = std::move(facts.certificate);
  e.chain_subjects = std::move(facts.chain_subjects);
  e.trusted = std::move(facts.trusted);
  e.key_alias = std::move(facts.key_alias);
  e.attributes = std::move(facts.attributes);
  e.has_private_key = facts.has_private_key;
  e.has_password = facts.has_password;
  e.source_format = facts.source_format;
  e.pending_certificate = false;
  e.version = version;
}

// ---------------------------------------------------------------------------------------
// Lazily built TLS material of one entry version, shared by every snapshot in which the
// entry has that version (and name). Built once: later calls read it without a lock.

struct MaterialSlot {
  MaterialSlot(std::string id_, std::string name_, uint64_t version_)
      : id(std::move(id_)), name(std::move(name_)), version(version_) {}
  const std::string id;
  const std::string name;
  const uint64_t version;

  std::mutex mu;  // held while building
  std::atomic<bool> ready{false};
  // Written once before `ready` turns true; read-only after.
  std::shared_ptr<const Identity> identity;
  std::shared_ptr<const TrustAnchors> trust;

  std::string TrustKey() const { return id + "@" + std::to_string(version); }
};

// The certificate DERs and sealed key of an entry version, as stored.
struct StoredMaterial {
  std::string leaf_der;
  std::vector<std::string> chain_der;
  std::vector<std::string> trusted_der;
  std::optional<std::string> sealed_key;
  std::optional<std::string> csr_pem;
};

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

// One published state: the resolver's snapshot and, aligned with its entries, the slots
// of the entries used so far (null until an entry's first use in this snapshot).
struct Published {
  std::shared_ptr<const Snapshot> snapshot;
  std::unique_ptr<std::atomic<MaterialSlot*>[]> slots;
  mutable std::mutex mu;  // guards `owned`, slot creation and `trust_sets`
  mutable std::vector<std::shared_ptr<MaterialSlot>> owned;  // keeps `slots` alive
  // Trust anchors of several trust entries together, by "id@v;id@v;...".
  mutable std::unordered_map<std::string, std::shared_ptr<const TrustAnchors>> trust_sets;

  // Index of `e` in the snapshot's entries, or -1 if it is not one of them.
  ptrdiff_t IndexOf(const EntryMetadata* e) const {
    const auto& entries = snapshot->entries();
    if (entries.empty() || e < entries.data() || e >= entries.data() + entries.size()) return -1;
    return e - entries.data();
  }
};

struct Usage {
  UnixSeconds last_used_at = 0;
  uint64_t use_count = 0;
};

// What a Create/Update/Attach parsed, before it is committed.
struct Prepared {
  EntryMetadata facts;  // only the fields DescribeMaterial fills
  ParsedMaterial parsed;
  StoredMaterial stored;
};

// ---------------------------------------------------------------------------------------
// Rows <-> metadata.

constexpr std::string_view kUpsertEntry = R"sql(
INSERT INTO entries (id, name, name_key, description, type, source_format, key_alias,
  has_private_key, has_password, private_trust_only, disabled, revoked, pending_certificate,
  created_at, updated_at, version, save_seq, notify_enabled, notify_warning_days,
  notify_frequency, notify_alert_ref, last_notified_at, chain_subjects, attributes)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
  ?20, ?21, ?22, ?23, ?24)
ON CONFLICT(id) DO UPDATE SET name=excluded.name, name_key=excluded.name_key,
  description=excluded.description, source_format=excluded.source_format,
  key_alias=excluded.key_alias, has_private_key=excluded.has_private_key,
  has_password=excluded.has_password, private_trust_only=excluded.private_trust_only,
  disabled=excluded.disabled, revoked=excluded.revoked,
  pending_certificate=excluded.pending_certificate, updated_at=excluded.updated_at,
  version=excluded.version, save_seq=excluded.save_seq, notify_enabled=excluded.notify_enabled,
  notify_warning_days=excluded.notify_warning_days, notify_frequency=excluded.notify_frequency,
  notify_alert_ref=excluded.notify_alert_ref, last_notified_at=excluded.last_notified_at,
  chain_subjects=excluded.chain_subjects, attributes=excluded.attributes
)sql";

Status WriteEntryRow(Database& db, const EntryMetadata& e, int64_t save_seq) {
  WSSTEP_ASSIGN_OR_RETURN(auto st, db.Prepare(kUpsertEntry));
  st.Bind(1, e.id)
      .Bind(2, e.name)
      .Bind(3, AsciiLower(e.name))
      .Bind(4, e.description)
      .Bind(5, EntryTypeName(e.type))
      .Bind(6, SourceFormatName(e.source_format))
      .Bind(7, e.key_alias)
      .Bind(8, int64_t{e.has_private_key})
      .Bind(9, int64_t{e.has_password})
      .Bind(10, int64_t{e.private_trust_only})
      .Bind(11, int64_t{e.disabled})
      .Bind(12, int64_t{e.revoked})
      .Bind(13, int64_t{e.pending_certificate})
      .Bind(14, e.created_at)
      .Bind(15, e.updated_at)
      .Bind(16, static_cast<int64_t>(e.version))
      .Bind(17, save_seq)
      .Bind(18, int64_t{e.notifications.enabled})
      .Bind(19, int64_t{e.notifications.warning_days})
      .Bind(20, NotificationFrequencyName(e.notifications.frequency))
      .Bind(21, e.notifications.alert_ref)
      .Bind(22, e.last_notified_at)
      .BindBlob(23, EncodeList(e.chain_subjects))
      .BindBlob(24, EncodeMap(e.attributes));
  Status s = st.Run();
  if (!s.ok() && s.error().message.find("entries.name_key") != std::string::npos) {
    return DuplicateName(e.name, e.name);
  }
  return s;
}

Status WriteBindings(Database& db, const EntryMetadata& e) {
  WSSTEP_ASSIGN_OR_RETURN(auto del, db.Prepare("DELETE FROM bindings WHERE entry_id=?"));
  del.Bind(1, e.id);
  WSSTEP_RETURN_IF_ERROR(del.Run());
  WSSTEP_ASSIGN_OR_RETURN(
      auto ins, db.Prepare("INSERT INTO bindings (entry_id, ordinal, host, port, environment) "
                           "VALUES (?, ?, ?, ?, ?)"));
  for (size_t i = 0; i < e.bindings.size(); ++i) {
    const Binding& b = e.bindings[i];
    ins.Bind(1, e.id)
        .Bind(2, static_cast<int64_t>(i))
        .Bind(3, b.host)
        .Bind(4, int64_t{b.port})
        .Bind(5, b.environment);
    WSSTEP_RETURN_IF_ERROR(ins.Run());
  }
  return {};
}

Status InsertCertificateInfo(Statement& ins, std::string_view id, std::string_view role,
                             size_t ordinal, const CertificateInfo& c) {
  ins.Bind(1, id)
      .Bind(2, role)
      .Bind(3, static_cast<int64_t>(ordinal))
      .Bind(4, c.subject)
      .Bind(5, c.issuer)
      .Bind(6, c.serial)
      .Bind(7, c.not_before)
      .Bind(8, c.not_after)
      .BindBlob(9, EncodeList(c.sans))
      .Bind(10, c.key_algorithm)
      .Bind(11, int64_t{c.key_bits})
      .Bind(12, c.curve)
      .Bind(13, c.sha256_fingerprint)
      .Bind(14, int64_t{c.is_ca});
  return ins.Run();
}

Status WriteCertificateInfos(Database& db, const EntryMetadata& e) {
  WSSTEP_ASSIGN_OR_RETURN(auto del, db.Prepare("DELETE FROM certificates WHERE entry_id=?"));
  del.Bind(1, e.id);
  WSSTEP_RETURN_IF_ERROR(del.Run());
  WSSTEP_ASSIGN_OR_RETURN(
      auto ins,
      db.Prepare("INSERT INTO certificates (entry_id, role, ordinal, subject, issuer, serial, "
                 "not_before, not_after, sans, key_algorithm, key_bits, curve, "
                 "sha256_fingerprint, is_ca) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
  if (e.certificate)
    WSSTEP_RETURN_IF_ERROR(InsertCertificateInfo(ins, e.id, "leaf", 0, *e.certificate));
  for (size_t i = 0; i < e.trusted.size(); ++i) {
    WSSTEP_RETURN_IF_ERROR(InsertCertificateInfo(ins, e.id, "trusted", i, e.trusted[i]));
  }
  return {};
}

Status WriteMaterial(Database& db, std::string_view id, uint64_t version, const StoredMaterial& m,
                     std::string_view key_id) {
  WSSTEP_ASSIGN_OR_RETURN(
      auto st, db.Prepare("INSERT OR REPLACE INTO material (entry_id, version, leaf_der, "
                          "chain_der, trusted_der, sealed_key, key_id, csr_pem) "
                          "VALUES (?,?,?,?,?,?,?,?)"));
  st.Bind(1, id)
      .Bind(2, static_cast<int64_t>(version))
      .BindBlob(3, m.leaf_der)
      .BindBlob(4, EncodeList(m.chain_der))
      .BindBlob(5, EncodeList(m.trusted_der));
  if (m.sealed_key) {
    st.BindBlob(6, *m.sealed_key).Bind(7, key_id);
  } else {
    st.BindNull(6).BindNull(7);
  }
  if (m.csr_pem) {
    st.Bind(8, *m.csr_pem);
  } else {
    st.BindNull(8);
  }
  return st.Run();
}

constexpr std::string_view kInsertAudit =
    "INSERT INTO audit (at, action, actor, entry_id, entry_name, host, port, environment, "
    "step_id, workflow_id, outcome, code, detail) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)";

// `ev` outlives the Run below, and every call binds all 13 parameters before it runs:
// the texts need no copy (a use record is written per step).
Status AppendAudit(Statement& st, const AuditEvent& ev) {
  st.Bind(1, ev.at)
      .BindUncopied(2, AuditActionName(ev.action))
      .BindUncopied(3, ev.actor)
      .BindUncopied(4, ev.entry_id)
      .BindUncopied(5, ev.entry_name)
      .BindUncopied(6, ev.host)
      .Bind(7, int64_t{ev.port})
      .BindUncopied(8, ev.environment)
      .BindUncopied(9, ev.step_id)
      .BindUncopied(10, ev.workflow_id)
      .BindUncopied(11, ev.outcome)
      .BindUncopied(12, ev.code)
      .BindUncopied(13, ev.detail);
  return st.Run();
}

Status AppendAudit(Database& db, const AuditEvent& ev) {
  WSSTEP_ASSIGN_OR_RETURN(auto st, db.Prepare(kInsertAudit));
  return AppendAudit(st, ev);
}

CertificateInfo ReadCertificateInfo(const Statement& st, int first) {
  CertificateInfo c;
  c.subject = st.ColumnText(first);
  c.issuer = st.ColumnText(first + 1);
  c.serial = st.ColumnText(first + 2);
  c.not_before = st.ColumnInt64(first + 3);
  c.not_after = st.ColumnInt64(first + 4);
  c.sans = DecodeList(st.ColumnBlobView(first + 5));
  c.key_algorithm = st.ColumnText(first + 6);
  c.key_bits = static_cast<int>(st.ColumnInt64(first + 7));
  c.curve = st.ColumnText(first + 8);
  c.sha256_fingerprint = st.ColumnText(first + 9);
  c.is_ca = st.ColumnInt64(first + 10) != 0;
  return c;
}

// Calls `attach(entry, statement)` for each row of `st` (whose column 0 is an entry id,
// rows in id order as a primary key returns them) with the entry of that id. A merge
// join against `by_id` (entry indexes sorted by id): no per-row lookups or allocations.
template <typename Attach>
Status JoinById(Statement& st, std::vector<EntryMetadata>& entries,
                const std::vector<uint32_t>& by_id, Attach attach) {
  size_t pos = 0;
  for (;;) {
    WSSTEP_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return {};
    std::string_view id = st.ColumnBlobView(0);
    while (pos < by_id.size() && std::string_view(entries[by_id[pos]].id) < id) ++pos;
    if (pos < by_id.size() && entries[by_id[pos]].id == id) attach(entries[by_id[pos]], st);
  }
}

// Every entry's metadata, in save order, without touching key material. Startup cost is
// dominated by memory for 100,000s of entries, so this allocates nothing per row beyond
// the metadata itself.
Result<std::vector<EntryMetadata>> LoadEntries(Database& db) {
  // Heap blocks per entry: id, name, bindings, leaf facts, chain subjects (measured ~500).
  constexpr size_t kHeapBytesPerEntry = 560;
  std::optional<HeapReservation> heap;
  std::vector<EntryMetadata> entries;
  std::vector<int64_t> save_seq;
  {
    WSSTEP_ASSIGN_OR_RETURN(auto count, db.Prepare("SELECT count(*) FROM entries"));
    WSSTEP_ASSIGN_OR_RETURN(bool row, count.Step());
    size_t n = row ? static_cast<size_t>(count.ColumnInt64(0)) : 0;
    entries.reserve(n);
    save_seq.reserve(n);
    AdviseHugePages(entries.data(), n * sizeof(EntryMetadata));
    heap.emplace(n * kHeapBytesPerEntry);
  }
  {
    // Table order, not the save_seq index: a sequential read; sorted below.
    WSSTEP_ASSIGN_OR_RETURN(
        auto st,
        db.Prepare("SELECT save_seq, id, name, description, type, source_format, key_alias, "
                   "has_private_key, has_password, private_trust_only, disabled, revoked, "
                   "pending_certificate, created_at, updated_at, last_used_at, use_count, "
                   "version, notify_enabled, notify_warning_days, notify_frequency, "
                   "notify_alert_ref, last_notified_at, chain_subjects, attributes "
                   "FROM entries"));
    for (;;) {
      WSSTEP_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      save_seq.push_back(st.ColumnInt64(0));
      EntryMetadata& e = entries.emplace_back();
      e.id = st.ColumnText(1);
      e.name = st.ColumnText(2);
      e.description = st.ColumnText(3);
      e.type = EntryTypeFromName(st.ColumnBlobView(4)).value_or(EntryType::kKeyPair);
      e.source_format = SourceFormatFromName(st.ColumnBlobView(5)).value_or(SourceFormat::kPem);
      e.key_alias = st.ColumnText(6);
      e.has_private_key = st.ColumnInt64(7) != 0;
      e.has_password = st.ColumnInt64(8) != 0;
      e.private_trust_only = st.ColumnInt64(9) != 0;
      e.disabled = st.ColumnInt64(10) != 0;
      e.revoked = st.ColumnInt64(11) != 0;
      e.pending_certificate = st.ColumnInt64(12) != 0;
      e.created_at = st.ColumnInt64(13);
      e.updated_at = st.ColumnInt64(14);
      e.last_used_at = st.ColumnInt64(15);
      e.use_count = static_cast<uint64_t>(st.ColumnInt64(16));
      e.version = static_cast<uint64_t>(st.ColumnInt64(17));
      e.notifications.enabled = st.ColumnInt64(18) != 0;
      e.notifications.warning_days = static_cast<int>(st.ColumnInt64(19));
      e.notifications.frequency = st.ColumnBlobView(20) == "WEEKLY" ? NotificationFrequency::kWeekly
                                                                    : NotificationFrequency::kDaily;
      e.notifications.alert_ref = st.ColumnText(21);
      e.last_notified_at = st.ColumnInt64(22);
      e.chain_subjects = DecodeList(st.ColumnBlobView(23));
      e.attributes = DecodeMap(st.ColumnBlobView(24));
    }
  }
  const std::vector<uint32_t> by_id = SortedById(entries);
  {
    WSSTEP_ASSIGN_OR_RETURN(auto st, db.Prepare("SELECT entry_id, host, port, environment FROM "
                                                "bindings ORDER BY entry_id, ordinal"));
    WSSTEP_RETURN_IF_ERROR(JoinById(st, entries, by_id, [](EntryMetadata& e, Statement& row) {
      e.bindings.push_back(
          Binding{row.ColumnText(1), static_cast<uint16_t>(row.ColumnInt64(2)), row.ColumnText(3)});
    }));
  }
  {
    WSSTEP_ASSIGN_OR_RETURN(
        auto st, db.Prepare("SELECT entry_id, role, subject, issuer, serial, not_before, "
                            "not_after, sans, key_algorithm, key_bits, curve, "
                            "sha256_fingerprint, is_ca FROM certificates "
                            "ORDER BY entry_id, role, ordinal"));
    WSSTEP_RETURN_IF_ERROR(JoinById(st, entries, by_id, [](EntryMetadata& e, Statement& row) {
      if (row.ColumnBlobView(1) == "leaf") {
        e.certificate = ReadCertificateInfo(row, 2);
      } else {
        e.trusted.push_back(ReadCertificateInfo(row, 2));
      }
    }));
  }
  PutInSaveOrder(entries, save_seq);
  return entries;
}

Result<std::optional<std::string>> ReadMeta(Database& db, std::string_view key) {
  WSSTEP_ASSIGN_OR_RETURN(auto st, db.Prepare("SELECT value FROM meta WHERE key=?"));
  st.Bind(1, key);
  WSSTEP_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(st.ColumnBlob(0));
}

Status WriteMeta(Database& db, std::string_view key, std::string_view value) {
  WSSTEP_ASSIGN_OR_RETURN(auto st, db.Prepare("INSERT OR REPLACE INTO meta (key, value) "
                                              "VALUES (?, ?)"));
  st.Bind(1, key).BindBlob(2, value);
  return st.Run();
}

// Records the key id and a sealed check value, so the next Open recognizes the key.
Status RecordMasterKey(Database& db, const Vault& vault) {
  WSSTEP_ASSIGN_OR_RETURN(std::string check, vault.Seal(SecretBytes(kKeyCheckPlain), kKeyCheckAad));
  WSSTEP_RETURN_IF_ERROR(WriteMeta(db, "master_key_id", vault.key_id()));
  return WriteMeta(db, "key_check", check);
}

}  // namespace

// ---------------------------------------------------------------------------------------

namespace {

constexpr std::pair<AuditAction, std::string_view> kAuditActionNames[] = {
    {AuditAction::kCreate, "CREATE"},
    {AuditAction::kUpdate, "UPDATE"},
    {AuditAction::kDelete, "DELETE"},
    {AuditAction::kImportFailure, "IMPORT_FAILURE"},
    {AuditAction::kUse, "USE"},
    {AuditAction::kGenerateKey, "GENERATE_KEY"},
    {AuditAction::kAttachCertificate, "ATTACH_CERTIFICATE"},
    {AuditAction::kRotateMasterKey, "ROTATE_MASTER_KEY"},
};

constexpr std::pair<ChangeKind, std::string_view> kChangeKindNames[] = {
    {ChangeKind::kCreated, "CREATED"},
    {ChangeKind::kUpdated, "UPDATED"},
    {ChangeKind::kDeleted, "DELETED"},
    {ChangeKind::kResync, "RESYNC"},
};

}  // namespace

std::string_view AuditActionName(AuditAction a) { return NameIn(kAuditActionNames, a); }

std::optional<AuditAction> AuditActionFromName(std::string_view name) {
  return ValueIn(kAuditActionNames, name);
}

std::string_view ChangeKindName(ChangeKind k) { return NameIn(kChangeKindNames, k); }

// ---------------------------------------------------------------------------------------

struct CertificateStore::Impl {
  StoreOptions options;
  std::string db_path;
  std::string key_path;  // empty when the key was given directly
  bool read_only = false;

  // Changes are serialized by write_mu, which also guards `writer`, `next_save_seq` and
  // `current_key`.
  mutable std::mutex write_mu;
  std::unique_ptr<Database> writer;
  int64_t next_save_seq = 1;

  // The slot of each entry version built or in use, carried from snapshot to snapshot.
  mutable std::mutex slots_mu;
  mutable std::unordered_map<std::string, std::shared_ptr<MaterialSlot>> slots_by_id;
  std::optional<MasterKey> current_key;

  // Lazy material loads and audit queries; never blocked by a writer's fsync.
  mutable std::mutex reader_mu;
  std::unique_ptr<Database> reader;

  std::atomic<std::shared_ptr<const Vault>> vault;
  std::atomic<std::shared_ptr<const Published>> published;

  // Use records waiting to be written, and live counters.
  mutable std::mutex use_mu;
  mutable std::condition_variable use_cv;
  mutable std::unordered_map<std::string, Usage> usage;  // entries used since Open
  mutable std::unordered_set<std::string> dirty_usage;
  mutable std::deque<AuditEvent> pending_uses;  // a deque: growing never moves events
  mutable size_t dropped_uses = 0;
  bool stopping = false;  // guarded by use_mu
  std::thread flusher;

  mutable std::mutex change_mu;
  mutable std::condition_variable change_cv;
  std::deque<ChangeEvent> changes;
  uint64_t change_seq = 0;

  UnixSeconds Now() const { return options.clock(); }

  Error ReadOnlyError() const {
    return Error(Code::kStorageError,
                 options.data_dir + ": the store is read-only; the change was not made",
                 "make the data directory and store.db writable by the plugin's user, then "
                 "restart",
                 Side::kStore)
        .With("path", db_path);
  }

  // ---- Publishing ----

  // Builds and publishes a snapshot of `entries` (in save order). write_mu held. Costs
  // one pass over the slots in use, not over the entries.
  void Publish(std::vector<EntryMetadata> entries) {
    auto pub = std::make_shared<Published>();
    pub->snapshot = std::make_shared<const Snapshot>(std::move(entries));
    const Snapshot& snap = *pub->snapshot;
    pub->slots.reset(new std::atomic<MaterialSlot*>[snap.entries().size()]());
    {
      std::lock_guard lk(slots_mu);
      for (auto it = slots_by_id.begin(); it != slots_by_id.end();) {
        const EntryMetadata* e = snap.FindById(it->first);
        const MaterialSlot& slot = *it->second;
        if (e == nullptr || e->version > slot.version) {
          it = slots_by_id.erase(it);  // deleted, or superseded
          continue;
        }
        if (e->version == slot.version && e->name == slot.name) {
          pub->slots[pub->IndexOf(e)].store(it->second.get(), std::memory_order_relaxed);
          pub->owned.push_back(it->second);
        }
        ++it;
      }
    }
    published.store(std::move(pub));
  }

  // The slot of `e` (an entry of pub's snapshot), created on first use. Lock-free once
  // created. Null if `e` is not in the snapshot.
  MaterialSlot* SlotFor(const Published& pub, const EntryMetadata* e) const {
    ptrdiff_t i = pub.IndexOf(e);
    if (i < 0) return nullptr;
    if (MaterialSlot* s = pub.slots[i].load(std::memory_order_acquire)) return s;
    std::lock_guard lk(pub.mu);
    if (MaterialSlot* s = pub.slots[i].load(std::memory_order_relaxed)) return s;
    std::shared_ptr<MaterialSlot> slot;
    {
      std::lock_guard sl(slots_mu);
      auto it = slots_by_id.find(e->id);
      if (it != slots_by_id.end() && it->second->version == e->version &&
          it->second->name == e->name) {
        slot = it->second;  // built for a newer snapshot already, same version
      } else {
        slot = std::make_shared<MaterialSlot>(e->id, e->name, e->version);
        // Never replace the slot of a newer version (this snapshot may be an old one).
        if (it == slots_by_id.end() || it->second->version < e->version) {
          slots_by_id[e->id] = slot;
        }
      }
    }
    pub.owned.push_back(slot);
    pub.slots[i].store(slot.get(), std::memory_order_release);
    return slot.get();
  }

  // The current entries with `changed` replaced (moved to the end: most recently saved)
  // or appended, and `removed_id` dropped.
  std::vector<EntryMetadata> EntriesWith(const std::vector<const EntryMetadata*>& changed,
                                         std::string_view removed_id, bool keep_position) const {
    auto pub = published.load();
    const auto& old = pub->snapshot->entries();
    std::unordered_set<std::string_view> replaced;
    for (const auto* c : changed) replaced.insert(c->id);
    std::vector<EntryMetadata> out;
    out.reserve(old.size() + changed.size());
    for (const auto& e : old) {
      if (e.id == removed_id) continue;
      if (replaced.count(e.id) != 0) {
        if (keep_position) {
          for (const auto* c : changed) {
            if (c->id == e.id) out.push_back(*c);
          }
        }
        continue;
      }
      out.push_back(e);
    }
    if (!keep_position) {
      for (const auto* c : changed) out.push_back(*c);
    }
    return out;
  }

  void NoteChange(ChangeKind kind, const std::string& id, const std::string& name) {
    {
      std::lock_guard lk(change_mu);
      changes.push_back(ChangeEvent{++change_seq, kind, id, name, Now()});
      while (changes.size() > kMaxChangeEvents) changes.pop_front();
    }
    change_cv.notify_all();
  }

  // ---- Material ----

  // Builds `slot` from the database. False: the stored version is newer than the slot's
  // (the entry changed after the caller's snapshot was taken).
  Result<bool> LoadSlot(MaterialSlot& slot) const {
    std::lock_guard lk(slot.mu);
    if (slot.ready.load(std::memory_order_acquire)) return true;
    StoredMaterial m;
    {
      std::lock_guard rl(reader_mu);
      WSSTEP_ASSIGN_OR_RETURN(auto st,
                              reader->Prepare("SELECT version, leaf_der, chain_der, trusted_der, "
                                              "sealed_key FROM material WHERE entry_id=?"));
      st.Bind(1, slot.id);
      WSSTEP_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row || static_cast<uint64_t>(st.ColumnInt64(0)) != slot.version) return false;
      m.leaf_der = st.ColumnBlob(1);
      m.chain_der = DecodeList(st.ColumnBlobView(2));
      m.trusted_der = DecodeList(st.ColumnBlobView(3));
      if (!st.ColumnIsNull(4)) m.sealed_key = st.ColumnBlob(4);
    }
    auto damaged = [&](const Error& e) {
      return Error(Code::kStorageError,
                   "certificate '" + slot.name + "' (id " + slot.id +
                       "): stored material cannot be read: " + e.message,
                   "upload the certificate again, or restore the store from a backup",
                   Side::kStore);
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
      auto v = vault.load();
      WSSTEP_ASSIGN_OR_RETURN(SecretBytes pkcs8, v->Open(*m.sealed_key, SealedKeyAad(slot.id)));
      auto k = KeyFromPkcs8Der(pkcs8);
      if (!k.ok()) return damaged(k.error());
      key = std::move(k).value();
    }
    FillSlot(slot, leaf.get(), chain, key.get(), trusted);
    return true;
  }

  // Ensures `slot` is built; false when it is stale (see LoadSlot).
  Result<bool> EnsureLoaded(MaterialSlot& slot) const {
    if (slot.ready.load(std::memory_order_acquire)) return true;
    return LoadSlot(slot);
  }

  // The trust anchors of `trust` entries. Null when there are none. False: stale.
  Result<bool> TrustFor(const Published& pub, const std::vector<const EntryMetadata*>& trust,
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
    std::lock_guard lk(pub.mu);
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

  // Certificates of the trust entries bound at any of `bindings`, for CHAIN_INCOMPLETE.
  // `keep` owns what the returned pointers point into.
  std::vector<X509*> BoundTrust(const std::vector<Binding>& bindings,
                                std::vector<std::shared_ptr<const TrustAnchors>>& keep) const {
    std::vector<X509*> out;
    auto pub = published.load();
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

  // Parses an upload. Import failures are audited (no secret: the code and message).
  Result<Prepared> ParseUpload(EntryType type, MaterialUpload& upload,
                               const std::vector<Binding>& bindings, const AuditContext& ctx,
                               std::string_view entry_id, std::string_view entry_name,
                               const SecretBytes* key_override, std::string_view key_name) {
    std::vector<std::shared_ptr<const TrustAnchors>> keep;
    ImportInput in;
    in.type = type;
    in.declared_format = upload.declared_format;
    in.content_name = upload.content_name;
    in.key_name = key_name.empty() ? upload.key_name : std::string(key_name);
    in.content = &upload.content;
    in.key = key_override != nullptr ? key_override : (upload.key ? &*upload.key : nullptr);
    if (upload.password) in.password = std::move(*upload.password);
    if (upload.key_password) in.key_password = std::move(*upload.key_password);
    in.alias = upload.alias;
    in.bound_trust = BoundTrust(bindings, keep);
    in.now = Now();
    auto parsed = ParseMaterial(in);
    if (!parsed.ok()) {
      AuditImportFailure(parsed.error(), ctx, entry_id, entry_name);
      return parsed.error();
    }
    Prepared p;
    p.parsed = std::move(parsed).value();
    DescribeMaterial(p.parsed, p.facts);
    if (p.parsed.leaf) p.stored.leaf_der = ossl::CertificateDer(p.parsed.leaf.get());
    for (const auto& c : p.parsed.chain)
      p.stored.chain_der.push_back(ossl::CertificateDer(c.get()));
    for (const auto& c : p.parsed.trusted) {
      p.stored.trusted_der.push_back(ossl::CertificateDer(c.get()));
    }
    return p;
  }

  // Seals the parsed key for `entry_id` (ids are known before the write lock is taken).
  Status SealKey(Prepared& p, std::string_view entry_id) const {
    if (p.parsed.key == nullptr) return {};
    if (p.parsed.key_pkcs8_der.empty()) {
      return Error(Code::kInternal, "the importer returned a key without its PKCS#8 encoding");
    }
    auto v = vault.load();
    WSSTEP_ASSIGN_OR_RETURN(std::string blob,
                            v->Seal(p.parsed.key_pkcs8_der, SealedKeyAad(entry_id)));
    p.stored.sealed_key = std::move(blob);
    return {};
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
    std::lock_guard lk(write_mu);
    auto tx = Transaction::Begin(*writer);
    if (!tx.ok()) return;
    if (AppendAudit(*writer, ev).ok()) (void)tx->Commit();
  }

  AuditEvent EntryEvent(AuditAction action, const AuditContext& ctx, const EntryMetadata& e,
                        std::string detail) const {
    AuditEvent ev;
    ev.at = Now();
    ev.action = action;
    ev.actor = ctx.actor;
    ev.entry_id = e.id;
    ev.entry_name = e.name;
    ev.step_id = ctx.step_id;
    ev.workflow_id = ctx.workflow_id;
    ev.outcome = "OK";
    ev.detail = std::move(detail);
    return ev;
  }

  // Writes the full row set of `e` (material when `stored` is set). write_mu and a
  // transaction held.
  Status WriteEntry(const EntryMetadata& e, const StoredMaterial* stored, bool bindings_changed) {
    WSSTEP_RETURN_IF_ERROR(WriteEntryRow(*writer, e, next_save_seq));
    if (bindings_changed) WSSTEP_RETURN_IF_ERROR(WriteBindings(*writer, e));
    if (stored != nullptr) {
      WSSTEP_RETURN_IF_ERROR(WriteCertificateInfos(*writer, e));
      std::string key_id;
      if (stored->sealed_key) {
        WSSTEP_ASSIGN_OR_RETURN(key_id, Vault::KeyIdOf(*stored->sealed_key));
      }
      WSSTEP_RETURN_IF_ERROR(WriteMaterial(*writer, e.id, e.version, *stored, key_id));
    }
    return {};
  }

  // Under write_mu: a slot pre-built from freshly parsed material, so the first call after
  // a change needs no decryption.
  void PrebuildSlot(const EntryMetadata& e, const ParsedMaterial& parsed) {
    auto slot = std::make_shared<MaterialSlot>(e.id, e.name, e.version);
    FillSlot(*slot, parsed.leaf.get(), parsed.chain, parsed.key.get(), parsed.trusted);
    std::lock_guard lk(slots_mu);
    slots_by_id[e.id] = std::move(slot);
  }

  const EntryMetadata* Find(const Snapshot& s, std::string_view id_or_name) const {
    const EntryMetadata* e = s.FindByName(id_or_name);
    return e != nullptr ? e : s.FindById(id_or_name);
  }

  Status CheckNameFree(const Snapshot& s, std::string_view name, std::string_view self_id) const {
    const EntryMetadata* other = s.FindByName(name);
    if (other != nullptr && other->id != self_id) return DuplicateName(name, other->name);
    return {};
  }

  EntryMetadata WithUsage(EntryMetadata e) const {
    std::lock_guard lk(use_mu);
    auto it = usage.find(e.id);
    if (it != usage.end()) {
      e.use_count = it->second.use_count;
      e.last_used_at = it->second.last_used_at;
    }
    return e;
  }

  // ---- Use records ----

  Status FlushUses() {
    std::deque<AuditEvent> events;
    std::vector<std::pair<std::string, Usage>> counts;
    size_t dropped = 0;
    {
      std::lock_guard lk(use_mu);
      events.swap(pending_uses);
      for (const auto& id : dirty_usage) counts.emplace_back(id, usage[id]);
      dirty_usage.clear();
      dropped = dropped_uses;
      dropped_uses = 0;
    }
    if (events.empty() && counts.empty() && dropped == 0) return {};
    Status st = WriteUses(events, counts, dropped);
    if (!st.ok()) {
      // Keep them for the next attempt, within the bound.
      std::lock_guard lk(use_mu);
      for (const auto& [id, u] : counts) dirty_usage.insert(id);
      size_t room =
          kMaxPendingUses > pending_uses.size() ? kMaxPendingUses - pending_uses.size() : 0;
      size_t keep = std::min(room, events.size());
      dropped_uses += dropped + (events.size() - keep);
      pending_uses.insert(pending_uses.begin(), std::make_move_iterator(events.begin()),
                          std::make_move_iterator(events.begin() + static_cast<long>(keep)));
    }
    return st;
  }

  Status WriteUses(const std::deque<AuditEvent>& events,
                   const std::vector<std::pair<std::string, Usage>>& counts, size_t dropped) {
    std::lock_guard lk(write_mu);
    if (read_only) return ReadOnlyError();
    WSSTEP_ASSIGN_OR_RETURN(auto tx, Transaction::Begin(*writer));
    WSSTEP_ASSIGN_OR_RETURN(auto upd, writer->Prepare("UPDATE entries SET use_count=?, "
                                                      "last_used_at=? WHERE id=?"));
    for (const auto& [id, u] : counts) {
      upd.Bind(1, static_cast<int64_t>(u.use_count)).Bind(2, u.last_used_at).Bind(3, id);
      WSSTEP_RETURN_IF_ERROR(upd.Run());
    }
    WSSTEP_ASSIGN_OR_RETURN(auto ins, writer->Prepare(kInsertAudit));
    for (const auto& ev : events) WSSTEP_RETURN_IF_ERROR(AppendAudit(ins, ev));
    if (dropped > 0) {
      AuditEvent ev;
      ev.at = Now();
      ev.action = AuditAction::kUse;
      ev.actor = "wsstep";
      ev.outcome = "DROPPED";
      ev.detail = std::to_string(dropped) +
                  " use records were not written: the store could not keep up or could not write";
      WSSTEP_RETURN_IF_ERROR(AppendAudit(*writer, ev));
    }
    return tx.Commit();
  }

  void FlusherLoop() {
    std::unique_lock lk(use_mu);
    while (!stopping) {
      use_cv.wait_for(lk, options.use_flush_interval,
                      [&] { return stopping || pending_uses.size() >= kUseBatchWakeup; });
      lk.unlock();
      (void)FlushUses();
      lk.lock();
    }
  }
};

// ---------------------------------------------------------------------------------------
// Open.

namespace {

// Loads the master key for a store whose recorded key id is `stored_id` (nullopt: new
// store), creating the key file for a new store, and finishing an interrupted rotation.
Result<MasterKey> ObtainMasterKey(StoreOptions& options, const std::string& key_path,
                                  const std::optional<std::string>& stored_id, bool read_only) {
  if (options.master_key) return std::move(*options.master_key);
  std::string pending = key_path + ".new";
  if (FileExists(pending)) {
    auto fresh = MasterKey::LoadFile(pending);
    auto old = MasterKey::LoadFile(key_path);
    if (fresh.ok() && stored_id && fresh->id() == *stored_id) {
      // The re-encryption committed; the rename did not happen.
      if (!read_only) WSSTEP_RETURN_IF_ERROR(RenameDurably(pending, key_path));
      return std::move(fresh).value();
    }
    if (old.ok()) {
      // The rotation did not commit: the data is still under the old key.
      if (!read_only) ::unlink(pending.c_str());
      return std::move(old).value();
    }
    return old.error();
  }
  if (FileExists(key_path)) return MasterKey::LoadFile(key_path);
  if (stored_id) {
    return Error(Code::kMasterKeyError,
                 key_path + ": the master key file is missing, and the store in " +
                     options.data_dir + " was written with master key id " + *stored_id,
                 "restore that key file (or supply the key through the configured source); "
                 "a new key could not decrypt the stored private keys, so none is created",
                 Side::kStore)
        .With("store_key_id", *stored_id)
        .With("path", key_path);
  }
  if (read_only) return MasterKey::LoadFile(key_path);  // the "missing file" error
  WSSTEP_ASSIGN_OR_RETURN(MasterKey key, MasterKey::Generate());
  WSSTEP_RETURN_IF_ERROR(key.WriteFile(key_path));
  return key;
}

bool Writable(const std::string& path) { return ::access(path.c_str(), W_OK) == 0; }

// Removes what a crash in MasterKey::WriteFile may leave: "<key file>[.new].tmp-XXXXXX",
// half-written copies of a key that must not linger.
void RemoveStaleKeyTemporaries(const std::string& key_path) {
  size_t slash = key_path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : key_path.substr(0, slash);
  std::string base = slash == std::string::npos ? key_path : key_path.substr(slash + 1);
  std::error_code ec;
  for (const auto& f : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = f.path().filename().string();
    if (name.starts_with(base + ".tmp-") || name.starts_with(base + ".new.tmp-")) {
      std::filesystem::remove(f.path(), ec);
    }
  }
}

}  // namespace

CertificateStore::CertificateStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

CertificateStore::~CertificateStore() {
  if (impl_->flusher.joinable()) {
    {
      std::lock_guard lk(impl_->use_mu);
      impl_->stopping = true;
    }
    impl_->use_cv.notify_all();
    impl_->flusher.join();
  }
  if (!impl_->read_only) (void)impl_->FlushUses();
}

// The largest store file that Open reads into the page cache before loading.
constexpr uint64_t kWarmCacheMaxBytes = uint64_t{1} << 30;

Result<std::unique_ptr<CertificateStore>> CertificateStore::Open(StoreOptions options) {
  EnsureProvidersLoaded();
  auto impl = std::make_unique<Impl>();
  Impl& s = *impl;
  if (options.data_dir.empty()) {
    return Invalid("data_dir", "required (the directory that holds the store)");
  }
  while (options.data_dir.size() > 1 && options.data_dir.back() == '/') options.data_dir.pop_back();
  s.db_path = options.data_dir + "/" + std::string(kDbFileName);
  s.read_only = options.read_only;
  if (!s.read_only) {
    WSSTEP_RETURN_IF_ERROR(EnsurePrivateDirectory(options.data_dir));
    // A directory or file we may not write: serve reads, refuse changes.
    if (!Writable(options.data_dir) || (FileExists(s.db_path) && !Writable(s.db_path))) {
      s.read_only = true;
    }
  }
  if (!options.master_key) {
    s.key_path = options.master_key_file.empty()
                     ? options.data_dir + "/" + std::string(kKeyFileName)
                     : options.master_key_file;
  }

  Database::Options db_options;
  db_options.read_only = s.read_only;
  // Startup reads every entry's metadata; on a cold cache, read the file in order first
  // (core/db.h says why). Not for a file larger than an eighth of the memory.
  const long phys_pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  const uint64_t memory = phys_pages > 0 && page_size > 0
                              ? static_cast<uint64_t>(phys_pages) * static_cast<uint64_t>(page_size)
                              : 0;
  WarmPageCache(s.db_path, std::min<uint64_t>(kWarmCacheMaxBytes, memory / 8));
  WSSTEP_ASSIGN_OR_RETURN(s.writer, Database::Open(s.db_path, db_options));
  if (s.read_only) {
    WSSTEP_ASSIGN_OR_RETURN(int version, s.writer->SchemaVersion());
    if (version != static_cast<int>(std::size(kMigrations))) {
      return Error(Code::kStorageError,
                   s.db_path + ": the store is read-only and its schema (version " +
                       std::to_string(version) + ") is not the one this build uses (" +
                       std::to_string(std::size(kMigrations)) + ")",
                   "open it once with write access so it can be upgraded", Side::kStore);
    }
  } else {
    WSSTEP_RETURN_IF_ERROR(s.writer->Migrate(kMigrations));
  }
  WSSTEP_ASSIGN_OR_RETURN(s.reader, Database::Open(s.db_path, db_options));

  WSSTEP_ASSIGN_OR_RETURN(std::optional<std::string> stored_id,
                          ReadMeta(*s.writer, "master_key_id"));
  if (!s.key_path.empty() && !s.read_only) RemoveStaleKeyTemporaries(s.key_path);
  WSSTEP_ASSIGN_OR_RETURN(MasterKey key,
                          ObtainMasterKey(options, s.key_path, stored_id, s.read_only));
  auto vault = std::make_shared<const Vault>(key.Clone());
  if (stored_id) {
    if (key.id() != *stored_id) return MasterKeyMismatch(key.id(), *stored_id);
    WSSTEP_ASSIGN_OR_RETURN(std::optional<std::string> check, ReadMeta(*s.writer, "key_check"));
    if (check) {
      auto opened = vault->Open(*check, kKeyCheckAad);
      if (!opened.ok() || opened->view() != kKeyCheckPlain) {
        return MasterKeyMismatch(key.id(), *stored_id);
      }
    }
  } else if (!s.read_only) {
    WSSTEP_ASSIGN_OR_RETURN(auto tx, Transaction::Begin(*s.writer));
    WSSTEP_RETURN_IF_ERROR(RecordMasterKey(*s.writer, *vault));
    WSSTEP_RETURN_IF_ERROR(tx.Commit());
  }
  s.current_key = std::move(key);
  s.vault.store(vault);

  WSSTEP_ASSIGN_OR_RETURN(std::vector<EntryMetadata> entries, LoadEntries(*s.writer));
  {
    WSSTEP_ASSIGN_OR_RETURN(auto seq, s.writer->Prepare("SELECT COALESCE(MAX(save_seq), 0) "
                                                        "FROM entries"));
    WSSTEP_ASSIGN_OR_RETURN(bool row, seq.Step());
    s.next_save_seq = (row ? seq.ColumnInt64(0) : 0) + 1;
  }
  s.options = std::move(options);
  {
    std::lock_guard lk(s.write_mu);
    s.Publish(std::move(entries));
  }
  if (!s.read_only) s.flusher = std::thread([&s] { s.FlusherLoop(); });
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
    Prepared prepared;
  };
  std::vector<Item> items;
  items.reserve(requests.size());
  std::vector<Error> all_warnings;
  const UnixSeconds now = s.Now();
  {
    auto pub = s.published.load();
    std::unordered_map<std::string, std::string> batch_names;
    for (auto& r : requests) {
      WSSTEP_RETURN_IF_ERROR(ValidateName(r.name));
      WSSTEP_RETURN_IF_ERROR(ValidateDescription(r.description));
      WSSTEP_RETURN_IF_ERROR(ValidateNotifications(r.notifications));
      WSSTEP_RETURN_IF_ERROR(NormalizeBindings(r.bindings, r.type));
      WSSTEP_RETURN_IF_ERROR(s.CheckNameFree(*pub->snapshot, r.name, ""));
      auto [it, fresh] = batch_names.emplace(AsciiLower(r.name), r.name);
      if (!fresh) return DuplicateName(r.name, it->second);
    }
    for (auto& r : requests) {
      Item item;
      item.meta.id = NewEntryId();
      WSSTEP_ASSIGN_OR_RETURN(item.prepared, s.ParseUpload(r.type, r.material, r.bindings, ctx, "",
                                                           r.name, nullptr, ""));
      WSSTEP_RETURN_IF_ERROR(s.SealKey(item.prepared, item.meta.id));
      EntryMetadata& m = item.meta;
      std::string id = std::move(m.id);
      m = std::move(item.prepared.facts);
      m.id = std::move(id);
      m.name = std::move(r.name);
      m.description = std::move(r.description);
      m.type = r.type;
      m.bindings = std::move(r.bindings);
      m.private_trust_only = r.private_trust_only;
      m.disabled = r.disabled;
      m.notifications = std::move(r.notifications);
      m.created_at = now;
      m.updated_at = now;
      m.version = 1;
      for (auto& w : item.prepared.parsed.warnings) all_warnings.push_back(std::move(w));
      items.push_back(std::move(item));
    }
  }

  std::vector<EntryMetadata> result;
  {
    std::lock_guard lk(s.write_mu);
    auto pub = s.published.load();
    for (const auto& item : items) {
      WSSTEP_RETURN_IF_ERROR(s.CheckNameFree(*pub->snapshot, item.meta.name, ""));
      if (pub->snapshot->FindById(item.meta.id) != nullptr) {
        return Error(Code::kInternal, "entry id collision; retry");
      }
    }
    WSSTEP_ASSIGN_OR_RETURN(auto tx, Transaction::Begin(*s.writer));
    int64_t seq = s.next_save_seq;
    for (const auto& item : items) {
      WSSTEP_RETURN_IF_ERROR(s.WriteEntry(item.meta, &item.prepared.stored, true));
      WSSTEP_RETURN_IF_ERROR(
          AppendAudit(*s.writer, s.EntryEvent(AuditAction::kCreate, ctx, item.meta,
                                              std::string(EntryTypeName(item.meta.type)))));
      ++s.next_save_seq;
    }
    Status committed = tx.Commit();
    if (!committed.ok()) {
      s.next_save_seq = seq;
      return committed.error();
    }
    std::vector<const EntryMetadata*> changed;
    for (const auto& item : items) {
      changed.push_back(&item.meta);
      s.PrebuildSlot(item.meta, item.prepared.parsed);
    }
    s.Publish(s.EntriesWith(changed, "", false));
    for (const auto& item : items) result.push_back(item.meta);
  }
  for (const auto& e : result) s.NoteChange(ChangeKind::kCreated, e.id, e.name);
  if (warnings != nullptr) {
    for (auto& w : all_warnings) warnings->push_back(std::move(w));
  }
  return result;
}

Result<EntryMetadata> CertificateStore::Get(std::string_view id_or_name) const {
  auto pub = impl_->published.load();
  const EntryMetadata* e = impl_->Find(*pub->snapshot, id_or_name);
  if (e == nullptr) return NotFound(id_or_name);
  return impl_->WithUsage(*e);
}

Result<ListPage> CertificateStore::List(const ListFilter& filter) const {
  WSSTEP_ASSIGN_OR_RETURN(size_t page_size, PageSize(filter.page_size));
  std::string after;
  if (!filter.page_token.empty()) {
    auto decoded = Unhex(filter.page_token);
    if (!decoded || decoded->empty()) {
      return Invalid("page_token", "not a token returned by a previous List");
    }
    after = std::move(*decoded);
  }
  const std::string host = NormalizeHost(filter.host);
  const std::string needle = AsciiLower(filter.name_contains);
  const bool by_binding = !host.empty() || filter.port || !filter.environment.empty();
  const UnixSeconds now = impl_->Now();
  auto pub = impl_->published.load();

  struct Match {
    std::string key;
    const EntryMetadata* e;
  };
  std::vector<Match> matches;
  size_t total = 0;
  for (const auto& e : pub->snapshot->entries()) {
    if (filter.type && e.type != *filter.type) continue;
    if (filter.status && StatusAt(e, now) != *filter.status) continue;
    if (by_binding) {
      bool any = std::any_of(e.bindings.begin(), e.bindings.end(), [&](const Binding& b) {
        return (host.empty() || b.host == host || HostMatches(b.host, host)) &&
               (!filter.port || b.port == *filter.port) &&
               (filter.environment.empty() || b.environment == filter.environment);
      });
      if (!any) continue;
    }
    std::string key = AsciiLower(e.name);
    if (!needle.empty() && key.find(needle) == std::string::npos) continue;
    ++total;
    if (!after.empty() && key <= after) continue;
    matches.push_back({std::move(key), &e});
  }
  size_t take = std::min(page_size, matches.size());
  std::partial_sort(matches.begin(), matches.begin() + static_cast<long>(take), matches.end(),
                    [](const Match& a, const Match& b) { return a.key < b.key; });
  ListPage page;
  page.total_size = total;
  for (size_t i = 0; i < take; ++i) page.entries.push_back(impl_->WithUsage(*matches[i].e));
  if (matches.size() > take && take > 0) page.next_page_token = Hex(matches[take - 1].key);
  return page;
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
    auto pub = s.published.load();
    const EntryMetadata* e = s.Find(*pub->snapshot, id_or_name);
    if (e == nullptr) return NotFound(id_or_name);
    id = e->id;
    type = e->type;
    old_name = e->name;
    target_bindings = e->bindings;
    if (request.name) {
      WSSTEP_RETURN_IF_ERROR(ValidateName(*request.name));
      WSSTEP_RETURN_IF_ERROR(s.CheckNameFree(*pub->snapshot, *request.name, id));
    }
  }
  if (request.description) WSSTEP_RETURN_IF_ERROR(ValidateDescription(*request.description));
  if (request.notifications) WSSTEP_RETURN_IF_ERROR(ValidateNotifications(*request.notifications));
  if (request.bindings) {
    WSSTEP_RETURN_IF_ERROR(NormalizeBindings(*request.bindings, type));
    target_bindings = *request.bindings;
  }
  std::optional<Prepared> prepared;
  if (request.material) {
    WSSTEP_ASSIGN_OR_RETURN(Prepared p, s.ParseUpload(type, *request.material, target_bindings, ctx,
                                                      id, old_name, nullptr, ""));
    WSSTEP_RETURN_IF_ERROR(s.SealKey(p, id));
    prepared = std::move(p);
  }

  EntryMetadata updated;
  {
    std::lock_guard lk(s.write_mu);
    auto pub = s.published.load();
    const EntryMetadata* current = pub->snapshot->FindById(id);
    if (current == nullptr) return NotFound(id_or_name);
    updated = *current;
    std::vector<std::string> changed;
    auto note = [&](bool differs, const char* what) {
      if (differs) changed.push_back(what);
    };
    if (request.name) {
      WSSTEP_RETURN_IF_ERROR(s.CheckNameFree(*pub->snapshot, *request.name, id));
      note(updated.name != *request.name, "name");
      updated.name = *request.name;
    }
    if (request.description) {
      note(updated.description != *request.description, "description");
      updated.description = *request.description;
    }
    bool bindings_changed = false;
    if (request.bindings) {
      bindings_changed = updated.bindings != *request.bindings;
      note(bindings_changed, "bindings");
      updated.bindings = *request.bindings;
    }
    if (request.notifications) {
      note(!(updated.notifications == *request.notifications), "notifications");
      updated.notifications = *request.notifications;
    }
    if (request.private_trust_only) {
      note(updated.private_trust_only != *request.private_trust_only, "private_trust_only");
      updated.private_trust_only = *request.private_trust_only;
    }
    if (request.disabled) {
      if (updated.disabled != *request.disabled) {
        changed.push_back(*request.disabled ? "disabled" : "enabled");
      }
      updated.disabled = *request.disabled;
    }
    if (request.revoked) {
      if (updated.revoked != *request.revoked) {
        changed.push_back(*request.revoked ? "revoked" : "revocation withdrawn");
      }
      updated.revoked = *request.revoked;
    }
    if (prepared) {
      ApplyMaterialFacts(updated, std::move(prepared->facts), current->version + 1);
      changed.push_back("material (version " + std::to_string(updated.version) + ")");
    }
    updated.updated_at = s.Now();
    std::string detail;
    for (const auto& c : changed) detail += (detail.empty() ? "" : ", ") + c;
    if (detail.empty()) detail = "no change";

    WSSTEP_ASSIGN_OR_RETURN(auto tx, Transaction::Begin(*s.writer));
    WSSTEP_RETURN_IF_ERROR(
        s.WriteEntry(updated, prepared ? &prepared->stored : nullptr, bindings_changed));
    WSSTEP_RETURN_IF_ERROR(
        AppendAudit(*s.writer, s.EntryEvent(AuditAction::kUpdate, ctx, updated, detail)));
    WSSTEP_RETURN_IF_ERROR(tx.Commit());
    ++s.next_save_seq;
    if (prepared) s.PrebuildSlot(updated, prepared->parsed);
    s.Publish(s.EntriesWith({&updated}, "", false));
  }
  s.NoteChange(ChangeKind::kUpdated, updated.id, updated.name);
  if (warnings != nullptr && prepared) {
    for (auto& w : prepared->parsed.warnings) warnings->push_back(std::move(w));
  }
  return s.WithUsage(std::move(updated));
}

Status CertificateStore::Delete(std::string_view id_or_name, const AuditContext& ctx) {
  Impl& s = *impl_;
  if (s.read_only) return s.ReadOnlyError();
  EntryMetadata gone;
  {
    std::lock_guard lk(s.write_mu);
    auto pub = s.published.load();
    const EntryMetadata* e = s.Find(*pub->snapshot, id_or_name);
    if (e == nullptr) return NotFound(id_or_name);
    gone = *e;
    WSSTEP_ASSIGN_OR_RETURN(auto tx, Transaction::Begin(*s.writer));
    WSSTEP_ASSIGN_OR_RETURN(auto del, s.writer->Prepare("DELETE FROM entries WHERE id=?"));
    del.Bind(1, gone.id);
    WSSTEP_RETURN_IF_ERROR(del.Run());
    WSSTEP_RETURN_IF_ERROR(
        AppendAudit(*s.writer, s.EntryEvent(AuditAction::kDelete, ctx, gone,
                                            std::string(EntryTypeName(gone.type)) + ", version " +
                                                std::to_string(gone.version))));
    WSSTEP_RETURN_IF_ERROR(tx.Commit());
    s.Publish(s.EntriesWith({}, gone.id, true));
  }
  {
    std::lock_guard lk(s.use_mu);
    s.usage.erase(gone.id);
    s.dirty_usage.erase(gone.id);
  }
  s.NoteChange(ChangeKind::kDeleted, gone.id, gone.name);
  return {};
}

// ---------------------------------------------------------------------------------------
// Resolution.

Result<ResolvedCall> CertificateStore::Explain(const ResolveRequest& request,
                                               bool require_identity) const {
  ResolvedCall call;
  auto pub = impl_->published.load();
  call.snapshot = pub->snapshot;
  ResolveRequest explained = request;
  explained.explain = true;  // the point of this call
  if (explained.now == 0) explained.now = impl_->Now();
  WSSTEP_ASSIGN_OR_RETURN(call.resolution, Resolve(*call.snapshot, explained, require_identity));
  return call;
}

Result<ResolvedCall> CertificateStore::ResolveForCall(const ResolveRequest& request,
                                                      bool require_identity) const {
  const Impl& s = *impl_;
  std::optional<ResolveRequest> timed;
  if (request.now == 0) {
    timed.emplace(request);
    timed->now = s.Now();
  }
  const ResolveRequest& req = timed ? *timed : request;
  for (int attempt = 0; attempt < kResolveAttempts; ++attempt) {
    auto pub = s.published.load();
    WSSTEP_ASSIGN_OR_RETURN(Resolution res, Resolve(*pub->snapshot, req, require_identity));
    ResolvedCall call;
    if (res.identity != nullptr) {
      MaterialSlot* slot = s.SlotFor(*pub, res.identity);
      if (slot == nullptr) {
        return Error(Code::kInternal, "the resolver returned an entry outside its snapshot");
      }
      WSSTEP_ASSIGN_OR_RETURN(bool fresh, s.EnsureLoaded(*slot));
      if (!fresh) continue;  // changed since this snapshot: use the newer one
      if (slot->identity == nullptr) {
        return Error(Code::kStorageError,
                     "certificate '" + slot->name + "' (id " + slot->id +
                         "): no private key is stored for it",
                     "upload the certificate with its private key again", Side::kStore);
      }
      call.credentials.identity = slot->identity;
    }
    WSSTEP_ASSIGN_OR_RETURN(bool trust_fresh, s.TrustFor(*pub, res.trust, call.credentials.trust));
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
  Usage initial;
  bool known = false;
  if (!entry_id.empty()) {
    auto pub = s.published.load();
    if (const EntryMetadata* e = pub->snapshot->FindById(entry_id)) {
      ev.entry_name = e->name;
      initial = {e->last_used_at, e->use_count};
      known = true;
    }
  }
  bool wake = false;
  {
    std::lock_guard lk(s.use_mu);
    if (known) {
      auto [it, inserted] = s.usage.try_emplace(ev.entry_id, initial);
      it->second.use_count++;
      it->second.last_used_at = std::max(it->second.last_used_at, ev.at);
      s.dirty_usage.insert(ev.entry_id);
    }
    if (s.pending_uses.size() >= kMaxPendingUses) {
      ++s.dropped_uses;
    } else {
      s.pending_uses.push_back(std::move(ev));
      wake = s.pending_uses.size() == kUseBatchWakeup;
    }
  }
  if (wake) s.use_cv.notify_one();
}

Status CertificateStore::Flush() const {
  if (impl_->read_only) return {};
  return impl_->FlushUses();
}

// ---------------------------------------------------------------------------------------
// Audit.

Result<AuditPage> CertificateStore::ListAudit(const AuditFilter& filter) const {
  WSSTEP_ASSIGN_OR_RETURN(size_t page_size, PageSize(filter.page_size));
  int64_t before = 0;
  if (!filter.page_token.empty()) {
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(filter.page_token.c_str(), &end, 10);
    if (errno != 0 || end == filter.page_token.c_str() || *end != '\0' || v <= 0) {
      return Invalid("page_token", "not a token returned by a previous ListAudit");
    }
    before = v;
  }
  std::string sql =
      "SELECT sequence, at, action, actor, entry_id, entry_name, host, port, environment, "
      "step_id, workflow_id, outcome, code, detail FROM audit WHERE 1=1";
  std::vector<std::pair<int, std::string>> text_args;
  std::vector<std::pair<int, int64_t>> int_args;
  int n = 0;
  auto text = [&](const char* clause, const std::string& v) {
    sql += clause;
    text_args.emplace_back(++n, v);
  };
  auto integer = [&](const char* clause, int64_t v) {
    sql += clause;
    int_args.emplace_back(++n, v);
  };
  if (!filter.entry_id.empty()) text(" AND entry_id=?", filter.entry_id);
  if (filter.action) text(" AND action=?", std::string(AuditActionName(*filter.action)));
  if (!filter.actor.empty()) text(" AND actor=?", filter.actor);
  if (!filter.step_id.empty()) text(" AND step_id=?", filter.step_id);
  if (!filter.workflow_id.empty()) text(" AND workflow_id=?", filter.workflow_id);
  if (filter.since != 0) integer(" AND at>=?", filter.since);
  if (filter.until != 0) integer(" AND at<?", filter.until);
  if (before != 0) integer(" AND sequence<?", before);
  sql += " ORDER BY sequence DESC LIMIT ?";
  int_args.emplace_back(++n, static_cast<int64_t>(page_size + 1));

  AuditPage page;
  std::lock_guard lk(impl_->reader_mu);
  WSSTEP_ASSIGN_OR_RETURN(auto st, impl_->reader->Prepare(sql));
  for (const auto& [i, v] : text_args) st.Bind(i, v);
  for (const auto& [i, v] : int_args) st.Bind(i, v);
  for (;;) {
    WSSTEP_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    if (page.events.size() == page_size) {
      page.next_page_token = std::to_string(page.events.back().sequence);
      break;
    }
    AuditEvent ev;
    ev.sequence = st.ColumnInt64(0);
    ev.at = st.ColumnInt64(1);
    ev.action = AuditActionFromName(st.ColumnText(2)).value_or(AuditAction::kUse);
    ev.actor = st.ColumnText(3);
    ev.entry_id = st.ColumnText(4);
    ev.entry_name = st.ColumnText(5);
    ev.host = st.ColumnText(6);
    ev.port = static_cast<uint16_t>(st.ColumnInt64(7));
    ev.environment = st.ColumnText(8);
    ev.step_id = st.ColumnText(9);
    ev.workflow_id = st.ColumnText(10);
    ev.outcome = st.ColumnText(11);
    ev.code = st.ColumnText(12);
    ev.detail = st.ColumnText(13);
    page.events.push_back(std::move(ev));
  }
  return page;
}

// ---------------------------------------------------------------------------------------
// Notifications.

std::vector<DueNotification> CertificateStore::DueNotifications() const {
  auto pub = impl_->published.load();
  return core::DueNotifications(pub->snapshot->entries(), impl_->Now());
}

Status CertificateStore::AcknowledgeNotification(std::string_view id, UnixSeconds sent_at) {
  Impl& s = *impl_;
  if (s.read_only) return s.ReadOnlyError();
  std::lock_guard lk(s.write_mu);
  auto pub = s.published.load();
  const EntryMetadata* e = s.Find(*pub->snapshot, id);
  if (e == nullptr) return NotFound(id);
  EntryMetadata acked = *e;
  acked.last_notified_at = std::max(acked.last_notified_at, sent_at);
  WSSTEP_ASSIGN_OR_RETURN(auto st, s.writer->Prepare("UPDATE entries SET last_notified_at=? "
                                                     "WHERE id=?"));
  st.Bind(1, acked.last_notified_at).Bind(2, acked.id);
  WSSTEP_RETURN_IF_ERROR(st.Run());
  // Not a save: the entry keeps its place in the resolution order.
  s.Publish(s.EntriesWith({&acked}, "", true));
  return {};
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
  WSSTEP_RETURN_IF_ERROR(s.CheckNameFree(*s.published.load()->snapshot, request.name, ""));
  WSSTEP_ASSIGN_OR_RETURN(GeneratedCsr generated, core::GenerateKeyAndCsr(request.csr));

  EntryMetadata m;
  m.id = NewEntryId();
  m.name = std::move(request.name);
  m.description = std::move(request.description);
  m.type = EntryType::kKeyPair;
  m.source_format = SourceFormat::kPem;
  m.bindings = std::move(request.bindings);
  m.notifications = std::move(request.notifications);
  m.has_private_key = true;
  m.pending_certificate = true;
  // What was generated, until the certificate brings its own facts.
  m.attributes["key_algorithm"] = request.csr.key_algorithm;
  if (!request.csr.curve.empty()) m.attributes["curve"] = request.csr.curve;
  m.created_at = m.updated_at = s.Now();
  m.version = 1;
  StoredMaterial stored;
  {
    auto v = s.vault.load();
    WSSTEP_ASSIGN_OR_RETURN(std::string blob, v->Seal(generated.key_pkcs8_der, SealedKeyAad(m.id)));
    stored.sealed_key = std::move(blob);
  }
  stored.csr_pem = generated.csr_pem;
  {
    std::lock_guard lk(s.write_mu);
    auto pub = s.published.load();
    WSSTEP_RETURN_IF_ERROR(s.CheckNameFree(*pub->snapshot, m.name, ""));
    WSSTEP_ASSIGN_OR_RETURN(auto tx, Transaction::Begin(*s.writer));
    WSSTEP_RETURN_IF_ERROR(s.WriteEntry(m, &stored, true));
    WSSTEP_RETURN_IF_ERROR(AppendAudit(
        *s.writer, s.EntryEvent(AuditAction::kGenerateKey, ctx, m, "key and CSR generated")));
    WSSTEP_RETURN_IF_ERROR(tx.Commit());
    ++s.next_save_seq;
    s.Publish(s.EntriesWith({&m}, "", false));
  }
  s.NoteChange(ChangeKind::kCreated, m.id, m.name);
  return GeneratedKey{std::move(m), std::move(generated.csr_pem)};
}

Result<std::string> CertificateStore::GetCsr(std::string_view id_or_name) const {
  auto pub = impl_->published.load();
  const EntryMetadata* e = impl_->Find(*pub->snapshot, id_or_name);
  if (e == nullptr) return NotFound(id_or_name);
  std::lock_guard lk(impl_->reader_mu);
  WSSTEP_ASSIGN_OR_RETURN(auto st,
                          impl_->reader->Prepare("SELECT csr_pem FROM material WHERE entry_id=?"));
  st.Bind(1, e->id);
  WSSTEP_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row || st.ColumnIsNull(0)) {
    return Error(Code::kNotFound,
                 "certificate '" + e->name + "' has no certificate signing request",
                 "only entries made by key generation have one, until their certificate is "
                 "attached",
                 Side::kConfiguration);
  }
  return st.ColumnText(0);
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
    auto pub = s.published.load();
    const EntryMetadata* e = s.Find(*pub->snapshot, id_or_name);
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
    std::string blob;
    {
      std::lock_guard lk(s.reader_mu);
      WSSTEP_ASSIGN_OR_RETURN(auto st, s.reader->Prepare("SELECT version, sealed_key FROM "
                                                         "material WHERE entry_id=?"));
      st.Bind(1, id);
      WSSTEP_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row || st.ColumnIsNull(1) || static_cast<uint64_t>(st.ColumnInt64(0)) != based_on) {
        return Error(Code::kFailedPrecondition,
                     "certificate '" + name + "' changed while the certificate was attached",
                     "retry", Side::kConfiguration);
      }
      blob = st.ColumnBlob(1);
    }
    WSSTEP_ASSIGN_OR_RETURN(pkcs8, s.vault.load()->Open(blob, SealedKeyAad(id)));
  }
  MaterialUpload upload;
  upload.content = std::move(certificate);
  upload.content_name = content_name.empty() ? "certificate" : std::string(content_name);
  WSSTEP_ASSIGN_OR_RETURN(
      Prepared p, s.ParseUpload(EntryType::kKeyPair, upload, bindings, ctx, id, name, &pkcs8,
                                "the private key of '" + name + "'"));
  WSSTEP_RETURN_IF_ERROR(s.SealKey(p, id));

  EntryMetadata updated;
  {
    std::lock_guard lk(s.write_mu);
    auto pub = s.published.load();
    const EntryMetadata* current = pub->snapshot->FindById(id);
    if (current == nullptr) return NotFound(id_or_name);
    if (current->version != based_on) {
      return Error(Code::kFailedPrecondition,
                   "certificate '" + name + "' changed while the certificate was attached", "retry",
                   Side::kConfiguration);
    }
    updated = *current;
    ApplyMaterialFacts(updated, std::move(p.facts), current->version + 1);
    updated.updated_at = s.Now();
    WSSTEP_ASSIGN_OR_RETURN(auto tx, Transaction::Begin(*s.writer));
    WSSTEP_RETURN_IF_ERROR(s.WriteEntry(updated, &p.stored, false));
    WSSTEP_RETURN_IF_ERROR(AppendAudit(
        *s.writer, s.EntryEvent(AuditAction::kAttachCertificate, ctx, updated,
                                "certificate " + (updated.certificate ? updated.certificate->subject
                                                                      : std::string("attached")))));
    WSSTEP_RETURN_IF_ERROR(tx.Commit());
    ++s.next_save_seq;
    s.PrebuildSlot(updated, p.parsed);
    s.Publish(s.EntriesWith({&updated}, "", false));
  }
  s.NoteChange(ChangeKind::kUpdated, updated.id, updated.name);
  if (warnings != nullptr) {
    for (auto& w : p.parsed.warnings) warnings->push_back(std::move(w));
  }
  return s.WithUsage(std::move(updated));
}

// ---------------------------------------------------------------------------------------
// Master key rotation.

Status CertificateStore::RotateMasterKey(MasterKey new_key, const AuditContext& ctx) {
  Impl& s = *impl_;
  if (s.read_only) return s.ReadOnlyError();
  std::lock_guard lk(s.write_mu);
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
    WSSTEP_ASSIGN_OR_RETURN(auto tx, Transaction::Begin(*s.writer));
    std::vector<std::string> ids;
    {
      WSSTEP_ASSIGN_OR_RETURN(auto q, s.writer->Prepare("SELECT entry_id FROM material WHERE "
                                                        "sealed_key IS NOT NULL"));
      for (;;) {
        WSSTEP_ASSIGN_OR_RETURN(bool row, q.Step());
        if (!row) break;
        ids.push_back(q.ColumnText(0));
      }
    }
    WSSTEP_ASSIGN_OR_RETURN(auto get, s.writer->Prepare("SELECT sealed_key FROM material WHERE "
                                                        "entry_id=?"));
    WSSTEP_ASSIGN_OR_RETURN(auto put, s.writer->Prepare("UPDATE material SET sealed_key=?, "
                                                        "key_id=? WHERE entry_id=?"));
    for (const auto& id : ids) {
      get.Bind(1, id);
      WSSTEP_ASSIGN_OR_RETURN(bool row, get.Step());
      if (!row) continue;
      std::string blob = get.ColumnBlob(0);
      get.Reset();
      std::string aad = SealedKeyAad(id);
      WSSTEP_ASSIGN_OR_RETURN(SecretBytes plain, old_vault->Open(blob, aad));
      WSSTEP_ASSIGN_OR_RETURN(std::string sealed, new_vault->Seal(plain, aad));
      put.BindBlob(1, sealed).Bind(2, new_vault->key_id()).Bind(3, id);
      WSSTEP_RETURN_IF_ERROR(put.Run());
    }
    WSSTEP_RETURN_IF_ERROR(RecordMasterKey(*s.writer, *new_vault));
    AuditEvent ev;
    ev.at = s.Now();
    ev.action = AuditAction::kRotateMasterKey;
    ev.actor = ctx.actor;
    ev.step_id = ctx.step_id;
    ev.workflow_id = ctx.workflow_id;
    ev.outcome = "OK";
    ev.detail = "master key " + old_id + " replaced by " + new_vault->key_id() + "; " +
                std::to_string(ids.size()) + " keys re-encrypted";
    WSSTEP_RETURN_IF_ERROR(AppendAudit(*s.writer, ev));
    return tx.Commit();
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

// ---------------------------------------------------------------------------------------
// Snapshots, changes and facts.

std::shared_ptr<const Snapshot> CertificateStore::snapshot() const {
  return impl_->published.load()->snapshot;
}

std::vector<ChangeEvent> CertificateStore::WaitForChanges(uint64_t after_sequence,
                                                          std::chrono::milliseconds timeout) const {
  const Impl& s = *impl_;
  std::unique_lock lk(s.change_mu);
  s.change_cv.wait_for(lk, timeout, [&] { return s.change_seq > after_sequence; });
  std::vector<ChangeEvent> out;
  if (s.change_seq <= after_sequence) return out;
  uint64_t first = s.changes.empty() ? s.change_seq + 1 : s.changes.front().sequence;
  if (after_sequence + 1 < first) {
    ChangeEvent resync;
    resync.sequence = first - 1;
    resync.kind = ChangeKind::kResync;
    resync.at = s.Now();
    out.push_back(std::move(resync));
  }
  for (const auto& ev : s.changes) {
    if (ev.sequence > after_sequence) out.push_back(ev);
  }
  return out;
}

uint64_t CertificateStore::LatestChangeSequence() const {
  std::lock_guard lk(impl_->change_mu);
  return impl_->change_seq;
}

UnixSeconds CertificateStore::Now() const { return impl_->Now(); }
bool CertificateStore::read_only() const { return impl_->read_only; }
const std::string& CertificateStore::data_dir() const { return impl_->options.data_dir; }
size_t CertificateStore::size() const {
  return impl_->published.load()->snapshot->entries().size();
}

}  // namespace wsstep::core

#include "core/store/sqlite_rows.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "core/store/bulk_load.h"
#include "core/store/codec.h"
#include "core/store/entry_columns.h"
#include "core/store/validation.h"

namespace wsstep::core {
namespace {

Status InsertCertificateRow(Statement& ins, std::string_view id, std::string_view role,
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

// A Statement as entry_columns.h reads rows.
struct SqliteRow {
  const Statement& st;
  std::string Text(int i) const { return st.ColumnText(i); }
  int64_t Int(int i) const { return st.ColumnInt64(i); }
  std::string_view View(int i) const { return st.ColumnBlobView(i); }
  std::string_view Blob(int i) const { return st.ColumnBlobView(i); }
  bool IsNull(int i) const { return st.ColumnIsNull(i); }
};

// Calls `attach(entry, statement)` for each row of `st` (whose column 0 is an entry id,
// rows in id order as a primary key returns them) with the entry of that id.
template <typename Attach>
Status JoinById(Statement& st, IdIndex& by_id, Attach attach) {
  for (;;) {
    WSSTEP_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return {};
    if (EntryMetadata* e = by_id.Find(st.ColumnBlobView(0))) attach(*e, st);
  }
}

}  // namespace

Status WriteEntryRow(Database& db, const EntryMetadata& e, int64_t save_sequence) {
  WSSTEP_ASSIGN_OR_RETURN(auto st, db.Prepare(EntryUpsertSql('?')));
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
      .Bind(17, save_sequence)
      .Bind(18, int64_t{e.notifications.enabled})
      .Bind(19, int64_t{e.notifications.warning_days})
      .Bind(20, NotificationFrequencyName(e.notifications.frequency))
      .Bind(21, e.notifications.alert_ref)
      .Bind(22, e.last_notified_at)
      .BindBlob(23, EncodeList(e.chain_subjects))
      .BindBlob(24, EncodeMap(e.attributes))
      .Bind(25, int64_t{e.notifications.urgent_days});
  Status s = st.Run();
  if (!s.ok() && s.error().message.find("entries.name_key") != std::string::npos) {
    return DuplicateName(e.name, e.name);
  }
  return s;
}

Status WriteBindingRows(Database& db, const EntryMetadata& e) {
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

Status WriteCertificateRows(Database& db, const EntryMetadata& e) {
  WSSTEP_ASSIGN_OR_RETURN(auto del, db.Prepare("DELETE FROM certificates WHERE entry_id=?"));
  del.Bind(1, e.id);
  WSSTEP_RETURN_IF_ERROR(del.Run());
  WSSTEP_ASSIGN_OR_RETURN(
      auto ins,
      db.Prepare("INSERT INTO certificates (entry_id, role, ordinal, subject, issuer, serial, "
                 "not_before, not_after, sans, key_algorithm, key_bits, curve, "
                 "sha256_fingerprint, is_ca) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
  if (e.certificate)
    WSSTEP_RETURN_IF_ERROR(InsertCertificateRow(ins, e.id, "leaf", 0, *e.certificate));
  for (size_t i = 0; i < e.trusted.size(); ++i) {
    WSSTEP_RETURN_IF_ERROR(InsertCertificateRow(ins, e.id, "trusted", i, e.trusted[i]));
  }
  return {};
}

Status WriteMaterialRow(Database& db, std::string_view id, const StoredMaterial& m) {
  WSSTEP_ASSIGN_OR_RETURN(
      auto st, db.Prepare("INSERT OR REPLACE INTO material (entry_id, version, leaf_der, "
                          "chain_der, trusted_der, sealed_key, key_id, csr_pem) "
                          "VALUES (?,?,?,?,?,?,?,?)"));
  st.Bind(1, id)
      .Bind(2, static_cast<int64_t>(m.version))
      .BindBlob(3, m.leaf_der)
      .BindBlob(4, EncodeList(m.chain_der))
      .BindBlob(5, EncodeList(m.trusted_der));
  if (m.sealed_key) {
    st.BindBlob(6, *m.sealed_key).Bind(7, m.sealed_key_id);
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

Result<std::optional<StoredMaterial>> ReadMaterialRow(Database& db, std::string_view id) {
  WSSTEP_ASSIGN_OR_RETURN(auto st, db.Prepare("SELECT " + std::string(kMaterialColumns) +
                                              " FROM material WHERE entry_id=?"));
  st.Bind(1, id);
  WSSTEP_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<StoredMaterial>();
  StoredMaterial m = ReadMaterialColumns(SqliteRow{st});
  return std::optional<StoredMaterial>(std::move(m));
}

Status InsertAuditRow(Statement& st, const AuditEvent& ev) {
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

AuditEvent ReadAuditRow(const Statement& st) { return ReadAuditColumns(SqliteRow{st}); }

Result<LoadedEntries> LoadEntryRows(Database& db) {
  std::vector<EntryMetadata> entries;
  std::vector<int64_t> save_seq;
  {
    WSSTEP_ASSIGN_OR_RETURN(auto count, db.Prepare("SELECT count(*) FROM entries"));
    WSSTEP_ASSIGN_OR_RETURN(bool row, count.Step());
    size_t n = row ? static_cast<size_t>(count.ColumnInt64(0)) : 0;
    entries.reserve(n);
    save_seq.reserve(n);
    AdviseHugePages(entries.data(), n * sizeof(EntryMetadata));
  }
  {
    // Table order, not the save_seq index: a sequential read; sorted below.
    WSSTEP_ASSIGN_OR_RETURN(auto st,
                            db.Prepare("SELECT " + std::string(kEntryColumns) + " FROM entries"));
    for (;;) {
      WSSTEP_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      save_seq.push_back(ReadEntryColumns(SqliteRow{st}, entries.emplace_back()));
    }
  }
  IdIndex by_id(entries);
  {
    WSSTEP_ASSIGN_OR_RETURN(auto st, db.Prepare("SELECT entry_id, host, port, environment FROM "
                                                "bindings ORDER BY entry_id, ordinal"));
    WSSTEP_RETURN_IF_ERROR(JoinById(st, by_id, [](EntryMetadata& e, Statement& row) {
      e.bindings.push_back(
          Binding{row.ColumnText(1), static_cast<uint16_t>(row.ColumnInt64(2)), row.ColumnText(3)});
    }));
  }
  {
    WSSTEP_ASSIGN_OR_RETURN(
        auto st, db.Prepare("SELECT entry_id, role, " + std::string(kCertificateColumns) +
                            " FROM certificates ORDER BY entry_id, role, ordinal"));
    WSSTEP_RETURN_IF_ERROR(JoinById(st, by_id, [](EntryMetadata& e, Statement& row) {
      if (row.ColumnBlobView(1) == "leaf") {
        e.certificate = ReadCertificateColumns(SqliteRow{row}, 2);
      } else {
        e.trusted.push_back(ReadCertificateColumns(SqliteRow{row}, 2));
      }
    }));
  }
  LoadedEntries loaded;
  if (!save_seq.empty()) {
    loaded.latest_save_sequence = *std::max_element(save_seq.begin(), save_seq.end());
  }
  PutInSaveOrder(entries, save_seq);
  loaded.entries = std::move(entries);
  return loaded;
}

}  // namespace wsstep::core

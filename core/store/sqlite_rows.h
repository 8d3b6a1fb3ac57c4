// The SQLite backend's row codec: entries, bindings, certificate facts, material and
// audit events to and from the tables of core/store/sqlite_schema.h, and the bulk load
// of every entry at startup. Used by core/store/sqlite_storage.cc only.
//
// Lists and maps inside a row (chain subjects, SANs, attributes, DER lists) are one BLOB
// each, encoded by core/store/codec.h.
#ifndef WSSTEP_CORE_STORE_SQLITE_ROWS_H_
#define WSSTEP_CORE_STORE_SQLITE_ROWS_H_

#include <optional>
#include <string_view>

#include "core/db.h"
#include "core/error.h"
#include "core/model.h"
#include "core/store/audit.h"
#include "core/store/storage.h"

namespace wsstep::core {

// Inserts or replaces the `entries` row of `e`. DUPLICATE_NAME when another row has
// the name (case-insensitive).
Status WriteEntryRow(Database& db, const EntryMetadata& e, int64_t save_sequence);
// Replaces the `bindings` rows of `e`.
Status WriteBindingRows(Database& db, const EntryMetadata& e);
// Replaces the `certificates` rows of `e` (its leaf and trusted certificates).
Status WriteCertificateRows(Database& db, const EntryMetadata& e);
// Inserts or replaces the `material` row of entry `id`.
Status WriteMaterialRow(Database& db, std::string_view id, const StoredMaterial& m);
// The `material` row of entry `id`; nullopt when there is none.
Result<std::optional<StoredMaterial>> ReadMaterialRow(Database& db, std::string_view id);

// INSERT of one audit event; run it with BindAuditRow.
inline constexpr std::string_view kInsertAuditRow =
    "INSERT INTO audit (at, action, actor, entry_id, entry_name, host, port, environment, "
    "step_id, workflow_id, outcome, code, detail) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)";
// Runs `insert` (prepared from kInsertAuditRow) for `event`. Every call binds all 13
// parameters and `event` outlives the run, so the texts are bound without a copy (a use
// record is written per step).
Status InsertAuditRow(Statement& insert, const AuditEvent& event);
// An audit row selected with core/store/entry_columns.h kAuditColumns.
AuditEvent ReadAuditRow(const Statement& row);

// Every entry with its bindings and certificate facts, in save order, and the greatest
// save sequence. Allocates nothing per row beyond the metadata itself.
Result<LoadedEntries> LoadEntryRows(Database& db);

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_STORE_SQLITE_ROWS_H_

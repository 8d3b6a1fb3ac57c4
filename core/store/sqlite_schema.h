// The SQLite backend's schema (core/store/sqlite_storage.h) and its migrations, applied
// in order by Database::Migrate (core/db.h). A released migration never changes: a change
// of schema is a new migration at the end.
//
// Layout: metadata is in clear so that startup reads it without the master key; the DER
// of every certificate lives apart (table `material`) so that startup does not read it;
// a private key is only ever stored sealed (material.sealed_key, core/vault.h).
#ifndef WSSTEP_CORE_STORE_SQLITE_SCHEMA_H_
#define WSSTEP_CORE_STORE_SQLITE_SCHEMA_H_

#include <span>

#include "core/db.h"

namespace wsstep::core {

// Every migration, sorted by version.
std::span<const Migration> SqliteStoreMigrations();
// The version a store has once every migration is applied.
int SqliteStoreSchemaVersion();

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_STORE_SQLITE_SCHEMA_H_

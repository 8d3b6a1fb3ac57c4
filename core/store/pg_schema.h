// The PostgreSQL backend's schema (core/store/pg_storage.h) and its migrations: the
// SQLite backend's tables (core/store/sqlite_schema.h) plus what several plugins on one
// database need (change cursors, tombstones, notification claims). A released migration
// never changes: a change of schema is a new one at the end.
#ifndef WSSTEP_CORE_STORE_PG_SCHEMA_H_
#define WSSTEP_CORE_STORE_PG_SCHEMA_H_

#include <string>

#include "core/error.h"
#include "core/store/pg_connection.h"

namespace wsstep::core::pg {

// Creates the tables of a new database, or brings an older one up to this build's schema,
// in one transaction under an advisory lock (two plugins starting at once migrate once).
// STORAGE_ERROR naming `location` for a database of a newer schema than this build's.
Status Migrate(Connection& c, const std::string& location);

}  // namespace wsstep::core::pg

#endif  // WSSTEP_CORE_STORE_PG_SCHEMA_H_

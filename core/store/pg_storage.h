// The certificate store's PostgreSQL backend (core/store/storage.h), through libpq: the
// same tables as the SQLite backend (core/store/sqlite_schema.cc), created and upgraded
// by the backend itself, in any database the connection string names. Any libpq
// connection string works: a URI ("postgresql://wsstep@db.internal/wsstep") or
// keyword=value pairs, several hosts with target_session_attrs=read-write included.
//
//   StoreOptions options;
//   options.data_dir = dir;                          // still holds the master key file
//   options.storage = PostgresStorageFactory("postgresql://wsstep@db/wsstep");
//
// Several plugins may share one database (Storage::shared): their write transactions
// take turns under a transaction-scoped advisory lock; each change to an entry is stamped
// with the next value of a change cursor (a sequence, rising in commit order because of
// that lock), a deleted entry leaves a tombstone with its cursor, and every commit that
// changed an entry notifies the others (LISTEN/NOTIFY on "wsstep_changes"). A lost
// connection is reset on a later use, with a back-off of up to 2 s; meanwhile every
// statement answers STORAGE_UNAVAILABLE.
#ifndef WSSTEP_CORE_STORE_PG_STORAGE_H_
#define WSSTEP_CORE_STORE_PG_STORAGE_H_

#include <string>
#include <string_view>

#include "core/store/storage.h"

namespace wsstep::core {

// True for what `serve --store` takes as PostgreSQL: "postgres://...", "postgresql://...",
// or keyword=value pairs ("host=... dbname=...").
bool IsPostgresConnectionString(std::string_view store);

// Where a connection string points, without its password: "postgresql://user@host:port/db".
std::string PostgresLocation(std::string_view conninfo);

// A StorageFactory opening `conninfo`. Errors (STORAGE_ERROR, side STORE, naming the
// location and never the password): the server cannot be reached or refuses the login;
// the database holds a schema newer than this build's; another plugin holds the
// database.
StorageFactory PostgresStorageFactory(std::string conninfo);

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_STORE_PG_STORAGE_H_

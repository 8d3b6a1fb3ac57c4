// The certificate store's SQLite backend (core/store/storage.h): one file, store.db, in
// the store's data directory, in WAL mode with synchronous=FULL (core/db.h), with the
// schema of core/store/sqlite_schema.h. The default of StoreOptions::storage.
//
//   StoreOptions options;
//   options.data_dir = dir;
//   options.storage = OpenSqliteStorage;   // what an empty StoreOptions::storage means
//
// Two connections: one for the write transaction, one for reads, so that loading an
// entry's material or reading the audit log never waits for a commit's fsync.
#ifndef WSSTEP_CORE_STORE_SQLITE_STORAGE_H_
#define WSSTEP_CORE_STORE_SQLITE_STORAGE_H_

#include <memory>
#include <string_view>

#include "core/error.h"
#include "core/store/storage.h"

namespace wsstep::core {

// The database file's name inside the data directory.
inline constexpr std::string_view kSqliteStoreFileName = "store.db";
// The lock file a writable store holds for as long as it is open (its holder's pid inside).
inline constexpr std::string_view kDataDirLockFileName = "wsstep.lock";

// Opens (creating when absent) <data_dir>/store.db and brings its schema up to date.
// The storage is read-only when asked to be, or when the data directory or the file is
// not writable by this process; a read-only store must already have this build's schema
// version. A writable store locks the data directory first (an exclusive flock on
// <data_dir>/wsstep.lock, held until the storage is destroyed): while another process —
// or another storage in this one — holds it, STORAGE_ERROR "<data_dir>: the data
// directory is in use by another wsstep process (pid N)", detail data_dir and pid.
// Before opening, a file of at most an eighth of the memory (and 1 GiB) is read
// into the page cache in order (WarmPageCache, core/db.h says why). STORAGE_ERROR naming
// the file on failure.
Result<std::unique_ptr<Storage>> OpenSqliteStorage(const StorageOpenRequest& request);

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_STORE_SQLITE_STORAGE_H_

// Moving a store from one storage to another (`wsstep store copy`): an embedded SQLite
// data directory into the PostgreSQL database that several plugins will share, or back.
// Entries, bindings, certificates, sealed private keys, sealed proxy credentials, use
// counters, notification state and the audit log are copied as they are stored: no sealed key is
// opened, so no master key is needed, and the target's plugins must be given the source's.
//
//   WSSTEP_ASSIGN_OR_RETURN(auto from, OpenSqliteStorage({"/var/lib/wsstep", false}));
//   WSSTEP_ASSIGN_OR_RETURN(auto to, PostgresStorageFactory(conninfo)({"", false}));
//   WSSTEP_ASSIGN_OR_RETURN(StoreCopyReport copied, CopyStore(*from, *to, {}));
#ifndef WSSTEP_CORE_STORE_STORE_COPY_H_
#define WSSTEP_CORE_STORE_STORE_COPY_H_

#include <cstddef>
#include <string>

#include "core/error.h"
#include "core/store/storage.h"

namespace wsstep::core {

struct StoreCopyOptions {
  // Copy into a target that already holds entries (sealed under the same master key).
  // Without it, such a target is refused and nothing is written.
  bool into_non_empty = false;
};

struct StoreCopyReport {
  size_t entries = 0;
  size_t private_keys = 0;  // sealed keys copied (still sealed)
  size_t audit_events = 0;
  size_t proxy_credentials = 0;  // copied still sealed
  std::string master_key_id;     // the key every plugin on the target needs ("" if none yet)
};

// Copies everything `from` holds into `to`, in one transaction of `to`: all or nothing.
// Errors (nothing written): STORAGE_ERROR from either side; FAILED_PRECONDITION when the
// target holds entries and options.into_non_empty is not set, or when its entries are
// sealed under another master key than the source's; DUPLICATE_NAME when an entry of the
// source has the name of another entry of the target, or a proxy credential of the
// source the name of one of the target's.
Result<StoreCopyReport> CopyStore(Storage& from, Storage& to, const StoreCopyOptions& options);

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_STORE_STORE_COPY_H_

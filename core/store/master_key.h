// The certificate store's use of its master key (core/vault.h): where the key comes from
// when the store opens (CertificateStore::Open documents the order of sources and the
// recovery of an interrupted rotation), how the store recognizes it, and how each
// entry's private key is sealed under it. Internal to the store, but for
// MasterKeyFilePath, which is also for whoever has to say where the key is (the plugin's
// --print-config).
//
//   WSSTEP_ASSIGN_OR_RETURN(MasterKey key, ObtainMasterKey(options, key_path, stored_id, ro));
//   Vault vault(key.Clone());
//   WSSTEP_RETURN_IF_ERROR(CheckMasterKey(vault, *record));
//   WSSTEP_ASSIGN_OR_RETURN(std::string blob, vault.Seal(pkcs8, SealedKeyAad(entry_id)));
#ifndef WSSTEP_CORE_STORE_MASTER_KEY_H_
#define WSSTEP_CORE_STORE_MASTER_KEY_H_

#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/store/storage.h"
#include "core/vault.h"

namespace wsstep::core {

// The key file a store uses when no master key is given directly: `master_key_file`,
// else <data_dir>/master.key (StoreOptions::master_key_file).
std::string MasterKeyFilePath(std::string_view data_dir, std::string_view master_key_file);

// The master key for a store whose recorded key id is `stored_id` (nullopt: a new store):
// `given` when set; else the key file at `key_path`, created (0600) only for a new
// store. A "<key_path>.new" left by an interrupted rotation is installed when the store
// was re-encrypted under it and discarded otherwise (a read-only store leaves the files
// alone). MASTER_KEY_ERROR naming the file and the store's key id when the key is
// missing for an existing store; STORAGE_ERROR when a file cannot be written.
Result<MasterKey> ObtainMasterKey(std::optional<MasterKey> given, const std::string& key_path,
                                  const std::string& data_dir,
                                  const std::optional<std::string>& stored_id, bool read_only);

// Removes what a crash in MasterKey::WriteFile may leave: "<key file>[.new].tmp-XXXXXX",
// half-written copies of a key that must not linger.
void RemoveStaleKeyTemporaries(const std::string& key_path);

// The record that lets the next Open recognize `vault`'s primary key.
Result<MasterKeyRecord> MasterKeyRecordFor(const Vault& vault);
// OK when `vault`'s primary key is the one `record` was made with; MASTER_KEY_ERROR
// naming both key ids otherwise.
Status CheckMasterKey(const Vault& vault, const MasterKeyRecord& record);

// The associated data of entry `entry_id`'s sealed private key: a blob moved to another
// entry fails to open.
std::string SealedKeyAad(std::string_view entry_id);

// Within `tx`: every stored private key opened with `from` and sealed again under `to`'s
// primary key. Returns how many. The first key that does not open stops it (the caller
// does not commit).
Result<size_t> ResealStoredKeys(Storage::Transaction& tx, const Vault& from, const Vault& to);

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_STORE_MASTER_KEY_H_

#include "core/store/master_key.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <utility>

namespace wsstep::core {
namespace {

// A known value sealed under the master key, so that a key with a forged id is
// recognized as wrong too.
constexpr std::string_view kKeyCheckPlain = "wsstep master key check";
constexpr std::string_view kKeyCheckAad = "meta/key_check";

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

std::string MasterKeyFilePath(std::string_view data_dir, std::string_view master_key_file) {
  if (!master_key_file.empty()) return std::string(master_key_file);
  while (data_dir.size() > 1 && data_dir.back() == '/') data_dir.remove_suffix(1);
  return std::string(data_dir) + "/master.key";
}

Result<MasterKey> ObtainMasterKey(std::optional<MasterKey> given, const std::string& key_path,
                                  const std::string& data_dir,
                                  const std::optional<std::string>& stored_id, bool read_only) {
  if (given) return std::move(*given);
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
                 key_path + ": the master key file is missing, and the store in " + data_dir +
                     " was written with master key id " + *stored_id,
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

Result<MasterKeyRecord> MasterKeyRecordFor(const Vault& vault) {
  MasterKeyRecord record;
  record.key_id = vault.key_id();
  WSSTEP_ASSIGN_OR_RETURN(record.check, vault.Seal(SecretBytes(kKeyCheckPlain), kKeyCheckAad));
  return record;
}

Status CheckMasterKey(const Vault& vault, const MasterKeyRecord& record) {
  if (vault.key_id() != record.key_id) return MasterKeyMismatch(vault.key_id(), record.key_id);
  if (record.check) {
    auto opened = vault.Open(*record.check, kKeyCheckAad);
    if (!opened.ok() || opened->view() != kKeyCheckPlain) {
      return MasterKeyMismatch(vault.key_id(), record.key_id);
    }
  }
  return {};
}

std::string SealedKeyAad(std::string_view entry_id) {
  return "entry/" + std::string(entry_id) + "/key";
}

Result<size_t> ResealStoredKeys(Storage::Transaction& tx, const Vault& from, const Vault& to) {
  return tx.ResealKeys(
      to.key_id(),
      [&](const std::string& entry_id, std::string_view sealed) -> Result<std::string> {
        const std::string aad = SealedKeyAad(entry_id);
        WSSTEP_ASSIGN_OR_RETURN(SecretBytes plain, from.Open(sealed, aad));
        return to.Seal(plain, aad);
      });
}

}  // namespace wsstep::core

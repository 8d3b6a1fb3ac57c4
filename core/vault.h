// Encryption at rest (PRODUCT.md §1 "Persistence", §6): the master key and AES-256-GCM
// sealing of the store's secret columns.
//
// Master key: 32 random bytes. Its id is the first 8 bytes of SHA-256(key) in hex
// (16 characters); the id is stored beside the data so a wrong key is recognized at once
// and named, never "decryption failed". Sources (the caller picks one; the vault never
// reads the environment itself):
//   - a key file: MasterKey::LoadFile(path); created on a store's first start with
//     MasterKey::Generate() + WriteFile(path) (0600, written atomically);
//   - bytes from configuration, e.g. WSSTEP_MASTER_KEY=<base64 of 32 bytes>:
//     MasterKey::FromBase64(getenv(...), "WSSTEP_MASTER_KEY").
// A key file holds the base64 text and a newline; LoadFile also accepts 32 raw bytes.
//
// Sealed blob layout (all offsets in bytes):
//   [0]      format version, 0x01
//   [1..8]   key id, raw (the first 8 bytes of SHA-256(master key))
//   [9..20]  nonce, 12 random bytes
//   [21..n-16) ciphertext
//   [n-16..n)  GCM tag
// The GCM additional data is the 9-byte header followed by the caller's associated data,
// which names the row and column the blob belongs to ("entry/<id>/key"), so a blob moved
// to another row, or a header edited, fails authentication.
//
// Rotation: a Vault holds one primary key (used to seal) and any number of retired keys
// (still accepted by Open), so readers keep working while a store re-encrypts under a
// new key. See CertificateStore::RotateMasterKey for the crash-safe order of steps.
#ifndef WSSTEP_CORE_VAULT_H_
#define WSSTEP_CORE_VAULT_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/secret.h"

namespace wsstep::core {

inline constexpr size_t kMasterKeySize = 32;
inline constexpr size_t kSealOverhead = 1 + 8 + 12 + 16;

class MasterKey {
 public:
  // 32 bytes from the OS random generator.
  static Result<MasterKey> Generate();
  // Exactly 32 bytes. `source` names where they came from, for the error message.
  static Result<MasterKey> FromBytes(SecretBytes raw, std::string_view source);
  // Base64 (standard alphabet, padding, surrounding whitespace ignored) of 32 bytes.
  static Result<MasterKey> FromBase64(std::string_view text, std::string_view source);
  // A key file: base64 text, or 32 raw bytes. MASTER_KEY_ERROR naming the path when it
  // is missing, unreadable or not a key. The file's content never appears in an error.
  static Result<MasterKey> LoadFile(const std::string& path);

  // Writes the key to `path` as base64 + "\n", mode 0600, atomically: a temporary file in
  // the same directory, fsync, rename over `path`, fsync of the directory. Either the old
  // file or the complete new one exists after a crash.
  Status WriteFile(const std::string& path) const;

  // "0123456789abcdef": first 8 bytes of SHA-256(key), lower-case hex.
  const std::string& id() const { return id_; }
  const SecretBytes& bytes() const { return key_; }
  MasterKey Clone() const { return MasterKey(key_.Clone(), id_); }

  MasterKey(MasterKey&&) noexcept = default;
  MasterKey& operator=(MasterKey&&) noexcept = default;

 private:
  MasterKey(SecretBytes key, std::string id) : key_(std::move(key)), id_(std::move(id)) {}
  SecretBytes key_;
  std::string id_;
};

class Vault {
 public:
  explicit Vault(MasterKey primary, std::vector<MasterKey> retired = {});

  // The id of the key new blobs are sealed with.
  const std::string& key_id() const { return keys_.front().id(); }

  // AES-256-GCM under the primary key, fresh random nonce. `associated_data` names the
  // blob's place (row and column); Open must be given the same. Not secret.
  Result<std::string> Seal(const SecretBytes& plaintext, std::string_view associated_data) const;

  // Verifies and decrypts a blob sealed by the primary or a retired key. Errors:
  // MASTER_KEY_ERROR "the master key (id X) does not match the key this store was written
  // with (id Y)" when no held key has the blob's key id; STORAGE_ERROR when the blob is
  // malformed or fails authentication (damaged, or moved from another row).
  Result<SecretBytes> Open(std::string_view blob, std::string_view associated_data) const;

  // True when Open would use a retired key: the blob must be re-sealed by a rotation.
  bool NeedsReseal(std::string_view blob) const;

  // The key id a blob was sealed with (hex), or an error for a malformed blob.
  static Result<std::string> KeyIdOf(std::string_view blob);

 private:
  const MasterKey* FindKey(std::string_view raw_id) const;
  std::vector<MasterKey> keys_;  // primary first
};

// The MASTER_KEY_ERROR for a store sealed under `store_key_id` opened with `given_key_id`.
Error MasterKeyMismatch(std::string_view given_key_id, std::string_view store_key_id);

// rename(from, to) followed by an fsync of the directory holding `to`, so the rename
// itself survives a crash. STORAGE_ERROR naming both paths on failure.
Status RenameDurably(const std::string& from, const std::string& to);

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_VAULT_H_

#include "core/vault.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>

#include "core/ossl.h"

namespace wsstep::core {
namespace {

constexpr uint8_t kBlobVersion = 0x01;
constexpr size_t kIdSize = 8;
constexpr size_t kNonceSize = 12;
constexpr size_t kTagSize = 16;
constexpr size_t kHeaderSize = 1 + kIdSize;

std::string Hex(const uint8_t* p, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out += kHex[p[i] >> 4];
    out += kHex[p[i] & 0xf];
  }
  return out;
}

// The raw 8-byte id; hex of it is MasterKey::id().
std::string RawKeyId(const SecretBytes& key) {
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(key.data(), key.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(md), kIdSize);
}

std::string RawToHex(std::string_view raw) {
  return Hex(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
}

Error KeyError(std::string message, std::string hint) {
  return Error(Code::kMasterKeyError, std::move(message), std::move(hint), Side::kStore);
}

Error Damaged(std::string_view associated_data, std::string_view why) {
  std::string what =
      associated_data.empty() ? "sealed value" : "sealed value " + std::string(associated_data);
  return Error(Code::kStorageError, what + ": " + std::string(why),
               "the store file was damaged or edited; restore it from a backup", Side::kStore);
}

// Decodes base64 into `out`; false on any character outside the alphabet or bad padding.
bool DecodeBase64(std::string_view text, SecretBytes& out) {
  std::string clean;
  clean.reserve(text.size());
  for (char c : text) {
    if (!std::isspace(static_cast<unsigned char>(c))) clean += c;
  }
  if (clean.empty() || clean.size() % 4 != 0) {
    OPENSSL_cleanse(clean.data(), clean.size());
    return false;
  }
  size_t pad = 0;
  if (clean.back() == '=') ++pad;
  if (clean.size() >= 2 && clean[clean.size() - 2] == '=') ++pad;
  SecretBytes buf(clean.size() / 4 * 3);
  int n = EVP_DecodeBlock(buf.data(), reinterpret_cast<const unsigned char*>(clean.data()),
                          static_cast<int>(clean.size()));
  OPENSSL_cleanse(clean.data(), clean.size());
  if (n < 0 || static_cast<size_t>(n) < pad) return false;
  buf.Resize(static_cast<size_t>(n) - pad);
  out = std::move(buf);
  return true;
}

std::string EncodeBase64(const SecretBytes& bytes) {
  std::string out(((bytes.size() + 2) / 3) * 4 + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Error FileError(const std::string& path, std::string_view what, int err) {
  return Error(Code::kStorageError, path + ": " + std::string(what) + ": " + std::strerror(err),
               err == ENOSPC ? "the disk is full; free space and retry"
                             : "check that the directory exists and the plugin's user may write it",
               Side::kStore);
}

Status FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return FileError(dir, "cannot open the directory to sync it", errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return FileError(dir, "cannot sync the directory", err);
  return {};
}

}  // namespace

// ---- MasterKey ----

Result<MasterKey> MasterKey::Generate() {
  SecretBytes key(kMasterKeySize);
  if (RAND_bytes(key.data(), static_cast<int>(key.size())) != 1) {
    return KeyError(
        "cannot generate a master key: the random generator failed: " + ossl::DrainErrors(),
        "check the system's entropy source");
  }
  return FromBytes(std::move(key), "generated key");
}

Result<MasterKey> MasterKey::FromBytes(SecretBytes raw, std::string_view source) {
  if (raw.size() != kMasterKeySize) {
    return KeyError(
        std::string(source) + ": a master key is 32 bytes, got " + std::to_string(raw.size()),
        "generate one with: openssl rand -base64 32");
  }
  std::string id = RawToHex(RawKeyId(raw));
  return MasterKey(std::move(raw), std::move(id));
}

Result<MasterKey> MasterKey::FromBase64(std::string_view text, std::string_view source) {
  SecretBytes raw;
  if (!DecodeBase64(text, raw)) {
    return KeyError(std::string(source) + ": not base64 of a 32-byte master key",
                    "generate one with: openssl rand -base64 32");
  }
  return FromBytes(std::move(raw), source);
}

Result<MasterKey> MasterKey::LoadFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return KeyError(path + ": cannot read the master key file: " + std::strerror(err),
                    err == ENOENT ? "restore the key file this store was created with, or "
                                    "supply the key through the configured source"
                                  : "make the key file readable by the plugin's user only");
  }
  SecretBytes content;
  uint8_t buf[256];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      OPENSSL_cleanse(buf, sizeof(buf));
      return KeyError(path + ": cannot read the master key file: " + std::strerror(err), "");
    }
    if (n == 0) break;
    content.Append(std::span<const uint8_t>(buf, static_cast<size_t>(n)));
    if (content.size() > 4096) break;  // no key file is that large
  }
  ::close(fd);
  OPENSSL_cleanse(buf, sizeof(buf));
  if (content.size() == kMasterKeySize) {
    // Raw bytes, unless it happens to be 32 characters of base64 text (24 bytes): that
    // would be a too-short key either way, so raw is the only useful reading.
    return FromBytes(std::move(content), path);
  }
  SecretBytes raw;
  if (!DecodeBase64(content.view(), raw)) {
    return KeyError(path + ": not a master key file (expected the base64 of 32 bytes)",
                    "generate one with: openssl rand -base64 32 > " + path);
  }
  return FromBytes(std::move(raw), path);
}

Status MasterKey::WriteFile(const std::string& path) const {
  std::string tmp = path + ".tmp-XXXXXX";
  int fd = ::mkstemp(tmp.data());  // mode 0600
  if (fd < 0) return FileError(path, "cannot create the master key file", errno);
  std::string text = EncodeBase64(key_) + "\n";
  const char* p = text.data();
  size_t left = text.size();
  int err = 0;
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = n < 0 ? errno : EIO;
      break;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  OPENSSL_cleanse(text.data(), text.size());
  if (err == 0 && ::fchmod(fd, 0600) != 0) err = errno;
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    return FileError(path, "cannot write the master key file", err);
  }
  Status renamed = RenameDurably(tmp, path);
  if (!renamed.ok()) ::unlink(tmp.c_str());
  return renamed;
}

// ---- Vault ----

Vault::Vault(MasterKey primary, std::vector<MasterKey> retired) {
  keys_.push_back(std::move(primary));
  for (auto& k : retired) {
    if (k.id() != keys_.front().id()) keys_.push_back(std::move(k));
  }
}

const MasterKey* Vault::FindKey(std::string_view raw_id) const {
  std::string hex = RawToHex(raw_id);
  for (const auto& k : keys_) {
    if (k.id() == hex) return &k;
  }
  return nullptr;
}

Result<std::string> Vault::Seal(const SecretBytes& plaintext,
                                std::string_view associated_data) const {
  const MasterKey& key = keys_.front();
  if (plaintext.size() > static_cast<size_t>(INT_MAX) - kSealOverhead) {
    return Error(Code::kInvalidArgument,
                 "sealed value " + std::string(associated_data) + ": too large to seal");
  }
  std::string blob(kHeaderSize + kNonceSize + plaintext.size() + kTagSize, '\0');
  auto* out = reinterpret_cast<uint8_t*>(blob.data());
  out[0] = kBlobVersion;
  std::string raw_id = RawKeyId(key.bytes());
  std::memcpy(out + 1, raw_id.data(), kIdSize);
  uint8_t* nonce = out + kHeaderSize;
  if (RAND_bytes(nonce, kNonceSize) != 1) {
    return Error(Code::kInternal,
                 "cannot seal: the random generator failed: " + ossl::DrainErrors());
  }
  std::string aad(blob.data(), kHeaderSize);
  aad.append(associated_data);

  ossl::EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  uint8_t* ct = nonce + kNonceSize;
  bool ok =
      ctx != nullptr &&
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceSize, nullptr) == 1 &&
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, key.bytes().data(), nonce) == 1 &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const uint8_t*>(aad.data()),
                        static_cast<int>(aad.size())) == 1 &&
      EVP_EncryptUpdate(ctx.get(), ct, &len, plaintext.data(),
                        static_cast<int>(plaintext.size())) == 1 &&
      EVP_EncryptFinal_ex(ctx.get(), ct + len, &len) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize, ct + plaintext.size()) == 1;
  if (!ok) {
    return Error(Code::kInternal,
                 "cannot seal " + std::string(associated_data) + ": " + ossl::DrainErrors());
  }
  return blob;
}

Result<SecretBytes> Vault::Open(std::string_view blob, std::string_view associated_data) const {
  if (blob.size() < kSealOverhead) return Damaged(associated_data, "too short");
  const auto* in = reinterpret_cast<const uint8_t*>(blob.data());
  if (in[0] != kBlobVersion) {
    return Damaged(associated_data, "unknown format version " + std::to_string(in[0]));
  }
  const MasterKey* key = FindKey(blob.substr(1, kIdSize));
  if (key == nullptr) {
    return MasterKeyMismatch(key_id(), RawToHex(blob.substr(1, kIdSize)));
  }
  const uint8_t* nonce = in + kHeaderSize;
  const uint8_t* ct = nonce + kNonceSize;
  size_t ct_len = blob.size() - kSealOverhead;
  std::string aad(blob.substr(0, kHeaderSize));
  aad.append(associated_data);
  uint8_t tag[kTagSize];
  std::memcpy(tag, ct + ct_len, kTagSize);

  SecretBytes plain(ct_len);
  ossl::EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  int final_len = 0;
  bool ok =
      ctx != nullptr &&
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceSize, nullptr) == 1 &&
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, key->bytes().data(), nonce) == 1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const uint8_t*>(aad.data()),
                        static_cast<int>(aad.size())) == 1 &&
      EVP_DecryptUpdate(ctx.get(), plain.data(), &len, ct, static_cast<int>(ct_len)) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag) == 1 &&
      EVP_DecryptFinal_ex(ctx.get(), plain.data() + len, &final_len) == 1;
  if (!ok) {
    ossl::ClearErrors();
    return Damaged(associated_data, "failed authentication (damaged, or copied from another row)");
  }
  return plain;
}

bool Vault::NeedsReseal(std::string_view blob) const {
  if (blob.size() < kSealOverhead) return false;
  return RawToHex(blob.substr(1, kIdSize)) != key_id();
}

Result<std::string> Vault::KeyIdOf(std::string_view blob) {
  if (blob.size() < kSealOverhead || static_cast<uint8_t>(blob[0]) != kBlobVersion) {
    return Damaged("", "not a sealed value");
  }
  return RawToHex(blob.substr(1, kIdSize));
}

Error MasterKeyMismatch(std::string_view given_key_id, std::string_view store_key_id) {
  return KeyError("the master key (id " + std::string(given_key_id) +
                      ") does not match the key this store was written with (id " +
                      std::string(store_key_id) + ")",
                  "supply the master key this store was created with (key file, or the "
                  "configured key source); the data is unchanged")
      .With("given_key_id", std::string(given_key_id))
      .With("store_key_id", std::string(store_key_id));
}

Status RenameDurably(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    int err = errno;
    return FileError(to, "cannot rename " + from + " to it", err);
  }
  return FsyncDir(DirName(to));
}

}  // namespace wsstep::core

#include "core/jks.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <exception>
#include <memory>
#include <span>
#include <utility>

#include "core/import_error.h"
#include "core/java_stream.h"
#include "core/ossl.h"
#include "core/private_key.h"

namespace wsstep::core {
namespace {

constexpr uint32_t kJksMagic = 0xFEEDFEED;
constexpr uint32_t kJceksMagic = 0xCECECECE;
constexpr uint32_t kTagPrivateKey = 1;
constexpr uint32_t kTagTrustedCert = 2;
constexpr uint32_t kTagSecretKey = 3;  // JCEKS only

// Caps far above anything keytool writes; they bound work on hostile input (every length
// is also checked against the bytes that are left).
constexpr uint32_t kMaxEntries = 10'000;
constexpr uint32_t kMaxChainLength = 100;
constexpr uint32_t kMaxCertificateSize = 1 << 20;
constexpr uint32_t kMaxKeyBlobSize = 1 << 20;
// The JDK refuses more than this many PBE iterations when it recovers a JCEKS key; so do
// we, as each one costs two MD5 rounds. The fuzz targets' build caps it like every other
// KDF (core/private_key.h).
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
constexpr int64_t kMaxPbeIterations = kMaxKdfIterations;
#else
constexpr int64_t kMaxPbeIterations = 5'000'000;
#endif

constexpr size_t kSha1Size = 20;
constexpr std::string_view kIntegritySalt = "Mighty Aphrodite";  // fixed by the JDK
constexpr std::string_view kCertificateType = "X.509";
// Sun's proprietary JKS key protector, and JCEKS's PBEWithMD5AndTripleDES.
constexpr const char* kJksKeyProtectorOid = "1.3.6.1.4.1.42.2.17.1.1";
constexpr const char* kJcePbeOid = "1.3.6.1.4.1.42.2.19.1";

using EvpMdPtr = std::unique_ptr<EVP_MD, ossl::Deleter<EVP_MD_free>>;
using AsnObjectPtr = std::unique_ptr<ASN1_OBJECT, ossl::Deleter<ASN1_OBJECT_free>>;
using PbeParamPtr = std::unique_ptr<PBEPARAM, ossl::Deleter<PBEPARAM_free>>;

using Bytes = std::span<const uint8_t>;

Bytes AsBytes(std::string_view s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

// ---------------------------------------------------------------------------------------
// Errors

Error Malformed(std::string_view input, size_t offset, std::string_view what) {
  return ImportError(Code::kInvalidCertificateFormat, input,
                     "not a valid Java key store: " + std::string(what) + " (offset " +
                         std::to_string(offset) + ")",
                     "Upload the .jks or .jceks file exactly as keytool wrote it; this one is "
                     "truncated, corrupted or not a key store.")
      .With("offset", std::to_string(offset));
}

Error WrongStorePassword(std::string_view input) {
  return ImportError(Code::kWrongPassword, input, "wrong key store password",
                     "Enter the key store password (keytool -storepass); it is case-sensitive, "
                     "and spaces and accents count. If it is right, the file was modified "
                     "after it was saved.");
}

Error WrongKeyPassword(std::string_view input, std::string_view alias) {
  return ImportError(Code::kWrongPassword, input,
                     "wrong key password for entry '" + std::string(alias) + "'",
                     "Enter the key password of this entry (keytool -keypass) when it differs "
                     "from the key store password.")
      .With("alias", std::string(alias));
}

std::string EntryLabel(size_t index, std::string_view alias) {
  std::string s = "entry " + std::to_string(index + 1);
  if (!alias.empty()) s += " ('" + std::string(alias) + "')";
  return s;
}

// ---------------------------------------------------------------------------------------
// Password encodings

// Strict UTF-8 decoding of one code point at `i`; false on any malformation (overlong
// forms, surrogates, beyond U+10FFFF, truncation).
bool DecodeUtf8(Bytes in, size_t& i, uint32_t& cp) {
  const uint8_t b0 = in[i];
  size_t len;
  uint32_t min;
  if (b0 < 0x80) {
    cp = b0;
    i += 1;
    return true;
  } else if ((b0 & 0xE0) == 0xC0) {
    len = 2, min = 0x80, cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, min = 0x800, cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, min = 0x10000, cp = b0 & 0x07;
  } else {
    return false;
  }
  if (in.size() - i < len) return false;
  for (size_t k = 1; k < len; ++k) {
    if ((in[i + k] & 0xC0) != 0x80) return false;
    cp = (cp << 6) | (in[i + k] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
  i += len;
  return true;
}

// The password as Java sees it: its char[] (UTF-16 code units), each unit as two
// big-endian bytes. That is what the integrity digest and the JKS key protector hash.
SecretBytes PasswordUtf16Be(const SecretBytes& utf8) {
  const Bytes in = utf8.span();
  // Every UTF-8 byte yields at most one UTF-16 unit, so 2 * size bounds the output and
  // the buffer never reallocates (which would leave an unwiped copy behind).
  SecretBytes out(in.size() * 2);
  size_t n = 0;
  bool valid = true;
  for (size_t i = 0; i < in.size();) {
    uint32_t cp = 0;
    if (!DecodeUtf8(in, i, cp)) {
      valid = false;
      break;
    }
    auto put_unit = [&out, &n](uint32_t unit) {
      out.data()[n++] = static_cast<uint8_t>(unit >> 8);
      out.data()[n++] = static_cast<uint8_t>(unit);
    };
    if (cp >= 0x10000) {
      put_unit(0xD800 + ((cp - 0x10000) >> 10));
      put_unit(0xDC00 + ((cp - 0x10000) & 0x3FF));
    } else {
      put_unit(cp);
    }
  }
  if (!valid) {
    // Not UTF-8: take each byte as one Latin-1 character, as a Java program reading the
    // bytes with ISO-8859-1 would.
    n = 0;
    for (uint8_t b : in) {
      out.data()[n++] = 0;
      out.data()[n++] = b;
    }
  }
  out.Resize(n);
  return out;
}

// PBEWithMD5AndTripleDES takes one byte per char: the low byte (Java only accepts
// printable ASCII there).
SecretBytes PasswordLowBytes(const SecretBytes& utf16be) {
  SecretBytes out(utf16be.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) out.data()[i] = utf16be.data()[2 * i + 1];
  return out;
}

// ---------------------------------------------------------------------------------------
// Hashing

// A reusable digest context for the many small hashes of the key protectors.
class Hasher {
 public:
  explicit Hasher(const char* name)
      : md_(EVP_MD_fetch(nullptr, name, nullptr)), ctx_(EVP_MD_CTX_new()) {}
  bool ok() const { return md_ != nullptr && ctx_ != nullptr; }
  bool Begin() { return EVP_DigestInit_ex(ctx_.get(), md_.get(), nullptr) == 1; }
  bool Update(Bytes b) { return EVP_DigestUpdate(ctx_.get(), b.data(), b.size()) == 1; }
  bool Finish(uint8_t* out) { return EVP_DigestFinal_ex(ctx_.get(), out, nullptr) == 1; }
  // Digest of a || b in one call.
  bool Digest(Bytes a, Bytes b, uint8_t* out) {
    return Begin() && Update(a) && Update(b) && Finish(out);
  }

 private:
  EvpMdPtr md_;
  ossl::EvpMdCtxPtr ctx_;
};

// Wipes a stack buffer of intermediate key material on scope exit.
template <size_t N>
struct WipedBuffer {
  std::array<uint8_t, N> b{};
  ~WipedBuffer() { OPENSSL_cleanse(b.data(), b.size()); }
  uint8_t* data() { return b.data(); }
  Bytes span() const { return b; }
};

// ---------------------------------------------------------------------------------------
// Container layout

struct RawEntry {
  uint32_t tag = 0;
  std::string alias;
  int64_t created_ms = 0;
  std::string_view key_blob;            // tag 1: EncryptedPrivateKeyInfo DER
  std::vector<std::string_view> certs;  // tag 1: chain; tag 2: the one certificate
  std::vector<size_t> cert_offsets;
  size_t offset = 0;
};

struct Layout {
  std::vector<RawEntry> entries;
  size_t digest_offset = 0;
};

class LayoutParser {
 public:
  LayoutParser(std::string_view bytes, std::string_view input) : r_(bytes), input_(input) {}

  Result<Layout> Parse() {
    uint32_t magic, count;
    if (!r_.U32(magic)) return Truncated("magic");
    const bool jceks = magic == kJceksMagic;
    if (magic != kJksMagic && !jceks) return Malformed(input_, 0, "unknown magic number");
    size_t at = r_.offset();
    if (!r_.U32(version_)) return Truncated("version");
    if (version_ != 1 && version_ != 2) {
      return Malformed(input_, at, "unsupported version " + std::to_string(version_));
    }
    at = r_.offset();
    if (!r_.U32(count)) return Truncated("entry count");
    if (count > kMaxEntries) {
      return Malformed(
          input_, at,
          "entry count " + std::to_string(count) + " exceeds " + std::to_string(kMaxEntries));
    }
    Layout layout;
    for (uint32_t i = 0; i < count; ++i) {
      RawEntry e;
      e.offset = r_.offset();
      WSSTEP_RETURN_IF_ERROR(ParseEntry(i, jceks, e));
      if (e.tag != kTagSecretKey) layout.entries.push_back(std::move(e));
    }
    layout.digest_offset = r_.offset();
    if (r_.remaining() < kSha1Size) return Truncated("integrity digest");
    // Bytes after the digest are ignored, as the JDK ignores them.
    return layout;
  }

 private:
  Error Truncated(std::string_view what) {
    return Malformed(input_, r_.offset(), "truncated in " + std::string(what));
  }

  Status ParseEntry(uint32_t index, bool jceks, RawEntry& e) {
    std::string label = EntryLabel(index, "");
    if (!r_.U32(e.tag)) return Truncated(label + " tag");
    const size_t alias_at = r_.offset();
    std::string_view raw_alias;
    if (!r_.Utf(raw_alias)) return Truncated(label + " alias");
    if (!java::ModifiedUtf8ToUtf8(raw_alias, e.alias)) {
      return Malformed(input_, alias_at, label + ": alias is not valid modified UTF-8");
    }
    label = EntryLabel(index, e.alias);
    uint64_t created;
    if (!r_.U64(created)) return Truncated(label + " date");
    e.created_ms = static_cast<int64_t>(created);
    switch (e.tag) {
      case kTagPrivateKey: {
        uint32_t len, chain;
        size_t at = r_.offset();
        if (!r_.U32(len)) return Truncated(label + " key length");
        if (len > kMaxKeyBlobSize) return Malformed(input_, at, label + ": key is too large");
        if (!r_.Take(len, e.key_blob)) return Truncated(label + " key");
        at = r_.offset();
        if (!r_.U32(chain)) return Truncated(label + " chain length");
        if (chain > kMaxChainLength) {
          return Malformed(input_, at,
                           label + ": chain of " + std::to_string(chain) +
                               " certificates exceeds " + std::to_string(kMaxChainLength));
        }
        for (uint32_t k = 0; k < chain; ++k) {
          WSSTEP_RETURN_IF_ERROR(
              ParseCertificate(label + " certificate " + std::to_string(k + 1), e));
        }
        return Status();
      }
      case kTagTrustedCert:
        return ParseCertificate(label + " certificate", e);
      case kTagSecretKey:
        if (jceks) {
          if (!java::SkipSerializedObject(r_)) {
            return Malformed(input_, r_.offset(), label + ": unreadable secret-key object");
          }
          return Status();
        }
        [[fallthrough]];
      default:
        return Malformed(input_, e.offset, label + ": unknown entry tag " + std::to_string(e.tag));
    }
  }

  // (v2: a writeUTF certificate type) then a u4-length DER certificate.
  Status ParseCertificate(const std::string& what, RawEntry& e) {
    if (version_ == 2) {
      const size_t at = r_.offset();
      std::string_view type;
      if (!r_.Utf(type)) return Truncated(what + " type");
      if (type != kCertificateType) {
        return Malformed(input_, at, what + ": certificate type is not X.509");
      }
    }
    const size_t at = r_.offset();
    uint32_t len;
    std::string_view der;
    if (!r_.U32(len)) return Truncated(what + " length");
    if (len > kMaxCertificateSize) return Malformed(input_, at, what + " is too large");
    if (!r_.Take(len, der)) return Truncated(what);
    e.certs.push_back(der);
    e.cert_offsets.push_back(at + 4);
    return Status();
  }

  java::DataReader r_;
  std::string_view input_;
  uint32_t version_ = 0;
};

// ---------------------------------------------------------------------------------------
// Integrity and key protection

// SHA1(password as UTF-16BE || "Mighty Aphrodite" || everything before the digest),
// compared in constant time.
Result<bool> IntegrityMatches(std::string_view bytes, size_t digest_offset,
                              const SecretBytes& password_utf16be) {
  Hasher sha1("SHA1");
  WipedBuffer<kSha1Size> digest;
  if (!sha1.ok() || !sha1.Begin() || !sha1.Update(password_utf16be.span()) ||
      !sha1.Update(AsBytes(kIntegritySalt)) ||
      !sha1.Update(AsBytes(bytes.substr(0, digest_offset))) || !sha1.Finish(digest.data())) {
    return Error(Code::kInternal, "SHA-1 failed: " + ossl::DrainErrors());
  }
  return ConstantTimeEquals(digest.span(), AsBytes(bytes.substr(digest_offset, kSha1Size)));
}

// How one decryption attempt ended: the key, a password that does not fit, or an error
// (malformed protection data, crypto failure) that no other password would change.
struct Decrypted {
  std::optional<SecretBytes> key;  // nullopt with ok status: wrong password
};

// Sun's JKS key protector: encryptedData = salt(20) || ciphertext || check(20). The
// keystream is SHA1(pwd || salt), then SHA1(pwd || previous block), ...; the check is
// SHA1(pwd || plaintext).
Result<Decrypted> UnprotectJks(Bytes data, const SecretBytes& password_utf16be,
                               const std::string& what) {
  if (data.size() < 2 * kSha1Size) {
    return Error(Code::kInvalidCertificateFormat, what + ": protected key is too short");
  }
  const Bytes salt = data.first(kSha1Size);
  const Bytes cipher = data.subspan(kSha1Size, data.size() - 2 * kSha1Size);
  const Bytes check = data.last(kSha1Size);
  Hasher sha1("SHA1");
  if (!sha1.ok()) return Error(Code::kInternal, "SHA-1 unavailable: " + ossl::DrainErrors());
  SecretBytes plain(cipher.size());
  WipedBuffer<kSha1Size> block;
  std::memcpy(block.data(), salt.data(), kSha1Size);
  for (size_t off = 0; off < cipher.size(); off += kSha1Size) {
    if (!sha1.Digest(password_utf16be.span(), block.span(), block.data())) {
      return Error(Code::kInternal, "SHA-1 failed: " + ossl::DrainErrors());
    }
    const size_t n = std::min(kSha1Size, cipher.size() - off);
    for (size_t k = 0; k < n; ++k) plain.data()[off + k] = cipher[off + k] ^ block.data()[k];
  }
  if (!sha1.Digest(password_utf16be.span(), plain.span(), block.data())) {
    return Error(Code::kInternal, "SHA-1 failed: " + ossl::DrainErrors());
  }
  if (!ConstantTimeEquals(block.span(), check)) return Decrypted{};
  return Decrypted{std::move(plain)};
}

// JCEKS's PBEWithMD5AndTripleDES (a Sun variant of PKCS#5 PBES1). The 8-byte salt is
// split in halves; each half is hashed iteratively, MD5(previous || password), into 16
// bytes; the 32 bytes are the 3DES key (24) and the CBC IV (8). If the halves are equal
// the JDK first permutes the first half [a,b,c,d] into [d,a,b,d] (a slip in its
// "reverse the half" loop that every JDK keeps for compatibility).
Result<Decrypted> UnprotectJcePbe(const ASN1_TYPE* parameter, Bytes cipher,
                                  const SecretBytes& password_utf16be, const std::string& what) {
  const auto malformed = [&what](std::string_view why) {
    return Error(Code::kInvalidCertificateFormat, what + ": " + std::string(why));
  };
  if (parameter == nullptr || parameter->type != V_ASN1_SEQUENCE) {
    return malformed("PBE parameters are missing");
  }
  const ASN1_STRING* seq = parameter->value.sequence;
  const unsigned char* p = ASN1_STRING_get0_data(seq);
  const long seq_len = ASN1_STRING_length(seq);
  PbeParamPtr params(d2i_PBEPARAM(nullptr, &p, seq_len));
  int64_t iterations = 0;
  if (params == nullptr || params->salt == nullptr || params->iter == nullptr ||
      ASN1_INTEGER_get_int64(&iterations, params->iter) != 1) {
    ossl::ClearErrors();
    return malformed("PBE parameters do not parse");
  }
  if (ASN1_STRING_length(params->salt) != 8) return malformed("PBE salt is not 8 bytes");
  if (iterations < 1 || iterations > kMaxPbeIterations) {
    return malformed("PBE iteration count " + std::to_string(iterations) + " is out of range");
  }
  if (cipher.empty() || cipher.size() % 8 != 0) {
    return malformed("encrypted key is not a whole number of 3DES blocks");
  }

  std::array<uint8_t, 8> salt;
  std::memcpy(salt.data(), ASN1_STRING_get0_data(params->salt), salt.size());
  if (std::equal(salt.begin(), salt.begin() + 4, salt.begin() + 4)) {
    salt = {salt[3], salt[0], salt[1], salt[3], salt[4], salt[5], salt[6], salt[7]};
  }
  const SecretBytes password = PasswordLowBytes(password_utf16be);
  Hasher md5("MD5");
  if (!md5.ok()) return Error(Code::kInternal, "MD5 unavailable: " + ossl::DrainErrors());
  WipedBuffer<32> key_iv;
  WipedBuffer<16> round;
  for (size_t half = 0; half < 2; ++half) {
    Bytes input = Bytes(salt).subspan(half * 4, 4);
    for (int64_t i = 0; i < iterations; ++i) {
      if (!md5.Digest(input, password.span(), round.data())) {
        return Error(Code::kInternal, "MD5 failed: " + ossl::DrainErrors());
      }
      input = round.span();
    }
    std::memcpy(key_iv.data() + half * 16, round.data(), 16);
  }

  ossl::EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  SecretBytes plain(cipher.size() + 8);
  int len1 = 0, len2 = 0;
  if (ctx == nullptr ||
      EVP_DecryptInit_ex(ctx.get(), EVP_des_ede3_cbc(), nullptr, key_iv.data(),
                         key_iv.data() + 24) != 1 ||
      EVP_DecryptUpdate(ctx.get(), plain.data(), &len1, cipher.data(),
                        static_cast<int>(cipher.size())) != 1) {
    return Error(Code::kInternal, "3DES failed: " + ossl::DrainErrors());
  }
  if (EVP_DecryptFinal_ex(ctx.get(), plain.data() + len1, &len2) != 1) {
    ossl::ClearErrors();  // bad padding: the usual sign of a wrong password
    return Decrypted{};
  }
  plain.Resize(static_cast<size_t>(len1 + len2));
  return Decrypted{std::move(plain)};
}

// True when `der` is exactly one PKCS#8 PrivateKeyInfo.
bool IsPkcs8(const SecretBytes& der) {
  const unsigned char* p = der.data();
  ossl::Pkcs8InfoPtr info(d2i_PKCS8_PRIV_KEY_INFO(nullptr, &p, static_cast<long>(der.size())));
  const bool ok = info != nullptr && p == der.data() + der.size();
  if (!ok) ossl::ClearErrors();
  return ok;
}

// True when `der` is exactly one X.509 certificate.
bool IsCertificate(std::string_view der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  ossl::X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  const bool ok =
      cert != nullptr && p == reinterpret_cast<const unsigned char*>(der.data()) + der.size();
  if (!ok) ossl::ClearErrors();
  return ok;
}

class KeyRecovery {
 public:
  KeyRecovery(std::string_view input, std::vector<SecretBytes> passwords_utf16be)
      : input_(input), passwords_(std::move(passwords_utf16be)) {
    jks_oid_.reset(OBJ_txt2obj(kJksKeyProtectorOid, 1));
    jce_oid_.reset(OBJ_txt2obj(kJcePbeOid, 1));
  }

  Result<SecretBytes> Recover(const RawEntry& e, size_t key_offset) {
    const std::string entry = "entry '" + e.alias + "'";
    const auto* p = reinterpret_cast<const unsigned char*>(e.key_blob.data());
    const auto* end = p + e.key_blob.size();
    ossl::X509SigPtr sig(d2i_X509_SIG(nullptr, &p, static_cast<long>(e.key_blob.size())));
    if (sig == nullptr || p != end) {
      ossl::ClearErrors();
      return Malformed(input_, key_offset,
                       entry +
                           ": the protected key is not an "
                           "EncryptedPrivateKeyInfo");
    }
    const X509_ALGOR* alg = nullptr;
    const ASN1_OCTET_STRING* data = nullptr;
    X509_SIG_get0(sig.get(), &alg, &data);
    const ASN1_OBJECT* oid = nullptr;
    X509_ALGOR_get0(&oid, nullptr, nullptr, alg);
    const bool jks = jks_oid_ != nullptr && OBJ_cmp(oid, jks_oid_.get()) == 0;
    const bool jce = jce_oid_ != nullptr && OBJ_cmp(oid, jce_oid_.get()) == 0;
    if (!jks && !jce) {
      char name[80];
      OBJ_obj2txt(name, sizeof(name), oid, 1);
      return ImportError(Code::kUnsupportedAlgorithm, input_,
                         entry + " is protected with an unsupported algorithm (" + name + ")",
                         "Re-save the key store with keytool (JKS or JCEKS), or export the "
                         "entry to PKCS#12.")
          .With("alias", e.alias);
    }
    const Bytes encrypted(ASN1_STRING_get0_data(data),
                          static_cast<size_t>(ASN1_STRING_length(data)));
    for (const SecretBytes& password : passwords_) {
      Result<Decrypted> attempt = jks ? UnprotectJks(encrypted, password, entry)
                                      : UnprotectJcePbe(alg->parameter, encrypted, password, entry);
      if (!attempt.ok()) {
        Error err = attempt.error();
        if (err.code == Code::kInvalidCertificateFormat) {
          return Malformed(input_, key_offset, err.message);
        }
        return err;
      }
      if (!attempt->key.has_value()) continue;
      if (IsPkcs8(*attempt->key)) return std::move(*attempt->key);
      // 3DES with a wrong password still passes the padding check about 1 time in 256;
      // the garbage then fails to parse. The JKS protector's check digest leaves no such
      // doubt: a verified plaintext that is not PKCS#8 is a malformed key.
      if (jks) return Malformed(input_, key_offset, entry + ": the key is not PKCS#8");
    }
    return WrongKeyPassword(input_, e.alias);
  }

 private:
  std::string_view input_;
  std::vector<SecretBytes> passwords_;
  AsnObjectPtr jks_oid_;
  AsnObjectPtr jce_oid_;
};

Result<JavaKeystore> Parse(std::string_view bytes, std::string_view input,
                           const std::optional<SecretBytes>& store_password,
                           const std::optional<SecretBytes>& key_password, JavaKeyEntries keys) {
  bool jceks = false;
  if (!LooksLikeJavaKeystore(bytes, &jceks)) {
    return Malformed(input, 0, "no JKS (FEEDFEED) or JCEKS (CECECECE) magic number");
  }
  if (!store_password.has_value()) {
    return ImportError(Code::kPasswordRequired, input, "a key store password is required",
                       "Enter the key store password (keytool -storepass).");
  }
  WSSTEP_ASSIGN_OR_RETURN(Layout layout, LayoutParser(bytes, input).Parse());

  SecretBytes store_utf16 = PasswordUtf16Be(*store_password);
  WSSTEP_ASSIGN_OR_RETURN(bool intact, IntegrityMatches(bytes, layout.digest_offset, store_utf16));
  if (!intact) return WrongStorePassword(input);

  JavaKeystore out;
  out.jceks = jceks;
  std::vector<SecretBytes> key_passwords;
  if (key_password.has_value()) {
    key_passwords.push_back(PasswordUtf16Be(*key_password));
    if (!ConstantTimeEquals(key_password->span(), store_password->span())) {
      key_passwords.push_back(std::move(store_utf16));
    }
  } else {
    key_passwords.push_back(std::move(store_utf16));
  }
  KeyRecovery recovery(input, std::move(key_passwords));

  for (const RawEntry& raw : layout.entries) {
    for (size_t k = 0; k < raw.certs.size(); ++k) {
      if (!IsCertificate(raw.certs[k])) {
        return Malformed(input, raw.cert_offsets[k],
                         "entry '" + raw.alias + "': certificate " + std::to_string(k + 1) +
                             " is not a DER X.509 certificate");
      }
    }
    JavaKeystoreEntry entry;
    entry.alias = raw.alias;
    entry.created_ms = raw.created_ms;
    if (raw.tag == kTagPrivateKey) {
      entry.is_private_key = true;
      const size_t key_offset = static_cast<size_t>(raw.key_blob.data() - bytes.data());
      if (keys == JavaKeyEntries::kDecrypt) {
        WSSTEP_ASSIGN_OR_RETURN(entry.pkcs8_der, recovery.Recover(raw, key_offset));
      }
      entry.cert_chain_der.assign(raw.certs.begin(), raw.certs.end());
    } else {
      entry.trusted_cert_der = std::string(raw.certs.front());
    }
    out.entries.push_back(std::move(entry));
  }
  return out;
}

}  // namespace

bool LooksLikeJavaKeystore(std::string_view bytes, bool* jceks) {
  java::DataReader r(bytes);
  uint32_t magic = 0;
  if (!r.U32(magic) || (magic != kJksMagic && magic != kJceksMagic)) return false;
  if (jceks != nullptr) *jceks = magic == kJceksMagic;
  return true;
}

Result<JavaKeystore> ParseJavaKeystore(std::string_view bytes, std::string_view input_name,
                                       const std::optional<SecretBytes>& store_password,
                                       const std::optional<SecretBytes>& key_password,
                                       JavaKeyEntries keys) {
  // Nothing here throws on purpose; only allocation can, and that must not escape.
  try {
    return Parse(bytes, input_name, store_password, key_password, keys);
  } catch (const std::exception&) {
    return Error(Code::kInternal,
                 std::string(input_name) + ": out of memory while reading the key store");
  }
}

}  // namespace wsstep::core

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
// Text conversions

// Java's DataOutputStream.writeUTF "modified UTF-8" (NUL as C0 80, astral characters as
// two 3-byte surrogates) to standard UTF-8. Lone surrogates become U+FFFD.
bool ModifiedUtf8ToUtf8(std::string_view in, std::string& out) {
  std::vector<uint16_t> units;
  units.reserve(in.size());
  for (size_t i = 0; i < in.size();) {
    const uint8_t b0 = static_cast<uint8_t>(in[i]);
    if (b0 < 0x80) {
      units.push_back(b0);
      i += 1;
    } else if ((b0 & 0xE0) == 0xC0) {
      if (i + 1 >= in.size()) return false;
      const uint8_t b1 = static_cast<uint8_t>(in[i + 1]);
      if ((b1 & 0xC0) != 0x80) return false;
      units.push_back(static_cast<uint16_t>(((b0 & 0x1F) << 6) | (b1 & 0x3F)));
      i += 2;
    } else if ((b0 & 0xF0) == 0xE0) {
      if (i + 2 >= in.size()) return false;
      const uint8_t b1 = static_cast<uint8_t>(in[i + 1]);
      const uint8_t b2 = static_cast<uint8_t>(in[i + 2]);
      if ((b1 & 0xC0) != 0x80 || (b2 & 0xC0) != 0x80) return false;
      units.push_back(
          static_cast<uint16_t>(((b0 & 0x0F) << 12) | ((b1 & 0x3F) << 6) | (b2 & 0x3F)));
      i += 3;
    } else {
      return false;
    }
  }
  out.clear();
  auto put = [&out](uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  };
  for (size_t i = 0; i < units.size(); ++i) {
    const uint16_t u = units[i];
    if (u >= 0xD800 && u <= 0xDBFF && i + 1 < units.size() && units[i + 1] >= 0xDC00 &&
        units[i + 1] <= 0xDFFF) {
      put(0x10000 + ((static_cast<uint32_t>(u - 0xD800) << 10) | (units[i + 1] - 0xDC00)));
      ++i;
    } else if (u >= 0xD800 && u <= 0xDFFF) {
      put(0xFFFD);
    } else {
      put(u);
    }
  }
  return true;
}

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

// A big-endian cursor that never reads past the end of its bytes.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  size_t offset() const { return pos_; }
  size_t remaining() const { return data_.size() - pos_; }

  bool U8(uint8_t& v) {
    uint64_t x;
    if (!BigEndian(1, x)) return false;
    v = static_cast<uint8_t>(x);
    return true;
  }
  bool U16(uint16_t& v) {
    uint64_t x;
    if (!BigEndian(2, x)) return false;
    v = static_cast<uint16_t>(x);
    return true;
  }
  bool U32(uint32_t& v) {
    uint64_t x;
    if (!BigEndian(4, x)) return false;
    v = static_cast<uint32_t>(x);
    return true;
  }
  bool U64(uint64_t& v) { return BigEndian(8, v); }
  bool Take(size_t n, std::string_view& out) {
    if (n > remaining()) return false;
    out = data_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  bool Skip(size_t n) {
    if (n > remaining()) return false;
    pos_ += n;
    return true;
  }
  // A writeUTF string: u2 length, then modified UTF-8.
  bool Utf(std::string_view& raw) {
    uint16_t len;
    return U16(len) && Take(len, raw);
  }

 private:
  bool BigEndian(size_t n, uint64_t& v) {
    if (n > remaining()) return false;
    v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<uint8_t>(data_[pos_ + i]);
    pos_ += n;
    return true;
  }

  std::string_view data_;
  size_t pos_ = 0;
};

// Skips one Java-serialized object (java.io.ObjectOutputStream stream: header plus one
// object). JCEKS writes its secret-key entries that way, with no length prefix, so the
// only way past them is to walk the serialization grammar. The walk tracks class
// descriptors (handles) because field values are only delimited by their declared types.
class SerializedObjectSkipper {
 public:
  explicit SerializedObjectSkipper(Reader& r) : r_(r) {}

  bool SkipStream() {
    uint16_t magic, version;
    if (!r_.U16(magic) || !r_.U16(version) || magic != 0xACED || version != 5) return false;
    return Object(0);
  }

 private:
  enum : uint8_t {
    kTcNull = 0x70,
    kTcReference = 0x71,
    kTcClassDesc = 0x72,
    kTcObject = 0x73,
    kTcString = 0x74,
    kTcArray = 0x75,
    kTcClass = 0x76,
    kTcBlockData = 0x77,
    kTcEndBlockData = 0x78,
    kTcReset = 0x79,
    kTcBlockDataLong = 0x7A,
    kTcLongString = 0x7C,
    kTcProxyClassDesc = 0x7D,
    kTcEnum = 0x7E,
  };
  enum : uint8_t {
    kScWriteMethod = 0x01,
    kScSerializable = 0x02,
    kScExternalizable = 0x04,
    kScBlockData = 0x08,
  };
  static constexpr uint32_t kBaseHandle = 0x7E0000;
  static constexpr size_t kMaxDepth = 64;
  static constexpr size_t kMaxHandles = 100'000;

  struct ClassDesc {
    std::string name;
    uint8_t flags = 0;
    std::string field_types;  // one type code per field, in stream order
    int super = -1;           // index into descs_, -1 for none
  };

  bool NewHandle(int desc) {
    if (handles_.size() >= kMaxHandles) return false;
    handles_.push_back(desc);
    return true;
  }

  // Any content that is an object (not block data). `depth` bounds recursion.
  bool Object(size_t depth) {
    uint8_t tc;
    if (!r_.U8(tc)) return false;
    return ObjectWithTag(tc, depth);
  }

  bool ObjectWithTag(uint8_t tc, size_t depth) {
    if (depth > kMaxDepth) return false;
    switch (tc) {
      case kTcNull:
        return true;
      case kTcReference: {
        uint32_t h;
        return r_.U32(h) && h >= kBaseHandle && h - kBaseHandle < handles_.size();
      }
      case kTcString: {
        std::string_view s;
        return NewHandle(-1) && r_.Utf(s);
      }
      case kTcLongString: {
        uint64_t len;
        return NewHandle(-1) && r_.U64(len) && len <= r_.remaining() && r_.Skip(len);
      }
      case kTcClassDesc:
      case kTcProxyClassDesc: {
        int desc;
        return ClassDescWithTag(tc, depth + 1, desc);
      }
      case kTcClass: {
        int desc;
        return ClassDescAny(depth + 1, desc) && NewHandle(-1);
      }
      case kTcEnum: {
        int desc;
        return ClassDescAny(depth + 1, desc) && NewHandle(-1) && Object(depth + 1);
      }
      case kTcArray:
        return Array(depth + 1);
      case kTcObject:
        return NewObject(depth + 1);
      case kTcReset:
        handles_.clear();
        return Object(depth + 1);
      default:
        return false;  // block data here, exceptions, unknown codes
    }
  }

  // classDesc: a new descriptor, a reference to one, or null (desc = -1).
  bool ClassDescAny(size_t depth, int& desc) {
    uint8_t tc;
    if (!r_.U8(tc)) return false;
    switch (tc) {
      case kTcNull:
        desc = -1;
        return true;
      case kTcReference: {
        uint32_t h;
        if (!r_.U32(h) || h < kBaseHandle || h - kBaseHandle >= handles_.size()) return false;
        desc = handles_[h - kBaseHandle];
        return desc >= 0;  // must name a class descriptor
      }
      case kTcClassDesc:
      case kTcProxyClassDesc:
        return ClassDescWithTag(tc, depth, desc);
      default:
        return false;
    }
  }

  bool ClassDescWithTag(uint8_t tc, size_t depth, int& desc) {
    if (depth > kMaxDepth || descs_.size() >= kMaxHandles) return false;
    desc = static_cast<int>(descs_.size());
    descs_.emplace_back();
    if (tc == kTcClassDesc) {
      std::string_view name;
      uint64_t suid;
      uint8_t flags;
      uint16_t nfields;
      if (!r_.Utf(name) || !r_.U64(suid) || !NewHandle(desc) || !r_.U8(flags) || !r_.U16(nfields)) {
        return false;
      }
      std::string types;
      for (uint16_t i = 0; i < nfields; ++i) {
        uint8_t type;
        std::string_view field_name;
        if (!r_.U8(type) || !r_.Utf(field_name)) return false;
        switch (type) {
          case 'B':
          case 'C':
          case 'D':
          case 'F':
          case 'I':
          case 'J':
          case 'S':
          case 'Z':
            break;
          case 'L':
          case '[':
            if (!Object(depth + 1)) return false;  // the field's class name, a String
            break;
          default:
            return false;
        }
        types += static_cast<char>(type);
      }
      descs_[desc].name = std::string(name);
      descs_[desc].flags = flags;
      descs_[desc].field_types = std::move(types);
    } else {
      uint32_t ninterfaces;
      if (!NewHandle(desc) || !r_.U32(ninterfaces)) return false;
      for (uint32_t i = 0; i < ninterfaces; ++i) {
        std::string_view iface;
        if (!r_.Utf(iface)) return false;
      }
      descs_[desc].flags = kScSerializable;
    }
    int super;
    if (!Annotation(depth + 1) || !ClassDescAny(depth + 1, super)) return false;
    descs_[desc].super = super;
    return true;
  }

  // Contents (objects or block data) up to TC_ENDBLOCKDATA.
  bool Annotation(size_t depth) {
    if (depth > kMaxDepth) return false;
    for (;;) {
      uint8_t tc;
      if (!r_.U8(tc)) return false;
      if (tc == kTcEndBlockData) return true;
      if (tc == kTcBlockData) {
        uint8_t len;
        if (!r_.U8(len) || !r_.Skip(len)) return false;
      } else if (tc == kTcBlockDataLong) {
        uint32_t len;
        if (!r_.U32(len) || !r_.Skip(len)) return false;
      } else if (!ObjectWithTag(tc, depth + 1)) {
        return false;
      }
    }
  }

  static size_t PrimitiveSize(char type) {
    switch (type) {
      case 'B':
      case 'Z':
        return 1;
      case 'C':
      case 'S':
        return 2;
      case 'F':
      case 'I':
        return 4;
      case 'D':
      case 'J':
        return 8;
      default:
        return 0;
    }
  }

  bool Array(size_t depth) {
    int desc;
    uint32_t size;
    if (!ClassDescAny(depth, desc) || desc < 0 || !NewHandle(-1) || !r_.U32(size)) return false;
    const std::string& name = descs_[desc].name;
    if (name.size() < 2 || name[0] != '[' || size > 0x7FFFFFFF) return false;
    const size_t element = PrimitiveSize(name[1]);
    if (element > 0) return size <= r_.remaining() / element && r_.Skip(size * element);
    if (name[1] != 'L' && name[1] != '[') return false;
    if (size > r_.remaining()) return false;  // every element takes at least one byte
    for (uint32_t i = 0; i < size; ++i) {
      if (!Object(depth + 1)) return false;
    }
    return true;
  }

  bool NewObject(size_t depth) {
    int desc;
    if (!ClassDescAny(depth, desc) || desc < 0 || !NewHandle(-1)) return false;
    // Class data runs from the topmost serializable superclass down.
    std::vector<int> chain;
    for (int d = desc; d >= 0; d = descs_[d].super) {
      if (chain.size() > kMaxDepth) return false;  // also stops reference cycles
      chain.push_back(d);
    }
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
      // Copies: nested objects may grow descs_ and move its elements.
      const uint8_t flags = descs_[*it].flags;
      const std::string types = descs_[*it].field_types;
      if (flags & kScSerializable) {
        for (char type : types) {
          const size_t size = PrimitiveSize(type);
          if (size > 0 ? !r_.Skip(size) : !Object(depth + 1)) return false;
        }
        if ((flags & kScWriteMethod) && !Annotation(depth + 1)) return false;
      } else if (flags & kScExternalizable) {
        // Externalizable data is only delimited in block-data mode (protocol 2).
        if (!(flags & kScBlockData) || !Annotation(depth + 1)) return false;
      }
    }
    return true;
  }

  Reader& r_;
  std::vector<ClassDesc> descs_;
  std::vector<int> handles_;  // handle - kBaseHandle -> index into descs_, -1 for others
};

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
    if (!ModifiedUtf8ToUtf8(raw_alias, e.alias)) {
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
          SerializedObjectSkipper skipper(r_);
          if (!skipper.SkipStream()) {
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

  Reader r_;
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
  Reader r(bytes);
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

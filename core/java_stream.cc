#include "core/java_stream.h"

#include <vector>

namespace wsstep::core::java {

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

namespace {

// Skips one Java-serialized object (java.io.ObjectOutputStream stream: header plus one
// object). JCEKS writes its secret-key entries that way, with no length prefix, so the
// only way past them is to walk the serialization grammar. The walk tracks class
// descriptors (handles) because field values are only delimited by their declared types.
class SerializedObjectSkipper {
 public:
  explicit SerializedObjectSkipper(DataReader& r) : r_(r) {}

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

  DataReader& r_;
  std::vector<ClassDesc> descs_;
  std::vector<int> handles_;  // handle - kBaseHandle -> index into descs_, -1 for others
};

}  // namespace

bool SkipSerializedObject(DataReader& r) { return SerializedObjectSkipper(r).SkipStream(); }

}  // namespace wsstep::core::java

// Java's own encodings, as Java key stores (core/jks.cc) contain them: DataOutputStream's
// big-endian fields and "modified UTF-8" strings, and the java.io serialization grammar
// that JCEKS uses for its secret-key entries.
//
//   java::DataReader r(bytes);
//   uint32_t magic;
//   std::string_view raw;
//   if (!r.U32(magic) || !r.Utf(raw)) return Malformed(...);   // never reads past the end
//   std::string alias;
//   if (!java::ModifiedUtf8ToUtf8(raw, alias)) ...
//   if (!java::SkipSerializedObject(r)) ...                      // past one object stream
#ifndef WSSTEP_CORE_JAVA_STREAM_H_
#define WSSTEP_CORE_JAVA_STREAM_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace wsstep::core::java {

// A big-endian cursor that never reads past the end of its bytes.
class DataReader {
 public:
  explicit DataReader(std::string_view data) : data_(data) {}
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

// Java's DataOutputStream.writeUTF "modified UTF-8" (NUL as C0 80, astral characters as
// two 3-byte surrogates) to standard UTF-8. Lone surrogates become U+FFFD.
bool ModifiedUtf8ToUtf8(std::string_view in, std::string& out);

// Moves `r` past one serialized object stream (java.io.ObjectOutputStream: header plus
// one object); false when the bytes do not follow the grammar or exceed its bounds.
bool SkipSerializedObject(DataReader& r);

}  // namespace wsstep::core::java

#endif  // WSSTEP_CORE_JAVA_STREAM_H_

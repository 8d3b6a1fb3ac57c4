// SecretBytes: key material and passwords. Zeroes itself on destruction, cannot be copied
// implicitly, and has no stream operator, so it cannot end up in a log line or a proto
// field by accident. Passwords are bytes: spaces, UTF-8 and the empty password are all
// legitimate, and "no password given" is distinct from "empty password" (std::optional).
#ifndef WSSTEP_CORE_SECRET_H_
#define WSSTEP_CORE_SECRET_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace wsstep {

class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(std::string_view bytes) : b_(bytes.begin(), bytes.end()) {}
  explicit SecretBytes(std::span<const uint8_t> bytes) : b_(bytes.begin(), bytes.end()) {}
  explicit SecretBytes(size_t size) : b_(size) {}
  ~SecretBytes() { Wipe(); }

  SecretBytes(SecretBytes&& other) noexcept : b_(std::move(other.b_)) { other.b_.clear(); }
  SecretBytes& operator=(SecretBytes&& other) noexcept {
    if (this != &other) {
      Wipe();
      b_ = std::move(other.b_);
      other.b_.clear();
    }
    return *this;
  }
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  SecretBytes Clone() const { return SecretBytes(std::span<const uint8_t>(b_)); }

  const uint8_t* data() const { return b_.data(); }
  uint8_t* data() { return b_.data(); }
  size_t size() const { return b_.size(); }
  bool empty() const { return b_.empty(); }
  std::span<const uint8_t> span() const { return b_; }
  // For APIs that take char*: OpenSSL password arguments, PEM parsers.
  std::string_view view() const {
    return {reinterpret_cast<const char*>(b_.data()), b_.size()};
  }
  void Append(std::span<const uint8_t> more) { b_.insert(b_.end(), more.begin(), more.end()); }
  void Resize(size_t n);  // wipes what is cut off

 private:
  void Wipe();
  std::vector<uint8_t> b_;
};

bool ConstantTimeEquals(std::span<const uint8_t> a, std::span<const uint8_t> b);

}  // namespace wsstep

#endif  // WSSTEP_CORE_SECRET_H_

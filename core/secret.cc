#include "core/secret.h"

#include <openssl/crypto.h>

namespace wsstep {

void SecretBytes::Wipe() {
  // capacity(), not size(): a shrunk vector may still hold old bytes past its end.
  if (b_.capacity() > 0) OPENSSL_cleanse(b_.data(), b_.capacity());
}

void SecretBytes::Resize(size_t n) {
  if (n < b_.size()) OPENSSL_cleanse(b_.data() + n, b_.size() - n);
  if (n > b_.capacity()) {
    SecretBytes bigger;
    bigger.b_.reserve(n);
    bigger.b_.assign(b_.begin(), b_.end());
    *this = std::move(bigger);
  }
  b_.resize(n);
}

bool ConstantTimeEquals(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace wsstep

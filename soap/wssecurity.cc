#include "soap/wssecurity.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <climits>

#include "core/ossl.h"

namespace wsstep::soap {
namespace {

class OpenSslRandom : public RandomSource {
 public:
  Status Fill(std::span<uint8_t> out) override {
    if (out.size() > INT_MAX || RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) {
      return Error(Code::kInternal,
                   "WS-Security nonce: the random generator failed: " + ossl::DrainErrors());
    }
    return Status();
  }
};

}  // namespace

RandomSource& SystemRandom() {
  static OpenSslRandom* const random = new OpenSslRandom();  // never destroyed: no exit races
  return *random;
}

std::string Base64Encode(std::span<const uint8_t> bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(),
                                static_cast<int>(bytes.size()));
  out.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return out;
}

Result<std::string> PasswordDigest(std::span<const uint8_t> nonce, std::string_view created,
                                   const SecretBytes& password) {
  ossl::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // SHA-1 is what the profile mandates; it is not used here as a signature.
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha1(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), nonce.data(), nonce.size()) != 1 ||
      EVP_DigestUpdate(ctx.get(), created.data(), created.size()) != 1 ||
      EVP_DigestUpdate(ctx.get(), password.data(), password.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), digest, &len) != 1) {
    return Error(Code::kInternal,
                 "WS-Security password digest: SHA-1 failed: " + ossl::DrainErrors());
  }
  return Base64Encode(std::span<const uint8_t>(digest, len));
}

}  // namespace wsstep::soap

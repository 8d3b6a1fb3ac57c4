// WS-Security UsernameToken Profile 1.0 pieces: the namespaces and URIs, the password
// digest, and the injectable randomness the nonce comes from.
#ifndef WSSTEP_SOAP_WSSECURITY_H_
#define WSSTEP_SOAP_WSSECURITY_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/secret.h"

namespace wsstep::soap {

inline constexpr std::string_view kWsseNamespace =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
inline constexpr std::string_view kWsuNamespace =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
inline constexpr std::string_view kPasswordTextType =
    "http://docs.oasis-open.org/wss/2004/01/"
    "oasis-200401-wss-username-token-profile-1.0#PasswordText";
inline constexpr std::string_view kPasswordDigestType =
    "http://docs.oasis-open.org/wss/2004/01/"
    "oasis-200401-wss-username-token-profile-1.0#PasswordDigest";
inline constexpr std::string_view kBase64BinaryEncoding =
    "http://docs.oasis-open.org/wss/2004/01/"
    "oasis-200401-wss-soap-message-security-1.0#Base64Binary";

// Where nonces come from; tests inject a fixed sequence.
class RandomSource {
 public:
  virtual ~RandomSource() = default;
  // Fills `out` entirely, or fails (INTERNAL).
  virtual Status Fill(std::span<uint8_t> out) = 0;
};

// OpenSSL's CSPRNG (RAND_bytes). Thread-safe; lives for the whole program.
RandomSource& SystemRandom();

// Standard Base64 with padding, no line breaks.
std::string Base64Encode(std::span<const uint8_t> bytes);

// Base64(SHA-1(nonce + created + password)) as the UsernameToken profile defines it:
// `nonce` raw bytes (not its Base64), `created` the exact wsu:Created text, `password` as
// stored (UTF-8 bytes). The concatenation is hashed incrementally, never copied.
Result<std::string> PasswordDigest(std::span<const uint8_t> nonce, std::string_view created,
                                   const SecretBytes& password);

}  // namespace wsstep::soap

#endif  // WSSTEP_SOAP_WSSECURITY_H_

// PKCS#12 (PFX) reading for the importers. Walks the bags itself instead of calling
// PKCS12_parse so that it can keep every key with its alias (friendlyName), pass the
// password with its length (bytes, not a C string), and tell a missing password, a wrong
// one and an unreadable algorithm apart.
#ifndef WSSTEP_CORE_PKCS12_READER_H_
#define WSSTEP_CORE_PKCS12_READER_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/ossl.h"
#include "core/secret.h"

namespace wsstep::core {

struct Pkcs12Key {
  std::string alias;         // friendlyName, UTF-8; empty if none
  std::string local_key_id;  // localKeyID bytes; pairs the key with its certificate
  ossl::EvpPkeyPtr key;
};

struct Pkcs12Cert {
  std::string alias;
  std::string local_key_id;
  ossl::X509Ptr cert;
};

struct Pkcs12Contents {
  std::vector<Pkcs12Key> keys;    // bag order
  std::vector<Pkcs12Cert> certs;  // bag order
  bool had_password = false;      // a non-empty password was needed to open it
};

// Parses a DER PFX. `password` nullopt: none given (files protected by no password or the
// empty password still open). Errors name `input_name`: INVALID_CERTIFICATE_FORMAT
// (damaged, or an algorithm this build cannot read), PASSWORD_REQUIRED, WRONG_PASSWORD
// (MAC mismatch, or a bag that does not decrypt). Requires EnsureProvidersLoaded() for
// legacy files; ReadPkcs12 calls it.
Result<Pkcs12Contents> ReadPkcs12(std::string_view der, std::string_view input_name,
                                  const std::optional<SecretBytes>& password);

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_PKCS12_READER_H_

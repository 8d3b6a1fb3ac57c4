// Private-key decoding for the importers: PKCS#8 (plain, or encrypted with PBES2 AES/3DES
// or PBES1), traditional OpenSSL PEM (plain or Proc-Type: 4,ENCRYPTED) and DER, with one
// catalog code per failure. Never prompts: a password is either given as bytes or the
// decode stops with PASSWORD_REQUIRED before OpenSSL sees the key.
#ifndef WSSTEP_CORE_PRIVATE_KEY_H_
#define WSSTEP_CORE_PRIVATE_KEY_H_

#include <optional>
#include <string_view>

#include "core/detect.h"
#include "core/error.h"
#include "core/ossl.h"
#include "core/secret.h"

namespace wsstep::core {

struct DecodedKey {
  ossl::EvpPkeyPtr key;
  bool was_encrypted = false;
};

// One PEM private-key block (kind kPrivateKey, kEncryptedPrivateKey or
// kTraditionalPrivateKey). Errors name `input_name`: PASSWORD_REQUIRED (encrypted, no
// password), WRONG_PASSWORD (decryption failed), INVALID_CERTIFICATE_FORMAT (damaged, or
// an encryption this build cannot read).
Result<DecodedKey> DecodePemPrivateKey(const PemBlock& block,
                                       const std::optional<SecretBytes>& password,
                                       std::string_view input_name);

// A DER private key: EncryptedPrivateKeyInfo, PrivateKeyInfo or a traditional RSA/EC key.
Result<DecodedKey> DecodeDerPrivateKey(std::string_view der,
                                       const std::optional<SecretBytes>& password,
                                       std::string_view input_name);

// Decrypts a PKCS#8 EncryptedPrivateKeyInfo. `password` must be set.
Result<ossl::EvpPkeyPtr> DecryptPkcs8(const X509_SIG* sig, const SecretBytes& password,
                                      std::string_view input_name);

// The unencrypted PKCS#8 DER of `key`, built directly in wiping memory.
Result<SecretBytes> KeyToPkcs8Der(const EVP_PKEY* key, std::string_view input_name);

// Password-based encryption makes us run as many KDF rounds as the file asks for; a
// hostile upload could ask for billions. Files written by real tools use at most a few
// hundred thousand.
//
// The fuzz targets' own copy of this library (tests/fuzz/CMakeLists.txt, the only code
// built with FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION) refuses above 64 instead: there
// the KDFs would otherwise take most of every run, and a mutated count decrypts nothing
// anyway. tests/fuzz/make_corpus.sh writes its encrypted seeds within that cap. JCEKS key
// protection (jks.cc) follows the same fuzzing cap.
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
inline constexpr long kMaxKdfIterations = 64;
#else
inline constexpr long kMaxKdfIterations = 5'000'000;
#endif

// INVALID_CERTIFICATE_FORMAT naming `input_name` when the PBES1/PBES2 algorithm `alg`
// asks for more than kMaxKdfIterations (or for an unreadable count); OK otherwise,
// including for algorithms that are not password-based.
Status CheckKdfCost(const X509_ALGOR* alg, std::string_view input_name);
// The same for a PKCS#12 MAC iteration count (null: the default of 1).
Status CheckKdfIterations(const ASN1_INTEGER* iterations, std::string_view input_name);

// True when OpenSSL's queued errors say an algorithm is unavailable (as opposed to a
// decryption that failed because of the password). Drains the queue.
bool DrainErrorsSayUnsupported();

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_PRIVATE_KEY_H_

// OpenSSL provider set-up for importers. Legacy PKCS#12 files (RC2-40, 3DES with SHA-1
// MACs, as older OpenSSL, Windows and Java write) need the `legacy` provider; loading a
// provider explicitly stops OpenSSL from loading `default` implicitly, so both are loaded
// together or every modern algorithm (AES, PBKDF2, SHA-256) disappears.
#include <openssl/provider.h>

#include <mutex>

#include "core/material.h"
#include "core/ossl.h"

namespace wsstep::core {

void EnsureProvidersLoaded() {
  static std::once_flag once;
  std::call_once(once, [] {
    // The handles are kept for the life of the process on purpose: unloading would
    // invalidate keys and contexts that other threads may hold.
    OSSL_PROVIDER_load(nullptr, "default");
    // A missing legacy module (a distribution that strips it) must not break modern
    // imports; legacy files then fail with a clear "unsupported algorithm" instead.
    OSSL_PROVIDER_load(nullptr, "legacy");
    ossl::ClearErrors();
  });
}

}  // namespace wsstep::core

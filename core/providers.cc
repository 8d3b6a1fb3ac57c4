// OpenSSL provider set-up for importers. Legacy PKCS#12 files (RC2-40, 3DES with SHA-1
// MACs, as older OpenSSL, Windows and Java write) need the `legacy` provider; loading a
// provider explicitly stops OpenSSL from loading `default` implicitly, so both are loaded
// together or every modern algorithm (AES, PBKDF2, SHA-256) disappears.
#include <openssl/provider.h>

#include <cstdlib>
#include <mutex>

#include "core/material.h"
#include "core/ossl.h"

namespace wsstep::core {
namespace {

OSSL_PROVIDER* g_default = nullptr;
OSSL_PROVIDER* g_legacy = nullptr;

// At exit, before OpenSSL's own clean-up (registered earlier, so it runs later), so that
// OpenSSL can free the providers and leak checkers see a clean process.
void UnloadProviders() {
  if (g_legacy != nullptr) OSSL_PROVIDER_unload(g_legacy);
  if (g_default != nullptr) OSSL_PROVIDER_unload(g_default);
  g_legacy = g_default = nullptr;
}

}  // namespace

void EnsureProvidersLoaded() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_default = OSSL_PROVIDER_load(nullptr, "default");
    // A missing legacy module (a distribution that strips it) must not break modern
    // imports; legacy files then fail with a clear "unsupported algorithm" instead.
    g_legacy = OSSL_PROVIDER_load(nullptr, "legacy");
    ossl::ClearErrors();
    std::atexit(UnloadProviders);
  });
}

}  // namespace wsstep::core

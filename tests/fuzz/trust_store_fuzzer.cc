// TRUST_STORE import: PEM bundles, DER certificates, Java PKCS#12 trust stores,
// certificate-only PKCS#12 and JKS trust stores, with the test PKI passwords tried while
// the answer is "password required" or "wrong password".
#include <cstddef>
#include <cstdint>

#include "core/material.h"
#include "tests/fuzz/import_fuzz.h"

using namespace wsstep;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::ParseWithPasswords(
      core::EntryType::kTrustStore, fuzz::AsView(data, size),
      {fuzz::pki::kStorePassword, fuzz::pki::kJavaP12Password, fuzz::pki::kP12Password},
      "fuzz-trust.pem");
  return 0;
}

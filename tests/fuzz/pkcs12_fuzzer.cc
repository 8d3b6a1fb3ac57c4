// PKCS12 import (core::ParseMaterial, type PKCS12): the file as given, without a password
// and then with each test PKI password while the answer is "password required" or "wrong
// password"; then the same file with its MAC recomputed, so mutations behind the MAC
// (bags, attributes, the shrouded key) reach the bag reader.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "core/material.h"
#include "tests/fuzz/import_fuzz.h"

using namespace wsstep;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes = fuzz::AsView(data, size);
  const std::vector<std::string_view> passwords = {fuzz::pki::kP12Password,
                                                   fuzz::pki::kJavaP12Password};
  fuzz::ParseWithPasswords(core::EntryType::kPkcs12, bytes, passwords, "fuzz.p12");

  if (std::optional<std::string> remac = fuzz::RemacPkcs12(bytes, fuzz::pki::kP12Password)) {
    fuzz::ParseWithPasswords(core::EntryType::kPkcs12, *remac, {fuzz::pki::kP12Password},
                             "fuzz-remac.p12");
  }
  return 0;
}

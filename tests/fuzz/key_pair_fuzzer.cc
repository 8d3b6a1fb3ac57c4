// KEY_PAIR import: certificates and private keys in PEM, DER, PKCS#8 (plain and
// encrypted), traditional and combined PEM, with or without a separate key file.
//
// Input: [flags][password length][password][content](kKeySeparator [key file])
//   flags bit 0: a password is given (else none: nullopt);
//   flags bit 1: it is given as key_password instead of password;
//   flags bits 2-4: declared format (SourceFormat, 0 = auto; values past the enum wrap).
#include <cstddef>
#include <cstdint>

#include "core/material.h"
#include "tests/fuzz/import_fuzz.h"

using namespace wsstep;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Reader in(fuzz::AsView(data, size));
  const uint8_t flags = in.Byte();
  const std::string_view password = in.Take(in.Byte());
  const fuzz::Split files = fuzz::SplitOnce(in.Rest(), fuzz::kKeySeparator);

  SecretBytes content(files.before);
  SecretBytes key(files.after);
  core::ImportInput input;
  input.type = core::EntryType::kKeyPair;
  input.declared_format = static_cast<core::SourceFormat>(((flags >> 2) & 7) % 7);
  input.content_name = "fuzz-content.pem";
  input.key_name = "fuzz-key.pem";
  input.content = &content;
  if (files.found) input.key = &key;
  if (flags & 1) {
    if (flags & 2) {
      input.key_password = SecretBytes(password);
    } else {
      input.password = SecretBytes(password);
    }
  }
  (void)fuzz::ParseChecked(input);
  return 0;
}

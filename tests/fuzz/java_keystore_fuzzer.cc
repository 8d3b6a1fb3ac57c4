// JKS and JCEKS (core::ParseJavaKeystore, then ParseMaterial type JAVA_KEYSTORE on what
// parses) with the test PKI's store and key passwords. Each input is tried as given and
// with its integrity digest recomputed, so mutations of entries get past the digest to
// the key protectors and certificate checks.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "core/jks.h"
#include "core/material.h"
#include "tests/fuzz/import_fuzz.h"

using namespace wsstep;

namespace {

void CheckKeystore(const core::JavaKeystore& ks) {
  for (const auto& e : ks.entries) {
    if (e.is_private_key && (e.pkcs8_der.empty() || e.cert_chain_der.empty())) {
      fuzz::Fail("a JKS key entry without its key or certificate chain");
    }
  }
}

void Parse(std::string_view bytes, std::string_view name) {
  const std::optional<SecretBytes> store{SecretBytes(fuzz::pki::kStorePassword)};
  const std::optional<SecretBytes> key{SecretBytes(fuzz::pki::kJksKeyPassword)};
  const std::optional<SecretBytes> none;
  auto check = [&](const Result<core::JavaKeystore>& r) {
    fuzz::Note("ParseJavaKeystore", r);
    if (r.ok()) {
      CheckKeystore(*r);
    } else {
      fuzz::CheckImportError(r.error(), {name});
      fuzz::CheckNoSecret(r.error(), fuzz::pki::kStorePassword, {bytes});
      fuzz::CheckNoSecret(r.error(), fuzz::pki::kJksKeyPassword, {bytes});
    }
  };
  Result<core::JavaKeystore> without = core::ParseJavaKeystore(bytes, name, none, none);
  if (without.ok()) fuzz::Fail("a key store parsed without a password");
  check(without);
  check(core::ParseJavaKeystore(bytes, name, store, std::nullopt));
  Result<core::JavaKeystore> full = core::ParseJavaKeystore(bytes, name, store, key);
  check(full);
  if (!full.ok()) return;

  SecretBytes content(bytes);
  core::ImportInput in;
  in.type = core::EntryType::kJavaKeystore;
  in.content_name = std::string(name);
  in.content = &content;
  in.password = store->Clone();
  in.key_password = key->Clone();
  (void)fuzz::ParseChecked(in);
  in.type = core::EntryType::kTrustStore;
  in.key_password.reset();
  (void)fuzz::ParseChecked(in);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes = fuzz::AsView(data, size);
  Parse(bytes, "fuzz.jks");
  if (core::LooksLikeJavaKeystore(bytes, nullptr)) {
    if (auto fixed = fuzz::RedigestJavaKeystore(bytes, fuzz::pki::kStorePassword)) {
      Parse(*fixed, "fuzz-redigested.jks");
    }
  }
  return 0;
}

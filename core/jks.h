// Reading Java key stores: JKS (magic 0xFEEDFEED, versions 1 and 2) and JCEKS (0xCECECECE).
// No C++ library reads these, so the container is parsed here; OpenSSL does SHA-1, MD5,
// 3DES and PKCS#8. The importer (core/material.h) turns the result into X509/EVP_PKEY
// objects and applies the product's validation rules.
//
// What is checked: the whole container structure (every length against the bytes left),
// the store's SHA-1 integrity digest under the store password, that every certificate is
// one DER X.509 certificate, and that every private key decrypts to a PKCS#8
// PrivateKeyInfo. What is not: whether a key matches its certificate, expiry, algorithms.
#ifndef WSSTEP_CORE_JKS_H_
#define WSSTEP_CORE_JKS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/secret.h"

namespace wsstep::core {

struct JavaKeystoreEntry {
  std::string alias;       // as stored (keytool lower-cases aliases), converted to UTF-8
  int64_t created_ms = 0;  // creation date, milliseconds since the Unix epoch
  bool is_private_key = false;
  SecretBytes pkcs8_der;                    // key entries: the decrypted, unencrypted PKCS#8 DER
                                            // (empty with JavaKeyEntries::kListOnly)
  std::vector<std::string> cert_chain_der;  // key entries: leaf first
  std::string trusted_cert_der;             // trusted-certificate entries
};

struct JavaKeystore {
  bool jceks = false;
  // In file order. JCEKS secret-key entries are not listed.
  std::vector<JavaKeystoreEntry> entries;
};

// True when `bytes` starts with the JKS (0xFEEDFEED) or JCEKS (0xCECECECE) magic; then
// *jceks (if not null) says which. Looks at the magic only.
bool LooksLikeJavaKeystore(std::string_view bytes, bool* jceks);

// What ParseJavaKeystore does with private-key entries.
enum class JavaKeyEntries {
  kDecrypt,  // decrypt each key into pkcs8_der (errors below)
  kListOnly  // list them (alias, chain) without touching the key: for trust-store imports,
             // which refuse key entries and must say so before any key password matters
};

// Parses a JKS or JCEKS key store. Passwords are the UTF-8 bytes the user typed (Java
// compares UTF-16 code units; bytes that are not valid UTF-8 are taken as Latin-1).
// `input_name` names the upload in every error message.
//
// Errors:
// - store_password nullopt: PASSWORD_REQUIRED.
// - integrity digest mismatch (wrong store password, or a modified file): WRONG_PASSWORD,
//   "<input>: wrong key store password".
// - a private key that does not decrypt: WRONG_PASSWORD, "<input>: wrong key password for
//   entry 'client'". Each key is tried with key_password when given and then with the
//   store password (so stores whose entries use either work); key_password nullopt tries
//   the store password only.
// - malformed or truncated content, an unknown version or entry tag, a certificate that
//   is not X.509 DER: INVALID_CERTIFICATE_FORMAT naming the input and the byte offset
//   (also in detail "offset").
// - a key protected by an algorithm other than the JKS key protector or JCEKS
//   PBEWithMD5AndTripleDES: UNSUPPORTED_ALGORITHM naming the entry.
// JCEKS secret-key entries (tag 3) are skipped: they are not certificates, and do not
// fail the parse. Returns no exceptions; safe on arbitrary (hostile) bytes.
Result<JavaKeystore> ParseJavaKeystore(std::string_view bytes, std::string_view input_name,
                                       const std::optional<SecretBytes>& store_password,
                                       const std::optional<SecretBytes>& key_password,
                                       JavaKeyEntries keys = JavaKeyEntries::kDecrypt);

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_JKS_H_

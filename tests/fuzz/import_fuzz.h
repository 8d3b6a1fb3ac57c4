// Shared pieces of the importer fuzz targets (core::ParseMaterial and the parsers under
// it): the passwords of the generated test PKI the seeds come from, the properties every
// import result must have, and input "repairs" that let mutated containers get past their
// integrity checks so the fuzzer reaches the code behind them:
// - a PKCS#12 MAC is recomputed over the mutated content (RemacPkcs12);
// - a JKS/JCEKS integrity digest is recomputed over the mutated store (RedigestJavaKeystore);
// - a property list is wrapped in an unsigned CMS SignedData (WrapInSignedData), which is
//   all a provisioning profile parser looks at.
#ifndef WSSTEP_TESTS_FUZZ_IMPORT_FUZZ_H_
#define WSSTEP_TESTS_FUZZ_IMPORT_FUZZ_H_

#include <openssl/evp.h>
#include <openssl/pkcs12.h>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/material.h"
#include "core/ossl.h"
#include "core/secret.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/support/pki.h"

namespace wsstep::fuzz {

namespace pki = wsstep::testing::pki;

// The codes ParseMaterial documents; anything else (INTERNAL above all) is a bug.
inline bool IsImportCode(Code c) {
  switch (c) {
    case Code::kInvalidCertificateFormat:
    case Code::kPasswordRequired:
    case Code::kWrongPassword:
    case Code::kPrivateKeyMissing:
    case Code::kKeyCertMismatch:
    case Code::kCertificateExpired:
    case Code::kUnsupportedAlgorithm:
      return true;
    default:
      return false;
  }
}

// An import error has a documented code and names one of the inputs.
inline void CheckImportError(const Error& e, const std::vector<std::string_view>& input_names) {
  if (!IsImportCode(e.code))
    Fail("undocumented import error code " + std::string(CodeName(e.code)));
  bool named = std::any_of(input_names.begin(), input_names.end(), [&](std::string_view n) {
    return e.message.find(n) != std::string::npos;
  });
  if (!named) Fail("import error " + std::string(CodeName(e.code)) + " names no input");
}

// What a successful import promises: a key comes with its certificate and a sealed form
// that loads back to the same key; describing the result works.
inline void CheckParsed(const core::ParsedMaterial& m) {
  if (m.key) {
    if (!m.leaf) Fail("a private key without a leaf certificate");
    if (m.key_pkcs8_der.empty()) Fail("a private key without its PKCS#8 form");
    auto back = core::KeyFromPkcs8Der(m.key_pkcs8_der);
    if (!back.ok()) Fail("the PKCS#8 form of an imported key does not load");
    if (EVP_PKEY_eq(back->get(), m.key.get()) != 1) Fail("the PKCS#8 form is another key");
    if (EVP_PKEY_eq(X509_get0_pubkey(m.leaf.get()), m.key.get()) != 1) {
      Fail("an imported key does not match its leaf");
    }
  }
  core::EntryMetadata meta;
  core::DescribeMaterial(m, meta);
  ossl::ClearErrors();
}

// ParseMaterial plus the checks above; `password` also checked never to leak.
inline Result<core::ParsedMaterial> ParseChecked(const core::ImportInput& in) {
  Result<core::ParsedMaterial> r = core::ParseMaterial(in);
  Note("ParseMaterial(" + std::string(core::EntryTypeName(in.type)) + ")", r);
  if (r.ok()) {
    CheckParsed(*r);
  } else {
    CheckImportError(r.error(), {in.content_name, in.key_name});
    std::vector<std::string_view> public_text{in.content->view()};
    if (in.key != nullptr) public_text.push_back(in.key->view());
    // Only the test PKI passwords: distinctive enough that no message spells them.
    for (std::string_view pw : {pki::kP12Password, pki::kKeyPassword, pki::kStorePassword,
                                pki::kJksKeyPassword, pki::kJavaP12Password}) {
      CheckNoSecret(r.error(), pw, public_text);
    }
  }
  return r;
}

// Imports `content` as `type`: first without a password, then, while the answer is
// "password required" or "wrong password", with each of `passwords`.
inline void ParseWithPasswords(core::EntryType type, std::string_view content,
                               const std::vector<std::string_view>& passwords,
                               std::string_view name) {
  SecretBytes bytes(content);
  core::ImportInput in;
  in.type = type;
  in.content_name = std::string(name);
  in.content = &bytes;
  Result<core::ParsedMaterial> r = ParseChecked(in);
  for (std::string_view pw : passwords) {
    if (r.ok() || (r.code() != Code::kPasswordRequired && r.code() != Code::kWrongPassword)) break;
    in.password = SecretBytes(pw);
    r = ParseChecked(in);
  }
}

// The same PKCS#12 with its MAC recomputed under `password` (one iteration, to keep runs
// fast); nullopt when it is not a PKCS#12 OpenSSL can re-encode.
inline std::optional<std::string> RemacPkcs12(std::string_view der, std::string_view password) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  ossl::Pkcs12Ptr p12(d2i_PKCS12(nullptr, &p, static_cast<long>(der.size())));
  std::optional<std::string> out;
  if (p12 && PKCS12_set_mac(p12.get(), password.data(), static_cast<int>(password.size()), nullptr,
                            0, 1, nullptr) == 1) {
    int len = i2d_PKCS12(p12.get(), nullptr);
    if (len > 0) {
      std::string buf(static_cast<size_t>(len), '\0');
      auto* w = reinterpret_cast<unsigned char*>(buf.data());
      if (i2d_PKCS12(p12.get(), &w) == len) out = std::move(buf);
    }
  }
  ossl::ClearErrors();
  return out;
}

// UTF-8 (BMP only, which the test passwords are) to UTF-16BE, as Java hashes passwords.
inline std::string Utf16Be(std::string_view utf8) {
  std::string out;
  for (size_t i = 0; i < utf8.size();) {
    auto b = static_cast<unsigned char>(utf8[i]);
    unsigned cp = b;
    size_t n = 1;
    if (b >= 0xE0 && i + 2 < utf8.size()) {
      cp = (b & 0x0Fu) << 12 | (static_cast<unsigned char>(utf8[i + 1]) & 0x3Fu) << 6 |
           (static_cast<unsigned char>(utf8[i + 2]) & 0x3Fu);
      n = 3;
    } else if (b >= 0xC0 && i + 1 < utf8.size()) {
      cp = (b & 0x1Fu) << 6 | (static_cast<unsigned char>(utf8[i + 1]) & 0x3Fu);
      n = 2;
    }
    out += static_cast<char>(cp >> 8);
    out += static_cast<char>(cp & 0xFF);
    i += n;
  }
  return out;
}

// The store with its trailing 20-byte integrity digest recomputed under `password`
// (SHA-1 of the UTF-16BE password, "Mighty Aphrodite" and everything before the digest).
// Assumes the digest is the last 20 bytes, as keytool writes it; nullopt when too short.
inline std::optional<std::string> RedigestJavaKeystore(std::string_view store,
                                                       std::string_view password) {
  constexpr size_t kSha1 = 20;
  if (store.size() < kSha1 + 4) return std::nullopt;
  std::string out(store);
  std::string pw = Utf16Be(password);
  std::string_view salt = "Mighty Aphrodite";
  ossl::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  unsigned int len = 0;
  auto* digest = reinterpret_cast<unsigned char*>(out.data() + out.size() - kSha1);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha1(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), pw.data(), pw.size()) != 1 ||
      EVP_DigestUpdate(ctx.get(), salt.data(), salt.size()) != 1 ||
      EVP_DigestUpdate(ctx.get(), out.data(), out.size() - kSha1) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), digest, &len) != 1 || len != kSha1) {
    return std::nullopt;
  }
  return out;
}

// DER length octets.
inline std::string DerLength(size_t n) {
  if (n < 0x80) return std::string(1, static_cast<char>(n));
  std::string octets;
  for (; n > 0; n >>= 8) octets.insert(octets.begin(), static_cast<char>(n & 0xFF));
  return static_cast<char>(0x80 | octets.size()) + octets;
}
inline std::string Der(unsigned char tag, std::string_view content) {
  return static_cast<char>(tag) + DerLength(content.size()) + std::string(content);
}

// ContentInfo{signedData, SignedData{v1, no digest algorithms, {data, [0] content}, no
// signers}}: the shape of a provisioning profile without the signature, which the parser
// does not verify.
inline std::string WrapInSignedData(std::string_view content) {
  const std::string kOidSignedData("\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02", 11);
  const std::string kOidData("\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x01", 11);
  std::string encap = Der(0x30, kOidData + Der(0xA0, Der(0x04, content)));
  std::string signed_data =
      Der(0x30, std::string("\x02\x01\x01", 3) + Der(0x31, "") + encap + Der(0x31, ""));
  return Der(0x30, kOidSignedData + Der(0xA0, signed_data));
}

}  // namespace wsstep::fuzz

#endif  // WSSTEP_TESTS_FUZZ_IMPORT_FUZZ_H_

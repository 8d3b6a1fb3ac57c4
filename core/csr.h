// Key generation inside the store (PRODUCT.md §1 "Lifecycle"): the store creates a private
// key and a certificate signing request from subject fields, keeps the key sealed as a
// pending entry and returns only the CSR. When the issued certificate comes back, it is
// checked against the pending key before it is attached. The private key never leaves the
// store.
//
//   WSSTEP_ASSIGN_OR_RETURN(GeneratedCsr g, GenerateKeyAndCsr(request));
//   // seal g.key_pkcs8_der in the pending entry, hand g.csr_pem to the administrator
//   ...
//   WSSTEP_RETURN_IF_ERROR(CheckCertificateMatchesKey(issued, pending_key, entry.name));
#ifndef WSSTEP_CORE_CSR_H_
#define WSSTEP_CORE_CSR_H_

#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/ossl.h"
#include "core/secret.h"

namespace wsstep::core {

// Subject fields are UTF-8 and optional except common_name. Limits (characters, as in
// X.520 / PKCS#9): common_name, organization, organizational_unit 1..64; state, locality
// 1..128; email 1..128, ASCII "local@domain"; country exactly two ASCII letters (ISO
// 3166, stored upper case). No control characters. dns_names go into a subjectAltName
// extension request: host names of letters, digits and hyphens, optionally starting with
// "*." (up to 253 characters, labels up to 63).
struct CsrRequest {
  std::string common_name, organization, organizational_unit, country, state, locality, email;
  std::vector<std::string> dns_names;
  std::string key_algorithm = "RSA";  // "RSA", "EC", "Ed25519" (case-insensitive)
  int key_bits = 2048;                // RSA: 2048, 3072 or 4096
  std::string curve;  // EC: "P-256" | "P-384" | "P-521"; empty: from key_bits if 256/384/521,
                      // else P-256
};

struct GeneratedCsr {
  SecretBytes key_pkcs8_der;  // unencrypted PKCS#8 of the new key: seal it, never show it
  std::string csr_pem;        // "-----BEGIN CERTIFICATE REQUEST-----..."
};

// Checks a request without generating anything. INVALID_ARGUMENT naming the field (the
// error detail "field" holds its name, e.g. "country").
Status ValidateCsrRequest(const CsrRequest& request);

// Generates a fresh key (RSA 2048/3072/4096, EC P-256/384/521 or Ed25519) and a CSR for
// it, signed with SHA-256 (Ed25519 signs without a separate digest). INVALID_ARGUMENT
// for bad input (see ValidateCsrRequest), INTERNAL if OpenSSL fails.
Result<GeneratedCsr> GenerateKeyAndCsr(const CsrRequest& request);

// OK if `cert` carries the public half of the pending key. KEY_CERT_MISMATCH ("the
// certificate does not match the pending key of '<entry_name>'") if it does not;
// INVALID_ARGUMENT if cert is null; INVALID_CERTIFICATE_FORMAT if the key cannot be read.
Status CheckCertificateMatchesKey(X509* cert, const SecretBytes& key_pkcs8_der,
                                  std::string_view entry_name = "the entry");

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_CSR_H_

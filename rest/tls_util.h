// Small X.509 and encoding helpers shared by the TLS observation callbacks, the
// partition setup and the result facts.
#ifndef WSSTEP_REST_TLS_UTIL_H_
#define WSSTEP_REST_TLS_UTIL_H_

#include <openssl/x509.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/model.h"
#include "rest/tls_diagnosis.h"

namespace wsstep::rest {

// Subject, issuer, validity and SANs (as core::DescribeCertificate shows them) plus the
// SPKI pin of a server certificate.
PeerCertificateFacts DescribePeer(X509* cert);
// Base64 of the SHA-256 of the certificate's SubjectPublicKeyInfo (the HPKP / libcurl
// pin form, without the "sha256//" prefix).
std::string SpkiSha256Base64(X509* cert);
std::string Base64(std::span<const uint8_t> bytes);

// A pin as libcurl wants it: "sha256//<base64>" (several joined by ';'). Accepts that form
// or 64 hex digits (colons and spaces allowed). INVALID_STEP_CONFIG naming
// tls.pinned_public_key otherwise.
Result<std::string> NormalizePin(std::string_view pin);

}  // namespace wsstep::rest

#endif  // WSSTEP_REST_TLS_UTIL_H_

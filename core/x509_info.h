// Helpers behind DescribeCertificate (core/material.h), shared by the importers: the one
// place that decides how names, times and key algorithms are shown.
#ifndef WSSTEP_CORE_X509_INFO_H_
#define WSSTEP_CORE_X509_INFO_H_

#include <openssl/asn1.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <optional>
#include <string>
#include <string_view>

#include "core/model.h"

namespace wsstep::core {

// One-line distinguished name in RFC 2253 order and escaping (most specific RDN first:
// "CN=api.example.com,O=Example,C=US"), except that UTF-8 is kept as UTF-8 instead of
// being hex-escaped, so "CN=Müller" reads as such. Deterministic for a given DER name,
// hence identical whatever container the certificate came in.
std::string NameOneLine(const X509_NAME* name);

// ASN1_TIME (UTCTime or GeneralizedTime) to seconds since the epoch; nullopt if invalid.
std::optional<UnixSeconds> AsnTimeToUnix(const ASN1_TIME* t);

// "2026-01-02T00:00:00Z".
std::string FormatUtc(UnixSeconds t);
// Inverse of FormatUtc, also accepting fractional seconds and "+00:00" offsets of
// ISO-8601 (property list dates). nullopt if not a UTC date-time.
std::optional<UnixSeconds> ParseUtc(std::string_view text);

struct KeyDescription {
  std::string algorithm;   // "RSA", "RSA-PSS", "EC", "Ed25519", "Ed448", "DSA", ...
  int bits = 0;            // RSA modulus bits, EC field bits, 256 for Ed25519
  std::string curve;       // "P-256"/"P-384"/"P-521", else OpenSSL's name ("secp256k1")
  bool supported = false;  // usable for wsstep client identities (PRODUCT.md §1)
  // "RSA 1024 bits", "EC secp256k1 (256 bits)", "Ed25519": for messages.
  std::string Display() const;
};
KeyDescription DescribeKey(const EVP_PKEY* key);

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_X509_INFO_H_

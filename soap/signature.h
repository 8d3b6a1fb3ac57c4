// WS-Security X.509 signatures (OASIS WSS 1.1 X.509 Token Profile) over a built envelope,
// made with Debian's libxmlsec1 (OpenSSL backend) in this process: the private key the
// store resolved for the endpoint (core::Identity::key, an EVP_PKEY) is handed to xmlsec
// through its OpenSSL bridge and never written anywhere.
//
//   soap::SignatureOptions options;                   // Body + Timestamp, direct reference
//   Result<soap::BuiltEnvelope> built = soap::BuildEnvelope(step, clock, random);
//   Result<std::string> signed_xml =
//       soap::SignEnvelope(built->body, built->signed_ids, *credentials.identity, options);
//
// What SignEnvelope adds to the envelope's wsse:Security header (which BuildEnvelope wrote,
// with wsu:Id on every part to sign, listed in BuiltEnvelope::signed_ids):
//   <wsse:BinarySecurityToken wsu:Id="wsstep-token" ...#X509v3>base64 DER</...>  (direct)
//   <ds:Signature>  exclusive C14N; RSA-SHA256 or ECDSA-SHA256 (by the key's type, or the
//                   algorithm chosen); one Reference per part, exclusive C14N transform,
//                   SHA-256 (or the digest chosen)
//     <ds:KeyInfo><wsse:SecurityTokenReference> a Reference to the token (direct), or
//                 ds:X509Data/ds:X509IssuerSerial of the certificate (issuer-serial, and
//                 then no token is sent: the receiver already holds the certificate)
//
// Errors: SIGNING_FAILED (side client) when the key cannot make the chosen signature
// (Ed25519, RSA with an ECDSA algorithm, ...) or xmlsec fails; the message names the key
// and the algorithm, never key material.
#ifndef WSSTEP_SOAP_SIGNATURE_H_
#define WSSTEP_SOAP_SIGNATURE_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/identity.h"

namespace wsstep::soap {

inline constexpr std::string_view kDsigNamespace = "http://www.w3.org/2000/09/xmldsig#";
inline constexpr std::string_view kX509v3TokenType =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3";
// The wsu:Id values the builder and the signer agree on.
inline constexpr std::string_view kBodyId = "wsstep-body";
inline constexpr std::string_view kTimestampId = "wsstep-timestamp";
inline constexpr std::string_view kTokenId = "wsstep-token";
inline constexpr std::string_view kHeaderIdPrefix = "wsstep-header-";  // + index of the block

enum class TokenReference { kDirect, kIssuerSerial };

// The signature algorithms offered (xmldsig-more URIs). kByKeyType: RSA-SHA256 for an RSA
// key, ECDSA-SHA256 for an EC key.
enum class SignatureAlgorithm {
  kByKeyType,
  kRsaSha256,
  kRsaSha384,
  kRsaSha512,
  kEcdsaSha256,
  kEcdsaSha384,
  kEcdsaSha512,
};
enum class DigestAlgorithm { kSha256, kSha384, kSha512 };

std::string_view SignatureAlgorithmUri(SignatureAlgorithm a);  // "" for kByKeyType
std::string_view DigestAlgorithmUri(DigestAlgorithm d);

// The names a step uses for the parts it signs.
inline constexpr std::string_view kPartBody = "Body";
inline constexpr std::string_view kPartTimestamp = "Timestamp";

struct SignatureOptions {
  // Which parts to sign, in order: "Body", "Timestamp", or a header block by its element's
  // name, "local" or "{namespace}local". Empty: Body and Timestamp. Signing the Timestamp
  // adds one (ttl 300 s) when the step has none.
  std::vector<std::string> parts{};
  TokenReference reference = TokenReference::kDirect;
  SignatureAlgorithm algorithm = SignatureAlgorithm::kByKeyType;
  DigestAlgorithm digest = DigestAlgorithm::kSha256;

  // `parts`, or the default pair when it is empty.
  std::vector<std::string> EffectiveParts() const;
};

// What a signed message carries, for the step's result.
struct SignatureFacts {
  std::string signature_algorithm;  // URI
  std::string digest_algorithm;     // URI
  std::string certificate_fingerprint;
  TokenReference reference = TokenReference::kDirect;
  std::vector<std::string> signed_ids;  // wsu:Id of each signed part, in reference order
};

struct SignedEnvelope {
  std::string body;
  SignatureFacts facts;
};

// Signs `envelope` (as BuildEnvelope wrote it, with a wsse:Security header) over the
// elements whose wsu:Id is in `signed_ids`, with `identity`'s key and certificate.
Result<SignedEnvelope> SignEnvelope(std::string_view envelope,
                                    const std::vector<std::string>& signed_ids,
                                    const core::Identity& identity,
                                    const SignatureOptions& options);

// The algorithm `options` resolves to for `key`, or SIGNING_FAILED naming the key type
// when that key cannot make it.
Result<SignatureAlgorithm> AlgorithmForKey(const EVP_PKEY* key, SignatureAlgorithm requested);

}  // namespace wsstep::soap

#endif  // WSSTEP_SOAP_SIGNATURE_H_

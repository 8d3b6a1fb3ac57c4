// Parsing uploaded certificate material (PRODUCT.md §1): every accepted container and
// encoding, content detection, validation with one catalog code per failure, and the
// normalized result the store persists. Runs at import time only; never per call.
#ifndef WSSTEP_CORE_MATERIAL_H_
#define WSSTEP_CORE_MATERIAL_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/model.h"
#include "core/ossl.h"
#include "core/secret.h"

namespace wsstep::core {

struct ImportInput {
  EntryType type = EntryType::kKeyPair;
  SourceFormat declared_format = SourceFormat::kAuto;
  // Names used in error messages, e.g. the uploaded file names ("client.p12").
  std::string content_name = "certificate";
  std::string key_name = "private key";
  // The main upload: certificate(s), combined PEM, PKCS#12, JKS/JCEKS, trust bundle,
  // .mobileprovision. Not secret by itself for certificates, but a PKCS#12/JKS holds keys,
  // so it is treated as secret.
  const SecretBytes* content = nullptr;
  // KEY_PAIR with the key in a separate file (PEM or DER, any key encoding). Optional.
  const SecretBytes* key = nullptr;
  // Store / PKCS#12 / encrypted-key password. nullopt: none given; empty: the empty password.
  std::optional<SecretBytes> password;
  // JKS/JCEKS key password when it differs from the store password.
  std::optional<SecretBytes> key_password;
  // JKS/PKCS#12 alias of the key entry to import when there are several.
  std::string alias;
  // Certificates of trust stores bound where this entry will be bound, for the
  // CHAIN_INCOMPLETE check. Not owned.
  std::vector<X509*> bound_trust;
  UnixSeconds now = 0;
};

// The normalized result. The store keeps `key_pkcs8_der` sealed and the certificates in DER.
struct ParsedMaterial {
  SourceFormat detected_format = SourceFormat::kPem;
  ossl::X509Ptr leaf;                   // key-bearing entries and provisioning profiles
  std::vector<ossl::X509Ptr> chain;     // intermediates as uploaded, leaf excluded
  ossl::EvpPkeyPtr key;                 // matches leaf
  SecretBytes key_pkcs8_der;            // unencrypted PKCS#8 of `key`, for sealing
  std::vector<ossl::X509Ptr> trusted;   // trust-store certificates / JKS trusted entries
  std::string key_alias;
  bool had_password = false;            // the upload was password-protected
  std::map<std::string, std::string> attributes;  // provisioning profile facts
  std::vector<Error> warnings;          // CHAIN_INCOMPLETE
};

// Parses and validates an upload. Errors, each naming the input:
// INVALID_CERTIFICATE_FORMAT (including a declared format contradicted by the content:
// "client.pem: this is a PKCS#12 file, PEM was selected"), PASSWORD_REQUIRED,
// WRONG_PASSWORD, PRIVATE_KEY_MISSING, KEY_CERT_MISMATCH, CERTIFICATE_EXPIRED,
// UNSUPPORTED_ALGORITHM (RSA < 2048, other curves, DSA...).
Result<ParsedMaterial> ParseMaterial(const ImportInput& input);

// Fills certificate, chain_subjects, trusted, key_alias, attributes, has_private_key,
// has_password and source_format of `out` from parsed material. Identical output whatever
// container the material came in.
void DescribeMaterial(const ParsedMaterial& material, EntryMetadata& out);

// Facts about one certificate.
CertificateInfo DescribeCertificate(X509* cert);

// Certificates and keys back from their stored encodings (load time).
Result<ossl::X509Ptr> CertificateFromDer(std::string_view der);
Result<ossl::EvpPkeyPtr> KeyFromPkcs8Der(const SecretBytes& der);

// Makes OpenSSL's `default` and `legacy` providers available together (legacy alone
// would break every PKCS#12 load). Idempotent and thread-safe.
void EnsureProvidersLoaded();

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_MATERIAL_H_

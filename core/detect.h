// Content detection for uploaded certificate material (PRODUCT.md §1 "detected from
// content"). Looks only at the bytes, never at the file name or the declared format, so
// the importer can tell an administrator "client.pem: this is a PKCS#12 file, PEM was
// selected". Detection decrypts nothing and needs no password.
#ifndef WSSTEP_CORE_DETECT_H_
#define WSSTEP_CORE_DETECT_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/model.h"

namespace wsstep::core {

enum class ContentKind {
  kUnknown,
  kPem,                     // one or more PEM blocks, see DetectedContent::pem_blocks
  kDerCertificate,          // one DER X.509 certificate
  kDerPrivateKey,           // DER PKCS#8 PrivateKeyInfo, or a traditional RSA/EC/DSA key
  kDerEncryptedPrivateKey,  // DER PKCS#8 EncryptedPrivateKeyInfo
  kPkcs12,                  // DER PFX
  kJks,                     // magic 0xFEEDFEED
  kJceks,                   // magic 0xCECECECE
  kMobileProvision,         // CMS SignedData whose content is a property list
  kOtherCms,                // CMS/PKCS#7 that is not a provisioning profile (e.g. .p7b)
};

enum class PemBlockKind {
  kCertificate,            // CERTIFICATE, X509 CERTIFICATE, TRUSTED CERTIFICATE
  kPrivateKey,             // PRIVATE KEY (PKCS#8, plain)
  kEncryptedPrivateKey,    // ENCRYPTED PRIVATE KEY (PKCS#8, PBES1/PBES2)
  kTraditionalPrivateKey,  // RSA/EC/DSA PRIVATE KEY, plain or Proc-Type: 4,ENCRYPTED
  kIgnorable,              // EC PARAMETERS: emitted next to EC keys by `openssl ecparam`
  kOther,                  // anything else: CERTIFICATE REQUEST, PUBLIC KEY, X509 CRL, ...
};

struct PemBlock {
  std::string label;  // the text between "BEGIN " and "-----", e.g. "RSA PRIVATE KEY"
  PemBlockKind kind = PemBlockKind::kOther;
  bool encrypted = false;  // ENCRYPTED PRIVATE KEY, or a Proc-Type: 4,ENCRYPTED header
  // The block's text from "-----BEGIN" through its END line, pointing into the bytes given
  // to DetectContent (which must outlive it).
  std::string_view text;
};

struct DetectedContent {
  ContentKind kind = ContentKind::kUnknown;
  // The container format this content counts as: PEM, DER, PKCS12, JKS, JCEKS,
  // MOBILEPROVISION; kAuto when unknown.
  SourceFormat format = SourceFormat::kAuto;
  std::vector<PemBlock> pem_blocks;  // kPem only, in file order
  // The file was cut short. kUnknown: the bytes start like a DER structure whose length
  // runs past the end. kPem: a BEGIN line has no matching END line.
  bool truncated = false;

  size_t CountPem(PemBlockKind kind) const;
  size_t CountPemKeys() const;  // private-key blocks of any encoding
  // What was found, for messages: "a PKCS#12 file", "a PEM file with 2 certificates and
  // a private key", "a DER certificate", "a JKS key store", "unrecognized data".
  std::string Description() const;
};

DetectedContent DetectContent(std::string_view bytes);

// How a format is named in messages: "PEM", "DER", "PKCS#12", "JKS", "JCEKS",
// "mobile provisioning".
std::string_view FormatDisplayName(SourceFormat format);

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_DETECT_H_

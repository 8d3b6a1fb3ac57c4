// ParseMaterial: detection, per-type importers and the validation every key-bearing
// entry goes through. Decisions worth knowing:
// - The content decides the format; the declared format only has to agree with it. JKS
//   and JCEKS count as agreeing with each other (keytool itself opens one as the other).
// - The leaf of a PEM upload is the certificate that matches the private key, so bundles
//   that list the intermediate first still import.
// - The chain is put in sending order: the issuer path from the leaf through the
//   uploaded certificates, then any others in upload order; each certificate once.
// - ImportInput::now == 0 means "the current time".
// - had_password: a non-empty password was needed to open the upload; a PKCS#12 with the
//   empty password counts as unprotected, whichever way it was opened.
// - Mobile provisioning: leaf = the first DeveloperCertificate, chain = the others, no key.
#include "core/material.h"

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "core/detect.h"
#include "core/import_error.h"
#include "core/jks.h"
#include "core/mobileprovision.h"
#include "core/pkcs12_reader.h"
#include "core/private_key.h"
#include "core/x509_info.h"

namespace wsstep::core {
namespace {

// Far above any real certificate, key store or profile; keeps hostile uploads bounded.
// Far above any real certificate or key store (a bundle of every public CA is ~250 KiB),
// and below the plugin's default gRPC message limit (16 MiB), so that an oversize upload
// reaches the store, which refuses it and writes the refusal to the audit log.
constexpr size_t kMaxUploadBytes = 4u << 20;

constexpr std::string_view kSupportedKeys =
    "RSA (2048 bits or more), EC P-256/P-384/P-521 or Ed25519";

Error Invalid(std::string_view input, std::string_view what, std::string hint = {}) {
  ossl::DrainErrors();
  return ImportError(Code::kInvalidCertificateFormat, input, what, std::move(hint));
}

bool SameAlias(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

std::string QuotedList(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += ", ";
    out += "'" + n + "'";
  }
  return out;
}

std::string Subject(X509* cert) { return NameOneLine(X509_get_subject_name(cert)); }

// Self-signed by name, key identifiers and signature. Key usage is deliberately not
// consulted: a self-signed client certificate rarely carries keyCertSign.
bool SelfSigned(X509* cert) {
  bool ok = X509_self_signed(cert, 1) == 1;
  ossl::ClearErrors();
  return ok;
}

// `issuer` issued `subject`: names and key identifiers line up and the signature checks.
bool IssuedBy(X509* subject, X509* issuer) {
  bool ok = X509_check_issued(issuer, subject) == X509_V_OK &&
            X509_verify(subject, X509_get0_pubkey(issuer)) == 1;
  ossl::ClearErrors();
  return ok;
}

bool KeyMatches(X509* cert, EVP_PKEY* key) {
  bool ok = EVP_PKEY_eq(X509_get0_pubkey(cert), key) == 1;
  ossl::ClearErrors();
  return ok;
}

// Real chains have a handful of certificates; ordering is quadratic, so a hostile upload
// with thousands keeps its upload order instead.
constexpr size_t kMaxChainToOrder = 32;

// Sending order: the issuer path up from the leaf, then whatever is left as uploaded.
// Each certificate once: copies of the leaf and repeats are dropped (keytool's PKCS#12
// lists a key entry's chain and then the same CAs again as trusted entries).
std::vector<ossl::X509Ptr> OrderChain(X509* leaf, std::vector<ossl::X509Ptr> pool) {
  std::set<std::string> seen = {ossl::Sha256Fingerprint(leaf)};
  std::erase_if(pool, [&](const ossl::X509Ptr& c) {
    return !seen.insert(ossl::Sha256Fingerprint(c.get())).second;
  });
  std::vector<ossl::X509Ptr> ordered;
  X509* current = leaf;
  while (!pool.empty() && pool.size() <= kMaxChainToOrder && !SelfSigned(current)) {
    auto it = std::find_if(pool.begin(), pool.end(),
                           [&](const ossl::X509Ptr& c) { return IssuedBy(current, c.get()); });
    if (it == pool.end()) break;
    ordered.push_back(std::move(*it));
    pool.erase(it);
    current = ordered.back().get();
  }
  for (auto& c : pool) ordered.push_back(std::move(c));
  return ordered;
}

// --- detection against what the administrator chose ---------------------------------

Status CheckDeclaredFormat(const ImportInput& in, const DetectedContent& found) {
  SourceFormat declared = in.declared_format;
  if (declared == SourceFormat::kAuto || declared == found.format) return {};
  auto java = [](SourceFormat f) { return f == SourceFormat::kJks || f == SourceFormat::kJceks; };
  if (java(declared) && java(found.format)) return {};
  Error e = Invalid(in.content_name,
                    "this is " + found.Description() + ", " +
                        std::string(FormatDisplayName(declared)) + " was selected",
                    "Select " + std::string(FormatDisplayName(found.format)) +
                        " (or automatic detection) for this file.");
  e.With("found", std::string(SourceFormatName(found.format)));
  e.With("selected", std::string(SourceFormatName(declared)));
  return e;
}

// The entry type a kind of content belongs to, for "choose X" hints.
std::string_view TypeFor(ContentKind kind) {
  switch (kind) {
    case ContentKind::kPkcs12:
      return "PKCS12";
    case ContentKind::kJks:
    case ContentKind::kJceks:
      return "JAVA_KEYSTORE";
    case ContentKind::kMobileProvision:
      return "MOBILE_PROVISIONING";
    default:
      return "KEY_PAIR or TRUST_STORE";
  }
}

Status CheckTypeFits(const ImportInput& in, const DetectedContent& found) {
  bool fits = false;
  switch (in.type) {
    case EntryType::kKeyPair:
      fits = found.kind == ContentKind::kPem || found.kind == ContentKind::kDerCertificate;
      if (found.kind == ContentKind::kDerPrivateKey ||
          found.kind == ContentKind::kDerEncryptedPrivateKey) {
        return Invalid(in.content_name, "this is " + found.Description() + ", not a certificate",
                       "Upload the certificate as the main file and the key as the key file.");
      }
      break;
    case EntryType::kPkcs12:
      fits = found.kind == ContentKind::kPkcs12;
      break;
    case EntryType::kTrustStore:
      fits = found.kind == ContentKind::kPem || found.kind == ContentKind::kDerCertificate ||
             found.kind == ContentKind::kPkcs12 || found.kind == ContentKind::kJks ||
             found.kind == ContentKind::kJceks;
      break;
    case EntryType::kJavaKeystore:
      fits = found.kind == ContentKind::kJks || found.kind == ContentKind::kJceks;
      break;
    case EntryType::kMobileProvisioning:
      fits = found.kind == ContentKind::kMobileProvision;
      break;
  }
  if (fits) return {};
  Error e = Invalid(in.content_name,
                    "this is " + found.Description() + ", which a " +
                        std::string(EntryTypeName(in.type)) + " entry cannot hold",
                    "Choose the " + std::string(TypeFor(found.kind)) + " type for this file.");
  e.With("found", std::string(SourceFormatName(found.format)));
  e.With("type", std::string(EntryTypeName(in.type)));
  return e;
}

// --- PEM ------------------------------------------------------------------------------

// Certificates are never encrypted; the callback only guarantees no terminal prompt.
int NoPassword(char*, int, int, void*) { return -1; }

Result<ossl::X509Ptr> CertificateFromPem(const PemBlock& block, std::string_view input, int index) {
  ossl::BioPtr bio = ossl::MemoryBio(block.text);
  ossl::X509Ptr cert(block.label == "TRUSTED CERTIFICATE"
                         ? PEM_read_bio_X509_AUX(bio.get(), nullptr, NoPassword, nullptr)
                         : PEM_read_bio_X509(bio.get(), nullptr, NoPassword, nullptr));
  if (!cert) {
    return Invalid(input,
                   "PEM certificate " + std::to_string(index) + " is not a valid X.509 certificate",
                   "Upload the certificate exactly as issued.");
  }
  return cert;
}

Result<std::vector<ossl::X509Ptr>> PemCertificates(const DetectedContent& found,
                                                   std::string_view input) {
  std::vector<ossl::X509Ptr> certs;
  int index = 0;
  for (const PemBlock& b : found.pem_blocks) {
    if (b.kind != PemBlockKind::kCertificate) continue;
    WSSTEP_ASSIGN_OR_RETURN(auto cert, CertificateFromPem(b, input, ++index));
    certs.push_back(std::move(cert));
  }
  return certs;
}

bool IsKeyBlock(const PemBlock& b) {
  return b.kind == PemBlockKind::kPrivateKey || b.kind == PemBlockKind::kEncryptedPrivateKey ||
         b.kind == PemBlockKind::kTraditionalPrivateKey;
}

// The one private key in a PEM; DecodedKey::key is null when it has none.
Result<DecodedKey> PemKey(const DetectedContent& found, std::string_view input,
                          const std::optional<SecretBytes>& password) {
  const PemBlock* key_block = nullptr;
  for (const PemBlock& b : found.pem_blocks) {
    if (!IsKeyBlock(b)) continue;
    if (key_block != nullptr) {
      return Invalid(input, "contains more than one private key",
                     "Upload one certificate and its key per entry.");
    }
    key_block = &b;
  }
  if (key_block == nullptr) return DecodedKey();
  return DecodePemPrivateKey(*key_block, password, input);
}

Status RejectTruncated(const DetectedContent& found, std::string_view input) {
  if (!found.truncated) return {};
  return Invalid(input, "this is " + found.Description(),
                 "Upload the complete file exactly as exported.");
}

// --- per-type importers ------------------------------------------------------------------

const std::optional<SecretBytes>& KeyPairPassword(const ImportInput& in) {
  return in.password ? in.password : in.key_password;
}

// An empty key upload counts as none: forms send empty fields.
bool HasSeparateKey(const ImportInput& in) { return in.key != nullptr && !in.key->empty(); }

Result<DecodedKey> SeparateKey(const ImportInput& in) {
  std::string_view name = in.key_name;
  DetectedContent found = DetectContent(in.key->view());
  WSSTEP_RETURN_IF_ERROR(RejectTruncated(found, name));
  switch (found.kind) {
    case ContentKind::kPem: {
      WSSTEP_ASSIGN_OR_RETURN(DecodedKey key, PemKey(found, name, KeyPairPassword(in)));
      if (!key.key) {
        return Invalid(name, "this is " + found.Description() + ", not a private key",
                       "Upload the private key (PEM or DER) as the key file.");
      }
      return key;
    }
    case ContentKind::kDerPrivateKey:
    case ContentKind::kDerEncryptedPrivateKey: {
      return DecodeDerPrivateKey(in.key->view(), KeyPairPassword(in), name);
    }
    case ContentKind::kUnknown:
      return Invalid(name, "not a private key in any supported format (PEM or DER)",
                     "Upload the private key as PEM or DER (PKCS#8 or traditional).");
    default:
      return Invalid(name, "this is " + found.Description() + ", not a private key",
                     "Upload the private key (PEM or DER) as the key file.");
  }
}

Status ImportKeyPair(const ImportInput& in, const DetectedContent& found, ParsedMaterial& out) {
  std::string_view name = in.content_name;
  std::vector<ossl::X509Ptr> certs;
  DecodedKey key;
  if (found.kind == ContentKind::kDerCertificate) {
    WSSTEP_ASSIGN_OR_RETURN(auto cert, CertificateFromDer(in.content->view()));
    certs.push_back(std::move(cert));
  } else {
    WSSTEP_ASSIGN_OR_RETURN(certs, PemCertificates(found, name));
    if (certs.empty()) {
      return Invalid(name, "contains no certificate (this is " + found.Description() + ")",
                     "Upload the certificate (PEM or DER) as the main file.");
    }
    WSSTEP_ASSIGN_OR_RETURN(key, PemKey(found, name, KeyPairPassword(in)));
  }
  if (HasSeparateKey(in)) {
    WSSTEP_ASSIGN_OR_RETURN(DecodedKey separate, SeparateKey(in));
    if (key.key && EVP_PKEY_eq(key.key.get(), separate.key.get()) != 1) {
      return Invalid(in.key_name, "a different private key than the one inside " + in.content_name,
                     "Upload the key once: either inside the PEM or as the key file.");
    }
    key = std::move(separate);
  }
  if (!key.key) {
    ossl::ClearErrors();
    return ImportError(Code::kPrivateKeyMissing, name,
                       "no private key: the file holds certificates only and no key file was "
                       "given",
                       "Upload the private key as the key file, or a PEM that contains it.");
  }
  out.detected_format = found.format;
  out.had_password = key.was_encrypted && KeyPairPassword(in) && !KeyPairPassword(in)->empty();
  // The leaf is the certificate the key belongs to; fall back to the first one so the
  // mismatch is reported against what the administrator most likely meant.
  auto leaf_it = std::find_if(certs.begin(), certs.end(), [&](const ossl::X509Ptr& c) {
    return KeyMatches(c.get(), key.key.get());
  });
  if (leaf_it == certs.end()) leaf_it = certs.begin();
  out.leaf = std::move(*leaf_it);
  certs.erase(leaf_it);
  out.chain = OrderChain(out.leaf.get(), std::move(certs));
  out.key = std::move(key.key);
  return {};
}

Result<size_t> SelectByAlias(const std::vector<std::string>& aliases, std::string_view wanted,
                             std::string_view input, std::string_view what) {
  if (!wanted.empty()) {
    for (size_t i = 0; i < aliases.size(); ++i) {
      if (SameAlias(aliases[i], wanted)) return i;
    }
    return Invalid(input,
                   "has no " + std::string(what) + " named '" + std::string(wanted) + "'; it has " +
                       QuotedList(aliases),
                   "Give the alias of one of the listed entries.")
        .With("aliases", QuotedList(aliases));
  }
  if (aliases.size() == 1) return size_t{0};
  return Invalid(input,
                 "holds " + std::to_string(aliases.size()) + " " + std::string(what) + "s (" +
                     QuotedList(aliases) + "); say which one to import",
                 "Give the alias of the entry to import.")
      .With("aliases", QuotedList(aliases));
}

Status ImportPkcs12(const ImportInput& in, const DetectedContent& found, ParsedMaterial& out) {
  std::string_view name = in.content_name;
  WSSTEP_ASSIGN_OR_RETURN(Pkcs12Contents p12, ReadPkcs12(in.content->view(), name, in.password));
  out.detected_format = found.format;
  out.had_password = p12.had_password;
  if (in.type == EntryType::kTrustStore) {
    if (!p12.keys.empty()) {
      return Invalid(name,
                     "this PKCS#12 file contains a private key; a trust store holds "
                     "certificates only",
                     "Choose the PKCS12 type to import it as a client certificate.");
    }
    if (p12.certs.empty()) {
      return Invalid(name, "the PKCS#12 file contains no certificate",
                     "Upload a trust store that contains the trusted certificates.");
    }
    for (auto& c : p12.certs) out.trusted.push_back(std::move(c.cert));
    return {};
  }
  if (p12.keys.empty()) {
    return ImportError(Code::kPrivateKeyMissing, name,
                       "the PKCS#12 file contains no private key (" +
                           std::to_string(p12.certs.size()) + " certificate(s) only)",
                       "Export the PKCS#12 together with its private key, or import a "
                       "certificate-only file as TRUST_STORE.");
  }
  std::vector<std::string> aliases;
  for (const auto& k : p12.keys) {
    aliases.push_back(k.alias.empty() ? "(no alias)" : k.alias);
  }
  WSSTEP_ASSIGN_OR_RETURN(size_t chosen, SelectByAlias(aliases, in.alias, name, "private key"));
  Pkcs12Key& key = p12.keys[chosen];

  // Pair the key with its certificate: by localKeyID first (what every writer sets),
  // then by public key.
  auto leaf_it = p12.certs.end();
  if (!key.local_key_id.empty()) {
    leaf_it = std::find_if(p12.certs.begin(), p12.certs.end(),
                           [&](const Pkcs12Cert& c) { return c.local_key_id == key.local_key_id; });
  }
  if (leaf_it == p12.certs.end()) {
    leaf_it = std::find_if(p12.certs.begin(), p12.certs.end(), [&](const Pkcs12Cert& c) {
      return KeyMatches(c.cert.get(), key.key.get());
    });
  }
  if (p12.certs.empty()) {
    return Invalid(name, "the PKCS#12 file contains a private key but no certificate",
                   "Export the PKCS#12 with the certificate of its key.");
  }
  if (leaf_it == p12.certs.end()) leaf_it = p12.certs.begin();  // reported as a mismatch
  out.key_alias = !key.alias.empty() ? key.alias : leaf_it->alias;
  out.leaf = std::move(leaf_it->cert);
  p12.certs.erase(leaf_it);
  // The certificates of the other keys are other identities, not this one's chain.
  std::vector<ossl::X509Ptr> pool;
  for (auto& c : p12.certs) {
    bool other_identity = std::any_of(p12.keys.begin(), p12.keys.end(), [&](const Pkcs12Key& k) {
      return &k != &key && !k.local_key_id.empty() && k.local_key_id == c.local_key_id;
    });
    if (!other_identity) pool.push_back(std::move(c.cert));
  }
  out.chain = OrderChain(out.leaf.get(), std::move(pool));
  out.key = std::move(key.key);
  return {};
}

Result<ossl::X509Ptr> JavaCertificate(std::string_view der, std::string_view input,
                                      std::string_view alias) {
  auto cert = CertificateFromDer(der);
  if (!cert.ok()) {
    return Invalid(input, "the certificate of entry '" + std::string(alias) + "' is not valid");
  }
  return cert;
}

Status ImportJavaKeystore(const ImportInput& in, ParsedMaterial& out) {
  std::string_view name = in.content_name;
  WSSTEP_ASSIGN_OR_RETURN(
      JavaKeystore ks,
      ParseJavaKeystore(in.content->view(), name, in.password, in.key_password,
                        in.type == EntryType::kTrustStore ? JavaKeyEntries::kListOnly
                                                          : JavaKeyEntries::kDecrypt));
  out.detected_format = ks.jceks ? SourceFormat::kJceks : SourceFormat::kJks;
  out.had_password = in.password && !in.password->empty();
  std::vector<JavaKeystoreEntry*> key_entries;
  for (auto& e : ks.entries) {
    if (e.is_private_key) {
      key_entries.push_back(&e);
    } else {
      WSSTEP_ASSIGN_OR_RETURN(auto cert, JavaCertificate(e.trusted_cert_der, name, e.alias));
      out.trusted.push_back(std::move(cert));
    }
  }
  if (in.type == EntryType::kTrustStore) {
    if (!key_entries.empty()) {
      return Invalid(name,
                     "the key store contains the private key entry '" + key_entries.front()->alias +
                         "'; a trust store holds certificates only",
                     "Choose the JAVA_KEYSTORE type to import its key entry.");
    }
    if (out.trusted.empty()) {
      return Invalid(name, "the key store contains no trusted certificate",
                     "Upload a trust store that contains the trusted certificates.");
    }
    return {};
  }
  if (key_entries.empty()) {
    if (!in.alias.empty()) {
      return Invalid(name, "has no private key entry named '" + in.alias + "'",
                     "Leave the alias empty to import the trusted certificates.");
    }
    if (out.trusted.empty()) {
      return Invalid(name, "the key store is empty", "Upload a key store with entries.");
    }
    return {};  // trusted-certificate entries only
  }
  std::vector<std::string> aliases;
  for (const auto* e : key_entries) aliases.push_back(e->alias);
  WSSTEP_ASSIGN_OR_RETURN(size_t chosen,
                          SelectByAlias(aliases, in.alias, name, "private key entry"));
  JavaKeystoreEntry& entry = *key_entries[chosen];
  if (entry.cert_chain_der.empty()) {
    return Invalid(name, "the entry '" + entry.alias + "' has no certificate");
  }
  WSSTEP_ASSIGN_OR_RETURN(out.leaf, JavaCertificate(entry.cert_chain_der[0], name, entry.alias));
  std::vector<ossl::X509Ptr> pool;
  for (size_t i = 1; i < entry.cert_chain_der.size(); ++i) {
    WSSTEP_ASSIGN_OR_RETURN(auto cert, JavaCertificate(entry.cert_chain_der[i], name, entry.alias));
    pool.push_back(std::move(cert));
  }
  out.chain = OrderChain(out.leaf.get(), std::move(pool));
  auto key = KeyFromPkcs8Der(entry.pkcs8_der);
  if (!key.ok()) {
    return Invalid(name, "the private key of entry '" + entry.alias + "' is not valid");
  }
  out.key = std::move(key).value();
  out.key_alias = entry.alias;
  return {};
}

Status ImportTrustStore(const ImportInput& in, const DetectedContent& found, ParsedMaterial& out) {
  std::string_view name = in.content_name;
  out.detected_format = found.format;
  if (found.kind == ContentKind::kDerCertificate) {
    WSSTEP_ASSIGN_OR_RETURN(auto cert, CertificateFromDer(in.content->view()));
    out.trusted.push_back(std::move(cert));
    return {};
  }
  if (found.CountPemKeys() > 0) {
    return Invalid(
        name, "this is " + found.Description() + "; a trust store must not contain a private key",
        "Remove the key, or import the file as KEY_PAIR.");
  }
  WSSTEP_ASSIGN_OR_RETURN(out.trusted, PemCertificates(found, name));
  if (out.trusted.empty()) {
    return Invalid(name, "contains no certificate (this is " + found.Description() + ")",
                   "Upload the trusted CA or server certificates (PEM or DER).");
  }
  return {};
}

Status ImportMobileProvision(const ImportInput& in, const DetectedContent& found,
                             ParsedMaterial& out) {
  WSSTEP_ASSIGN_OR_RETURN(ProvisioningProfile profile,
                          ParseMobileProvision(in.content->view(), in.content_name));
  out.detected_format = found.format;
  out.attributes = std::move(profile.attributes);
  out.leaf = std::move(profile.developer_certificates.front());
  for (size_t i = 1; i < profile.developer_certificates.size(); ++i) {
    out.chain.push_back(std::move(profile.developer_certificates[i]));
  }
  return {};
}

// --- validation of key-bearing entries ------------------------------------------------

Status ValidateIdentity(const ImportInput& in, UnixSeconds now, ParsedMaterial& out) {
  std::string_view name = in.content_name;
  std::string subject = Subject(out.leaf.get());
  if (!KeyMatches(out.leaf.get(), out.key.get())) {
    return ImportError(Code::kKeyCertMismatch, name,
                       "the private key does not belong to the certificate " + subject,
                       "Upload the key that was used to request this certificate.")
        .With("subject", subject);
  }
  KeyDescription key = DescribeKey(out.key.get());
  if (!key.supported) {
    return ImportError(Code::kUnsupportedAlgorithm, name,
                       "the key is " + key.Display() + ", which is not supported",
                       "Use a certificate with an " + std::string(kSupportedKeys) + " key.")
        .With("algorithm", key.Display());
  }
  std::optional<UnixSeconds> not_after = AsnTimeToUnix(X509_get0_notAfter(out.leaf.get()));
  if (!not_after) return Invalid(name, "the certificate " + subject + " has an invalid date");
  if (*not_after < now) {
    std::string date = FormatUtc(*not_after);
    return ImportError(Code::kCertificateExpired, name,
                       "the certificate " + subject + " expired on " + date,
                       "Renew the certificate and upload the new one.")
        .With("not_after", date)
        .With("subject", subject);
  }
  if (!SelfSigned(out.leaf.get())) {
    auto issued = [&](X509* c) { return IssuedBy(out.leaf.get(), c); };
    bool in_chain = std::any_of(out.chain.begin(), out.chain.end(),
                                [&](const ossl::X509Ptr& c) { return issued(c.get()); });
    bool in_trust = std::any_of(in.bound_trust.begin(), in.bound_trust.end(), issued);
    if (!in_chain && !in_trust) {
      std::string issuer = NameOneLine(X509_get_issuer_name(out.leaf.get()));
      Error warning(Code::kChainIncomplete,
                    std::string(name) + ": the issuer of " + subject + " (" + issuer +
                        ") is neither included nor in a bound trust store",
                    "Upload the intermediate certificates with the certificate, unless the "
                    "server already has them.",
                    Side::kConfiguration);
      warning.With("input", std::string(name)).With("issuer", issuer);
      out.warnings.push_back(std::move(warning));
    }
  }
  WSSTEP_ASSIGN_OR_RETURN(out.key_pkcs8_der, KeyToPkcs8Der(out.key.get(), name));
  return {};
}

Status Import(const ImportInput& in, ParsedMaterial& out) {
  std::string_view name = in.content_name;
  if (in.content == nullptr || in.content->empty()) {
    return Invalid(name, "the file is empty", "Upload the certificate or key store file.");
  }
  if (in.content->size() > kMaxUploadBytes ||
      (in.key != nullptr && in.key->size() > kMaxUploadBytes)) {
    return Invalid(name, "the upload is larger than " + std::to_string(kMaxUploadBytes >> 20) +
                             " MiB, far more than any certificate or key store");
  }
  if (HasSeparateKey(in) && in.type != EntryType::kKeyPair) {
    return Invalid(in.key_name, "a separate private key file only goes with a KEY_PAIR entry",
                   "Leave the key file empty for this type.");
  }
  DetectedContent found = DetectContent(in.content->view());
  if (found.kind == ContentKind::kUnknown) {
    return Invalid(name,
                   found.truncated
                       ? "this is " + found.Description()
                       : std::string("not a certificate, key or key store in any supported "
                                     "format (PEM, DER, PKCS#12, JKS, JCEKS, mobile "
                                     "provisioning)"),
                   "Upload the file exactly as exported.");
  }
  WSSTEP_RETURN_IF_ERROR(RejectTruncated(found, name));
  WSSTEP_RETURN_IF_ERROR(CheckDeclaredFormat(in, found));
  WSSTEP_RETURN_IF_ERROR(CheckTypeFits(in, found));
  switch (found.kind) {
    case ContentKind::kPkcs12:
      return ImportPkcs12(in, found, out);
    case ContentKind::kJks:
    case ContentKind::kJceks:
      return ImportJavaKeystore(in, out);
    case ContentKind::kMobileProvision:
      return ImportMobileProvision(in, found, out);
    default:
      return in.type == EntryType::kTrustStore ? ImportTrustStore(in, found, out)
                                               : ImportKeyPair(in, found, out);
  }
}

}  // namespace

Result<ParsedMaterial> ParseMaterial(const ImportInput& input) {
  EnsureProvidersLoaded();
  ossl::ClearErrors();  // a stale error from elsewhere must not be blamed on this upload
  ParsedMaterial out;
  Status st = Import(input, out);
  if (st.ok() && out.key) {
    UnixSeconds now = input.now != 0 ? input.now : SystemClock()();
    st = ValidateIdentity(input, now, out);
  }
  ossl::DrainErrors();
  if (!st.ok()) return st.error();
  return out;
}

void DescribeMaterial(const ParsedMaterial& material, EntryMetadata& out) {
  out.certificate.reset();
  out.chain_subjects.clear();
  out.trusted.clear();
  if (material.leaf) {
    out.certificate = DescribeCertificate(material.leaf.get());
    out.chain_subjects.push_back(out.certificate->subject);
    for (const auto& c : material.chain) out.chain_subjects.push_back(Subject(c.get()));
  }
  for (const auto& c : material.trusted) out.trusted.push_back(DescribeCertificate(c.get()));
  out.key_alias = material.key_alias;
  out.attributes = material.attributes;
  out.has_private_key = material.key != nullptr;
  out.has_password = material.had_password;
  out.source_format = material.detected_format;
}

Result<ossl::X509Ptr> CertificateFromDer(std::string_view der) {
  const auto* begin = reinterpret_cast<const unsigned char*>(der.data());
  const unsigned char* p = begin;
  ossl::X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!cert || p != begin + der.size()) {
    // Trailing newlines are tolerated by detection; anything else is not one certificate.
    bool padding_only =
        cert && std::all_of(reinterpret_cast<const char*>(p), der.data() + der.size(), [](char c) {
          return c == '\n' || c == '\r' || c == ' ' || c == '\t' || c == '\0';
        });
    if (!padding_only) {
      return Invalid("certificate", "not a valid DER X.509 certificate");
    }
  }
  ossl::ClearErrors();
  return cert;
}

}  // namespace wsstep::core

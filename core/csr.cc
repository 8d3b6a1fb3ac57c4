#include "core/csr.h"

#include <openssl/pem.h>

#include <algorithm>
#include <optional>

#include "core/material.h"
#include "core/private_key.h"

namespace wsstep::core {
namespace {

struct ExtensionStackDeleter {
  void operator()(STACK_OF(X509_EXTENSION) * s) const {
    sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free);
  }
};
using ExtensionStackPtr = std::unique_ptr<STACK_OF(X509_EXTENSION), ExtensionStackDeleter>;

Error InvalidField(std::string_view field, std::string what) {
  return Error(Code::kInvalidArgument, std::string(field) + " " + std::move(what),
               "Correct the " + std::string(field) + " field of the certificate request.",
               Side::kConfiguration)
      .With("field", std::string(field));
}

Error OpenSslFailure(std::string_view step) {
  std::string why = ossl::DrainErrors();
  return Error(Code::kInternal, "key generation: " + std::string(step) + " failed" +
                                    (why.empty() ? std::string() : ": " + why));
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Number of code points if `s` is well-formed UTF-8 without control characters.
std::optional<size_t> TextLength(std::string_view s) {
  size_t chars = 0;
  for (size_t i = 0; i < s.size(); ++chars) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      n = 1;
      cp = c;
    } else if ((c & 0xe0) == 0xc0) {
      n = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 4;
      cp = c & 0x07;
    } else {
      return std::nullopt;
    }
    if (i + n > s.size()) return std::nullopt;
    for (size_t k = 1; k < n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return std::nullopt;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, surrogates and out-of-range code points are not UTF-8.
    static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return std::nullopt;
    }
    if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return std::nullopt;
    i += n;
  }
  return chars;
}

Status CheckText(std::string_view field, std::string_view value, size_t max_chars, bool required) {
  if (value.empty()) {
    return required ? Status(InvalidField(field, "is required")) : Status();
  }
  auto len = TextLength(value);
  if (!len) return InvalidField(field, "must be UTF-8 text without control characters");
  if (*len > max_chars) {
    return InvalidField(field, "is " + std::to_string(*len) + " characters long: at most " +
                                   std::to_string(max_chars) + " are allowed");
  }
  return Status();
}

bool IsLdh(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

bool ValidDnsName(std::string_view name) {
  if (name.size() > 2 && name.substr(0, 2) == "*.") name.remove_prefix(2);
  if (name.empty() || name.size() > 253) return false;
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    std::string_view label = name.substr(start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-' ||
        !std::all_of(label.begin(), label.end(), IsLdh)) {
      return false;
    }
    start = dot + 1;
  }
  return true;
}

bool ValidEmail(std::string_view email) {
  size_t at = email.find('@');
  return at != std::string_view::npos && at > 0 && at + 1 < email.size() &&
         email.find('@', at + 1) == std::string_view::npos &&
         std::all_of(email.begin(), email.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

enum class KeyKind { kRsa, kEc, kEd25519 };

struct KeySpec {
  KeyKind kind;
  int rsa_bits = 0;
  std::string curve;  // OpenSSL group name, e.g. "P-256"
};

Result<KeySpec> ChooseKey(const CsrRequest& r) {
  if (EqualsIgnoreCase(r.key_algorithm, "RSA")) {
    if (r.key_bits != 2048 && r.key_bits != 3072 && r.key_bits != 4096) {
      return InvalidField("key_bits", "must be 2048, 3072 or 4096 for an RSA key, not " +
                                          std::to_string(r.key_bits));
    }
    return KeySpec{KeyKind::kRsa, r.key_bits, {}};
  }
  if (EqualsIgnoreCase(r.key_algorithm, "EC") || EqualsIgnoreCase(r.key_algorithm, "ECDSA")) {
    std::string curve = r.curve;
    if (curve.empty()) {
      curve = r.key_bits == 384 ? "P-384" : r.key_bits == 521 ? "P-521" : "P-256";
    }
    for (const char* known : {"P-256", "P-384", "P-521"}) {
      if (EqualsIgnoreCase(curve, known)) return KeySpec{KeyKind::kEc, 0, known};
    }
    return InvalidField("curve", "'" + curve + "' is not supported: use P-256, P-384 or P-521");
  }
  if (EqualsIgnoreCase(r.key_algorithm, "Ed25519")) return KeySpec{KeyKind::kEd25519, 0, {}};
  return InvalidField("key_algorithm",
                      "'" + r.key_algorithm + "' is not supported: use RSA, EC or Ed25519");
}

std::string UpperAscii(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

Result<ossl::EvpPkeyPtr> GenerateKey(const KeySpec& spec) {
  EVP_PKEY* key = nullptr;
  switch (spec.kind) {
    case KeyKind::kRsa:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(spec.rsa_bits));
      break;
    case KeyKind::kEc:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", spec.curve.c_str());
      break;
    case KeyKind::kEd25519:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
      break;
  }
  if (key == nullptr) return OpenSslFailure("generating the private key");
  return ossl::EvpPkeyPtr(key);
}

Status AddSubject(X509_REQ* req, const CsrRequest& r) {
  X509_NAME* name = X509_REQ_get_subject_name(req);
  // Conventional order, most general first.
  const std::pair<int, std::string> fields[] = {
      {NID_countryName, UpperAscii(r.country)},
      {NID_stateOrProvinceName, r.state},
      {NID_localityName, r.locality},
      {NID_organizationName, r.organization},
      {NID_organizationalUnitName, r.organizational_unit},
      {NID_commonName, r.common_name},
      {NID_pkcs9_emailAddress, r.email},
  };
  for (const auto& [nid, value] : fields) {
    if (value.empty()) continue;
    if (X509_NAME_add_entry_by_NID(name, nid, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(value.data()),
                                   static_cast<int>(value.size()), -1, 0) != 1) {
      return OpenSslFailure(std::string("setting the subject ") + OBJ_nid2ln(nid));
    }
  }
  return Status();
}

Status AddSubjectAltNames(X509_REQ* req, const std::vector<std::string>& dns_names) {
  if (dns_names.empty()) return Status();
  ossl::GeneralNamesPtr names(GENERAL_NAMES_new());
  if (!names) return OpenSslFailure("building subjectAltName");
  for (const std::string& dns : dns_names) {
    GENERAL_NAME* gen = GENERAL_NAME_new();
    ASN1_IA5STRING* text = ASN1_IA5STRING_new();
    if (gen == nullptr || text == nullptr ||
        ASN1_STRING_set(text, dns.data(), static_cast<int>(dns.size())) != 1) {
      GENERAL_NAME_free(gen);
      ASN1_IA5STRING_free(text);
      return OpenSslFailure("building subjectAltName");
    }
    GENERAL_NAME_set0_value(gen, GEN_DNS, text);  // gen owns text now
    if (sk_GENERAL_NAME_push(names.get(), gen) == 0) {
      GENERAL_NAME_free(gen);
      return OpenSslFailure("building subjectAltName");
    }
  }
  STACK_OF(X509_EXTENSION)* raw = nullptr;
  if (X509V3_add1_i2d(&raw, NID_subject_alt_name, names.get(), 0, X509V3_ADD_APPEND) != 1) {
    return OpenSslFailure("encoding subjectAltName");
  }
  ExtensionStackPtr extensions(raw);
  if (X509_REQ_add_extensions(req, extensions.get()) != 1) {
    return OpenSslFailure("adding the extension request");
  }
  return Status();
}

}  // namespace

Status ValidateCsrRequest(const CsrRequest& r) {
  WSSTEP_RETURN_IF_ERROR(CheckText("common_name", r.common_name, 64, /*required=*/true));
  WSSTEP_RETURN_IF_ERROR(CheckText("organization", r.organization, 64, false));
  WSSTEP_RETURN_IF_ERROR(CheckText("organizational_unit", r.organizational_unit, 64, false));
  WSSTEP_RETURN_IF_ERROR(CheckText("state", r.state, 128, false));
  WSSTEP_RETURN_IF_ERROR(CheckText("locality", r.locality, 128, false));
  if (!r.country.empty() &&
      (r.country.size() != 2 || !std::all_of(r.country.begin(), r.country.end(), [](char c) {
         return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
       }))) {
    return InvalidField(
        "country", "must be a two-letter ISO 3166 code such as \"DE\", not '" + r.country + "'");
  }
  if (!r.email.empty()) {
    if (!ValidEmail(r.email)) {
      return InvalidField("email",
                          "'" + r.email + "' is not an ASCII address like name@example.com");
    }
    WSSTEP_RETURN_IF_ERROR(CheckText("email", r.email, 128, false));
  }
  for (size_t i = 0; i < r.dns_names.size(); ++i) {
    if (!ValidDnsName(r.dns_names[i])) {
      return InvalidField("dns_names", "entry " + std::to_string(i + 1) + " '" + r.dns_names[i] +
                                           "' is not a host name (letters, digits, hyphens, dots; "
                                           "optionally starting with \"*.\")");
    }
  }
  auto spec = ChooseKey(r);
  return spec.ok() ? Status() : spec.status();
}

Result<GeneratedCsr> GenerateKeyAndCsr(const CsrRequest& request) {
  WSSTEP_RETURN_IF_ERROR(ValidateCsrRequest(request));
  WSSTEP_ASSIGN_OR_RETURN(KeySpec spec, ChooseKey(request));
  WSSTEP_ASSIGN_OR_RETURN(ossl::EvpPkeyPtr key, GenerateKey(spec));

  ossl::X509ReqPtr req(X509_REQ_new());
  if (!req || X509_REQ_set_version(req.get(), 0) != 1 ||
      X509_REQ_set_pubkey(req.get(), key.get()) != 1) {
    return OpenSslFailure("creating the request");
  }
  WSSTEP_RETURN_IF_ERROR(AddSubject(req.get(), request));
  WSSTEP_RETURN_IF_ERROR(AddSubjectAltNames(req.get(), request.dns_names));
  // Ed25519 has its digest built in; OpenSSL wants no separate one for it.
  const EVP_MD* md = spec.kind == KeyKind::kEd25519 ? nullptr : EVP_sha256();
  if (X509_REQ_sign(req.get(), key.get(), md) <= 0) return OpenSslFailure("signing the request");

  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1) {
    return OpenSslFailure("writing the request as PEM");
  }
  char* pem = nullptr;
  long pem_len = BIO_get_mem_data(bio.get(), &pem);

  GeneratedCsr out;
  out.csr_pem.assign(pem, static_cast<size_t>(pem_len));
  WSSTEP_ASSIGN_OR_RETURN(out.key_pkcs8_der, KeyToPkcs8Der(key.get(), "generated key"));
  return out;
}

Status CheckCertificateMatchesKey(X509* cert, const SecretBytes& key_pkcs8_der,
                                  std::string_view entry_name) {
  if (cert == nullptr) {
    return Error(Code::kInvalidArgument,
                 "no certificate given to attach to '" + std::string(entry_name) + "'");
  }
  WSSTEP_ASSIGN_OR_RETURN(ossl::EvpPkeyPtr key, KeyFromPkcs8Der(key_pkcs8_der));
  EVP_PKEY* cert_key = X509_get0_pubkey(cert);
  const bool match = cert_key != nullptr && EVP_PKEY_eq(cert_key, key.get()) == 1;
  ossl::ClearErrors();  // a type mismatch inside EVP_PKEY_eq queues an error
  if (!match) {
    return Error(Code::kKeyCertMismatch,
                 "the certificate does not match the pending key of '" + std::string(entry_name) +
                     "'",
                 "Attach the certificate the CA issued for this entry's CSR.", Side::kConfiguration)
        .With("entry", std::string(entry_name));
  }
  return Status();
}

}  // namespace wsstep::core

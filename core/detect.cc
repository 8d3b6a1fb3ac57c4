#include "core/detect.h"

#include <openssl/asn1.h>
#include <openssl/cms.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include <cstdint>
#include <optional>

#include "core/ossl.h"

namespace wsstep::core {
namespace {

constexpr std::string_view kBegin = "-----BEGIN ";
constexpr std::string_view kDashes = "-----";

// Tools append a newline (or, for some Windows exports, NUL padding) after a DER
// structure; anything else after it means the bytes are not one DER object.
bool OnlyPaddingFrom(std::string_view bytes, size_t pos) {
  for (size_t i = pos; i < bytes.size(); ++i) {
    char c = bytes[i];
    if (c != '\n' && c != '\r' && c != ' ' && c != '\t' && c != '\0') return false;
  }
  return true;
}

// Runs a d2i function over the whole input: true only when it parses and nothing but
// padding follows. The decoded object is freed at once: detection keeps nothing.
template <typename T, typename D2i, typename Free>
bool ParsesWhole(std::string_view bytes, D2i d2i, Free free_fn, T** keep = nullptr) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  T* obj = d2i(nullptr, &p, static_cast<long>(bytes.size()));
  if (obj == nullptr) {
    ossl::ClearErrors();
    return false;
  }
  size_t used = static_cast<size_t>(p - reinterpret_cast<const unsigned char*>(bytes.data()));
  bool whole = OnlyPaddingFrom(bytes, used);
  if (whole && keep != nullptr) {
    *keep = obj;
  } else {
    free_fn(obj);
  }
  return whole;
}

PemBlockKind KindOfLabel(std::string_view label) {
  if (label == "CERTIFICATE" || label == "X509 CERTIFICATE" || label == "TRUSTED CERTIFICATE") {
    return PemBlockKind::kCertificate;
  }
  if (label == "PRIVATE KEY") return PemBlockKind::kPrivateKey;
  if (label == "ENCRYPTED PRIVATE KEY") return PemBlockKind::kEncryptedPrivateKey;
  if (label == "RSA PRIVATE KEY" || label == "EC PRIVATE KEY" || label == "DSA PRIVATE KEY") {
    return PemBlockKind::kTraditionalPrivateKey;
  }
  if (label == "EC PARAMETERS") return PemBlockKind::kIgnorable;
  return PemBlockKind::kOther;
}

// RFC 1421 headers sit between the BEGIN line and the first empty line; the only one
// that matters here is "Proc-Type: 4,ENCRYPTED" of traditional encrypted keys.
bool HasEncryptedProcType(std::string_view block) {
  size_t line_start = block.find('\n');
  while (line_start != std::string_view::npos) {
    ++line_start;
    size_t line_end = block.find('\n', line_start);
    std::string_view line =
        block.substr(line_start, line_end == std::string_view::npos ? std::string_view::npos
                                                                    : line_end - line_start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.find(':') == std::string_view::npos) return false;
    if (line.starts_with("Proc-Type:") && line.find("ENCRYPTED") != std::string_view::npos) {
      return true;
    }
    line_start = line_end;
  }
  return false;
}

// Finds every complete BEGIN/END pair. Text outside blocks is allowed (OpenSSL's
// "Bag Attributes" lines, comments). Sets *unterminated for a BEGIN without its END.
std::vector<PemBlock> ScanPem(std::string_view s, bool* unterminated) {
  std::vector<PemBlock> blocks;
  size_t pos = 0;
  while (true) {
    size_t b = s.find(kBegin, pos);
    if (b == std::string_view::npos) break;
    if (b != 0 && s[b - 1] != '\n') {  // BEGIN must start a line
      pos = b + 1;
      continue;
    }
    size_t label_start = b + kBegin.size();
    size_t label_end = s.find(kDashes, label_start);
    size_t line_end = s.find('\n', b);
    if (label_end == std::string_view::npos ||
        (line_end != std::string_view::npos && label_end > line_end)) {
      *unterminated = true;
      break;
    }
    std::string label(s.substr(label_start, label_end - label_start));
    std::string end_marker = "-----END " + label + "-----";
    size_t e = s.find(end_marker, label_end);
    if (e == std::string_view::npos) {
      *unterminated = true;
      break;
    }
    size_t block_end = e + end_marker.size();
    PemBlock block;
    block.kind = KindOfLabel(label);
    block.text = s.substr(b, block_end - b);
    block.encrypted =
        block.kind == PemBlockKind::kEncryptedPrivateKey ||
        (block.kind == PemBlockKind::kTraditionalPrivateKey && HasEncryptedProcType(block.text));
    block.label = std::move(label);
    blocks.push_back(std::move(block));
    pos = block_end;
  }
  return blocks;
}

bool IsProvisioningPlist(std::string_view content) {
  return content.find("<plist") != std::string_view::npos || content.starts_with("bplist00");
}

// Classifies a CMS ContentInfo: a SignedData carrying a property list is a provisioning
// profile; any other CMS is reported as such so the message can say what it is.
std::optional<ContentKind> DetectCms(std::string_view bytes) {
  CMS_ContentInfo* cms = nullptr;
  if (!ParsesWhole<CMS_ContentInfo>(bytes, d2i_CMS_ContentInfo, CMS_ContentInfo_free, &cms)) {
    return std::nullopt;
  }
  ContentKind kind = ContentKind::kOtherCms;
  if (OBJ_obj2nid(CMS_get0_type(cms)) == NID_pkcs7_signed) {
    ASN1_OCTET_STRING** content = CMS_get0_content(cms);
    if (content != nullptr && *content != nullptr) {
      std::string_view text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(*content)),
                            static_cast<size_t>(ASN1_STRING_length(*content)));
      if (IsProvisioningPlist(text)) kind = ContentKind::kMobileProvision;
    }
  }
  CMS_ContentInfo_free(cms);
  ossl::ClearErrors();
  return kind;
}

// A DER SEQUENCE whose declared length is longer than the bytes we have.
bool LooksLikeTruncatedDer(std::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  long len = 0;
  int tag = 0, cls = 0;
  int ret = ASN1_get_object(&p, &len, &tag, &cls, static_cast<long>(bytes.size()));
  ossl::ClearErrors();
  return ret == (0x80 | V_ASN1_CONSTRUCTED) && tag == V_ASN1_SEQUENCE;
}

DetectedContent DetectDer(std::string_view bytes) {
  DetectedContent d;
  d.format = SourceFormat::kDer;
  if (ParsesWhole<X509>(bytes, d2i_X509, X509_free)) {
    d.kind = ContentKind::kDerCertificate;
  } else if (ParsesWhole<PKCS12>(bytes, d2i_PKCS12, PKCS12_free)) {
    d.kind = ContentKind::kPkcs12;
    d.format = SourceFormat::kPkcs12;
  } else if (ParsesWhole<X509_SIG>(bytes, d2i_X509_SIG, X509_SIG_free)) {
    d.kind = ContentKind::kDerEncryptedPrivateKey;
  } else if (ParsesWhole<PKCS8_PRIV_KEY_INFO>(bytes, d2i_PKCS8_PRIV_KEY_INFO,
                                              PKCS8_PRIV_KEY_INFO_free)) {
    d.kind = ContentKind::kDerPrivateKey;
  } else if (auto cms = DetectCms(bytes)) {
    d.kind = *cms;
    if (d.kind == ContentKind::kMobileProvision) d.format = SourceFormat::kMobileProvision;
  } else if (ParsesWhole<EVP_PKEY>(bytes, d2i_AutoPrivateKey, EVP_PKEY_free)) {
    d.kind = ContentKind::kDerPrivateKey;  // traditional RSA/EC/DSA DER
  } else {
    d.kind = ContentKind::kUnknown;
    d.format = SourceFormat::kAuto;
    d.truncated = LooksLikeTruncatedDer(bytes);
  }
  return d;
}

std::string Counted(size_t n, std::string_view one, std::string_view many) {
  if (n == 1) return std::string(one);
  return std::to_string(n) + " " + std::string(many);
}

}  // namespace

size_t DetectedContent::CountPem(PemBlockKind k) const {
  size_t n = 0;
  for (const auto& b : pem_blocks) n += b.kind == k ? 1 : 0;
  return n;
}

size_t DetectedContent::CountPemKeys() const {
  return CountPem(PemBlockKind::kPrivateKey) + CountPem(PemBlockKind::kEncryptedPrivateKey) +
         CountPem(PemBlockKind::kTraditionalPrivateKey);
}

std::string DetectedContent::Description() const {
  switch (kind) {
    case ContentKind::kPem: {
      if (truncated) return "a PEM file that is cut short (a BEGIN line without its END line)";
      std::vector<std::string> parts;
      if (size_t n = CountPem(PemBlockKind::kCertificate)) {
        parts.push_back(Counted(n, "a certificate", "certificates"));
      }
      size_t keys = CountPemKeys();
      size_t encrypted = 0;
      for (const auto& b : pem_blocks) encrypted += b.encrypted ? 1 : 0;
      if (keys > 0) {
        parts.push_back(encrypted == keys
                            ? Counted(keys, "an encrypted private key", "encrypted private keys")
                            : Counted(keys, "a private key", "private keys"));
      }
      for (const auto& b : pem_blocks) {
        if (b.kind == PemBlockKind::kOther) parts.push_back("a " + b.label + " block");
      }
      if (parts.empty()) return "a PEM file with no certificate or key";
      std::string out = "a PEM file with ";
      for (size_t i = 0; i < parts.size(); ++i) {
        if (i > 0) out += i + 1 == parts.size() ? " and " : ", ";
        out += parts[i];
      }
      return out;
    }
    case ContentKind::kDerCertificate:
      return "a DER certificate";
    case ContentKind::kDerPrivateKey:
      return "a DER private key";
    case ContentKind::kDerEncryptedPrivateKey:
      return "an encrypted DER private key (PKCS#8)";
    case ContentKind::kPkcs12:
      return "a PKCS#12 file";
    case ContentKind::kJks:
      return "a JKS key store";
    case ContentKind::kJceks:
      return "a JCEKS key store";
    case ContentKind::kMobileProvision:
      return "a mobile provisioning profile";
    case ContentKind::kOtherCms:
      return "a PKCS#7/CMS file that is not a provisioning profile";
    case ContentKind::kUnknown:
      break;
  }
  return truncated ? "a DER structure that is cut short or damaged" : "unrecognized data";
}

DetectedContent DetectContent(std::string_view bytes) {
  DetectedContent d;
  if (bytes.size() >= 4) {
    uint32_t magic = (uint32_t{static_cast<uint8_t>(bytes[0])} << 24) |
                     (uint32_t{static_cast<uint8_t>(bytes[1])} << 16) |
                     (uint32_t{static_cast<uint8_t>(bytes[2])} << 8) |
                     uint32_t{static_cast<uint8_t>(bytes[3])};
    if (magic == 0xFEEDFEEDu) {
      d.kind = ContentKind::kJks;
      d.format = SourceFormat::kJks;
      return d;
    }
    if (magic == 0xCECECECEu) {
      d.kind = ContentKind::kJceks;
      d.format = SourceFormat::kJceks;
      return d;
    }
  }
  if (!bytes.empty() && static_cast<uint8_t>(bytes[0]) == 0x30) {
    d = DetectDer(bytes);
    if (d.kind != ContentKind::kUnknown) return d;
  }
  bool unterminated = false;
  std::vector<PemBlock> blocks = ScanPem(bytes, &unterminated);
  if (!blocks.empty() || unterminated) {
    d.kind = ContentKind::kPem;
    d.format = SourceFormat::kPem;
    d.truncated = unterminated;
    d.pem_blocks = std::move(blocks);
  }
  return d;
}

std::string_view FormatDisplayName(SourceFormat format) {
  switch (format) {
    case SourceFormat::kAuto:
      return "automatic detection";
    case SourceFormat::kPem:
      return "PEM";
    case SourceFormat::kDer:
      return "DER";
    case SourceFormat::kPkcs12:
      return "PKCS#12";
    case SourceFormat::kJks:
      return "JKS";
    case SourceFormat::kJceks:
      return "JCEKS";
    case SourceFormat::kMobileProvision:
      return "mobile provisioning";
  }
  return "unknown";
}

}  // namespace wsstep::core

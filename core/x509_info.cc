#include "core/x509_info.h"

#include <arpa/inet.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <ctime>
#include <memory>

#include "core/material.h"
#include "core/ossl.h"

namespace wsstep::core {
namespace {

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return len > 0 ? std::string(data, static_cast<size_t>(len)) : std::string();
}

std::string Asn1StringText(const ASN1_STRING* s) {
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
}

std::string ObjectText(const ASN1_OBJECT* obj) {
  char buf[128];
  int n = OBJ_obj2txt(buf, sizeof(buf), obj, 1);
  return n > 0 ? std::string(buf, std::min<size_t>(static_cast<size_t>(n), sizeof(buf) - 1))
               : std::string();
}

std::string IpText(const ASN1_OCTET_STRING* ip) {
  char buf[INET6_ADDRSTRLEN] = {};
  const unsigned char* p = ASN1_STRING_get0_data(ip);
  int len = ASN1_STRING_length(ip);
  if (len == 4 && inet_ntop(AF_INET, p, buf, sizeof(buf)) != nullptr) return buf;
  if (len == 16 && inet_ntop(AF_INET6, p, buf, sizeof(buf)) != nullptr) return buf;
  return ossl::HexColon(p, static_cast<size_t>(len));  // not an address: show the bytes
}

// Typed prefixes, one per GENERAL_NAME, in certificate order.
std::vector<std::string> SubjectAltNames(X509* cert) {
  std::vector<std::string> out;
  ossl::GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) {
    ossl::ClearErrors();
    return out;
  }
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    switch (gn->type) {
      case GEN_DNS:
        out.push_back("DNS:" + Asn1StringText(gn->d.dNSName));
        break;
      case GEN_IPADD:
        out.push_back("IP:" + IpText(gn->d.iPAddress));
        break;
      case GEN_EMAIL:
        out.push_back("email:" + Asn1StringText(gn->d.rfc822Name));
        break;
      case GEN_URI:
        out.push_back("URI:" + Asn1StringText(gn->d.uniformResourceIdentifier));
        break;
      case GEN_DIRNAME:
        out.push_back("DirName:" + NameOneLine(gn->d.directoryName));
        break;
      case GEN_RID:
        out.push_back("RID:" + ObjectText(gn->d.registeredID));
        break;
      case GEN_OTHERNAME: {
        std::string text = "othername:" + ObjectText(gn->d.otherName->type_id);
        const ASN1_TYPE* v = gn->d.otherName->value;
        if (v != nullptr && v->type == V_ASN1_UTF8STRING) {
          text += ":" + Asn1StringText(v->value.utf8string);
        }
        out.push_back(std::move(text));
        break;
      }
      default:
        out.push_back("other:");
        break;
    }
  }
  return out;
}

std::string SerialHex(const X509* cert) {
  std::unique_ptr<BIGNUM, ossl::Deleter<BN_free>> bn(
      ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (!bn) {
    ossl::ClearErrors();
    return {};
  }
  char* hex = BN_bn2hex(bn.get());
  if (hex == nullptr) return {};
  std::string out(hex);
  OPENSSL_free(hex);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

int Digits(std::string_view s, size_t pos, size_t n) {
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (i >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i]))) return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

}  // namespace

std::string NameOneLine(const X509_NAME* name) {
  if (name == nullptr) return {};
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  // RFC 2253, minus the escaping of bytes >= 0x80: names are shown to people.
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  return BioText(bio.get());
}

std::optional<UnixSeconds> AsnTimeToUnix(const ASN1_TIME* t) {
  if (t == nullptr) return std::nullopt;  // ASN1_TIME_to_tm(nullptr) would mean "now"
  struct tm tm = {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) {
    ossl::ClearErrors();
    return std::nullopt;
  }
  return static_cast<UnixSeconds>(timegm(&tm));
}

std::string FormatUtc(UnixSeconds t) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm = {};
  if (gmtime_r(&tt, &tm) == nullptr) return std::to_string(t);
  char buf[32];
  strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<UnixSeconds> ParseUtc(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.fff](Z|+00:00|-00:00)
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
      s[13] != ':' || s[16] != ':') {
    return std::nullopt;
  }
  struct tm tm = {};
  int year = Digits(s, 0, 4), mon = Digits(s, 5, 2), day = Digits(s, 8, 2);
  int hour = Digits(s, 11, 2), min = Digits(s, 14, 2), sec = Digits(s, 17, 2);
  if (year < 0 || mon < 1 || mon > 12 || day < 1 || day > 31 || hour < 0 || hour > 23 || min < 0 ||
      min > 59 || sec < 0 || sec > 60) {
    return std::nullopt;
  }
  size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) ++pos;
  }
  std::string_view zone = s.substr(pos);
  if (zone != "Z" && zone != "z" && zone != "+00:00" && zone != "-00:00") return std::nullopt;
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  return static_cast<UnixSeconds>(timegm(&tm));
}

std::string KeyDescription::Display() const {
  if (algorithm == "Ed25519" || algorithm == "Ed448") return algorithm;
  if (!curve.empty()) return algorithm + " " + curve + " (" + std::to_string(bits) + " bits)";
  return algorithm + " " + std::to_string(bits) + " bits";
}

KeyDescription DescribeKey(const EVP_PKEY* key) {
  KeyDescription d;
  if (key == nullptr) return d;
  d.bits = EVP_PKEY_get_bits(key);
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA:
      d.algorithm = "RSA";
      d.supported = d.bits >= 2048;
      break;
    case EVP_PKEY_RSA_PSS:
      d.algorithm = "RSA-PSS";
      d.supported = d.bits >= 2048;
      break;
    case EVP_PKEY_EC: {
      d.algorithm = "EC";
      char group[80] = {};
      size_t len = 0;
      if (EVP_PKEY_get_group_name(key, group, sizeof(group), &len) != 1) {
        ossl::ClearErrors();
        d.curve = "explicit parameters";
        break;
      }
      std::string_view g(group, len);
      if (g == "prime256v1" || g == "P-256") {
        d.curve = "P-256";
      } else if (g == "secp384r1" || g == "P-384") {
        d.curve = "P-384";
      } else if (g == "secp521r1" || g == "P-521") {
        d.curve = "P-521";
      } else {
        d.curve = std::string(g);
        break;
      }
      d.supported = true;
      break;
    }
    case EVP_PKEY_ED25519:
      d.algorithm = "Ed25519";
      d.bits = 256;  // OpenSSL reports 253 (the group order); 256 is the key size people know
      d.supported = true;
      break;
    case EVP_PKEY_ED448:
      d.algorithm = "Ed448";
      break;
    case EVP_PKEY_DSA:
      d.algorithm = "DSA";
      break;
    default: {
      const char* name = EVP_PKEY_get0_type_name(key);
      d.algorithm = name != nullptr ? name : "unknown";
      break;
    }
  }
  return d;
}

CertificateInfo DescribeCertificate(X509* cert) {
  CertificateInfo info;
  if (cert == nullptr) return info;
  info.subject = NameOneLine(X509_get_subject_name(cert));
  info.issuer = NameOneLine(X509_get_issuer_name(cert));
  info.serial = SerialHex(cert);
  info.not_before = AsnTimeToUnix(X509_get0_notBefore(cert)).value_or(0);
  info.not_after = AsnTimeToUnix(X509_get0_notAfter(cert)).value_or(0);
  info.sans = SubjectAltNames(cert);
  KeyDescription key = DescribeKey(X509_get0_pubkey(cert));
  info.key_algorithm = key.algorithm;
  info.key_bits = key.bits;
  info.curve = key.algorithm == "EC" ? key.curve : std::string();
  info.sha256_fingerprint = ossl::Sha256Fingerprint(cert);
  info.is_ca = (X509_get_extension_flags(cert) & EXFLAG_CA) != 0;
  ossl::ClearErrors();
  return info;
}

}  // namespace wsstep::core

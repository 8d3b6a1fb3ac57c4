#include "rest/tls_util.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include <cctype>

#include "core/material.h"
#include "core/ossl.h"

namespace wsstep::rest {

std::string Base64(std::span<const uint8_t> bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string SpkiSha256Base64(X509* cert) {
  unsigned char* der = nullptr;
  int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
  if (len <= 0) return {};
  uint8_t md[SHA256_DIGEST_LENGTH];
  SHA256(der, static_cast<size_t>(len), md);
  OPENSSL_free(der);
  return Base64(md);
}

PeerCertificateFacts DescribePeer(X509* cert) {
  core::CertificateInfo info = core::DescribeCertificate(cert);
  PeerCertificateFacts facts;
  facts.subject = std::move(info.subject);
  facts.issuer = std::move(info.issuer);
  facts.not_before = info.not_before;
  facts.not_after = info.not_after;
  facts.sans = std::move(info.sans);
  facts.spki_sha256_base64 = SpkiSha256Base64(cert);
  return facts;
}

Result<std::string> NormalizePin(std::string_view pin) {
  auto invalid = [&](std::string why) {
    return Error(Code::kInvalidStepConfig, "tls.pinned_public_key: " + why,
                 "Give the SPKI SHA-256 as \"sha256//<base64>\" (several separated by ';') "
                 "or as 64 hex digits.",
                 Side::kConfiguration)
        .With("field", "tls.pinned_public_key");
  };
  if (pin.rfind("sha256//", 0) == 0) {
    for (char c : pin) {
      if (std::isspace(static_cast<unsigned char>(c)) || c == '\0') {
        return invalid("white space in a sha256// pin");
      }
    }
    return std::string(pin);
  }
  std::string hex;
  for (char c : pin) {
    if (c == ':' || c == ' ') continue;
    if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return invalid("not \"sha256//<base64>\" and not hex");
    }
    hex += c;
  }
  if (hex.size() != 64) return invalid("a hex pin must be 64 digits (SHA-256)");
  uint8_t raw[32];
  for (size_t i = 0; i < 32; ++i) raw[i] = static_cast<uint8_t>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  return "sha256//" + Base64(raw);
}

}  // namespace wsstep::rest

#include "core/pkcs12_reader.h"

#include <openssl/pkcs12.h>
#include <openssl/pkcs7.h>

#include <memory>

#include "core/import_error.h"
#include "core/material.h"
#include "core/private_key.h"

namespace wsstep::core {
namespace {

// A password as PKCS#12 functions take it. PKCS#12 turns passwords into BMPStrings, in
// which "" (two zero bytes) and NULL (nothing) differ; both are tried for "no password"
// and for "the empty password", in the order most likely to be the intended one.
struct Pass {
  const char* p;
  int len;
};

std::vector<Pass> Candidates(const std::optional<SecretBytes>& password) {
  if (password && !password->empty()) {
    return {{password->view().data(), static_cast<int>(password->size())}};
  }
  if (password) return {{"", 0}, {nullptr, 0}};
  return {{nullptr, 0}, {"", 0}};
}

struct AuthSafesDeleter {
  void operator()(STACK_OF(PKCS7) * s) const { sk_PKCS7_pop_free(s, PKCS7_free); }
};
struct BagsDeleter {
  void operator()(STACK_OF(PKCS12_SAFEBAG) * s) const {
    sk_PKCS12_SAFEBAG_pop_free(s, PKCS12_SAFEBAG_free);
  }
};
using BagsPtr = std::unique_ptr<STACK_OF(PKCS12_SAFEBAG), BagsDeleter>;

// Why reading the bags stopped.
enum class BagFailure { kNone, kDecrypt, kUnsupported, kDamaged, kTooCostly };

struct BagReader {
  Pass pass;
  Pkcs12Contents* out;
  BagFailure failure = BagFailure::kNone;

  static std::string Alias(PKCS12_SAFEBAG* bag) {
    char* name = PKCS12_get_friendlyname(bag);
    if (name == nullptr) return {};
    std::string alias(name);
    OPENSSL_free(name);
    return alias;
  }

  static std::string LocalKeyId(const PKCS12_SAFEBAG* bag) {
    const ASN1_TYPE* t = PKCS12_SAFEBAG_get0_attr(bag, NID_localKeyID);
    if (t == nullptr || t->type != V_ASN1_OCTET_STRING) return {};
    const ASN1_OCTET_STRING* s = t->value.octet_string;
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<size_t>(ASN1_STRING_length(s)));
  }

  bool Fail(BagFailure f) {
    if (f == BagFailure::kTooCostly) {
      ossl::ClearErrors();
      failure = f;
      return false;
    }
    failure = DrainErrorsSayUnsupported() ? BagFailure::kUnsupported : f;
    return false;
  }

  bool AddKey(PKCS12_SAFEBAG* bag, const PKCS8_PRIV_KEY_INFO* p8) {
    ossl::EvpPkeyPtr key(EVP_PKCS82PKEY(p8));
    if (!key) return Fail(BagFailure::kDamaged);
    out->keys.push_back({Alias(bag), LocalKeyId(bag), std::move(key)});
    return true;
  }

  bool Read(const STACK_OF(PKCS12_SAFEBAG) * bags, int depth) {
    if (depth > 4) return Fail(BagFailure::kDamaged);  // nesting is 1 level in practice
    for (int i = 0; i < sk_PKCS12_SAFEBAG_num(bags); ++i) {
      PKCS12_SAFEBAG* bag = sk_PKCS12_SAFEBAG_value(bags, i);
      switch (PKCS12_SAFEBAG_get_nid(bag)) {
        case NID_keyBag:
          if (!AddKey(bag, PKCS12_SAFEBAG_get0_p8inf(bag))) return false;
          break;
        case NID_pkcs8ShroudedKeyBag: {
          const X509_SIG* shrouded = PKCS12_SAFEBAG_get0_pkcs8(bag);
          if (shrouded == nullptr) return Fail(BagFailure::kDamaged);
          const X509_ALGOR* alg = nullptr;
          X509_SIG_get0(shrouded, &alg, nullptr);
          if (!CheckKdfCost(alg, "").ok()) return Fail(BagFailure::kTooCostly);
          ossl::Pkcs8InfoPtr p8(PKCS12_decrypt_skey(bag, pass.p, pass.len));
          if (!p8) return Fail(BagFailure::kDecrypt);
          if (!AddKey(bag, p8.get())) return false;
          break;
        }
        case NID_certBag: {
          if (PKCS12_SAFEBAG_get_bag_nid(bag) != NID_x509Certificate) break;  // SDSI certs
          ossl::X509Ptr cert(PKCS12_SAFEBAG_get1_cert(bag));
          if (!cert) return Fail(BagFailure::kDamaged);
          out->certs.push_back({Alias(bag), LocalKeyId(bag), std::move(cert)});
          break;
        }
        case NID_safeContentsBag:
          if (!Read(PKCS12_SAFEBAG_get0_safes(bag), depth + 1)) return false;
          break;
        default:  // CRL and secret bags carry nothing a TLS identity needs
          break;
      }
    }
    return true;
  }

  bool ReadAll(PKCS12* p12) {
    std::unique_ptr<STACK_OF(PKCS7), AuthSafesDeleter> safes(PKCS12_unpack_authsafes(p12));
    if (!safes) return Fail(BagFailure::kDamaged);
    for (int i = 0; i < sk_PKCS7_num(safes.get()); ++i) {
      PKCS7* p7 = sk_PKCS7_value(safes.get(), i);
      BagsPtr bags;
      switch (OBJ_obj2nid(p7->type)) {
        case NID_pkcs7_data:
          bags.reset(PKCS12_unpack_p7data(p7));
          if (!bags) return Fail(BagFailure::kDamaged);
          break;
        case NID_pkcs7_encrypted:
          if (p7->d.encrypted == nullptr || p7->d.encrypted->enc_data == nullptr) {
            return Fail(BagFailure::kDamaged);
          }
          if (!CheckKdfCost(p7->d.encrypted->enc_data->algorithm, "").ok()) {
            return Fail(BagFailure::kTooCostly);
          }
          bags.reset(PKCS12_unpack_p7encdata(p7, pass.p, pass.len));
          if (!bags) return Fail(BagFailure::kDecrypt);
          break;
        default:  // public-key-enveloped safes: not written by any tool we target
          continue;
      }
      if (!Read(bags.get(), 0)) return false;
    }
    return true;
  }
};

Error Unsupported(std::string_view input) {
  return ImportError(Code::kInvalidCertificateFormat, input,
                     "the PKCS#12 file uses an algorithm this build cannot read",
                     "Re-export it with AES-256 and PBKDF2 (e.g. `openssl pkcs12 -export` "
                     "from OpenSSL 3).");
}

}  // namespace

Result<Pkcs12Contents> ReadPkcs12(std::string_view der, std::string_view input_name,
                                  const std::optional<SecretBytes>& password) {
  EnsureProvidersLoaded();
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  ossl::Pkcs12Ptr p12(d2i_PKCS12(nullptr, &p, static_cast<long>(der.size())));
  if (!p12) {
    ossl::DrainErrors();
    return ImportError(Code::kInvalidCertificateFormat, input_name, "the PKCS#12 file is damaged",
                       "Upload the file exactly as exported.");
  }
  auto bad_password = [&] {
    if (!password) {
      return ImportError(Code::kPasswordRequired, input_name,
                         "the PKCS#12 file is password-protected and no password was given",
                         std::string(kHintPasswordRequired));
    }
    return ImportError(Code::kWrongPassword, input_name, "wrong password for the PKCS#12 file",
                       std::string(kHintWrongPassword));
  };

  std::vector<Pass> candidates = Candidates(password);
  if (PKCS12_mac_present(p12.get())) {
    const ASN1_INTEGER* iterations = nullptr;
    PKCS12_get0_mac(nullptr, nullptr, nullptr, &iterations, p12.get());
    WSSTEP_RETURN_IF_ERROR(CheckKdfIterations(iterations, input_name));
    // The MAC settles which password is right before anything is decrypted.
    std::optional<Pass> verified;
    bool unsupported = false;
    for (const Pass& c : candidates) {
      if (PKCS12_verify_mac(p12.get(), c.p, c.len) == 1) {
        verified = c;
        break;
      }
      unsupported = DrainErrorsSayUnsupported() || unsupported;
    }
    if (!verified) return unsupported ? Unsupported(input_name) : bad_password();
    candidates = {*verified};
  }

  BagFailure last = BagFailure::kNone;
  for (const Pass& c : candidates) {
    Pkcs12Contents contents;
    BagReader reader{c, &contents};
    if (reader.ReadAll(p12.get())) {
      ossl::ClearErrors();
      contents.had_password = c.len > 0;
      return contents;
    }
    last = reader.failure;
    if (last != BagFailure::kDecrypt) break;
  }
  ossl::DrainErrors();
  switch (last) {
    case BagFailure::kTooCostly:
      return ImportError(Code::kInvalidCertificateFormat, input_name,
                         "the PKCS#12 file asks for more than " +
                             std::to_string(kMaxKdfIterations) + " key-derivation iterations",
                         "Re-export it with a standard iteration count (for example 10000).");
    case BagFailure::kUnsupported:
      return Unsupported(input_name);
    case BagFailure::kDecrypt:
      // With a verified MAC this is a file whose contents use a different password than
      // its MAC; without a MAC it is the only sign of a wrong password we get.
      return bad_password();
    default:
      return ImportError(Code::kInvalidCertificateFormat, input_name, "the PKCS#12 file is damaged",
                         "Upload the file exactly as exported.");
  }
}

}  // namespace wsstep::core

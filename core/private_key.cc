#include "core/private_key.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>

#include <cstring>
#include <memory>
#include <string>

#include "core/import_error.h"
#include "core/material.h"

namespace wsstep::core {
namespace {

// Holds OpenSSL-allocated key bytes and wipes them on every path.
struct ClearFree {
  unsigned char* data = nullptr;
  long len = 0;
  ~ClearFree() {
    if (data != nullptr) OPENSSL_clear_free(data, static_cast<size_t>(len));
  }
};

struct OpenSslString {
  char* p = nullptr;
  ~OpenSslString() { OPENSSL_free(p); }
};

// Hands OpenSSL the exact password bytes. Returns -1 (fail, never prompt) when there is
// no password or it does not fit OpenSSL's buffer.
int ExactPasswordCallback(char* buf, int size, int /*rwflag*/, void* u) {
  const auto* pw = static_cast<const SecretBytes*>(u);
  if (pw == nullptr || size < 0 || pw->size() > static_cast<size_t>(size)) return -1;
  if (!pw->empty()) std::memcpy(buf, pw->data(), pw->size());
  return static_cast<int>(pw->size());
}

Error PasswordRequired(std::string_view input) {
  ossl::ClearErrors();
  return ImportError(Code::kPasswordRequired, input,
                     "the private key is encrypted and no password was given",
                     std::string(kHintPasswordRequired));
}

Error WrongPassword(std::string_view input, std::string_view what) {
  ossl::DrainErrors();
  return ImportError(Code::kWrongPassword, input, "wrong password for " + std::string(what),
                     std::string(kHintWrongPassword));
}

// After a failed decryption: an unavailable algorithm is a format problem; anything
// else is, as far as OpenSSL lets us tell, the password (bad padding, or a decrypted
// blob that is not a key because the derived key was wrong).
Error DecryptFailure(std::string_view input, std::string_view what) {
  if (DrainErrorsSayUnsupported()) {
    return ImportError(Code::kInvalidCertificateFormat, input,
                       std::string(what) + " is encrypted with an algorithm this build cannot read",
                       "Re-export it with PBES2 (AES-256-CBC, PBKDF2).");
  }
  return WrongPassword(input, what);
}

Error Damaged(std::string_view input, std::string_view what) {
  ossl::DrainErrors();
  return ImportError(Code::kInvalidCertificateFormat, input,
                     std::string(what) + " is damaged or not a private key",
                     "Upload the key file exactly as exported.");
}

Result<ossl::EvpPkeyPtr> FromPkcs8Info(const PKCS8_PRIV_KEY_INFO* p8, std::string_view input,
                                       std::string_view what) {
  ossl::EvpPkeyPtr key(EVP_PKCS82PKEY(p8));
  if (!key) {
    if (DrainErrorsSayUnsupported()) {
      return ImportError(Code::kUnsupportedAlgorithm, input,
                         std::string(what) + " uses a key algorithm this build does not support",
                         "Use an RSA (2048 bits or more), EC P-256/P-384/P-521 or Ed25519 key.");
    }
    return Damaged(input, what);
  }
  return key;
}

Result<ossl::EvpPkeyPtr> PlainPkcs8(const unsigned char* der, long len, std::string_view input,
                                    std::string_view what) {
  const unsigned char* p = der;
  ossl::Pkcs8InfoPtr p8(d2i_PKCS8_PRIV_KEY_INFO(nullptr, &p, len));
  if (!p8) return Damaged(input, what);
  return FromPkcs8Info(p8.get(), input, what);
}

int TraditionalType(std::string_view label) {
  if (label == "RSA PRIVATE KEY") return EVP_PKEY_RSA;
  if (label == "EC PRIVATE KEY") return EVP_PKEY_EC;
  return EVP_PKEY_DSA;
}

template <typename T>
using AsnPtr = std::unique_ptr<T, void (*)(T*)>;

}  // namespace

Status CheckKdfIterations(const ASN1_INTEGER* iterations, std::string_view input_name) {
  if (iterations == nullptr) return {};
  long n = ASN1_INTEGER_get(iterations);
  if (n >= 1 && n <= kMaxKdfIterations) return {};
  ossl::ClearErrors();
  return ImportError(Code::kInvalidCertificateFormat, input_name,
                     "the file asks for " + std::to_string(n) +
                         " key-derivation iterations; wsstep accepts 1 to " +
                         std::to_string(kMaxKdfIterations),
                     "Re-export it with a standard iteration count (for example 10000).");
}

Status CheckKdfCost(const X509_ALGOR* alg, std::string_view input_name) {
  if (alg == nullptr) return {};
  const ASN1_OBJECT* oid = nullptr;
  int ptype = 0;
  const void* pval = nullptr;
  X509_ALGOR_get0(&oid, &ptype, &pval, alg);
  if (ptype != V_ASN1_SEQUENCE) return {};  // not a PBE parameter block
  const ASN1_TYPE* params = alg->parameter;
  if (OBJ_obj2nid(oid) == NID_pbes2) {
    AsnPtr<PBE2PARAM> pbe2(
        static_cast<PBE2PARAM*>(ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBE2PARAM), params)),
        PBE2PARAM_free);
    if (!pbe2 || pbe2->keyfunc == nullptr) return {};  // OpenSSL reports it as damaged
    if (OBJ_obj2nid(pbe2->keyfunc->algorithm) != NID_id_pbkdf2) return {};  // scrypt: memory-capped
    AsnPtr<PBKDF2PARAM> kdf(static_cast<PBKDF2PARAM*>(ASN1_TYPE_unpack_sequence(
                                ASN1_ITEM_rptr(PBKDF2PARAM), pbe2->keyfunc->parameter)),
                            PBKDF2PARAM_free);
    ossl::ClearErrors();
    return kdf ? CheckKdfIterations(kdf->iter, input_name) : Status();
  }
  AsnPtr<PBEPARAM> pbe(
      static_cast<PBEPARAM*>(ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBEPARAM), params)),
      PBEPARAM_free);
  ossl::ClearErrors();
  return pbe ? CheckKdfIterations(pbe->iter, input_name) : Status();
}

bool DrainErrorsSayUnsupported() {
  bool unsupported = false;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    const char* reason = ERR_reason_error_string(e);
    std::string_view r = reason != nullptr ? reason : "";
    if (ERR_GET_REASON(e) == ERR_R_UNSUPPORTED || r.find("unsupported") != r.npos ||
        r.find("unknown cipher") != r.npos || r.find("unknown digest") != r.npos) {
      unsupported = true;
    }
  }
  return unsupported;
}

Result<ossl::EvpPkeyPtr> DecryptPkcs8(const X509_SIG* sig, const SecretBytes& password,
                                      std::string_view input_name) {
  const X509_ALGOR* alg = nullptr;
  X509_SIG_get0(sig, &alg, nullptr);
  WSSTEP_RETURN_IF_ERROR(CheckKdfCost(alg, input_name));
  // PKCS#12-style PBES1 derives its key from the password as a BMPString, where the empty
  // password ("" -> two zero bytes) differs from no password at all (NULL); tools write
  // either. PBES2 uses the raw bytes, for which both are the same.
  const char* const candidates[] = {password.empty() ? "" : password.view().data(),
                                    password.empty() ? nullptr : password.view().data()};
  int tries = password.empty() ? 2 : 1;
  for (int i = 0; i < tries; ++i) {
    ossl::Pkcs8InfoPtr p8(PKCS8_decrypt(sig, candidates[i], static_cast<int>(password.size())));
    if (p8) {
      ossl::ClearErrors();
      return FromPkcs8Info(p8.get(), input_name, "the private key");
    }
    if (i + 1 < tries) ossl::ClearErrors();
  }
  return DecryptFailure(input_name, "the private key");
}

Result<DecodedKey> DecodePemPrivateKey(const PemBlock& block,
                                       const std::optional<SecretBytes>& password,
                                       std::string_view input_name) {
  if (block.encrypted && !password) return PasswordRequired(input_name);
  ossl::BioPtr bio = ossl::MemoryBio(block.text);
  OpenSslString name, header;
  ClearFree data;
  if (PEM_read_bio(bio.get(), &name.p, &header.p, &data.data, &data.len) != 1) {
    return Damaged(input_name, "the " + block.label + " block");
  }
  DecodedKey out;
  out.was_encrypted = block.encrypted;
  switch (block.kind) {
    case PemBlockKind::kPrivateKey: {
      WSSTEP_ASSIGN_OR_RETURN(out.key,
                              PlainPkcs8(data.data, data.len, input_name, "the private key"));
      return out;
    }
    case PemBlockKind::kEncryptedPrivateKey: {
      const unsigned char* p = data.data;
      ossl::X509SigPtr sig(d2i_X509_SIG(nullptr, &p, data.len));
      if (!sig) return Damaged(input_name, "the encrypted private key");
      WSSTEP_ASSIGN_OR_RETURN(out.key, DecryptPkcs8(sig.get(), *password, input_name));
      return out;
    }
    case PemBlockKind::kTraditionalPrivateKey: {
      if (block.encrypted) {
        EVP_CIPHER_INFO cipher;
        if (PEM_get_EVP_CIPHER_INFO(header.p, &cipher) != 1) {
          if (DrainErrorsSayUnsupported()) {
            return ImportError(Code::kInvalidCertificateFormat, input_name,
                               "the private key is encrypted with an algorithm this build "
                               "cannot read",
                               "Re-export it as PKCS#8 with AES-256-CBC.");
          }
          return Damaged(input_name, "the encrypted private key header");
        }
        // The callback is always ours: OpenSSL's default would read the terminal.
        if (PEM_do_header(&cipher, data.data, &data.len, ExactPasswordCallback,
                          const_cast<SecretBytes*>(&*password)) != 1) {
          return DecryptFailure(input_name, "the private key");
        }
      }
      const unsigned char* p = data.data;
      out.key.reset(d2i_PrivateKey(TraditionalType(block.label), nullptr, &p, data.len));
      if (!out.key) {
        // Decryption "succeeded" (a wrong password's output ends in valid padding about
        // once in 256 tries) but produced no key: that is the password's doing, whatever
        // the decoders say (OpenSSL 3 reports garbage as "unsupported").
        if (block.encrypted) return WrongPassword(input_name, "the private key");
        return Damaged(input_name, "the " + block.label + " block");
      }
      ossl::ClearErrors();
      return out;
    }
    default:
      return Damaged(input_name, "the " + block.label + " block");
  }
}

Result<DecodedKey> DecodeDerPrivateKey(std::string_view der,
                                       const std::optional<SecretBytes>& password,
                                       std::string_view input_name) {
  const auto* begin = reinterpret_cast<const unsigned char*>(der.data());
  long len = static_cast<long>(der.size());
  DecodedKey out;
  {
    const unsigned char* p = begin;
    ossl::X509SigPtr sig(d2i_X509_SIG(nullptr, &p, len));
    if (sig) {
      if (!password) return PasswordRequired(input_name);
      out.was_encrypted = true;
      WSSTEP_ASSIGN_OR_RETURN(out.key, DecryptPkcs8(sig.get(), *password, input_name));
      return out;
    }
    ossl::ClearErrors();
  }
  {
    const unsigned char* p = begin;
    ossl::Pkcs8InfoPtr p8(d2i_PKCS8_PRIV_KEY_INFO(nullptr, &p, len));
    if (p8) {
      WSSTEP_ASSIGN_OR_RETURN(out.key, FromPkcs8Info(p8.get(), input_name, "the private key"));
      return out;
    }
    ossl::ClearErrors();
  }
  const unsigned char* p = begin;
  out.key.reset(d2i_AutoPrivateKey(nullptr, &p, len));
  if (!out.key) return Damaged(input_name, "the private key");
  ossl::ClearErrors();
  return out;
}

Result<SecretBytes> KeyToPkcs8Der(const EVP_PKEY* key, std::string_view input_name) {
  ossl::Pkcs8InfoPtr p8(EVP_PKEY2PKCS8(key));
  int len = p8 ? i2d_PKCS8_PRIV_KEY_INFO(p8.get(), nullptr) : -1;
  if (len <= 0) {
    ossl::DrainErrors();
    return ImportError(Code::kUnsupportedAlgorithm, input_name,
                       "the private key cannot be stored as PKCS#8");
  }
  SecretBytes out(static_cast<size_t>(len));
  unsigned char* p = out.data();
  if (i2d_PKCS8_PRIV_KEY_INFO(p8.get(), &p) != len) {
    ossl::DrainErrors();
    return Error(Code::kInternal, std::string(input_name) + ": PKCS#8 encoding failed");
  }
  return out;
}

Result<ossl::EvpPkeyPtr> KeyFromPkcs8Der(const SecretBytes& der) {
  const unsigned char* p = der.data();
  ossl::Pkcs8InfoPtr p8(d2i_PKCS8_PRIV_KEY_INFO(nullptr, &p, static_cast<long>(der.size())));
  ossl::EvpPkeyPtr key(p8 ? EVP_PKCS82PKEY(p8.get()) : nullptr);
  if (!key) {
    ossl::DrainErrors();
    return ImportError(Code::kInvalidCertificateFormat, "stored private key",
                       "not a valid unencrypted PKCS#8 key");
  }
  return key;
}

}  // namespace wsstep::core

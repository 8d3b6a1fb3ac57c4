// RAII owners for OpenSSL crypto handles, and the one place that turns OpenSSL's error
// queue into text. (SSL and SSL_CTX owners live in rest/: core does not do TLS.)
#ifndef WSSTEP_CORE_OSSL_H_
#define WSSTEP_CORE_OSSL_H_

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace wsstep::ossl {

template <auto Fn>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Fn(p);
  }
};

using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using Pkcs12Ptr = std::unique_ptr<PKCS12, Deleter<PKCS12_free>>;
using X509StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>>;
using X509ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;
using X509NamePtr = std::unique_ptr<X509_NAME, Deleter<X509_NAME_free>>;
using EvpCipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, Deleter<EVP_CIPHER_CTX_free>>;
using EvpMdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX_free>>;
using EvpPkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX_free>>;
using Pkcs8InfoPtr = std::unique_ptr<PKCS8_PRIV_KEY_INFO, Deleter<PKCS8_PRIV_KEY_INFO_free>>;
using X509SigPtr = std::unique_ptr<X509_SIG, Deleter<X509_SIG_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;

struct X509StackDeleter {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackDeleter>;

// Up-referenced copies, for sharing one parsed object between owners.
X509Ptr UpRef(X509* cert);
EvpPkeyPtr UpRef(EVP_PKEY* key);

// Drains OpenSSL's thread-local error queue into "reason; reason" text (empty if none).
// Call on every failure path so a stale error never leaks into the next operation.
std::string DrainErrors();
// Clears the queue without reading it.
void ClearErrors();

// A read-only memory BIO over bytes that outlive it.
BioPtr MemoryBio(std::string_view bytes);

// DER encodings.
std::string CertificateDer(X509* cert);
// Lower-case hex with colons: "ab:cd:...". The form fingerprints are shown and stored in.
std::string HexColon(const unsigned char* data, size_t size);
// SHA-256 of the certificate's DER, as HexColon.
std::string Sha256Fingerprint(X509* cert);

}  // namespace wsstep::ossl

#endif  // WSSTEP_CORE_OSSL_H_

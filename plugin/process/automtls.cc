#include "plugin/process/automtls.h"

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "core/ossl.h"

namespace wsstep::plugin {
namespace {

Error CryptoError(std::string_view what) {
  return Error(Code::kInternal, "AutoMTLS: " + std::string(what) + ": " + ossl::DrainErrors(),
               "", Side::kClient);
}

bool AddExtension(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) return false;
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

std::string BioToString(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

}  // namespace

Result<SelfSignedCertificate> GenerateSelfSignedCertificate(std::string_view common_name,
                                                            std::chrono::seconds validity) {
  ossl::EvpPkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return CryptoError("generating the P-256 key");
  ossl::X509Ptr cert(X509_new());
  if (!cert) return CryptoError("allocating the certificate");

  unsigned char serial_bytes[16];
  if (RAND_bytes(serial_bytes, sizeof serial_bytes) != 1) return CryptoError("serial");
  serial_bytes[0] &= 0x7f;  // positive
  std::unique_ptr<BIGNUM, ossl::Deleter<BN_free>> serial(
      BN_bin2bn(serial_bytes, sizeof serial_bytes, nullptr));
  if (!serial || BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return CryptoError("serial");
  }
  if (X509_set_version(cert.get(), 2) != 1) return CryptoError("version");
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -30) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(validity.count())) ==
          nullptr) {
    return CryptoError("validity");
  }
  X509_NAME* name = X509_get_subject_name(cert.get());
  const std::string cn(common_name);
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>("wsstep"), -1, -1, 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1 ||
      X509_set_issuer_name(cert.get(), name) != 1) {
    return CryptoError("names");
  }
  if (X509_set_pubkey(cert.get(), key.get()) != 1) return CryptoError("public key");
  if (!AddExtension(cert.get(), NID_basic_constraints, "critical,CA:TRUE") ||
      !AddExtension(cert.get(), NID_key_usage,
                    "critical,digitalSignature,keyEncipherment,keyCertSign") ||
      !AddExtension(cert.get(), NID_ext_key_usage, "serverAuth,clientAuth") ||
      !AddExtension(cert.get(), NID_subject_key_identifier, "hash") ||
      !AddExtension(cert.get(), NID_subject_alt_name,
                    "DNS:localhost,IP:127.0.0.1,IP:0:0:0:0:0:0:0:1")) {
    return CryptoError("extensions");
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) return CryptoError("signing");

  SelfSignedCertificate out;
  out.cert_der = ossl::CertificateDer(cert.get());
  ossl::BioPtr cert_bio(BIO_new(BIO_s_mem()));
  ossl::BioPtr key_bio(BIO_new(BIO_s_mem()));
  if (!cert_bio || !key_bio || PEM_write_bio_X509(cert_bio.get(), cert.get()) != 1 ||
      PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr,
                               nullptr) != 1) {
    return CryptoError("PEM encoding");
  }
  out.cert_pem = BioToString(cert_bio.get());
  char* key_data = nullptr;
  const long key_len = BIO_get_mem_data(key_bio.get(), &key_data);
  out.key_pem = SecretBytes(std::string_view(key_data, static_cast<size_t>(key_len)));
  OPENSSL_cleanse(key_data, static_cast<size_t>(key_len));
  return out;
}

Status CheckPemCertificates(std::string_view pem, std::string_view what) {
  ossl::BioPtr bio = ossl::MemoryBio(pem);
  ossl::X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    ossl::ClearErrors();
    return Error(Code::kInvalidArgument,
                 std::string(what) + ": no PEM certificate could be read from it",
                 "the host must pass its AutoMTLS certificate as PEM", Side::kConfiguration);
  }
  return {};
}

Result<std::string> DerToPem(std::string_view der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  ossl::X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!cert) {
    ossl::ClearErrors();
    return Error(Code::kInvalidArgument, "certificate: not DER", "", Side::kServer);
  }
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert.get()) != 1) return CryptoError("PEM encoding");
  return BioToString(bio.get());
}

std::shared_ptr<grpc::ServerCredentials> AutoMtlsServerCredentials(
    const SelfSignedCertificate& server, const std::string& client_ca_pem) {
  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = client_ca_pem;
  // gRPC keeps its own copy of the key; ours stays in SecretBytes.
  options.pem_key_cert_pairs.push_back({std::string(server.key_pem.view()), server.cert_pem});
  return grpc::SslServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> AutoMtlsChannelCredentials(
    const SelfSignedCertificate& client, const std::string& server_cert_pem) {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = server_cert_pem;
  options.pem_private_key = std::string(client.key_pem.view());
  options.pem_cert_chain = client.cert_pem;
  return grpc::SslCredentials(options);
}

}  // namespace wsstep::plugin

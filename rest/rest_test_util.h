// Helpers for rest/ tests only: credentials built straight from the test PKI's PEM files
// (the store is not involved), and a TlsServer configured from PKI names.
#ifndef WSSTEP_REST_REST_TEST_UTIL_H_
#define WSSTEP_REST_REST_TEST_UTIL_H_

#include <openssl/pem.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include "core/identity.h"
#include "core/ossl.h"
#include "rest/credential_source.h"
#include "rest/engine.h"
#include "tests/support/pki.h"
#include "tests/support/tls_server.h"

namespace wsstep::rest::testutil {

using testing::PkiPath;

inline std::vector<ossl::X509Ptr> ReadCerts(const std::string& rel) {
  std::string pem = testing::ReadFile(PkiPath(rel));
  ossl::BioPtr bio = ossl::MemoryBio(pem);
  std::vector<ossl::X509Ptr> certs;
  while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) certs.emplace_back(c);
  ossl::ClearErrors();
  if (certs.empty()) throw std::runtime_error(rel + ": no certificate");
  return certs;
}

// Identity from client/<name>.pem + .key.pem; with_chain adds the intermediate CA.
// The entry id names the material: one entry version always has the same chain and key.
inline std::shared_ptr<const core::Identity> LoadIdentity(const std::string& name,
                                                          bool with_chain = true) {
  auto id = std::make_shared<core::Identity>();
  id->entry_id = "entry-" + name + (with_chain ? "" : "-leaf-only");
  id->name = name;
  id->version = 1;
  id->leaf = std::move(ReadCerts("client/" + name + ".pem").front());
  if (with_chain) id->chain.push_back(std::move(ReadCerts("ca/intermediate.pem").front()));
  std::string key = testing::ReadFile(PkiPath("client/" + name + ".key.pem"));
  ossl::BioPtr bio = ossl::MemoryBio(key);
  id->key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!id->key) throw std::runtime_error(name + ": no key");
  id->fingerprint = ossl::Sha256Fingerprint(id->leaf.get());
  return id;
}

inline std::shared_ptr<const core::TrustAnchors> LoadTrust(const std::string& rel) {
  auto trust = std::make_shared<core::TrustAnchors>();
  trust->entry_ids.push_back("trust:" + rel);
  trust->certs = ReadCerts(rel);
  return trust;
}

// Client certificate `name` (or none when empty) + trust/bundle.pem, private.
inline core::CallCredentials Creds(const std::string& name, bool private_trust = true) {
  core::CallCredentials c;
  if (!name.empty()) c.identity = LoadIdentity(name);
  c.trust = LoadTrust("trust/bundle.pem");
  c.private_trust_only = private_trust;
  return c;
}

inline testing::TlsServerConfig ServerConfig(const std::string& cert = "localhost",
                                             testing::ClientAuth auth = testing::ClientAuth::kRequired,
                                             const std::string& client_ca = "ca/root.pem") {
  testing::TlsServerConfig c;
  c.cert_file = PkiPath("server/" + cert + (cert == "localhost" ? ".chain.pem" : ".pem"));
  c.key_file = PkiPath("server/" + cert + ".key.pem");
  if (cert != "localhost" && cert != "self-signed" && cert != "other-ca") {
    c.chain_file = PkiPath("ca/intermediate.pem");
  }
  c.client_auth = auth;
  c.client_ca_file = PkiPath(client_ca);
  return c;
}

inline Deadline In(std::chrono::milliseconds ms) { return std::chrono::steady_clock::now() + ms; }
inline Deadline Soon() { return In(std::chrono::milliseconds(20'000)); }

inline RestStep Get(const std::string& url) {
  RestStep s;
  s.url = url;
  s.tls.ssl_verification = url.rfind("https://", 0) == 0;
  s.timeouts.total = std::chrono::milliseconds(15'000);
  return s;
}

// A CredentialSource over a fixed map "host:port" -> credentials; counts its calls.
class MapCredentialSource : public CredentialSource {
 public:
  void Set(const std::string& host_port, core::CallCredentials creds) {
    std::lock_guard<std::mutex> lock(mu_);
    map_[host_port] = std::move(creds);
  }
  Result<ResolvedCredentials> Resolve(std::string_view host, uint16_t port, std::string_view,
                                      std::string_view, const CredentialContext&) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls;
    std::string key = std::string(host) + ":" + std::to_string(port);
    auto it = map_.find(key);
    if (it == map_.end()) {
      return Error(Code::kCertificateNotFound, "SSL Certificate Not Found for " + key);
    }
    return ResolvedCredentials{it->second, "test map: " + key};
  }
  int calls = 0;

 private:
  std::mutex mu_;
  std::map<std::string, core::CallCredentials> map_;
};

}  // namespace wsstep::rest::testutil

#endif  // WSSTEP_REST_REST_TEST_UTIL_H_

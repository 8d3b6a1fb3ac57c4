#include "tests/bench/engine_bench.h"

#include <memory>

#include "core/material.h"
#include "core/ossl.h"
#include "tests/support/pki.h"

namespace wsstep::bench {

Result<core::CallCredentials> CredentialsFromFiles(const TlsFiles& files) {
  SecretBytes cert = testing::ReadSecretFile(files.cert_file);
  SecretBytes key = testing::ReadSecretFile(files.key_file);
  core::ImportInput input;
  input.type = core::EntryType::kKeyPair;
  input.content = &cert;
  input.key = &key;
  input.content_name = files.cert_file;
  input.key_name = files.key_file;
  WSSTEP_ASSIGN_OR_RETURN(core::ParsedMaterial material, core::ParseMaterial(input));

  auto identity = std::make_shared<core::Identity>();
  identity->entry_id = "bench-pem";
  identity->name = "bench-pem";
  identity->version = 1;
  identity->fingerprint = ossl::Sha256Fingerprint(material.leaf.get());
  identity->leaf = std::move(material.leaf);
  identity->chain = std::move(material.chain);
  identity->key = std::move(material.key);

  SecretBytes bundle = testing::ReadSecretFile(files.ca_file);
  core::ImportInput trust_input;
  trust_input.type = core::EntryType::kTrustStore;
  trust_input.content = &bundle;
  trust_input.content_name = files.ca_file;
  WSSTEP_ASSIGN_OR_RETURN(core::ParsedMaterial trust_material, core::ParseMaterial(trust_input));
  auto trust = std::make_shared<core::TrustAnchors>();
  trust->entry_ids.push_back("bench-trust@1");
  trust->certs = std::move(trust_material.trusted);

  core::CallCredentials credentials;
  credentials.identity = std::move(identity);
  credentials.trust = std::move(trust);
  credentials.private_trust_only = true;
  return credentials;
}

rest::RestStep BenchStep(const std::string& url, Connections connections,
                         rest::HttpVersion version) {
  rest::RestStep step;
  step.method = "GET";
  step.url = url;
  step.tls.ssl_verification = true;
  step.timeouts.total = std::chrono::milliseconds(15'000);
  step.reuse_connections = connections == Connections::kKeepAlive;
  step.resume_tls_sessions = connections != Connections::kNewFullHandshake;
  step.step_id = "bench";
  step.http_version = version;
  return step;
}

std::string CheckStepResult(const Result<rest::RestResult>& result) {
  if (!result.ok()) return result.error().ToString();
  if (result->status != 200) return "HTTP " + std::to_string(result->status);
  if (!result->tls.client_certificate) return "no client certificate was presented";
  return "";
}

LoopOutcome RunEngineLoop(rest::RestEngine& engine, const std::string& url,
                          const core::CallCredentials& credentials, int in_flight,
                          Connections connections, Nanos duration, uint64_t max_count,
                          rest::HttpVersion version) {
  // Captured by value: the loop's state may outlive this call if an operation hangs.
  rest::RestEngine* e = &engine;
  return RunClosedLoop(in_flight, duration, max_count,
                       [e, url, credentials, connections, version](OpDone done) {
    e->Submit(BenchStep(url, connections, version), credentials,
                  Clock::now() + std::chrono::seconds(30), rest::CancelToken(),
                  [done](Result<rest::RestResult> r) { done(CheckStepResult(r)); });
  });
}

}  // namespace wsstep::bench

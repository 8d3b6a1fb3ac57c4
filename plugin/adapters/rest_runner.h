// The step runners (plugin/server/backends.h RestStepRunner, SoapStepRunner) and the connection
// tester over one rest::RestEngine: REST steps, SOAP envelope POSTs (soap::SoapClient on
// the same engine) and TestConnection probes all take the same transfer path, with the
// credentials the certificate store resolves for the target.
//
//   TransferOptions options;
//   options.protected_environments = config.protected_environments;
//   auto transfers = std::make_shared<Transfers>(store, options);
//   backends.rest = MakeRestRunner(transfers);
//   backends.soap = MakeSoapRunner(transfers);
//   ConnectionTester tester = MakeConnectionTester(transfers);
//   ...
//   transfers->Shutdown();   // after the server drained
//
// Outcomes: resolution failures (CERTIFICATE_NOT_FOUND...), TLS and transfer failures
// and invalid step configurations come back in the response (StepOutcome.error); only a
// busy or stopping engine is a contract error (UNAVAILABLE). Every call that used the
// store is recorded (CertificateStore::RecordUse) with its outcome.
#ifndef WSSTEP_PLUGIN_ADAPTERS_REST_RUNNER_H_
#define WSSTEP_PLUGIN_ADAPTERS_REST_RUNNER_H_

#include <memory>
#include <set>
#include <string>

#include "core/store/store.h"
#include "plugin/process/config.h"
#include "plugin/server/backends.h"
#include "plugin/adapters/store_backend.h"
#include "rest/credential_source.h"
#include "rest/engine.h"
#include "soap/client.h"

namespace wsstep::plugin {

// rest::CredentialSource over the store: redirect hops and OAuth2 token endpoints get the
// credentials bound to their own host (trust only when no client certificate is bound).
class StoreCredentialSource final : public rest::CredentialSource {
 public:
  explicit StoreCredentialSource(std::shared_ptr<core::CertificateStore> store);
  Result<rest::ResolvedCredentials> Resolve(std::string_view host, uint16_t port,
                                            std::string_view environment,
                                            std::string_view certificate_name,
                                            const rest::CredentialContext& context) override;

 private:
  std::shared_ptr<core::CertificateStore> store_;
};

struct TransferOptions {
  std::set<std::string> protected_environments = {
      std::string(rest::kDefaultProtectedEnvironment)};
  size_t max_body_bytes = kDefaultMaxBodyBytes;
  size_t max_chunked_body_bytes = kDefaultMaxChunkedBodyBytes;
  int workers = rest::kDefaultWorkers;
  size_t max_queue = rest::kDefaultMaxQueue;
  int max_in_flight_per_origin = 0;  // EngineOptions::max_in_flight_per_origin
  // EngineOptions::spin_wait
  std::chrono::microseconds spin_wait = rest::SpinAdvisor::kDefaultSpin;
  // Config::propagate_trace_context
  bool propagate_trace_context = false;
  // Config::proxy: EngineOptions::proxy (url "": direct).
  std::string proxy_url;
  std::string proxy_username;
  std::shared_ptr<const SecretBytes> proxy_password;
  // Config::proxy.credential: the store's proxy credential, looked up at each step.
  std::string proxy_credential;
  std::vector<std::string> no_proxy;
  bool offer_http2 = true;  // Config::offer_http2
};

class Transfers;  // the engine and the SOAP client

std::shared_ptr<Transfers> MakeTransfers(std::shared_ptr<core::CertificateStore> store,
                                         const TransferOptions& options);
// Stops the engine (in-flight steps finish within their deadlines). Idempotent.
void ShutdownTransfers(Transfers& transfers);
// The engine's connection counters per store entry (rest::RestEngine::TotalsByEntry).
std::vector<rest::PartitionStats> ConnectionTotals(const Transfers& transfers);

// Lends the calling thread to the engine (rest/engine.h LendThisThread) until the result
// is destroyed, on the same thread (Backends::lend_step_thread).
std::unique_ptr<StepThreadLease> LendThreadToEngine(Transfers& transfers,
                                                    std::function<void()> on_slow);

std::shared_ptr<RestStepRunner> MakeRestRunner(std::shared_ptr<Transfers> transfers);
std::shared_ptr<SoapStepRunner> MakeSoapRunner(std::shared_ptr<Transfers> transfers);
// DescribeWsdl: WSDLs uploaded or fetched through `transfers` (soap/wsdl.h).
std::shared_ptr<WsdlDescriber> MakeWsdlDescriber(std::shared_ptr<Transfers> transfers);
ConnectionTester MakeConnectionTester(std::shared_ptr<Transfers> transfers);

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_ADAPTERS_REST_RUNNER_H_

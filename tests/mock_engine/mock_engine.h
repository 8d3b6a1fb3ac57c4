// MockEngine: a workflow host in miniature, for the end-to-end suite. It launches the
// real `wsstep` binary through the go-plugin handshake with AutoMTLS (as a host does),
// talks to it only through the generated gRPC stubs, and records every response and
// every status it receives, so that a test can prove afterwards that no key, password
// or token ever came back out (ScanForSecrets over Transcript(), StderrText() and the
// data directory).
//
//   MockEngine engine;
//   ASSERT_TRUE(engine.Start()) << engine.start_error();
//   auto created = engine.Create(KeyPairFromFiles("a", "client/rsa.pem", "client/rsa.key.pem",
//                                                 {{"localhost", port, ""}}));
//   auto step = engine.Rest(GetStep("https://localhost:" + port + "/echo"));
//   ...
//   EXPECT_EQ(engine.Stop(), 0);   // closes stdin, the plugin drains and exits 0
#ifndef WSSTEP_TESTS_MOCK_ENGINE_MOCK_ENGINE_H_
#define WSSTEP_TESTS_MOCK_ENGINE_MOCK_ENGINE_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "plugin/cli/host_launcher.h"
#include "plugin/server/status_map.h"
#include "tests/support/pki.h"
#include "wsstep/v1/certificate_service.grpc.pb.h"
#include "wsstep/v1/step_plugin_service.grpc.pb.h"

namespace wsstep::mock_engine {

namespace v1 = ::wsstep::v1;

// What one RPC returned: the gRPC status (with its decoded rich details) and the
// response message (meaningful only when status.ok()).
template <typename Response>
struct Reply {
  grpc::Status status;
  plugin::StatusDetails details;
  Response response;
  bool ok() const { return status.ok(); }
};

// Per-call options a host sets: deadline and correlation metadata.
struct CallOptions {
  std::chrono::milliseconds deadline{30000};
  std::string step_id;
  std::string workflow_id;
  std::string actor = "mock-engine";
  std::string traceparent;  // W3C trace context metadata, as OpenTelemetry sends it
  std::string tracestate;
};

// A binding as a test writes it.
struct Bind {
  std::string host;
  uint32_t port = 0;
  std::string environment;
};

// An open ExecuteSteps stream (MockEngine::OpenSteps). Send and Read may be used from
// two threads (one each); every message read is recorded in the engine's transcript.
class StepStream {
 public:
  StepStream(std::unique_ptr<grpc::ClientContext> context, std::function<void(const std::string&)> record,
             std::function<std::unique_ptr<grpc::ClientReaderWriter<v1::ExecuteStepsRequest,
                                                                    v1::ExecuteStepsResponse>>(
                 grpc::ClientContext*)> open);
  bool Send(const v1::ExecuteStepsRequest& request);
  // The next message, or nullopt when the stream ended. Recorded without its body chunks'
  // bytes (their sizes and offsets are).
  std::optional<v1::ExecuteStepsResponse> Read();
  // Reads until `count` results came (or the stream ended); keyed by call id.
  std::map<uint64_t, v1::StepCallResult> ReadResults(size_t count);
  void CloseSend();  // half-close
  void Cancel();
  // After the last Read returned nullopt: the stream's status.
  grpc::Status Finish();

 private:
  std::unique_ptr<grpc::ClientContext> context_;
  std::function<void(const std::string&)> record_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::ExecuteStepsRequest, v1::ExecuteStepsResponse>> io_;
};

class MockEngine {
 public:
  MockEngine();
  ~MockEngine();  // stops the plugin (SIGKILL by PluginProcess if it does not exit)
  MockEngine(const MockEngine&) = delete;
  MockEngine& operator=(const MockEngine&) = delete;

  // Launches the plugin with the handshake and AutoMTLS, with a private data directory
  // and its stderr captured to a file. False (start_error()) if it does not come up.
  bool Start(std::vector<std::pair<std::string, std::string>> extra_env = {});
  const std::string& start_error() const { return start_error_; }
  plugin::PluginProcess& process() { return *process_; }
  const std::string& data_dir() const { return data_dir_.path(); }

  // Capabilities from GetPluginInfo (cached after the first call).
  std::vector<std::string> Capabilities();
  bool Has(const std::string& capability);

  // StepPluginService.
  Reply<v1::GetPluginInfoResponse> Info();
  Reply<v1::ExecuteRestStepResponse> Rest(const v1::RestStep& step, const std::string& environment = "",
                                          const CallOptions& options = {});
  Reply<v1::ExecuteRestStepResponse> RestRequest(const v1::ExecuteRestStepRequest& request,
                                                 const CallOptions& options = {});
  Reply<v1::ExecuteSoapStepResponse> Soap(const v1::ExecuteSoapStepRequest& request,
                                          const CallOptions& options = {});
  Reply<v1::DescribeWsdlResponse> DescribeWsdl(const v1::DescribeWsdlRequest& request,
                                               const CallOptions& options = {});
  Reply<v1::ValidateStepResponse> Validate(const v1::ValidateStepRequest& request);
  // Opens an ExecuteSteps stream with the options' deadline and metadata.
  std::unique_ptr<StepStream> OpenSteps(const CallOptions& options = {});
  // Sends `bytes` as the one message of an ExecuteSteps stream, half-closes and returns
  // how the stream ended (a malformed request).
  grpc::Status StepsWithRawMessage(const std::string& bytes);

  // CertificateService.
  Reply<v1::CreateCertificateResponse> Create(const v1::CreateCertificateRequest& request);
  Reply<v1::ListCertificatesResponse> List(const v1::ListCertificatesRequest& request);
  Reply<v1::GetCertificateResponse> Get(const v1::GetCertificateRequest& request);
  Reply<v1::UpdateCertificateResponse> Update(const v1::UpdateCertificateRequest& request);
  Reply<v1::DeleteCertificateResponse> Delete(const v1::DeleteCertificateRequest& request);
  Reply<v1::ListAuditEventsResponse> Audit(const v1::ListAuditEventsRequest& request);
  Reply<v1::ResolveCertificateResponse> Resolve(const v1::ResolveCertificateRequest& request);
  Reply<v1::GenerateKeyAndCsrResponse> GenerateKeyAndCsr(const v1::GenerateKeyAndCsrRequest& request);
  Reply<v1::AttachCertificateResponse> Attach(const v1::AttachCertificateRequest& request);
  Reply<v1::TestConnectionResponse> TestConnection(const v1::TestConnectionRequest& request,
                                                   const CallOptions& options = {});
  Reply<v1::SetProxyCredentialResponse> SetProxyCredential(const std::string& name,
                                                           const std::string& username,
                                                           const std::string& password);
  Reply<v1::ListProxyCredentialsResponse> ListProxyCredentials();
  Reply<v1::DeleteProxyCredentialResponse> DeleteProxyCredential(const std::string& name);
  Reply<v1::ListPendingNotificationsResponse> PendingNotifications();
  Reply<v1::AcknowledgeNotificationResponse> Acknowledge(const std::string& notification_id);
  // Opens a WatchEvents stream; read it with ReadEvent, end it with context->TryCancel().
  struct Watch {
    std::unique_ptr<grpc::ClientContext> context;
    std::unique_ptr<grpc::ClientReader<v1::WatchEventsResponse>> reader;
  };
  Watch OpenWatch(const v1::WatchEventsRequest& request);
  // The next event of `watch`, recorded; nullopt when the stream ended.
  std::optional<v1::WatchEventsResponse> ReadEvent(Watch& watch);

  // grpc.health.v1 status of `service` ("" or "plugin"): "SERVING", ... or the error.
  std::string Health(const std::string& service);
  // Raw server reflection answer to list_services (serialized response bytes), or "".
  std::string ReflectionListServices();

  // Closes stdin (the host going away) and waits for the exit code.
  std::optional<int> Stop(std::chrono::milliseconds timeout = std::chrono::seconds(20));

  // Everything received so far, serialized (responses in wire form plus their text form,
  // status messages and status detail bytes), in arrival order.
  std::string Transcript() const;
  // Everything the plugin wrote on stderr so far.
  std::string StderrText() const;

 private:
  // One unary call with the host's deadline and metadata, recorded.
  template <typename Stub, typename Request, typename Response>
  Reply<Response> Call(Stub* stub,
                       grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                       const Request& request, const CallOptions& options);
  template <typename Response>
  void Record(const Reply<Response>& reply);
  void ConfigureContext(grpc::ClientContext* ctx, const CallOptions& options) const;

  testing::TempDir data_dir_{"wsstep-mock-data-"};
  testing::TempDir work_dir_{"wsstep-mock-work-"};
  std::string stderr_path_;
  std::string start_error_;
  std::unique_ptr<plugin::PluginProcess> process_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::StepPluginService::Stub> steps_;
  std::unique_ptr<v1::CertificateService::Stub> certs_;
  std::optional<std::vector<std::string>> capabilities_;
  mutable std::mutex mu_;
  std::string transcript_;
};

// --- Request builders ---------------------------------------------------------------

// CreateCertificateRequest for a KEY_PAIR from two PKI files (paths relative to the PKI).
v1::CreateCertificateRequest KeyPairFromFiles(const std::string& name, const std::string& cert_rel,
                                              const std::string& key_rel,
                                              const std::vector<Bind>& bindings,
                                              std::optional<std::string> key_password = std::nullopt);
// A PKCS#12 entry from a PKI file with its password.
v1::CreateCertificateRequest Pkcs12FromFile(const std::string& name, const std::string& rel,
                                            const std::string& password,
                                            const std::vector<Bind>& bindings);
// A TRUST_STORE entry from a PKI PEM bundle.
v1::CreateCertificateRequest TrustStoreFromFile(const std::string& name, const std::string& rel,
                                                const std::vector<Bind>& bindings);
// GET url with ssl_verification on.
v1::RestStep GetStep(const std::string& url);

// --- Secret scanning ----------------------------------------------------------------

// A secret and the forms it may leak in.
struct Secret {
  std::string label;              // for messages; never the secret itself
  std::vector<std::string> needles;
};
// A private key file (PEM): every base64 body line and 24-byte windows of its DER.
Secret KeySecret(const std::string& pki_rel);
// The same for a PEM private key given as text (a key extracted at test time).
Secret KeySecretFromPem(const std::string& label, const std::string& pem);
// A literal (password, token) and its base64 form.
Secret TextSecret(const std::string& label, const std::string& value);
// Labels of the secrets found in `haystack`, with `where` prefixed; empty when clean.
std::vector<std::string> ScanForSecrets(const std::string& where, const std::string& haystack,
                                        const std::vector<Secret>& secrets);
// Every regular file under `dir`, concatenated with its name, for scanning.
std::vector<std::pair<std::string, std::string>> ReadTree(const std::string& dir);

}  // namespace wsstep::mock_engine

#endif  // WSSTEP_TESTS_MOCK_ENGINE_MOCK_ENGINE_H_

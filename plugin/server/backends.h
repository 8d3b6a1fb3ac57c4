// The seams between the gRPC services (plugin/*_service.cc: threading, deadlines,
// limits, logging, error mapping) and the components that do the work (core/ store,
// rest/ engine, soap/). Each backend speaks proto in and proto out, so that converting
// between the wire and the domain types lives in one adapter per component, and so that
// service tests can run against fakes.
//
// A service whose backend is null answers UNIMPLEMENTED ("... is not wired into the
// plugin yet"), never a made-up result.
//
// Errors: a backend returns a wsstep::Status for *contract* errors (status_map.h turns it
// into a gRPC status with field violations: put the proto field path in detail "field").
// Step outcomes, including failed steps, go into the response message.
#ifndef WSSTEP_PLUGIN_SERVER_BACKENDS_H_
#define WSSTEP_PLUGIN_SERVER_BACKENDS_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "plugin/server/call_context.h"
#include "wsstep/v1/certificate_service.pb.h"
#include "wsstep/v1/step_plugin_service.pb.h"

namespace wsstep::plugin {

// Completion of an asynchronous backend call. Runs exactly once, on any thread.
using Done = std::function<void(Status)>;

// Executes and validates one kind of step. Execute must not block the calling thread:
// it queues the work (the REST engine's workers) and calls `done` when `response` is
// filled. It must stop early when call.Cancelled() becomes true and never run past
// call.deadline. `call` and `request` stay valid until `done` is called (the service
// keeps them with the call), so a runner reads them by reference until then.
template <typename ExecuteRequest, typename ExecuteResponse, typename StepMessage>
class StepRunner {
 public:
  virtual ~StepRunner() = default;
  // Design-time checks of `step`; findings go to `response` (diagnostics with field
  // paths relative to the step). The environment is the request's.
  virtual Status Validate(const CallContext& call, const StepMessage& step,
                          const std::string& environment, v1::ValidateStepResponse* response) = 0;
  virtual void Execute(const CallContext& call, const ExecuteRequest& request,
                       ExecuteResponse* response, Done done) = 0;
};

using RestStepRunner =
    StepRunner<v1::ExecuteRestStepRequest, v1::ExecuteRestStepResponse, v1::RestStep>;
using SoapStepRunner =
    StepRunner<v1::ExecuteSoapStepRequest, v1::ExecuteSoapStepResponse, v1::SoapStep>;

// Reads WSDLs for DescribeWsdl (plugin/adapters: soap/wsdl.h over the transfer engine and
// the store). Blocks the calling thread while documents are fetched (bounded by the call's
// deadline); a WSDL that cannot be read is an INVALID_WSDL error.
class WsdlDescriber {
 public:
  virtual ~WsdlDescriber() = default;
  virtual Status Describe(const CallContext& call, const v1::DescribeWsdlRequest& request,
                          v1::DescribeWsdlResponse* response) = 0;
};

// A live subscription to store events (WatchEvents).
class EventWatch {
 public:
  virtual ~EventWatch() = default;
  // Waits up to `timeout` for the next event. True with `event` filled; false on
  // timeout. Called from one thread at a time.
  virtual bool Next(v1::WatchEventsResponse* event, std::chrono::milliseconds timeout) = 0;
};

// The certificate store as the CertificateService needs it. Synchronous methods run on
// gRPC's synchronous server threads, which may block (SQLite, PBKDF2); gRPC adds threads
// while calls wait.
class CertificateBackend {
 public:
  virtual ~CertificateBackend() = default;

  virtual Status Create(const CallContext& call, const v1::CreateCertificateRequest& request,
                        v1::CreateCertificateResponse* response) = 0;
  virtual Status Get(const CallContext& call, const v1::GetCertificateRequest& request,
                     v1::GetCertificateResponse* response) = 0;
  virtual Status List(const CallContext& call, const v1::ListCertificatesRequest& request,
                      v1::ListCertificatesResponse* response) = 0;
  virtual Status Update(const CallContext& call, const v1::UpdateCertificateRequest& request,
                        v1::UpdateCertificateResponse* response) = 0;
  virtual Status Delete(const CallContext& call, const v1::DeleteCertificateRequest& request,
                        v1::DeleteCertificateResponse* response) = 0;
  virtual Status Resolve(const CallContext& call, const v1::ResolveCertificateRequest& request,
                         v1::ResolveCertificateResponse* response) = 0;
  virtual Status GenerateKeyAndCsr(const CallContext& call,
                                   const v1::GenerateKeyAndCsrRequest& request,
                                   v1::GenerateKeyAndCsrResponse* response) = 0;
  virtual Status Attach(const CallContext& call, const v1::AttachCertificateRequest& request,
                        v1::AttachCertificateResponse* response) = 0;
  virtual Status ListAuditEvents(const CallContext& call,
                                 const v1::ListAuditEventsRequest& request,
                                 v1::ListAuditEventsResponse* response) = 0;
  virtual Status ListPendingNotifications(const CallContext& call,
                                          const v1::ListPendingNotificationsRequest& request,
                                          v1::ListPendingNotificationsResponse* response) = 0;
  virtual Status AcknowledgeNotification(const CallContext& call,
                                         const v1::AcknowledgeNotificationRequest& request,
                                         v1::AcknowledgeNotificationResponse* response) = 0;
  virtual Status Export(const CallContext& call, const v1::ExportCertificateRequest& request,
                        v1::ExportCertificateResponse* response) = 0;
  virtual Status GetCsr(const CallContext& call, const v1::GetCsrRequest& request,
                        v1::GetCsrResponse* response) = 0;
  virtual Status Usage(const CallContext& call, const v1::GetCertificateUsageRequest& request,
                       v1::GetCertificateUsageResponse* response) = 0;
  virtual Status RotateMasterKey(const CallContext& call,
                                 const v1::RotateMasterKeyRequest& request,
                                 v1::RotateMasterKeyResponse* response) = 0;
  virtual Status SetProxyCredential(const CallContext& call,
                                    const v1::SetProxyCredentialRequest& request,
                                    v1::SetProxyCredentialResponse* response) = 0;
  virtual Status ListProxyCredentials(const CallContext& call,
                                      const v1::ListProxyCredentialsRequest& request,
                                      v1::ListProxyCredentialsResponse* response) = 0;
  virtual Status DeleteProxyCredential(const CallContext& call,
                                       const v1::DeleteProxyCredentialRequest& request,
                                       v1::DeleteProxyCredentialResponse* response) = 0;
  // Opens a subscription. Events before the call are not replayed, except pending
  // notifications when request.include_pending().
  virtual Result<std::unique_ptr<EventWatch>> Watch(const CallContext& call,
                                                    const v1::WatchEventsRequest& request) = 0;
  // A TLS handshake to the target, asynchronous like StepRunner::Execute. A backend
  // built without a transfer engine returns false from SupportsTestConnection(), and the
  // service answers UNIMPLEMENTED without calling TestConnection.
  virtual bool SupportsTestConnection() const = 0;
  virtual void TestConnection(const CallContext& call, const v1::TestConnectionRequest& request,
                              v1::TestConnectionResponse* response, Done done) = 0;
};

// The kinds of step the service runs (metrics labels, logs).
enum class StepKind { kRest, kSoap };
std::string_view StepKindName(StepKind kind);  // "rest", "soap"

// Told about every step the service sees (the metrics). Called on the steps' own threads,
// on the per-step path: implementations must be cheap, thread-safe and never block.
class StepObserver {
 public:
  virtual ~StepObserver() = default;
  // The service admitted a step (it counts against max_in_flight_steps until Finished).
  virtual void Started(StepKind kind) = 0;
  // An admitted step ended. With `status` OK, `outcome` is the step's result (an HTTP or
  // SOAP answer, or a step error with its catalog code); otherwise the runner refused the
  // step (an invalid config, ...) and `outcome` is null. `elapsed` runs from the call's
  // arrival.
  virtual void Finished(StepKind kind, const Status& status, const v1::StepOutcome* outcome,
                        std::chrono::nanoseconds elapsed) = 0;
  // The service refused a step before admitting it: "max_in_flight_steps",
  // "shutting_down", "deadline_passed", "invalid_request", "not_available".
  virtual void Refused(StepKind kind, std::string_view reason) = 0;
};

// The dispatching step thread, lent to the transfer engine.
class StepThreadLease {
 public:
  virtual ~StepThreadLease() = default;
  // Whether the next step started on this thread may run here (when the engine is idle)
  // rather than on an engine worker.
  virtual void AllowInline(bool allow) = 0;
};

// Everything the server serves; null members are not available in this build.
struct Backends {
  std::shared_ptr<RestStepRunner> rest;
  std::shared_ptr<SoapStepRunner> soap;
  std::shared_ptr<WsdlDescriber> wsdl;
  std::shared_ptr<CertificateBackend> certificates;
  // Lends the step service's dispatching thread to the transfer engine (called once, on
  // that thread; plugin/server/step_service.h): a step it receives while nothing else runs is
  // transferred right there, and Runner::Execute then calls `done` before it returns.
  // `on_slow` is called on the thread when such a step has waited ~2 ms for its server.
  // Null: every step goes to the engine's workers.
  std::function<std::unique_ptr<StepThreadLease>(std::function<void()> on_slow)>
      lend_step_thread;
  // Sees every step (plugin/adapters/metrics.h). Null: nobody is told.
  std::shared_ptr<StepObserver> observer;
};

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_SERVER_BACKENDS_H_

#include "plugin/server/step_service.h"

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/proto_buffer_writer.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <type_traits>

#include "plugin/process/log.h"
#include "plugin/process/utf8.h"
#include "plugin/server/schema.h"
#include "plugin/server/status_map.h"
#include "plugin/server/step_queue.h"
#include "rest/http_text.h"

#ifndef WSSTEP_VERSION
#define WSSTEP_VERSION "0.0.0"
#endif

namespace wsstep::plugin {

thread_local DispatchingThread t_dispatching;

namespace {

// The level of a finished step's line: the plugin's own exhaustion is an operator's
// error (it needs a limit raised); a step held back by its origin's cap, a warning;
// anything else the step's business (info).
LogLevel OutcomeLogLevel(const v1::StepOutcome& outcome) {
  if (!outcome.has_error()) return LogLevel::kInfo;
  switch (outcome.error().error_code()) {
    case v1::ERROR_CODE_DESCRIPTORS_EXHAUSTED:
      return LogLevel::kError;
    case v1::ERROR_CODE_ORIGIN_BUSY:
      return LogLevel::kWarn;
    default:
      return LogLevel::kInfo;
  }
}

// The facts of an outcome worth a log line: never bodies or headers.
void AddOutcomeFields(const v1::StepOutcome& outcome, LineFields& f) {
  switch (outcome.result_case()) {
    case v1::StepOutcome::kHttp:
      f.Add("outcome", "http");
      f.Add("http_status", outcome.http().status());
      // Whole or in chunks: the body's size as the host received it.
      f.Add("body_bytes", outcome.http().body_bytes());
      if (outcome.http().body_chunked()) f.Add("body_chunked", "true");
      break;
    case v1::StepOutcome::kSoap:
      f.Add("outcome", outcome.soap().has_fault() ? "soap_fault" : "soap");
      f.Add("http_status", outcome.soap().http_status());
      break;
    case v1::StepOutcome::kError:
      f.Add("outcome", "error");
      f.Add("code", outcome.error().code());
      f.Add("message", outcome.error().message());
      break;
    default:
      f.Add("outcome", "none");
  }
  if (outcome.tls().has_client_certificate()) {
    f.Add("client_certificate", outcome.tls().client_certificate().name());
  }
  // The route (a proxy URL never carries credentials) and, for a retried step, how many
  // attempts it took.
  if (!outcome.tls().proxy().empty()) f.Add("proxy", outcome.tls().proxy());
  if (outcome.attempts_size() > 1) f.Add("attempts", outcome.attempts_size());
  if (outcome.warnings_size() > 0) f.Add("warnings", outcome.warnings_size());
}

}  // namespace

std::string_view PluginVersion() { return WSSTEP_VERSION; }

std::string_view StepKindName(StepKind kind) { return kind == StepKind::kRest ? "rest" : "soap"; }

v1::GetPluginInfoResponse BuildPluginInfo(const Backends& backends, const PluginFacts& facts) {
  v1::GetPluginInfoResponse info;
  info.set_name("wsstep");
  info.set_version(std::string(PluginVersion()));
  info.set_api_version("wsstep.v1");

  auto* rest = info.add_step_kinds();
  rest->set_kind("rest");
  rest->set_display_name("REST call (mutual TLS)");
  rest->set_description(
      "Calls an HTTP(S) endpoint. With SSL verification on, presents the client certificate "
      "bound to the target host, port and environment and trusts the trust stores bound "
      "there. Any HTTP status is a result; TLS and certificate failures come back as error "
      "codes the workflow can route on.");
  rest->set_config_message(v1::RestStep::descriptor()->full_name());
  rest->set_config_schema(StepConfigSchema(v1::RestStep::descriptor()));
  rest->set_execute_method(Method("ExecuteRestStep"));

  auto* soap = info.add_step_kinds();
  soap->set_kind("soap");
  soap->set_display_name("SOAP call (mutual TLS)");
  soap->set_description(
      "Calls a SOAP 1.1 or 1.2 endpoint with an envelope built from an operation and its "
      "parameters (or a raw body), optional WS-Security, and the same certificate handling "
      "as REST calls. A SOAP Fault is a structured result.");
  soap->set_config_message(v1::SoapStep::descriptor()->full_name());
  soap->set_config_schema(StepConfigSchema(v1::SoapStep::descriptor()));
  soap->set_execute_method(Method("ExecuteSoapStep"));

  if (backends.rest) info.add_capabilities("rest");
  if (backends.soap) info.add_capabilities("soap");
  if (backends.rest || backends.soap) info.add_capabilities("validate");
  if (backends.rest || backends.soap) info.add_capabilities("execute-steps");
  if (backends.rest) info.add_capabilities("body-chunks");
  if (backends.soap) info.add_capabilities("soap-signature");
  if (backends.wsdl) info.add_capabilities("wsdl");
  if (backends.certificates) {
    info.add_capabilities("certificate-store");
    info.add_capabilities("watch-events");
    if (backends.certificates->SupportsTestConnection()) info.add_capabilities("test-connection");
  }
  if (facts.automtls) info.add_capabilities("automtls");
  if (facts.go_plugin) info.add_capabilities("go-plugin");

  for (const auto& env : facts.protected_environments) info.add_protected_environments(env);
  auto* limits = info.mutable_limits();
  limits->set_max_in_flight_steps(facts.limits.max_in_flight_steps);
  limits->set_max_message_bytes(facts.limits.max_message_bytes);
  limits->set_max_body_bytes(facts.limits.max_body_bytes);
  limits->set_max_chunked_body_bytes(facts.limits.max_chunked_body_bytes);
  return info;
}

StepPluginServiceImpl::StepPluginServiceImpl(Backends backends, PluginFacts facts)
    : backends_(std::move(backends)), facts_(std::move(facts)) {
  info_ = BuildPluginInfo(backends_, facts_);
}

grpc::Status StepPluginServiceImpl::GetPluginInfo(grpc::ServerContext* /*context*/,
                                                  const v1::GetPluginInfoRequest* /*request*/,
                                                  v1::GetPluginInfoResponse* response) {
  *response = info_;
  return grpc::Status::OK;
}

grpc::Status StepPluginServiceImpl::DescribeWsdl(grpc::ServerContext* context,
                                                 const v1::DescribeWsdlRequest* request,
                                                 v1::DescribeWsdlResponse* response) {
  const CallContext call = ReadCallContext(*context, Method("DescribeWsdl"));
  if (!backends_.wsdl) return NotAvailable("DescribeWsdl", "the WSDL reader");
  if (request->url().empty() == (request->documents_size() == 0)) {
    return InvalidArgument("DescribeWsdlRequest: set `url` or `documents`",
                           {{"url", "exactly one of url or documents is required"}});
  }
  return ToGrpcStatus(backends_.wsdl->Describe(call, *request, response));
}

grpc::Status StepPluginServiceImpl::ValidateStep(grpc::ServerContext* context,
                                                 const v1::ValidateStepRequest* request,
                                                 v1::ValidateStepResponse* response) {
  const CallContext call = ReadCallContext(*context, Method("ValidateStep"));
  Status status;
  switch (request->step_case()) {
    case v1::ValidateStepRequest::kRest:
      if (!backends_.rest) {
        return NotAvailable("ValidateStep (REST)", "the REST engine");
      }
      // Validation is CPU only (parsing, policy, an in-memory resolution): no offload.
      status = backends_.rest->Validate(call, request->rest(), request->environment(), response);
      break;
    case v1::ValidateStepRequest::kSoap:
      if (!backends_.soap) {
        return NotAvailable("ValidateStep (SOAP)", "the SOAP engine");
      }
      status = backends_.soap->Validate(call, request->soap(), request->environment(), response);
      break;
    default:
      return InvalidArgument("ValidateStepRequest: set `rest` or `soap`",
                             {{"step", "exactly one of rest or soap is required"}});
  }
  if (status.ok()) {
    bool valid = true;
    for (const auto& d : response->diagnostics()) {
      valid = valid && d.severity() != v1::SEVERITY_ERROR;
    }
    response->set_valid(valid);
  }
  return ToGrpcStatus(status);
}

bool StepPluginServiceImpl::TryAcquire() {
  int current = in_flight_.load();
  while (current < facts_.limits.max_in_flight_steps) {
    if (in_flight_.compare_exchange_weak(current, current + 1)) return true;
  }
  return false;
}

template <typename Runner, typename Request, typename Response>
void StepPluginServiceImpl::Execute(const CallContext& call, const std::shared_ptr<Runner>& runner,
                                    std::string_view missing_part, const Request& request,
                                    Response* response, std::function<void(grpc::Status)> finish) {
  const std::string_view method = std::string_view(call.method).substr(kService.size());
  constexpr StepKind kind =
      std::is_same_v<Runner, RestStepRunner> ? StepKind::kRest : StepKind::kSoap;
  StepObserver* const observer = backends_.observer.get();
  auto refuse = [&](std::string_view reason, grpc::Status status) {
    if (observer != nullptr) observer->Refused(kind, reason);
    finish(std::move(status));
  };
  if (stopping_) {
    refuse("shutting_down", grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                         "the plugin is shutting down; the step was not started"));
    return;
  }
  if (!runner) {
    refuse("not_available", NotAvailable(method, missing_part));
    return;
  }
  if (!request.has_step()) {
    refuse("invalid_request",
           InvalidArgument(std::string(method) + ": `step` is required", {{"step", "required"}}));
    return;
  }
  if (call.HasDeadline() && call.TimeLeft().count() == 0) {
    refuse("deadline_passed", grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                           "the deadline passed before the step could start"));
    return;
  }
  if (!TryAcquire()) {
    refuse("max_in_flight_steps",
           grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "the plugin is running its maximum of " +
                            std::to_string(facts_.limits.max_in_flight_steps) +
                            " steps (max_in_flight_steps); the step was not started, retry later"));
    return;
  }
  if (Log().Enabled(LogLevel::kDebug)) Log().Debug("step started", call.Fields());
  if (observer != nullptr) observer->Started(kind);
  runner->Execute(
      call, request, response,
      [this, response, &call, observer, finish = std::move(finish)](Status status) {
        const auto elapsed = std::chrono::steady_clock::now() - call.started;
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();
        const bool ok = status.ok();
        const LogLevel level = !ok ? LogLevel::kWarn : OutcomeLogLevel(response->outcome());
        const bool log = Log().Enabled(level);
        LineFields fields;  // filled only when the line is written
        if (ok) response->mutable_outcome()->set_step_id(call.step_id);
        if (log) {
          call.AddFields(fields);
          // Read the outcome now: after finish the response belongs to gRPC.
          if (ok) AddOutcomeFields(response->outcome(), fields);
          fields.Add("duration_ms", ms);
          if (!ok) {
            fields.Add("code", CodeName(status.error().code));
            fields.Add("message", status.error().message);
          }
        }
        if (observer != nullptr) {
          // Read the outcome now: after finish the response belongs to gRPC.
          observer->Finished(kind, status, ok ? &response->outcome() : nullptr, elapsed);
        }
        in_flight_.fetch_sub(1);
        finish(ToGrpcStatus(status));
        // Written after the reply is on its way: formatting and a slow stderr never delay it.
        if (log) Log().Write(level, ok ? "step finished" : "step refused", fields);
      });
}

namespace {

struct RestMethod {
  using Request = v1::ExecuteRestStepRequest;
  using Response = v1::ExecuteRestStepResponse;
  static constexpr std::string_view kName = "ExecuteRestStep";
  static constexpr std::string_view kMissing = "the REST engine";
  static const std::shared_ptr<RestStepRunner>& Runner(const Backends& b) { return b.rest; }
  static void Listen(StepPluginServiceImpl& s, grpc::ServerContext* context,
                     grpc::ByteBuffer* payload,
                     grpc::ServerAsyncResponseWriter<grpc::ByteBuffer>* w,
                     grpc::CompletionQueue* call_cq, grpc::ServerCompletionQueue* cq, void* tag) {
    s.RequestExecuteRestStep(context, payload, w, call_cq, cq, tag);
  }
};

struct SoapMethod {
  using Request = v1::ExecuteSoapStepRequest;
  using Response = v1::ExecuteSoapStepResponse;
  static constexpr std::string_view kName = "ExecuteSoapStep";
  static constexpr std::string_view kMissing = "the SOAP engine";
  static const std::shared_ptr<SoapStepRunner>& Runner(const Backends& b) { return b.soap; }
  static void Listen(StepPluginServiceImpl& s, grpc::ServerContext* context,
                     grpc::ByteBuffer* payload,
                     grpc::ServerAsyncResponseWriter<grpc::ByteBuffer>* w,
                     grpc::CompletionQueue* call_cq, grpc::ServerCompletionQueue* cq, void* tag) {
    s.RequestExecuteSoapStep(context, payload, w, call_cq, cq, tag);
  }
};

// One ExecuteRestStep / ExecuteSoapStep call. Lives from the moment it listens for a call
// until both its reply was sent and the call ended. Its arrival comes on the step queue
// `cq`; the rest of its events (reply sent, call ended or cancelled) on `call_cq`, which
// a thread that never runs steps drains every few milliseconds (DrainCallEvents): a
// cancellation reaches the step even while every thread that runs steps is busy, and
// those threads wake once per call.
template <typename M>
class StepCall {
 public:
  static void Listen(StepPluginServiceImpl* service, grpc::ServerCompletionQueue* cq,
                     grpc::CompletionQueue* call_cq, CallCounts* counts) {
    auto* call = new StepCall(service, cq, call_cq, counts);
    call->context_.AsyncNotifyWhenDone(&call->ended_);
    M::Listen(*service, &call->context_, &call->payload_, &call->writer_, call_cq, cq,
              &call->arrived_);
  }

 private:
  template <void (StepCall::*kHandler)(bool)>
  using Event = MemberEvent<StepCall, kHandler>;

  StepCall(StepPluginServiceImpl* service, grpc::ServerCompletionQueue* cq,
           grpc::CompletionQueue* call_cq, CallCounts* counts)
      : service_(service), cq_(cq), call_cq_(call_cq), counts_(counts) {}

  void OnArrived(bool ok) {
    // Not ok: the server is shutting down and no call came; nothing else will.
    if (!ok) {
      delete this;
      return;
    }
    counts_->replying.fetch_add(1);
    counts_->live.fetch_add(1);
    Listen(service_, cq_, call_cq_, counts_);  // the next call of this method
    static const std::string kMethod = Method(M::kName);
    call_ = ReadCallContext(context_, kMethod);
    call_.cancelled = cancelled_;  // the flag OnEnded sets, maybe already
    grpc::Status parsed =
        grpc::SerializationTraits<typename M::Request>::Deserialize(&payload_, request_);
    if (!parsed.ok()) {
      Reply(UnparseableRequestStatus("/" + call_.method));  // gRPC's spelling of the method
      return;
    }
    // call_, request_ and response_ live until the reply is sent and the call ended.
    service_->Execute(call_, M::Runner(service_->backends()), M::kMissing, *request_, response_,
                      [this](grpc::Status status) { Reply(std::move(status)); });
  }

  // Runs once per arrived call, on the thread that completed the step (an engine worker,
  // or the dispatching thread when it ran the step itself).
  void Reply(grpc::Status status) {
    grpc::ByteBuffer out;
    if (status.ok()) {
      bool own = false;
      status = grpc::SerializationTraits<typename M::Response>::Serialize(*response_, &out, &own);
    }
    CallCounts* counts = counts_;  // `this` may be gone once Finish returns
    writer_.Finish(out, status, &replied_);
    counts->replying.fetch_sub(1);
  }

  void OnReplied(bool /*ok*/) { Release(); }

  void OnEnded(bool /*ok*/) {
    if (context_.IsCancelled()) cancelled_->store(true);
    Release();
  }

  // Both the reply and the end of the call: the last of the two frees the call.
  void Release() {
    if (pending_.fetch_sub(1) != 1) return;
    counts_->live.fetch_sub(1);
    delete this;
  }

  StepPluginServiceImpl* service_;
  grpc::ServerCompletionQueue* cq_;
  grpc::CompletionQueue* call_cq_;
  CallCounts* counts_;
  grpc::ServerContext context_;
  grpc::ByteBuffer payload_;
  grpc::ServerAsyncResponseWriter<grpc::ByteBuffer> writer_{&context_};
  CallContext call_;
  StepArena arena_;  // before the messages on it
  typename M::Request* request_ =
      google::protobuf::Arena::CreateMessage<typename M::Request>(arena_.get());
  typename M::Response* response_ =
      google::protobuf::Arena::CreateMessage<typename M::Response>(arena_.get());
  std::shared_ptr<std::atomic<bool>> cancelled_ = std::make_shared<std::atomic<bool>>(false);
  std::atomic<int> pending_{2};
  Event<&StepCall::OnArrived> arrived_{this};
  Event<&StepCall::OnReplied> replied_{this};
  Event<&StepCall::OnEnded> ended_{this};
};

// Calls listened for per method: a burst is accepted without waiting for the dispatching
// thread to listen again.
constexpr int kListeners = 16;
constexpr int kStreamListeners = 2;  // streams are long-lived: a few suffice

}  // namespace

StepPluginServiceImpl::~StepPluginServiceImpl() { StopServing(); }

void StepPluginServiceImpl::StartServing(std::unique_ptr<grpc::ServerCompletionQueue> cq) {
  cq_ = std::move(cq);
  // Without a pollset: only the step threads poll the sockets, so a request is read by
  // the thread that then runs it.
  grpc_completion_queue_attributes attributes{GRPC_CQ_CURRENT_VERSION, GRPC_CQ_NEXT,
                                              GRPC_CQ_NON_POLLING, nullptr};
  call_cq_ = std::make_unique<grpc::CompletionQueue>(grpc_completion_queue_create(
      grpc_completion_queue_factory_lookup(&attributes), &attributes, nullptr));
  for (int i = 0; i < kListeners; ++i) {
    StepCall<RestMethod>::Listen(this, cq_.get(), call_cq_.get(), &counts_);
    StepCall<SoapMethod>::Listen(this, cq_.get(), call_cq_.get(), &counts_);
  }
  for (int i = 0; i < kStreamListeners; ++i) ListenForStepStream(this, cq_.get(), &counts_);
  threads_.emplace_back([this] { DrainCallEvents(); });
  threads_.emplace_back([this] { Dispatch(); });
  threads_.emplace_back([this] { StandIn(); });
}

void StepPluginServiceImpl::DrainCallEvents() {
  // Waiting in Next would make every reply and every call end wake this thread (a futex
  // wake by the replying thread, then a thread switch: more than a warm step's transfer
  // on a small machine). While calls are open it sleeps instead and takes what came
  // every few milliseconds: a cancellation reaches the running step within that, plus
  // the engine's own poll interval.
  constexpr auto kInterval = std::chrono::milliseconds(4);
  void* tag = nullptr;
  bool ok = false;
  for (;;) {
    if (counts_.live.load() == 0) {
      if (!call_cq_->Next(&tag, &ok)) return;  // idle: the first event of a burst wakes it
      static_cast<QueueEvent*>(tag)->Handle(ok);
    } else {
      std::this_thread::sleep_for(kInterval);
    }
    for (;;) {
      const auto status = call_cq_->AsyncNext(&tag, &ok, gpr_inf_past(GPR_CLOCK_MONOTONIC));
      if (status == grpc::CompletionQueue::SHUTDOWN) return;
      if (status == grpc::CompletionQueue::TIMEOUT) break;
      static_cast<QueueEvent*>(tag)->Handle(ok);
    }
  }
}

void StepPluginServiceImpl::Dispatch() {
  std::unique_ptr<StepThreadLease> lease;
  if (backends_.lend_step_thread) {
    lease = backends_.lend_step_thread([this] {
      {
        std::lock_guard<std::mutex> lock(stand_in_mu_);
        stand_in_wanted_ = true;
      }
      stand_in_cv_.notify_one();
    });
  }
  t_dispatching.lease = lease.get();
  rest::SpinAdvisor spin(facts_.spin_wait);
  void* tag = nullptr;
  bool ok = false;
  if (!cq_->Next(&tag, &ok)) return;
  for (;;) {
    // One event of look-ahead: a step runs on this thread only when no other call is
    // waiting behind it (and the engine is idle); otherwise it goes to a worker and this
    // thread goes on taking calls.
    void* next_tag = nullptr;
    bool next_ok = false;
    const grpc::CompletionQueue::NextStatus next =
        cq_->AsyncNext(&next_tag, &next_ok, gpr_inf_past(GPR_CLOCK_MONOTONIC));
    // A write completing (the previous result of a stream) does not count.
    t_dispatching.allow_inline = next != grpc::CompletionQueue::GOT_EVENT ||
                                 !static_cast<QueueEvent*>(next_tag)->MayStartSteps();
    if (lease) lease->AllowInline(t_dispatching.allow_inline);
    static_cast<QueueEvent*>(tag)->Handle(ok);
    if (stand_in_wanted_.load(std::memory_order_relaxed)) stand_in_wanted_ = false;
    if (next == grpc::CompletionQueue::GOT_EVENT) {
      tag = next_tag;
      ok = next_ok;
      continue;
    }
    if (next == grpc::CompletionQueue::SHUTDOWN || !NextCall(spin, &tag, &ok)) return;
  }
}

bool StepPluginServiceImpl::NextCall(rest::SpinAdvisor& spin, void** tag, bool* ok) {
  // With no step running anywhere, waiting for the host's next call is all this process
  // does: look at the queue without sleeping for a moment first, while the host's calls
  // have been coming that quickly (a host running steps back to back answers a result
  // with its next call within a round trip).
  const auto start = std::chrono::steady_clock::now();
  const auto budget = in_flight_.load() == 0 ? spin.Budget() : std::chrono::microseconds(0);
  const auto until = start + budget;
  bool got = false;
  while (!got && std::chrono::steady_clock::now() < until) {
    const auto status = cq_->AsyncNext(tag, ok, gpr_inf_past(GPR_CLOCK_MONOTONIC));
    if (status == grpc::CompletionQueue::SHUTDOWN) return false;
    got = status == grpc::CompletionQueue::GOT_EVENT;
  }
  if (!got && !cq_->Next(tag, ok)) return false;
  if (budget.count() > 0) {
    spin.Observe(std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - start));
  }
  return true;
}

void StepPluginServiceImpl::StandIn() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(stand_in_mu_);
      stand_in_cv_.wait(lock, [this] { return stand_in_wanted_.load() || queue_closing_; });
      if (queue_closing_) return;
    }
    // Steps taken here always go to the engine's workers (this thread is not lent).
    while (stand_in_wanted_.load()) {
      void* tag = nullptr;
      bool ok = false;
      const auto status = cq_->AsyncNext(
          &tag, &ok, std::chrono::system_clock::now() + std::chrono::milliseconds(20));
      if (status == grpc::CompletionQueue::SHUTDOWN) return;
      if (status == grpc::CompletionQueue::GOT_EVENT) static_cast<QueueEvent*>(tag)->Handle(ok);
    }
  }
}

void StepPluginServiceImpl::StopServing() {
  if (!cq_) return;
  // The server's shutdown cancelled what was still running; each step ends within ~50 ms
  // of that and replies. No reply may be started once the queue is shut down.
  while (counts_.replying.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  {
    std::lock_guard<std::mutex> lock(stand_in_mu_);
    queue_closing_ = true;
  }
  stand_in_cv_.notify_all();
  cq_->Shutdown();
  call_cq_->Shutdown();
  for (auto& t : threads_) t.join();
  threads_.clear();
  cq_.reset();
  call_cq_.reset();
}

// The stream (step_stream.cc) runs steps through the same policy.
template void StepPluginServiceImpl::Execute(const CallContext&,
                                             const std::shared_ptr<RestStepRunner>&,
                                             std::string_view, const v1::ExecuteRestStepRequest&,
                                             v1::ExecuteRestStepResponse*,
                                             std::function<void(grpc::Status)>);
template void StepPluginServiceImpl::Execute(const CallContext&,
                                             const std::shared_ptr<SoapStepRunner>&,
                                             std::string_view, const v1::ExecuteSoapStepRequest&,
                                             v1::ExecuteSoapStepResponse*,
                                             std::function<void(grpc::Status)>);

}  // namespace wsstep::plugin

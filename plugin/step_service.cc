#include "plugin/step_service.h"

#include "plugin/log.h"
#include "plugin/schema.h"
#include "plugin/status_map.h"

#ifndef WSSTEP_VERSION
#define WSSTEP_VERSION "0.0.0"
#endif

namespace wsstep::plugin {
namespace {

constexpr std::string_view kService = "wsstep.v1.StepPluginService/";

// A unary reactor that turns a client's cancellation into the call's cancelled flag, so
// a running transfer can stop.
class CancellableReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit CancellableReactor(std::shared_ptr<std::atomic<bool>> cancelled)
      : cancelled_(std::move(cancelled)) {}
  void OnCancel() override { cancelled_->store(true); }
  void OnDone() override { delete this; }

 private:
  std::shared_ptr<std::atomic<bool>> cancelled_;
};

std::string Method(std::string_view name) { return std::string(kService) + std::string(name); }

// The facts of an outcome worth a log line: never bodies or headers.
LogFields OutcomeFields(const v1::StepOutcome& outcome) {
  LogFields f = LogFields::object();
  switch (outcome.result_case()) {
    case v1::StepOutcome::kHttp:
      f["outcome"] = "http";
      f["http_status"] = outcome.http().status();
      break;
    case v1::StepOutcome::kSoap:
      f["outcome"] = outcome.soap().has_fault() ? "soap_fault" : "soap";
      f["http_status"] = outcome.soap().http_status();
      break;
    case v1::StepOutcome::kError:
      f["outcome"] = "error";
      f["code"] = outcome.error().code();
      f["message"] = outcome.error().message();
      break;
    default:
      f["outcome"] = "none";
  }
  if (outcome.tls().has_client_certificate()) {
    f["client_certificate"] = outcome.tls().client_certificate().name();
  }
  if (outcome.warnings_size() > 0) f["warnings"] = outcome.warnings_size();
  return f;
}

LogFields Merge(LogFields a, const LogFields& b) {
  for (const auto& [k, v] : b.items()) a[k] = v;
  return a;
}

}  // namespace

std::string_view PluginVersion() { return WSSTEP_VERSION; }

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
  return info;
}

StepPluginServiceImpl::StepPluginServiceImpl(Backends backends, PluginFacts facts)
    : backends_(std::move(backends)), facts_(std::move(facts)) {
  info_ = BuildPluginInfo(backends_, facts_);
}

grpc::ServerUnaryReactor* StepPluginServiceImpl::GetPluginInfo(
    grpc::CallbackServerContext* context, const v1::GetPluginInfoRequest* /*request*/,
    v1::GetPluginInfoResponse* response) {
  *response = info_;
  auto* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* StepPluginServiceImpl::ValidateStep(
    grpc::CallbackServerContext* context, const v1::ValidateStepRequest* request,
    v1::ValidateStepResponse* response) {
  auto* reactor = context->DefaultReactor();
  const CallContext call = ReadCallContext(*context, Method("ValidateStep"));
  Status status;
  switch (request->step_case()) {
    case v1::ValidateStepRequest::kRest:
      if (!backends_.rest) {
        reactor->Finish(NotAvailable("ValidateStep (REST)", "the REST engine"));
        return reactor;
      }
      // Validation is CPU only (parsing, policy, an in-memory resolution): no offload.
      status = backends_.rest->Validate(call, request->rest(), request->environment(), response);
      break;
    case v1::ValidateStepRequest::kSoap:
      if (!backends_.soap) {
        reactor->Finish(NotAvailable("ValidateStep (SOAP)", "the SOAP engine"));
        return reactor;
      }
      status = backends_.soap->Validate(call, request->soap(), request->environment(), response);
      break;
    default:
      reactor->Finish(InvalidArgument("ValidateStepRequest: set `rest` or `soap`",
                                      {{"step", "exactly one of rest or soap is required"}}));
      return reactor;
  }
  if (status.ok()) {
    bool valid = true;
    for (const auto& d : response->diagnostics()) {
      valid = valid && d.severity() != v1::SEVERITY_ERROR;
    }
    response->set_valid(valid);
  }
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

bool StepPluginServiceImpl::TryAcquire() {
  int current = in_flight_.load();
  while (current < facts_.limits.max_in_flight_steps) {
    if (in_flight_.compare_exchange_weak(current, current + 1)) return true;
  }
  return false;
}

template <typename Runner, typename Request, typename Response>
grpc::ServerUnaryReactor* StepPluginServiceImpl::Execute(
    grpc::CallbackServerContext* context, std::string_view method,
    const std::shared_ptr<Runner>& runner, std::string_view missing_part,
    const Request* request, Response* response) {
  CallContext call = ReadCallContext(*context, Method(method));
  auto* reactor = new CancellableReactor(call.cancelled);
  if (stopping_) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                 "the plugin is shutting down; the step was not started"));
    return reactor;
  }
  if (!runner) {
    reactor->Finish(NotAvailable(method, missing_part));
    return reactor;
  }
  if (!request->has_step()) {
    reactor->Finish(InvalidArgument(std::string(method) + ": `step` is required",
                                    {{"step", "required"}}));
    return reactor;
  }
  if (call.HasDeadline() && call.TimeLeft().count() == 0) {
    reactor->Finish(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                 "the deadline passed before the step could start"));
    return reactor;
  }
  if (!TryAcquire()) {
    reactor->Finish(grpc::Status(
        grpc::StatusCode::UNAVAILABLE,
        "the plugin is running its maximum of " +
            std::to_string(facts_.limits.max_in_flight_steps) +
            " steps (max_in_flight_steps); the step was not started, retry later"));
    return reactor;
  }
  if (Log().Enabled(LogLevel::kDebug)) Log().Debug("step started", call.Fields());
  runner->Execute(call, *request, response, [this, reactor, response, call](Status status) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - call.started)
                        .count();
    const bool ok = status.ok();
    const LogLevel level = ok ? LogLevel::kInfo : LogLevel::kWarn;
    const bool log = Log().Enabled(level);
    LogFields fields;  // built only when the line is written
    if (ok) response->mutable_outcome()->set_step_id(call.step_id);
    if (log) {
      fields = call.Fields();
      // Read the outcome now: after Finish the response belongs to gRPC.
      if (ok) fields = Merge(std::move(fields), OutcomeFields(response->outcome()));
      fields["duration_ms"] = ms;
      if (!ok) {
        fields["code"] = CodeName(status.error().code);
        fields["message"] = status.error().message;
      }
    }
    in_flight_.fetch_sub(1);
    reactor->Finish(ToGrpcStatus(status));
    // Written after the reply is on its way: formatting and a slow stderr never delay it.
    if (log) Log().Write(level, ok ? "step finished" : "step refused", fields);
  });
  return reactor;
}

grpc::ServerUnaryReactor* StepPluginServiceImpl::ExecuteRestStep(
    grpc::CallbackServerContext* context, const v1::ExecuteRestStepRequest* request,
    v1::ExecuteRestStepResponse* response) {
  return Execute(context, "ExecuteRestStep", backends_.rest, "the REST engine", request,
                 response);
}

grpc::ServerUnaryReactor* StepPluginServiceImpl::ExecuteSoapStep(
    grpc::CallbackServerContext* context, const v1::ExecuteSoapStepRequest* request,
    v1::ExecuteSoapStepResponse* response) {
  return Execute(context, "ExecuteSoapStep", backends_.soap, "the SOAP engine", request,
                 response);
}

}  // namespace wsstep::plugin

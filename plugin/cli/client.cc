#include "plugin/cli/client.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <pwd.h>
#include <unistd.h>

#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "plugin/server/call_context.h"
#include "plugin/server/status_map.h"

namespace wsstep::plugin {
namespace {

std::string StatusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "CODE_" + std::to_string(static_cast<int>(code));
  }
}

// Request fields of uploads, and the flags of `cert import` / `cert update` that set them.
const std::map<std::string, std::string> kUploadFlags = {
    {"material.password", "--password-env VAR, --password-file FILE or --password-stdin"},
    {"material.key_password", "--key-password-env VAR or --key-password-file FILE"},
    {"material.private_key", "--key-file FILE"},
};

std::string DefaultActor() {
  const passwd* pw = ::getpwuid(::geteuid());
  return std::string("wsstep-cli:") + (pw != nullptr ? pw->pw_name : std::to_string(::geteuid()));
}

}  // namespace

std::string ResolveTarget(const std::string& plugin, const std::string& address,
                          const std::string& fallback) {
  std::string t = !plugin.empty() ? plugin : !address.empty() ? address : fallback;
  if (t.starts_with("/")) return "unix://" + t;
  if (t.starts_with("unix:") && !t.starts_with("unix://")) return "unix://" + t.substr(5);
  if (t.starts_with("tcp://")) return t.substr(6);
  return t;
}

Result<std::shared_ptr<grpc::Channel>> ConnectToPlugin(const ClientOptions& options) {
  auto channel = grpc::CreateChannel(options.target, grpc::InsecureChannelCredentials());
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + options.connect_timeout)) {
    return Error(Code::kFailedPrecondition, "cannot reach the plugin at " + options.target,
                 "start it with `wsstep serve`, or pass --plugin unix:///path/to.sock or "
                 "--address HOST:PORT",
                 Side::kNetwork);
  }
  return channel;
}

void PrepareContext(const ClientOptions& options, grpc::ClientContext* context) {
  context->set_deadline(std::chrono::system_clock::now() + options.timeout);
  context->AddMetadata(std::string(kActorMetadata),
                       options.actor.empty() ? DefaultActor() : options.actor);
  if (!options.step_id.empty()) {
    context->AddMetadata(std::string(kStepIdMetadata), options.step_id);
  }
  if (!options.workflow_id.empty()) {
    context->AddMetadata(std::string(kWorkflowIdMetadata), options.workflow_id);
  }
}

int ReportFailure(bool json, const CliFailure& failure, int exit_code,
                  const google::protobuf::Message* result) {
  const Error& e = failure.error;
  // detail "code" carries a code the catalog does not know (a gRPC status name).
  const auto named = e.detail.find("code");
  const std::string code =
      named != e.detail.end() ? named->second : std::string(CodeName(e.code));
  if (json) {
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    if (result != nullptr) {
      auto parsed = nlohmann::ordered_json::parse(ToJson(*result), nullptr, false);
      if (parsed.is_object()) j = std::move(parsed);
    }
    nlohmann::ordered_json err;
    err["code"] = code;
    err["message"] = e.message;
    err["hint"] = e.hint;
    err["side"] = std::string(SideName(e.side));
    err["detail"] = nlohmann::ordered_json::object();
    for (const auto& [k, v] : e.detail) {
      if (k != "code") err["detail"][k] = v;
    }
    if (!failure.status.empty()) {
      err["status"] = failure.status;
      err["method"] = failure.method;
      err["fieldViolations"] = nlohmann::ordered_json::array();
      for (const auto& [field, why] : failure.violations) {
        err["fieldViolations"].push_back({{"field", field}, {"description", why}});
      }
    }
    j["error"] = std::move(err);
    std::cout << j.dump(2) << std::endl;
    return exit_code;
  }
  std::cerr << "wsstep: " << code << ": " << e.message << "\n";
  if (!e.hint.empty()) std::cerr << "  hint: " << e.hint << "\n";
  if (e.side != Side::kNone) std::cerr << "  side: " << SideName(e.side) << "\n";
  for (const auto& [k, v] : e.detail) {
    if (k != "code" && k != "field") std::cerr << "  " << k << ": " << v << "\n";
  }
  for (const auto& [field, why] : failure.violations) {
    std::cerr << "  field " << field << ": " << why << "\n";
  }
  if (!failure.method.empty()) {
    std::cerr << "  call: " << failure.method << " (" << failure.status << ")\n";
  }
  return exit_code;
}

int ReportRpcError(const ClientOptions& options, std::string_view method,
                   const grpc::Status& status) {
  const StatusDetails details = DecodeStatusDetails(status);
  const bool unreachable = details.reason.empty() &&
                           (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                            status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
  CliFailure f;
  f.status = StatusCodeName(status.error_code());
  f.method = std::string(method);
  f.error.message = status.error_message();
  // The catalog code from ErrorInfo; without one, the status name stands in for it.
  const std::string reason = details.reason.empty() ? f.status : details.reason;
  f.error.code = CodeFromName(reason);
  if (CodeName(f.error.code) != reason) f.error.With("code", reason);
  for (const auto& [k, v] : details.metadata) {
    if (k == "hint") {
      f.error.hint = v;
    } else if (k == "side") {
      for (Side side : {Side::kConfiguration, Side::kClient, Side::kServer, Side::kNetwork,
                        Side::kStore, Side::kPlugin, Side::kProxy}) {
        if (SideName(side) == v) f.error.side = side;
      }
    } else {
      f.error.With(k, v);
    }
  }
  if (unreachable && f.error.side == Side::kNone) f.error.side = Side::kNetwork;
  // The wire message carries the hint in brackets for clients that show only it; here
  // the hint has its own line.
  const std::string bracketed = " (" + f.error.hint + ")";
  if (!f.error.hint.empty() && f.error.message.ends_with(bracketed)) {
    f.error.message.resize(f.error.message.size() - bracketed.size());
  }
  for (const auto& v : details.violations) {
    f.violations.emplace_back(v.field, v.description);
    // The API's field, in the words of the command line that fills it.
    const auto flag = kUploadFlags.find(v.field);
    if (flag != kUploadFlags.end()) {
      f.error.hint += std::string(f.error.hint.empty() ? "" : " ") + "On the command line: " +
                      flag->second + ".";
    }
  }
  return ReportFailure(options.json, f, unreachable ? kExitUnreachable : kExitRefused);
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options).ok()) return "{}";
  return out;
}

}  // namespace wsstep::plugin

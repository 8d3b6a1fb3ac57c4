#include "plugin/cli/client.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <pwd.h>
#include <unistd.h>

#include <iostream>
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

int ReportRpcError(const ClientOptions& options, std::string_view method,
                   const grpc::Status& status) {
  const StatusDetails details = DecodeStatusDetails(status);
  const bool unreachable = details.reason.empty() &&
                           (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                            status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
  if (options.json) {
    nlohmann::ordered_json j;
    j["error"]["method"] = method;
    j["error"]["status"] = StatusCodeName(status.error_code());
    j["error"]["message"] = status.error_message();
    if (!details.reason.empty()) j["error"]["reason"] = details.reason;
    if (!details.metadata.empty()) j["error"]["metadata"] = details.metadata;
    for (const auto& v : details.violations) {
      j["error"]["field_violations"].push_back({{"field", v.field}, {"description", v.description}});
    }
    std::cout << j.dump(2) << std::endl;
  } else {
    std::cerr << "wsstep: " << method << ": " << StatusCodeName(status.error_code());
    if (!details.reason.empty()) std::cerr << " (" << details.reason << ")";
    std::cerr << ": " << status.error_message() << "\n";
    for (const auto& v : details.violations) {
      std::cerr << "  field " << v.field << ": " << v.description << "\n";
    }
  }
  return unreachable ? kExitUnreachable : kExitRefused;
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options).ok()) return "{}";
  return out;
}

}  // namespace wsstep::plugin

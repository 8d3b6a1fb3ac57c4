#include "plugin/server/call_context.h"

#include <grpcpp/server_context.h>
#include <grpcpp/support/time.h>

namespace wsstep::plugin {
std::string SanitizeClientValue(std::string_view value) {
  std::string out;
  out.reserve(std::min<size_t>(value.size(), 256));
  for (char c : value) {
    if (out.size() >= 256) break;
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) continue;
    out.push_back(c);
  }
  return out;
}

namespace {

std::string MetadataValue(const grpc::ServerContextBase& context, std::string_view key) {
  const auto& md = context.client_metadata();
  auto it = md.find(grpc::string_ref(key.data(), key.size()));
  if (it == md.end()) return "";
  return SanitizeClientValue(std::string_view(it->second.data(), it->second.size()));
}

}  // namespace

std::chrono::milliseconds CallContext::TimeLeft() const {
  if (!HasDeadline()) return std::chrono::hours(24 * 365);
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::system_clock::now());
  return left.count() > 0 ? left : std::chrono::milliseconds(0);
}

std::chrono::steady_clock::time_point CallContext::SteadyDeadline() const {
  return std::chrono::steady_clock::now() + TimeLeft();
}

LogFields CallContext::Fields() const {
  LogFields f = LogFields::object();
  f["method"] = method;
  if (!step_id.empty()) f["step_id"] = step_id;
  if (!workflow_id.empty()) f["workflow_id"] = workflow_id;
  if (!actor.empty()) f["actor"] = actor;
  return f;
}

void CallContext::AddFields(LineFields& f) const {
  f.Add("method", method);
  if (!step_id.empty()) f.Add("step_id", step_id);
  if (!workflow_id.empty()) f.Add("workflow_id", workflow_id);
  if (!actor.empty()) f.Add("actor", actor);
}

CallContext ReadCallContext(const grpc::ServerContextBase& context, std::string_view method) {
  CallContext c;
  c.method = std::string(method);
  c.actor = MetadataValue(context, kActorMetadata);
  c.step_id = MetadataValue(context, kStepIdMetadata);
  c.workflow_id = MetadataValue(context, kWorkflowIdMetadata);
  c.peer = context.peer();
  const auto deadline = context.deadline();
  // gRPC reports "no deadline" as a time far in the future.
  if (deadline < std::chrono::system_clock::now() + std::chrono::hours(24 * 365 * 10)) {
    c.deadline = deadline;
  }
  return c;
}

}  // namespace wsstep::plugin

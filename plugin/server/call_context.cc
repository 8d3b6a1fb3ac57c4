#include "plugin/server/call_context.h"

#include <grpcpp/server_context.h>
#include <grpcpp/support/time.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>

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

// The value of metadata `key` as the client sent it; "" when absent.
std::string_view RawMetadata(const grpc::ServerContextBase& context, std::string_view key) {
  const auto& md = context.client_metadata();
  auto it = md.find(grpc::string_ref(key.data(), key.size()));
  if (it == md.end()) return {};
  return std::string_view(it->second.data(), it->second.size());
}

std::string MetadataValue(const grpc::ServerContextBase& context, std::string_view key) {
  return SanitizeClientValue(RawMetadata(context, key));
}

// tracestate is passed on whole or not at all: cutting it could split a vendor's entry.
// At most 512 characters (W3C's limit for what a vendor must propagate), printable ASCII.
std::string TracestateValue(const grpc::ServerContextBase& context) {
  const std::string_view v = RawMetadata(context, kTracestateMetadata);
  if (v.size() > 512) return "";
  const bool printable =
      std::all_of(v.begin(), v.end(), [](char ch) { return ch >= 0x20 && ch < 0x7f; });
  return printable ? std::string(v) : "";
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

std::chrono::steady_clock::time_point CallContext::StepDeadline() const {
  const auto left = TimeLeft();
  const auto margin = std::clamp(left / 10, kMinReplyMargin, kMaxReplyMargin);
  return std::chrono::steady_clock::now() + (left > margin ? left - margin : left / 2);
}

LogFields CallContext::Fields() const {
  LogFields f = LogFields::object();
  f["method"] = method;
  if (!step_id.empty()) f["step_id"] = step_id;
  if (!workflow_id.empty()) f["workflow_id"] = workflow_id;
  if (!actor.empty()) f["actor"] = actor;
  if (trace.valid()) {
    f["trace_id"] = trace.trace_id.str();
    f["span_id"] = trace.span_id.str();
    f["parent_span_id"] = trace.parent_span_id.str();
  }
  return f;
}

void CallContext::AddFields(LineFields& f) const {
  f.Add("method", method);
  if (!step_id.empty()) f.Add("step_id", step_id);
  if (!workflow_id.empty()) f.Add("workflow_id", workflow_id);
  if (!actor.empty()) f.Add("actor", actor);
  if (trace.valid()) {
    f.Add("trace_id", trace.trace_id.view());
    f.Add("span_id", trace.span_id.view());
    f.Add("parent_span_id", trace.parent_span_id.view());
  }
}

namespace {

bool IsLowerHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char ch) { return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'); });
}

bool AllZeros(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char ch) { return ch == '0'; });
}

}  // namespace

TraceContext ParseTraceparent(std::string_view tp, std::string_view tracestate) {
  // version "-" trace-id "-" parent-id "-" trace-flags: 2+1+32+1+16+1+2 = 55 characters;
  // a later version may append "-..." fields, which are ignored.
  TraceContext t;
  if (tp.size() < 55 || (tp.size() > 55 && tp[55] != '-')) return t;
  if (tp[2] != '-' || tp[35] != '-' || tp[52] != '-') return t;
  const std::string_view version = tp.substr(0, 2), trace_id = tp.substr(3, 32),
                         parent = tp.substr(36, 16), flags = tp.substr(53, 2);
  if (!IsLowerHex(version) || version == "ff" || (version == "00" && tp.size() != 55)) return t;
  if (!IsLowerHex(trace_id) || !IsLowerHex(parent) || !IsLowerHex(flags)) return t;
  if (AllZeros(trace_id) || AllZeros(parent)) return t;
  t.trace_id = HexId<32>(trace_id);
  t.parent_span_id = HexId<16>(parent);
  t.flags = HexId<2>(flags);
  t.state = std::string(tracestate);
  return t;
}

HexId<16> NewSpanId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t id = 0;
  while (id == 0) id = rng();
  static constexpr char kHex[] = "0123456789abcdef";
  char digits[16];
  for (int i = 15; i >= 0; --i, id >>= 4) digits[i] = kHex[id & 0xf];
  return HexId<16>(std::string_view(digits, sizeof digits));
}

std::string TraceContext::ChildTraceparent() const {
  std::string tp;
  tp.reserve(55);
  tp.append("00-").append(trace_id.view()).append("-").append(span_id.view());
  tp.append("-").append(flags.view());
  return tp;
}

CallContext ReadCallContext(const grpc::ServerContextBase& context, std::string_view method) {
  CallContext c;
  c.method = std::string(method);
  c.actor = MetadataValue(context, kActorMetadata);
  c.step_id = MetadataValue(context, kStepIdMetadata);
  c.workflow_id = MetadataValue(context, kWorkflowIdMetadata);
  c.trace =
      ParseTraceparent(MetadataValue(context, kTraceparentMetadata), TracestateValue(context));
  if (c.trace.valid()) c.trace.span_id = NewSpanId();
  const auto deadline = context.deadline();
  // gRPC reports "no deadline" as a time far in the future.
  if (deadline < std::chrono::system_clock::now() + std::chrono::hours(24 * 365 * 10)) {
    c.deadline = deadline;
  }
  return c;
}

}  // namespace wsstep::plugin

// What the plugin knows about one incoming call: who asked (request metadata), until
// when (the gRPC deadline), and whether the caller has given up (cancellation). Passed to
// every backend so deadlines flow into transfers and ids into logs and the audit trail.
//
//   CallContext call = ReadCallContext(*server_context, "wsstep.v1.StepPluginService/ExecuteRestStep");
//   Log().Info("step started", call.Fields());
//   if (call.Cancelled()) ...;      // set by the service when the client cancels
#ifndef WSSTEP_PLUGIN_SERVER_CALL_CONTEXT_H_
#define WSSTEP_PLUGIN_SERVER_CALL_CONTEXT_H_

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>

#include "plugin/process/log.h"
#include "rest/body_stream.h"

namespace grpc {
class ServerContextBase;
}

namespace wsstep::plugin {

// Request metadata keys a host may send with any call.
inline constexpr std::string_view kActorMetadata = "x-wsstep-actor";
inline constexpr std::string_view kStepIdMetadata = "x-wsstep-step-id";
inline constexpr std::string_view kWorkflowIdMetadata = "x-wsstep-workflow-id";
// W3C Trace Context (https://www.w3.org/TR/trace-context/), as OpenTelemetry's gRPC
// instrumentation sends it.
inline constexpr std::string_view kTraceparentMetadata = "traceparent";
inline constexpr std::string_view kTracestateMetadata = "tracestate";

// The host's trace, and this call's own span in it.
// A W3C id of N hex digits, held inline: a call context is copied along a step's path,
// and three heap strings per copy showed in the per-step profile. Empty until set.
template <size_t N>
class HexId {
 public:
  HexId() = default;
  // `hex` must be N characters (the parser and NewSpanId check that).
  explicit HexId(std::string_view hex) : set_(hex.size() == N) {
    if (set_) std::copy(hex.begin(), hex.end(), digits_.begin());
  }
  bool empty() const { return !set_; }
  std::string_view view() const {
    return set_ ? std::string_view(digits_.data(), N) : std::string_view();
  }
  std::string str() const { return std::string(view()); }
  friend bool operator==(const HexId& id, std::string_view other) { return id.view() == other; }
  friend std::ostream& operator<<(std::ostream& out, const HexId& id) { return out << id.view(); }

 private:
  std::array<char, N> digits_{};
  bool set_ = false;
};

struct TraceContext {
  HexId<32> trace_id;        // lowercase hex; empty when the host sent none
  HexId<16> parent_span_id;  // the host's span
  HexId<16> span_id;         // ours, new for every call
  HexId<2> flags;            // "01": sampled
  std::string state;         // tracestate, passed on as received

  bool valid() const { return !trace_id.empty(); }
  // "00-<trace_id>-<span_id>-<flags>": the traceparent of a request this call sends.
  std::string ChildTraceparent() const;
};

// Parses a traceparent header value; an invalid one (wrong length, not hex, all-zero ids,
// version ff) is no trace at all, as the specification asks. `span_id` is left empty.
TraceContext ParseTraceparent(std::string_view traceparent, std::string_view tracestate);
// A fresh span id: 16 hex digits, never all zeros.
HexId<16> NewSpanId();

struct CallContext {
  std::string method;       // "wsstep.v1.StepPluginService/ExecuteRestStep"
  std::string actor;        // x-wsstep-actor, "" if absent
  std::string step_id;      // x-wsstep-step-id
  std::string workflow_id;  // x-wsstep-workflow-id
  // The call's deadline; time_point::max() when the client set none.
  std::chrono::system_clock::time_point deadline = std::chrono::system_clock::time_point::max();
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  // Set to true when the client cancels or the server shuts the call down.
  std::shared_ptr<std::atomic<bool>> cancelled = std::make_shared<std::atomic<bool>>(false);
  TraceContext trace;  // from traceparent / tracestate metadata
  // A REST call on ExecuteSteps that moves its body in chunks (StepCall
  // response_body_chunks, request_body_chunks): where the 2xx response body goes, where
  // the request body comes from. Null: whole, in the messages.
  std::shared_ptr<rest::ResponseBodySink> response_body;
  std::shared_ptr<rest::RequestBodySource> request_body;

  bool Cancelled() const { return cancelled->load(); }
  bool HasDeadline() const { return deadline != std::chrono::system_clock::time_point::max(); }
  // Time left before the deadline (zero when passed; a very long time when none).
  std::chrono::milliseconds TimeLeft() const;
  // The deadline on the steady clock, for engines that take one.
  std::chrono::steady_clock::time_point SteadyDeadline() const;
  // The deadline a step's own work must meet so that its answer (a TIMEOUT naming the
  // phase it was in) reaches the host before the call's deadline turns it into a bare
  // DEADLINE_EXCEEDED: SteadyDeadline less a tenth of the time left, at least
  // kReplyMargin's floor and at most its ceiling.
  std::chrono::steady_clock::time_point StepDeadline() const;
  static constexpr std::chrono::milliseconds kMinReplyMargin{20};
  static constexpr std::chrono::milliseconds kMaxReplyMargin{250};
  // The audit actor: x-wsstep-actor, else "host".
  std::string ActorOrDefault() const { return actor.empty() ? "host" : actor; }
  // {"method", "step_id", "workflow_id", "actor", "trace_id", "span_id",
  // "parent_span_id"} (empty ones left out) for log lines.
  LogFields Fields() const;
  // The same fields, for a line built with LineFields (the per-step lines).
  void AddFields(LineFields& f) const;
};

// A value from a client (metadata, or a call's own step id) as logs and the audit log may
// hold it: cut to 256 bytes, control characters dropped.
std::string SanitizeClientValue(std::string_view value);

// Reads metadata and deadline. Metadata values are cut to 256 bytes and control
// characters dropped: they end up in logs and the audit log.
CallContext ReadCallContext(const grpc::ServerContextBase& context, std::string_view method);

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_SERVER_CALL_CONTEXT_H_

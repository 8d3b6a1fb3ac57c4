// Client-side helpers of the `wsstep` command line: reaching a running plugin, calling
// it with the caller's identity in metadata, and turning results into exit codes and
// output (human text on stderr/stdout, or JSON with --json).
//
// Exit codes of every client command:
//   0  success (for `call`: the step produced an HTTP/SOAP result)
//   1  the step or connection test failed (a StepError, a SOAP fault with --fail, an HTTP
//      status >= 400 with --fail, a failed handshake diagnosis, a resolution error)
//   2  usage error (bad flags, unreadable or empty input files, a confirmation missing)
//   3  cannot reach the plugin (not running, wrong address, timeout)
//   4  the plugin refused the request (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS,
//      FAILED_PRECONDITION, UNIMPLEMENTED, ...)
//
// Every failure is printed in one shape (ReportFailure): in text, on stderr,
//   wsstep: CODE: message
//     hint: what to do
//     side: CONFIGURATION | CLIENT | SERVER | NETWORK | STORE
//     <detail>: <value>          (sorted by name)
//     field <path>: <why>        (contract errors naming request fields)
//     call: Method (gRPC STATUS) (contract errors)
// and with --json, on stdout, one object whose "error" member holds
//   {"code", "message", "hint", "side", "detail", "status", "method", "fieldViolations"}
// (the last three only for contract errors); a failed step's object also holds the
// step's response, as on success. `code` is the catalog code (docs/troubleshooting.md),
// or the gRPC status name when the plugin gave none.
#ifndef WSSTEP_PLUGIN_CLI_CLIENT_H_
#define WSSTEP_PLUGIN_CLI_CLIENT_H_

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace google::protobuf {
class Message;
}
namespace grpc {
class Channel;
class ClientContext;
class Status;
}  // namespace grpc

namespace wsstep::plugin {

enum ExitCode : int {
  kExitOk = 0,
  kExitStepFailed = 1,
  kExitUsage = 2,
  kExitUnreachable = 3,
  kExitRefused = 4,
};

struct ClientOptions {
  std::string target;  // gRPC target: "unix:///path" or "host:port"
  std::chrono::milliseconds timeout{30000};        // per call
  std::chrono::milliseconds connect_timeout{3000};
  std::string actor;        // x-wsstep-actor; "" = "wsstep-cli:<user>"
  std::string step_id;      // x-wsstep-step-id
  std::string workflow_id;  // x-wsstep-workflow-id
  bool json = false;        // print JSON on stdout (results and errors)
  int64_t max_message_bytes = 16 << 20;  // the plugin's limit (config limits.max_message_bytes)
};

// Turns --plugin / --address into a gRPC target. `plugin` accepts "unix:///path",
// "unix:/path", "/path" or "host:port"; `address` is "host:port". Both empty: `fallback`.
std::string ResolveTarget(const std::string& plugin, const std::string& address,
                          const std::string& fallback);

// Creates a channel and waits until it is connected. FAILED_PRECONDITION with a message
// naming the target when it cannot connect within connect_timeout.
Result<std::shared_ptr<grpc::Channel>> ConnectToPlugin(const ClientOptions& options);

// Sets deadline and identity metadata on a client context.
void PrepareContext(const ClientOptions& options, grpc::ClientContext* context);

// A failure of a command, whatever its source: a usage error, the plugin out of reach, a
// refused call, a failed step.
struct CliFailure {
  Error error;          // code, message, hint, side, detail
  std::string status;   // gRPC status name of a refused call; "" otherwise
  std::string method;   // the RPC of a refused call
  std::vector<std::pair<std::string, std::string>> violations;  // field, description
};

// Prints `failure` in the shape above and returns `exit_code`. With `result` (a failed
// step's response) the JSON object holds the response's fields beside "error".
int ReportFailure(bool json, const CliFailure& failure, int exit_code,
                  const google::protobuf::Message* result = nullptr);

// Prints a failed call and returns the exit code: kExitUnreachable for UNAVAILABLE /
// DEADLINE_EXCEEDED without details, else kExitRefused.
int ReportRpcError(const ClientOptions& options, std::string_view method,
                   const grpc::Status& status);

// The message as indented proto3 JSON (lowerCamelCase names).
std::string ToJson(const google::protobuf::Message& message);

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_CLI_CLIENT_H_

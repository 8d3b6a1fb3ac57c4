// The HashiCorp go-plugin handshake, as wsstep speaks it (plugin side) and as hosts and
// tests speak it (host side).
//
// A host starts the plugin with the magic cookie in its environment:
//   WSSTEP_PLUGIN=<kMagicCookieValue>
//   PLUGIN_PROTOCOL_VERSIONS=1          (app protocol versions the host speaks)
//   PLUGIN_CLIENT_CERT=<PEM>            (optional: AutoMTLS, the host's certificate)
//   PLUGIN_UNIX_SOCKET_DIR=<dir>        (optional: where to create the socket)
//   PLUGIN_MIN_PORT / PLUGIN_MAX_PORT   (optional: port range when TCP is used)
//   WSSTEP_PLUGIN_NETWORK=tcp           (optional, wsstep's own: TCP instead of unix)
//   WSSTEP_PLUGIN_WATCH_STDIN=true      (optional, wsstep's own: also stop when stdin
//                                        reaches end-of-file; for a host that gives the
//                                        plugin a pipe of its own. Off by default: go-plugin
//                                        passes its own stdin, and the plugin stops when
//                                        its parent dies instead)
// The plugin binds an address and prints exactly one line on stdout, then nothing else:
//   1|1|unix|/tmp/wsstep-Ab12Cd/plugin.sock|grpc
//   1|1|tcp|127.0.0.1:41234|grpc|<base64 server certificate>       (with AutoMTLS)
// core protocol | app protocol | network | address | protocol [| server certificate].
// The certificate is the DER of the plugin's self-signed server certificate in standard
// base64 without padding, as go-plugin writes it (base64.RawStdEncoding).
#ifndef WSSTEP_PLUGIN_PROCESS_HANDSHAKE_H_
#define WSSTEP_PLUGIN_PROCESS_HANDSHAKE_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "plugin/process/config.h"

namespace wsstep::plugin {

inline constexpr int kCoreProtocolVersion = 1;  // go-plugin's own protocol
inline constexpr int kAppProtocolVersion = 1;   // wsstep.v1 over gRPC
// Not a secret: it only tells a binary that it was launched by a host, so that a person
// who runs it by hand gets a helpful message instead of a silent server.
inline constexpr std::string_view kMagicCookieKey = "WSSTEP_PLUGIN";
inline constexpr std::string_view kMagicCookieValue = "e1f4b2c7-wsstep-step-plugin-v1";
// The health service name go-plugin's Ping() checks.
inline constexpr std::string_view kGoPluginHealthService = "plugin";

enum class CookieState { kAbsent, kMatches, kWrong };

// What the host put in the environment.
struct HandshakeEnv {
  CookieState cookie = CookieState::kAbsent;
  std::vector<int> protocol_versions;  // PLUGIN_PROTOCOL_VERSIONS, unparseable items dropped
  std::string client_cert_pem;         // PLUGIN_CLIENT_CERT
  std::string unix_socket_dir;         // PLUGIN_UNIX_SOCKET_DIR
  std::optional<int> min_port;         // PLUGIN_MIN_PORT
  std::optional<int> max_port;         // PLUGIN_MAX_PORT
  bool use_tcp = false;                // WSSTEP_PLUGIN_NETWORK=tcp
  bool watch_stdin = false;            // WSSTEP_PLUGIN_WATCH_STDIN (true/1/yes/on)
};
HandshakeEnv ReadHandshakeEnv(const EnvLookup& env);

// The app protocol version to announce: ours if the host lists it (or lists nothing, as
// old hosts do). Like go-plugin, an incompatible host still gets our version and reports
// the mismatch itself; `compatible` says which case it is.
int NegotiateAppProtocol(const std::vector<int>& host_versions, bool* compatible);

struct HandshakeLine {
  int core_version = kCoreProtocolVersion;
  int app_version = kAppProtocolVersion;
  std::string network;  // "unix" or "tcp"
  std::string address;  // socket path or "127.0.0.1:port"
  std::string protocol = "grpc";
  std::string server_cert_der;  // empty without AutoMTLS
};

// The line without its newline: five fields, or six when server_cert_der is set.
std::string FormatHandshakeLine(const HandshakeLine& line);
// Host side: parses a line (surrounding whitespace ignored). INVALID_ARGUMENT saying which
// field is wrong, e.g. for a plugin that printed a log line to stdout by mistake.
Result<HandshakeLine> ParseHandshakeLine(std::string_view text);

// Standard-alphabet base64 without padding (Go's base64.RawStdEncoding), and its decoder
// (which also accepts padding).
std::string Base64RawStdEncode(std::string_view bytes);
std::optional<std::string> Base64RawStdDecode(std::string_view text);

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_PROCESS_HANDSHAKE_H_

// Listen addresses of the plugin server and the private places its unix sockets live in.
//
//   Result<ListenAddress> a = ParseListenAddress("unix:///run/wsstep/wsstep.sock");
//   Result<ListenAddress> b = ParseListenAddress("127.0.0.1:7443");   // tcp
//   b->GrpcUri()  // "127.0.0.1:7443"; a->GrpcUri() == "unix:///run/wsstep/wsstep.sock"
//
// Unix sockets are the default: the file is created 0600 (the process runs with umask
// 077) inside a directory only the plugin's user can enter, so only that user can call
// the plugin. TCP listens on loopback only unless allow_remote is set: without AutoMTLS
// the API is unauthenticated, and anyone who can reach it can manage certificates.
#ifndef WSSTEP_PLUGIN_PROCESS_LISTEN_H_
#define WSSTEP_PLUGIN_PROCESS_LISTEN_H_

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace wsstep::plugin {

struct ListenAddress {
  enum class Kind { kUnix, kTcp };
  Kind kind = Kind::kUnix;
  std::string path;  // kUnix: absolute socket path
  std::string host;  // kTcp: "127.0.0.1", "::1", "localhost", ...
  int port = 0;      // kTcp: 0 = pick a free port

  static ListenAddress Unix(std::string socket_path) {
    ListenAddress a;
    a.kind = Kind::kUnix;
    a.path = std::move(socket_path);
    return a;
  }
  static ListenAddress Tcp(std::string tcp_host, int tcp_port) {
    ListenAddress a;
    a.kind = Kind::kTcp;
    a.host = std::move(tcp_host);
    a.port = tcp_port;
    return a;
  }

  // The address in gRPC's URI syntax: "unix:///abs/path" or "host:port" ("[::1]:port").
  std::string GrpcUri() const;
  // What a person reads: "unix:///abs/path" or "tcp://host:port".
  std::string Display() const;
  bool operator==(const ListenAddress&) const = default;
};

// Accepts "unix:///abs/path", "unix:/abs/path", "unix:relative" (made absolute against
// the working directory), "/abs/path", "tcp://host:port", "host:port", "[v6]:port".
// INVALID_ARGUMENT naming the address otherwise.
Result<ListenAddress> ParseListenAddress(std::string_view text);

// 127.0.0.0/8, ::1, "localhost".
bool IsLoopbackHost(std::string_view host);

// Refuses a TCP address that is not loopback unless `allow_remote`.
Status CheckListenPolicy(const ListenAddress& address, bool allow_remote);

// The metrics address (Config::metrics_listen): host:port only, since Prometheus scrapes
// over TCP. INVALID_ARGUMENT "metrics_listen: ..." naming the value otherwise.
Result<ListenAddress> ParseMetricsAddress(std::string_view text);

// Prepares `path` for a new socket: creates a missing parent directory 0700, refuses a
// parent that another user owns or that is group/world writable without the sticky bit,
// and removes a stale socket file left by a crashed run (never a regular file).
Status PrepareUnixSocketPath(const std::string& path);

// Creates a fresh directory "<base>/wsstep-XXXXXX" (mode 0700) and returns its path.
// base "" means $TMPDIR, else /tmp.
Result<std::string> MakePrivateTempDir(const std::string& base);

// Removes the directories MakePrivateTempDir(base) made for plugins that are gone (a
// plugin killed with SIGKILL cannot remove its own): "<base>/wsstep-XXXXXX" owned by this
// user, holding nothing but sockets nobody listens on (connect is refused), or nothing
// at all. Anything else is left alone, and so is anything changed in the last
// kStaleAfter (a plugin starting right now). Returns the directories removed.
inline constexpr std::chrono::seconds kStaleAfter{5};
std::vector<std::string> SweepStaleSocketDirs(const std::string& base);

// Removes a socket file and, when `remove_dir`, its (then empty) directory. Best effort.
void RemoveUnixSocket(const std::string& path, bool remove_dir);

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_PROCESS_LISTEN_H_

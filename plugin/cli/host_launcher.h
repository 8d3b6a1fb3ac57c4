// The host side of the go-plugin handshake: launches a plugin binary exactly as a
// workflow host does, reads its handshake line and connects to it. Used by `wsstep demo`
// and by the tests that check the real binary; a reference for host developers too.
//
//   LaunchOptions options;
//   options.binary = "/usr/lib/wsstep/wsstep";
//   options.automtls = true;                       // generate a client cert, pass it
//   WSSTEP_ASSIGN_OR_RETURN(auto plugin, PluginProcess::Launch(options));
//   auto stub = v1::StepPluginService::NewStub(plugin->channel());
//   ...
//   plugin->CloseStdin();                          // or Signal(SIGTERM), or Shutdown RPC
//   std::optional<int> code = plugin->Wait(std::chrono::seconds(10));
#ifndef WSSTEP_PLUGIN_CLI_HOST_LAUNCHER_H_
#define WSSTEP_PLUGIN_CLI_HOST_LAUNCHER_H_

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "plugin/process/automtls.h"
#include "plugin/process/handshake.h"

namespace grpc {
class Channel;
}

namespace wsstep::plugin {

struct LaunchOptions {
  std::string binary;               // path of the plugin executable
  std::vector<std::string> args;    // arguments after argv[0]; none = plugin mode
  bool set_magic_cookie = true;     // false: launch as if by hand (tests)
  bool automtls = false;            // generate a client certificate: PLUGIN_CLIENT_CERT
  bool tcp = false;                 // WSSTEP_PLUGIN_NETWORK=tcp
  std::vector<std::pair<std::string, std::string>> env;  // extra variables (override)
  std::string stderr_path;          // "" = inherit our stderr
  std::chrono::milliseconds start_timeout{10000};
};

class PluginProcess {
 public:
  // Starts the binary with stdin and stdout on pipes and reads the handshake line.
  // Errors: the binary cannot start, exits or times out before the line, or prints a
  // malformed line (the process is stopped before returning).
  static Result<std::unique_ptr<PluginProcess>> Launch(const LaunchOptions& options);
  // Starts the binary without reading anything (for tests of failed launches).
  static Result<std::unique_ptr<PluginProcess>> Spawn(const LaunchOptions& options);

  ~PluginProcess();  // SIGKILL and reap if still running
  PluginProcess(const PluginProcess&) = delete;
  PluginProcess& operator=(const PluginProcess&) = delete;

  // Reads the handshake line (Launch does this). Errors as Launch.
  Result<HandshakeLine> ReadHandshake(std::chrono::milliseconds timeout);
  const HandshakeLine& handshake() const { return handshake_; }
  // The gRPC target: "unix:///path" or "127.0.0.1:port".
  std::string target() const;
  // A channel to the plugin, with AutoMTLS when it was launched with it.
  std::shared_ptr<grpc::Channel> channel();
  // Another channel with its own connection (a second host process, or a host that
  // reconnects): nothing shared with channel().
  std::shared_ptr<grpc::Channel> NewChannel() const;
  // The client certificate we passed in PLUGIN_CLIENT_CERT (AutoMTLS only).
  const SelfSignedCertificate* client_certificate() const { return client_cert_.get(); }

  pid_t pid() const { return pid_; }
  void Signal(int signal);
  void CloseStdin();
  // Waits for the process to exit; its exit code (128 + signal if killed), or nullopt on
  // timeout.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  // Everything the plugin wrote on stdout after the handshake line, up to end-of-file
  // (call after it exited; returns what is there within `timeout`).
  std::string ReadRestOfStdout(std::chrono::milliseconds timeout);

 private:
  PluginProcess() = default;
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  std::string stdout_buffer_;  // read but not consumed
  std::optional<int> exit_code_;
  HandshakeLine handshake_;
  std::unique_ptr<SelfSignedCertificate> client_cert_;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_CLI_HOST_LAUNCHER_H_

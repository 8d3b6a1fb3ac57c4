// The plugin's gRPC server: StepPluginService, CertificateService, go-plugin's
// GRPCController and GRPCStdio, the standard health service (SERVING for "" and
// "plugin") and server reflection, on one listening address. No service uses gRPC's callback API: its
// threads would poll the plugin's sockets too and add thread switches to every step
// (plugin/server/step_service.h).
//
//   ServerOptions options;
//   options.listen = *ParseListenAddress("unix:///run/wsstep/wsstep.sock");
//   options.backends = ...;                         // plugin/adapters/wiring.h
//   options.on_shutdown_rpc = [&](std::string why) { stop.Request(why); };
//   WSSTEP_ASSIGN_OR_RETURN(auto server, PluginServer::Start(std::move(options)));
//   ... stop.Wait();
//   server->Shutdown(std::chrono::seconds(10));     // drain, then cancel what is left
#ifndef WSSTEP_PLUGIN_SERVER_SERVER_H_
#define WSSTEP_PLUGIN_SERVER_SERVER_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <grpcpp/support/status.h>

#include "core/error.h"
#include "plugin/server/backends.h"
#include "plugin/process/listen.h"
#include "plugin/server/step_service.h"

namespace grpc {
class Server;
class ServerCredentials;
}  // namespace grpc

namespace wsstep::plugin {

struct ServerOptions {
  ListenAddress listen;
  // Null: plaintext (unix sockets are protected by their file mode).
  std::shared_ptr<grpc::ServerCredentials> credentials;
  Backends backends;
  PluginFacts facts;  // limits, protected environments, automtls, go_plugin
  // Called (once, from a gRPC thread) when a host calls GRPCController.Shutdown.
  std::function<void(std::string reason)> on_shutdown_rpc;
};

class PluginServer {
 public:
  // Builds and starts the server. INVALID_ARGUMENT naming the address when it cannot be
  // bound. A unix socket is chmod 0600 before this returns.
  static Result<std::unique_ptr<PluginServer>> Start(ServerOptions options);
  ~PluginServer();  // Shutdown(0) if not done
  PluginServer(const PluginServer&) = delete;
  PluginServer& operator=(const PluginServer&) = delete;

  // The bound address (for "127.0.0.1:0", with the chosen port).
  const ListenAddress& address() const { return address_; }

  // Health turns NOT_SERVING; new calls are refused (UNAVAILABLE); in-flight calls get
  // `grace` to finish, then are cancelled; the step queue drains. Idempotent.
  void Shutdown(std::chrono::milliseconds grace);

  StepPluginServiceImpl& step_service() { return *step_service_; }

 private:
  PluginServer() = default;
  struct Services;
  ListenAddress address_;
  std::unique_ptr<Services> services_;
  std::unique_ptr<StepPluginServiceImpl> step_service_;
  std::unique_ptr<grpc::Server> server_;
  bool shut_down_ = false;
};

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_SERVER_SERVER_H_

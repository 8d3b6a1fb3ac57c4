// wsstep.v1.StepPluginService over gRPC's callback API: describes the plugin, validates
// and executes steps through the REST/SOAP runners (plugin/backends.h). Owns the
// call-level policy: in-flight limit, deadlines, cancellation, logging, error mapping.
#ifndef WSSTEP_PLUGIN_STEP_SERVICE_H_
#define WSSTEP_PLUGIN_STEP_SERVICE_H_

#include <atomic>
#include <string>
#include <vector>

#include "plugin/backends.h"
#include "plugin/config.h"
#include "wsstep/v1/step_plugin_service.grpc.pb.h"

namespace wsstep::plugin {

// What GetPluginInfo reports besides the backends.
struct PluginFacts {
  std::vector<std::string> protected_environments;
  Limits limits;
  bool automtls = false;   // the channel is secured by AutoMTLS
  bool go_plugin = false;  // launched through the go-plugin handshake
};

// The plugin's version ("0.1.0"), from the CMake project version.
std::string_view PluginVersion();

// GetPluginInfo's answer for these backends and facts: both step kinds with their JSON
// Schemas, and the capabilities that actually work in this process.
v1::GetPluginInfoResponse BuildPluginInfo(const Backends& backends, const PluginFacts& facts);

class StepPluginServiceImpl final : public v1::StepPluginService::CallbackService {
 public:
  StepPluginServiceImpl(Backends backends, PluginFacts facts);

  grpc::ServerUnaryReactor* GetPluginInfo(grpc::CallbackServerContext* context,
                                          const v1::GetPluginInfoRequest* request,
                                          v1::GetPluginInfoResponse* response) override;
  grpc::ServerUnaryReactor* ValidateStep(grpc::CallbackServerContext* context,
                                         const v1::ValidateStepRequest* request,
                                         v1::ValidateStepResponse* response) override;
  grpc::ServerUnaryReactor* ExecuteRestStep(grpc::CallbackServerContext* context,
                                            const v1::ExecuteRestStepRequest* request,
                                            v1::ExecuteRestStepResponse* response) override;
  grpc::ServerUnaryReactor* ExecuteSoapStep(grpc::CallbackServerContext* context,
                                            const v1::ExecuteSoapStepRequest* request,
                                            v1::ExecuteSoapStepResponse* response) override;

  // Refuses new steps with UNAVAILABLE from now on (shutdown); running ones finish.
  void StopAccepting() { stopping_ = true; }
  int in_flight() const { return in_flight_.load(); }

 private:
  template <typename Runner, typename Request, typename Response>
  grpc::ServerUnaryReactor* Execute(grpc::CallbackServerContext* context, std::string_view method,
                                    const std::shared_ptr<Runner>& runner,
                                    std::string_view missing_part, const Request* request,
                                    Response* response);
  bool TryAcquire();

  Backends backends_;
  PluginFacts facts_;
  v1::GetPluginInfoResponse info_;  // built once: the schemas do not change
  std::atomic<bool> stopping_{false};
  std::atomic<int> in_flight_{0};
};

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_STEP_SERVICE_H_

// wsstep.v1.StepPluginService: describes the plugin, validates and executes steps through
// the REST/SOAP runners (plugin/backends.h). Owns the call-level policy: in-flight limit,
// deadlines, cancellation, logging, error mapping.
//
// Threads: GetPluginInfo and ValidateStep run on gRPC's synchronous server threads.
// ExecuteRestStep and ExecuteSoapStep, the hot path, are served from a completion queue
// of our own (raw methods: the request is parsed here, so an unparseable one gets
// INVALID_ARGUMENT): a step takes one hand-off from the queue's thread to an engine
// worker, and the worker sends the reply itself. gRPC 1.51's callback API is used
// nowhere in the server: its threads poll every socket of the process, and a step cost
// several more thread switches on them than its whole transfer (tests/bench, README
// "Benchmarks").
#ifndef WSSTEP_PLUGIN_STEP_SERVICE_H_
#define WSSTEP_PLUGIN_STEP_SERVICE_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/completion_queue.h>

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

using StepPluginServiceBase = v1::StepPluginService::WithRawMethod_ExecuteRestStep<
    v1::StepPluginService::WithRawMethod_ExecuteSoapStep<v1::StepPluginService::Service>>;

class StepPluginServiceImpl final : public StepPluginServiceBase {
 public:
  StepPluginServiceImpl(Backends backends, PluginFacts facts);
  ~StepPluginServiceImpl() override;

  grpc::Status GetPluginInfo(grpc::ServerContext* context, const v1::GetPluginInfoRequest* request,
                             v1::GetPluginInfoResponse* response) override;
  grpc::Status ValidateStep(grpc::ServerContext* context, const v1::ValidateStepRequest* request,
                            v1::ValidateStepResponse* response) override;
  // Serves ExecuteRestStep and ExecuteSoapStep from `cq` (ServerBuilder::AddCompletionQueue,
  // after BuildAndStart) on `threads` threads of its own.
  void StartServing(std::unique_ptr<grpc::ServerCompletionQueue> cq, int threads);
  // After the server's Shutdown returned: waits for the steps still running (each already
  // cancelled or past its deadline), then drains the queue and joins its threads.
  // Idempotent.
  void StopServing();

  // Refuses new steps with UNAVAILABLE from now on (shutdown); running ones finish.
  void StopAccepting() { stopping_ = true; }
  int in_flight() const { return in_flight_.load(); }

  // The step policy around a runner: refusals (stopping, limit, deadline, no backend),
  // the in-flight count, logging. `finish` runs exactly once, on any thread, with the
  // call's status; `response` is filled when it is OK.
  template <typename Runner, typename Request, typename Response>
  void Execute(const CallContext& call, const std::shared_ptr<Runner>& runner,
               std::string_view missing_part, const Request& request, Response* response,
               std::function<void(grpc::Status)> finish);

  const Backends& backends() const { return backends_; }

 private:
  bool TryAcquire();

  Backends backends_;
  PluginFacts facts_;
  v1::GetPluginInfoResponse info_;  // built once: the schemas do not change
  std::atomic<bool> stopping_{false};
  std::atomic<int> in_flight_{0};
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::vector<std::thread> cq_threads_;
  std::atomic<int> open_calls_{0};  // arrived on the queue, reply not yet started
};

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_STEP_SERVICE_H_

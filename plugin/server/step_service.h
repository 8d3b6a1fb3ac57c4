// wsstep.v1.StepPluginService: describes the plugin, validates and executes steps through
// the REST/SOAP runners (plugin/server/backends.h). Owns the call-level policy: in-flight limit,
// deadlines, cancellation, logging, error mapping.
//
// Threads: GetPluginInfo and ValidateStep run on gRPC's synchronous server threads.
// ExecuteRestStep, ExecuteSoapStep and ExecuteSteps, the hot path, are served from a
// completion queue of our own (raw methods: the request is parsed here, so an unparseable
// one gets INVALID_ARGUMENT) by one dispatching thread, lent to the REST engine: a step
// that arrives while nothing else runs is resolved, transferred and answered on that
// thread, with no hand-off; otherwise the step goes to the engine's workers (which send
// its reply) and the thread takes the next call. When a step on the dispatching thread
// waits ~2 ms for its server, a stand-in thread takes calls until it is back. For unary
// calls, replies sent and calls ended (cancellations) come on a second queue with a
// thread of its own; an ExecuteSteps stream has all its events on the first queue (its
// next read must not wait), and writes its results one message at a time, batching the
// results that finish while a write is on its way.
//
// Why so few threads: on the 2-core machines we measure on, every extra thread that
// waits on gRPC's queues is woken to take over polling for each event (gRPC 1.51's
// epoll1 engine), and each wake costs more than a warm transfer. Nine step threads made
// a warm step 450 us, one makes it ~200 us; the callback API, whose own threads poll
// every socket of the process, is used nowhere in the server (tests/bench, README
// "Benchmarks").
#ifndef WSSTEP_PLUGIN_SERVER_STEP_SERVICE_H_
#define WSSTEP_PLUGIN_SERVER_STEP_SERVICE_H_

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/completion_queue.h>

#include "plugin/server/backends.h"
#include "plugin/process/config.h"
#include "rest/spin_wait.h"
#include "wsstep/v1/step_plugin_service.grpc.pb.h"

namespace wsstep::plugin {

// What GetPluginInfo reports besides the backends.
struct PluginFacts {
  std::vector<std::string> protected_environments;
  Limits limits;
  bool automtls = false;   // the channel is secured by AutoMTLS
  bool go_plugin = false;  // launched through the go-plugin handshake
  // How long the dispatching thread looks for the host's next call before it sleeps,
  // when no step runs (rest/spin_wait.h); 0: never.
  std::chrono::microseconds spin_wait = rest::SpinAdvisor::kDefaultSpin;
};

// The plugin's version ("0.1.0"), from the CMake project version.
std::string_view PluginVersion();

// GetPluginInfo's answer for these backends and facts: both step kinds with their JSON
// Schemas, and the capabilities that actually work in this process.
v1::GetPluginInfoResponse BuildPluginInfo(const Backends& backends, const PluginFacts& facts);

using StepPluginServiceBase = v1::StepPluginService::WithRawMethod_ExecuteRestStep<
    v1::StepPluginService::WithRawMethod_ExecuteSoapStep<
        v1::StepPluginService::WithRawMethod_ExecuteSteps<v1::StepPluginService::Service>>>;

// Calls on the step queue, for the threads that serve it.
struct CallCounts {
  // Unary calls that arrived and have not started their reply; ExecuteSteps streams that
  // may still start an operation (a write, or their finish).
  std::atomic<int> replying{0};
  std::atomic<int> live{0};      // arrived, reply-sent or call-ended event still to come
};

class StepPluginServiceImpl final : public StepPluginServiceBase {
 public:
  StepPluginServiceImpl(Backends backends, PluginFacts facts);
  ~StepPluginServiceImpl() override;

  grpc::Status GetPluginInfo(grpc::ServerContext* context, const v1::GetPluginInfoRequest* request,
                             v1::GetPluginInfoResponse* response) override;
  grpc::Status ValidateStep(grpc::ServerContext* context, const v1::ValidateStepRequest* request,
                            v1::ValidateStepResponse* response) override;
  // Fetches and reads on a synchronous server thread (not the step queue).
  grpc::Status DescribeWsdl(grpc::ServerContext* context, const v1::DescribeWsdlRequest* request,
                            v1::DescribeWsdlResponse* response) override;
  // Serves ExecuteRestStep and ExecuteSoapStep from `cq` (ServerBuilder::AddCompletionQueue,
  // after BuildAndStart) on threads of its own.
  void StartServing(std::unique_ptr<grpc::ServerCompletionQueue> cq);
  // After the server's Shutdown returned: waits for the steps still running (each already
  // cancelled or past its deadline), then drains the queue and joins its threads.
  // Idempotent.
  void StopServing();

  // Refuses new steps with UNAVAILABLE from now on (shutdown); running ones finish.
  void StopAccepting() { stopping_ = true; }
  int in_flight() const { return in_flight_.load(); }

  // The step policy around a runner: refusals (stopping, limit, deadline, no backend),
  // the in-flight count, logging. `finish` runs exactly once, on any thread, with the
  // call's status; `response` is filled when it is OK. `call`, `request` and `response`
  // must stay where they are until `finish` has run (they belong to the call, which
  // lives that long): nothing copies them on the step's way.
  template <typename Runner, typename Request, typename Response>
  void Execute(const CallContext& call, const std::shared_ptr<Runner>& runner,
               std::string_view missing_part, const Request& request, Response* response,
               std::function<void(grpc::Status)> finish);

  const Backends& backends() const { return backends_; }
  const PluginFacts& facts() const { return facts_; }

 private:
  bool TryAcquire();
  void DrainCallEvents();  // the thread of call_cq_
  void Dispatch();  // the dispatching thread
  // The dispatching thread's wait for its next event (false: the queue shut down).
  bool NextCall(rest::SpinAdvisor& spin, void** tag, bool* ok);
  void StandIn();   // takes calls while a step runs on the dispatching thread

  Backends backends_;
  PluginFacts facts_;
  v1::GetPluginInfoResponse info_;  // built once: the schemas do not change
  std::atomic<bool> stopping_{false};
  std::atomic<int> in_flight_{0};
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;  // arrivals
  std::unique_ptr<grpc::CompletionQueue> call_cq_;   // replies sent, calls ended
  std::vector<std::thread> threads_;
  std::mutex stand_in_mu_;
  std::condition_variable stand_in_cv_;
  std::atomic<bool> stand_in_wanted_{false};
  bool queue_closing_ = false;  // under stand_in_mu_
  CallCounts counts_;
};

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_SERVER_STEP_SERVICE_H_

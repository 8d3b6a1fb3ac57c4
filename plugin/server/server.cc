#include "plugin/server/server.h"

#include <absl/synchronization/mutex.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/support/server_interceptor.h>
#include <sys/stat.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "goplugin/grpc_controller.grpc.pb.h"
#include "goplugin/grpc_stdio.grpc.pb.h"
#include "plugin/server/certificate_service.h"
#include "plugin/process/handshake.h"
#include "plugin/server/health_service.h"
#include "plugin/process/log.h"
#include "plugin/server/status_map.h"

namespace wsstep::plugin {
namespace {

// go-plugin's controller: a host built on hashicorp/go-plugin stops plugins with it.
class ControllerService final : public ::plugin::GRPCController::Service {
 public:
  explicit ControllerService(std::function<void(std::string)> on_shutdown)
      : on_shutdown_(std::move(on_shutdown)) {}

  grpc::Status Shutdown(grpc::ServerContext* /*context*/, const ::plugin::Empty* /*request*/,
                        ::plugin::Empty* /*response*/) override {
    // Only asks for the stop: the drain runs on another thread and lets this reply out.
    if (on_shutdown_) on_shutdown_("GRPCController.Shutdown");
    return grpc::Status::OK;
  }

 private:
  std::function<void(std::string)> on_shutdown_;
};

// go-plugin's stdio stream. Newer go-plugin hosts open it when they connect and warn when
// it is missing. Our stdout carries only the handshake line and the log goes to stderr,
// which the host reads from the process itself: the stream is held open without data
// until the host cancels it or the plugin stops, then ends OK.
class StdioService final : public ::plugin::GRPCStdio::Service {
 public:
  grpc::Status StreamStdio(grpc::ServerContext* context, const google::protobuf::Empty*,
                           grpc::ServerWriter<::plugin::StdioData>* writer) override {
    writer->SendInitialMetadata();  // the host sees the stream accepted at once
    std::unique_lock<std::mutex> lock(mu_);
    // A cancelled call has no event that wakes this thread: look every 100 ms.
    while (!stopping_ && !context->IsCancelled()) {
      cv_.wait_for(lock, std::chrono::milliseconds(100));
    }
    return grpc::Status::OK;
  }

  // Ends every open stream (OK); a stream opened after this ends at once.
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
};

// gRPC answers a request protobuf cannot parse (a string field that is not UTF-8, messages
// nested deeper than 100) before any handler runs: INTERNAL from a synchronous method
// (UNIMPLEMENTED with an empty message from a callback one). The contract promises
// INVALID_ARGUMENT naming the problem, so this rewrites the status of exactly those calls:
// unary and server-streaming calls whose request did not deserialize (gRPC then hands
// interceptors a null message at POST_RECV_MESSAGE).
class UnparseableRequestInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit UnparseableRequestInterceptor(std::string method) : method_(std::move(method)) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      unparseable_ = methods->GetRecvMessage() == nullptr;
    }
    if (unparseable_ &&
        methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      grpc::Status sent = methods->GetSendStatus();
      if (sent.error_code() == grpc::StatusCode::UNIMPLEMENTED ||
          sent.error_code() == grpc::StatusCode::INTERNAL) {
        methods->ModifySendStatus(UnparseableRequestStatus(method_));
      }
    }
    methods->Proceed();
  }

 private:
  std::string method_;
  bool unparseable_ = false;
};

constexpr std::string_view kExecuteRestStepMethod = "/wsstep.v1.StepPluginService/ExecuteRestStep";
constexpr std::string_view kExecuteSoapStepMethod = "/wsstep.v1.StepPluginService/ExecuteSoapStep";

class UnparseableRequestInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    // Only these read exactly one request, up front; for the others a null message at
    // POST_RECV_MESSAGE is the end of the client's stream.
    using Type = grpc::experimental::ServerRpcInfo::Type;
    if (info->type() != Type::UNARY && info->type() != Type::SERVER_STREAMING) return nullptr;
    const std::string_view method = info->method() ? info->method() : "";
    // The step methods parse their own requests (plugin/server/step_service.h); without an
    // interceptor gRPC skips its interception machinery on every operation of the call.
    if (method == kExecuteRestStepMethod || method == kExecuteSoapStepMethod) return nullptr;
    return new UnparseableRequestInterceptor(std::string(method));
  }
};

void InitProcessWideGrpcOptions() {
  static std::once_flag once;
  std::call_once(once, [] {
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    // Debian's Abseil checks every Mutex lock for lock-order cycles (a global graph under
    // its own lock): gRPC locks several per call, and on two cores the checks contend.
    // A debugging aid, not a safety net: off.
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  });
}

}  // namespace

struct PluginServer::Services {
  HealthService health;
  std::unique_ptr<CertificateServiceImpl> certificates;
  std::unique_ptr<ControllerService> controller;
  StdioService stdio;
};

Result<std::unique_ptr<PluginServer>> PluginServer::Start(ServerOptions options) {
  InitProcessWideGrpcOptions();
  std::unique_ptr<PluginServer> self(new PluginServer());
  self->address_ = options.listen;
  self->services_ = std::make_unique<Services>();
  auto& s = *self->services_;
  s.certificates = std::make_unique<CertificateServiceImpl>(options.backends.certificates);
  s.controller = std::make_unique<ControllerService>(std::move(options.on_shutdown_rpc));
  self->step_service_ =
      std::make_unique<StepPluginServiceImpl>(options.backends, options.facts);

  grpc::ServerBuilder builder;
  auto creds = options.credentials ? options.credentials : grpc::InsecureServerCredentials();
  int selected_port = 0;
  builder.AddListeningPort(options.listen.GrpcUri(), creds,
                           options.listen.kind == ListenAddress::Kind::kTcp ? &selected_port
                                                                            : nullptr);
  const int max_message = static_cast<int>(options.facts.limits.max_message_bytes);
  builder.SetMaxReceiveMessageSize(max_message);
  builder.SetMaxSendMessageSize(max_message);
  // The reflection service is synchronous; its threads poll with this timeout, and a
  // shutdown waits for them. The default (seconds) would make every stop that slow.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::CQ_TIMEOUT_MSEC, 100);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(std::make_unique<UnparseableRequestInterceptorFactory>());
  builder.experimental().SetInterceptorCreators(std::move(creators));
  builder.RegisterService(self->step_service_.get());
  builder.RegisterService(s.certificates.get());
  builder.RegisterService(s.controller.get());
  builder.RegisterService(&s.stdio);
  builder.RegisterService(&s.health);
  std::unique_ptr<grpc::ServerCompletionQueue> step_queue = builder.AddCompletionQueue();
  self->server_ = builder.BuildAndStart();
  if (!self->server_ ||
      (options.listen.kind == ListenAddress::Kind::kTcp && selected_port == 0)) {
    self->server_.reset();
    step_queue->Shutdown();
    void* tag = nullptr;
    bool ok = false;
    while (step_queue->Next(&tag, &ok)) {
    }
    return Error(Code::kInvalidArgument,
                 "cannot listen on " + options.listen.Display() +
                     " (gRPC's reason is in the log above)",
                 "check that the address is free and the directory writable",
                 Side::kConfiguration);
  }
  if (options.listen.kind == ListenAddress::Kind::kTcp) self->address_.port = selected_port;
  self->step_service_->StartServing(std::move(step_queue));
  if (options.listen.kind == ListenAddress::Kind::kUnix) {
    // The process umask (077) already made it private; this makes it explicit.
    ::chmod(options.listen.path.c_str(), 0600);
  }

  for (const std::string& name : {std::string(), std::string(kGoPluginHealthService),
                                   std::string(v1::StepPluginService::service_full_name()),
                                   std::string(v1::CertificateService::service_full_name())}) {
    s.health.Set(name, true);
  }
  return self;
}

PluginServer::~PluginServer() { Shutdown(std::chrono::milliseconds(0)); }

void PluginServer::Shutdown(std::chrono::milliseconds grace) {
  if (shut_down_ || !server_) return;
  shut_down_ = true;
  services_->health.Shutdown();
  step_service_->StopAccepting();
  services_->certificates->StopAccepting();
  Log().Info("draining in-flight calls",
             {{"in_flight_steps", step_service_->in_flight()},
              {"in_flight_store_calls", services_->certificates->active_calls()},
              {"grace_ms", grace.count()}});
  // Wait for our own calls rather than letting gRPC wait: gRPC's shutdown also waits for
  // idle client connections to go away, which a host that keeps its channel open never
  // does before the deadline.
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while ((step_service_->in_flight() > 0 || services_->certificates->active_calls() > 0) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Whatever is left (event streams, calls past the grace period) is cancelled now.
  services_->stdio.Stop();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  server_->Wait();
  step_service_->StopServing();
}

}  // namespace wsstep::plugin

#include "tests/bench/plugin_bench.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"
#include "plugin/cli/host_launcher.h"
#include "tests/support/pki.h"
#include "wsstep/v1/certificate_service.grpc.pb.h"
#include "wsstep/v1/step_plugin_service.grpc.pb.h"

namespace wsstep::bench {
namespace {

constexpr auto kCallTimeout = std::chrono::seconds(30);

std::string GrpcError(std::string_view method, const grpc::Status& s) {
  return std::string(method) + ": gRPC status " + std::to_string(static_cast<int>(s.error_code())) + " " +
         s.error_message();
}

void SetDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() + kCallTimeout);
}

// Imports the trust bundle first (so the key pair's chain check finds the issuer), then
// the client certificate and key, both bound to localhost:<port>.
std::string ImportCredentials(v1::CertificateService::Stub& certs, const PluginBenchOptions& o) {
  v1::Binding binding;
  binding.set_host("localhost");
  binding.set_port(o.origin_port);

  v1::CreateCertificateRequest trust;
  trust.mutable_certificate()->set_name("bench-trust");
  trust.mutable_certificate()->set_type(v1::CERTIFICATE_TYPE_TRUST_STORE);
  trust.mutable_certificate()->set_private_trust_only(true);
  *trust.mutable_certificate()->add_bindings() = binding;
  trust.mutable_material()->set_content(testing::ReadFile(o.files.ca_file));
  trust.mutable_material()->set_content_name("bundle.pem");

  v1::CreateCertificateRequest client;
  client.mutable_certificate()->set_name("bench-client");
  client.mutable_certificate()->set_type(v1::CERTIFICATE_TYPE_KEY_PAIR);
  *client.mutable_certificate()->add_bindings() = binding;
  client.mutable_material()->set_content(testing::ReadFile(o.files.cert_file));
  client.mutable_material()->set_content_name("client.pem");
  client.mutable_material()->set_private_key(testing::ReadFile(o.files.key_file));
  client.mutable_material()->set_private_key_name("client.key.pem");

  for (const auto* request : {&trust, &client}) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::CreateCertificateResponse response;
    grpc::Status s = certs.CreateCertificate(&ctx, *request, &response);
    if (!s.ok()) return GrpcError("CreateCertificate " + request->certificate().name(), s);
  }
  return "";
}

v1::ExecuteRestStepRequest StepRequest(const PluginBenchOptions& o, bool connection_close) {
  v1::ExecuteRestStepRequest request;
  v1::RestStep* step = request.mutable_step();
  step->set_method("GET");
  step->set_url("https://localhost:" + std::to_string(o.origin_port) + o.path);
  step->mutable_tls()->set_ssl_verification(true);
  if (connection_close) {
    v1::Header* h = step->add_headers();
    h->set_name("Connection");
    h->set_value("close");
  }
  return request;
}

// What makes a step count as a success for every subject: HTTP 200 with our client
// certificate presented.
std::string CheckOutcome(const grpc::Status& s, const v1::ExecuteRestStepResponse& r) {
  if (!s.ok()) return GrpcError("ExecuteRestStep", s);
  const v1::StepOutcome& o = r.outcome();
  if (o.has_error()) return "step error " + o.error().code() + ": " + o.error().message();
  if (!o.has_http()) return "ExecuteRestStep: the outcome has no HTTP result";
  if (o.http().status() != 200) return "HTTP " + std::to_string(o.http().status());
  if (!o.tls().has_client_certificate()) return "no client certificate was presented";
  return "";
}

struct ConnectionCounts {
  std::atomic<uint64_t> steps{0};
  std::atomic<uint64_t> reused{0};
  std::atomic<uint64_t> resumed{0};
};

// The load generator's gRPC client: one completion queue and one thread that polls it,
// running each call's completion there (which starts the next call). That is how gRPC's
// own benchmark clients drive load; the callback API adds thread hand-offs per call on
// the client side, which would be charged to the plugin.
class QueueClient {
 public:
  class Pending {
   public:
    virtual ~Pending() = default;
    virtual void Complete() = 0;
  };

  QueueClient() : thread_([this] { Poll(); }) {}
  ~QueueClient() {
    cq_.Shutdown();
    thread_.join();
  }
  QueueClient(const QueueClient&) = delete;
  QueueClient& operator=(const QueueClient&) = delete;

  grpc::CompletionQueue* cq() { return &cq_; }

  // Starts one unary call: `start(context, cq)` returns the stub's Async<Method> reader;
  // `done(status, response)` runs on the queue's thread.
  template <typename Response, typename Start, typename Done>
  void Call(Start start, Done done) {
    struct Unary final : Pending {
      explicit Unary(Done d) : done(std::move(d)) {}
      void Complete() override { done(status, response); }
      grpc::ClientContext context;
      Response response;
      grpc::Status status;
      Done done;
    };
    auto* call = new Unary(std::move(done));
    SetDeadline(&call->context);
    auto reader = start(&call->context, &cq_);
    reader->Finish(&call->response, &call->status, static_cast<Pending*>(call));
  }

 private:
  void Poll() {
    void* tag = nullptr;
    bool ok = false;
    while (cq_.Next(&tag, &ok)) {
      auto* pending = static_cast<Pending*>(tag);
      pending->Complete();
      delete pending;
    }
  }

  grpc::CompletionQueue cq_;
  std::thread thread_;
};

// One ExecuteRestStep call; `done` gets "" or the failure.
void CallStep(QueueClient* client, v1::StepPluginService::Stub* stub,
              const std::shared_ptr<const v1::ExecuteRestStepRequest>& request,
              ConnectionCounts* counts, OpDone done) {
  client->Call<v1::ExecuteRestStepResponse>(
      [&](grpc::ClientContext* context, grpc::CompletionQueue* cq) {
        return stub->AsyncExecuteRestStep(context, *request, cq);
      },
      [counts, request, done = std::move(done)](const grpc::Status& s,
                                                const v1::ExecuteRestStepResponse& response) {
        std::string error = CheckOutcome(s, response);
        if (error.empty() && counts != nullptr) {
          counts->steps++;
          const v1::TlsFacts& tls = response.outcome().tls();
          if (tls.connection_reused()) {
            counts->reused++;
          } else if (tls.session_resumed()) {
            counts->resumed++;
          }
        }
        done(std::move(error));
      });
}

// The cheapest call the plugin answers, for the transport's own round trip.
LoopOutcome DriveHealth(QueueClient* client, grpc::health::v1::Health::Stub* stub,
                        Nanos duration, uint64_t max_count) {
  const grpc::health::v1::HealthCheckRequest request;
  return RunClosedLoop(1, duration, max_count, [client, stub, &request](OpDone done) {
    client->Call<grpc::health::v1::HealthCheckResponse>(
        [&](grpc::ClientContext* context, grpc::CompletionQueue* cq) {
          return stub->AsyncCheck(context, request, cq);
        },
        [done = std::move(done)](const grpc::Status& s,
                                 const grpc::health::v1::HealthCheckResponse& /*response*/) {
          done(s.ok() ? "" : GrpcError("Health/Check", s));
        });
  });
}

LoopOutcome Drive(QueueClient* client, v1::StepPluginService::Stub* stub,
                  const v1::ExecuteRestStepRequest& request, int in_flight, Nanos duration,
                  uint64_t max_count, ConnectionCounts* counts) {
  auto shared = std::make_shared<const v1::ExecuteRestStepRequest>(request);
  return RunClosedLoop(in_flight, duration, max_count, [client, stub, shared, counts](OpDone done) {
    CallStep(client, stub, shared, counts, std::move(done));
  });
}

// ExecuteSteps: `in_flight` calls open on one stream, each result answered by a new
// call; the calls that replace one message's results go out together in one message.
// One thread reads and writes (the sync stream API), so no client hand-offs either.
// With `request` null every call is empty (neither rest nor soap): the plugin answers
// each at once with INVALID_ARGUMENT, which is then the expected outcome.
LoopOutcome DriveStream(v1::StepPluginService::Stub* stub, const v1::ExecuteRestStepRequest* request,
                        int in_flight, Nanos duration, uint64_t max_count) {
  LoopOutcome out;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + duration + kCallTimeout);
  auto io = stub->ExecuteSteps(&ctx);
  std::map<uint64_t, Clock::time_point> open;
  uint64_t next_id = 1;
  uint64_t issued = 0;
  LatencySamples samples;
  samples.Reserve(1 << 16);
  const auto start = Now();
  auto add_call = [&](v1::ExecuteStepsRequest& message) {
    v1::StepCall* call = message.add_calls();
    call->set_call_id(next_id);
    if (request != nullptr) *call->mutable_rest() = *request;
    open.emplace(next_id++, Now());
    ++issued;
  };
  v1::ExecuteStepsRequest first;
  for (int i = 0; i < std::max(in_flight, 1); ++i) add_call(first);
  bool writing = io->Write(first);
  v1::ExecuteStepsResponse response;
  while (writing && !open.empty() && io->Read(&response)) {
    const auto now = Now();
    v1::ExecuteStepsRequest more;
    for (const auto& r : response.results()) {
      auto it = open.find(r.call_id());
      if (it == open.end()) continue;
      std::string error;
      if (request != nullptr) {
        error = CheckOutcome(grpc::Status(static_cast<grpc::StatusCode>(r.code()), r.message()), r.rest());
      } else if (r.code() != grpc::StatusCode::INVALID_ARGUMENT) {
        error = "an empty stream call came back with code " + std::to_string(r.code()) + " " + r.message();
      }
      if (error.empty()) {
        samples.Add(now - it->second);
      } else if (out.failures++ == 0) {
        out.first_error = std::move(error);
      }
      open.erase(it);
      if (out.failures == 0 && !LoopDone(start, duration, issued, max_count)) add_call(more);
    }
    if (more.calls_size() > 0) writing = io->Write(more);
  }
  io->WritesDone();
  out.hung = !open.empty() && out.failures == 0;
  if (out.hung) ctx.TryCancel();
  grpc::Status end = io->Finish();
  if (!end.ok() && out.failures++ == 0) out.first_error = GrpcError("ExecuteSteps", end);
  out.throughput = samples.Summarize(Now() - start);
  return out;
}

std::string LoopError(const LoopOutcome& o) {
  if (o.hung) return "calls still outstanding after the grace period";
  if (o.failures > 0) return std::to_string(o.failures) + " failed steps, first: " + o.first_error;
  if (o.throughput.count == 0) return "no step completed";
  return "";
}

// The end of the plugin's stderr, for an error message (its logs redact secrets).
std::string LogTail(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  while (!s.empty() && s.back() == '\n') s.pop_back();
  const size_t keep = 400;
  return s.size() <= keep ? s : "..." + s.substr(s.size() - keep);
}

PluginBenchResult RunMeasurements(const PluginBenchOptions& o) {
  PluginBenchResult result;
  result.log_path = o.work_dir + "/plugin-stderr.log";

  plugin::LaunchOptions launch;
  launch.binary = o.binary;
  if (!o.prefix.empty()) {
    launch.binary = o.prefix.front();
    launch.args.assign(o.prefix.begin() + 1, o.prefix.end());
    launch.args.push_back(o.binary);
  }
  launch.automtls = o.automtls;
  launch.stderr_path = result.log_path;
  launch.env.push_back({"WSSTEP_DATA_DIR", o.work_dir + "/data"});
  launch.start_timeout = std::chrono::seconds(60);
  auto launched = plugin::PluginProcess::Launch(launch);
  if (!launched.ok()) {
    result.error = "launching " + o.binary + ": " + launched.error().ToString();
    return result;
  }
  std::unique_ptr<plugin::PluginProcess> process = std::move(launched).value();
  auto channel = process->channel();
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30))) {
    result.error = "could not connect to the plugin at " + process->target();
    return result;
  }
  auto certs = v1::CertificateService::NewStub(channel);
  auto steps = v1::StepPluginService::NewStub(channel);
  QueueClient client;

  result.error = ImportCredentials(*certs, o);
  if (!result.error.empty()) return result;

  // One step first: a clear error if ExecuteRestStep is not wired or the step fails.
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::ExecuteRestStepResponse response;
    grpc::Status s = steps->ExecuteRestStep(&ctx, StepRequest(o, false), &response);
    result.error = CheckOutcome(s, response);
    if (!result.error.empty()) return result;
  }

  const v1::ExecuteRestStepRequest warm = StepRequest(o, false);
  Drive(&client, steps.get(), warm, o.in_flight, o.warmup, 0, nullptr);  // connections for all workers
  auto measure = [&](int in_flight, double* cpu_us_per_step, double* client_cpu_us_per_step,
                     bool stream = false) {
    const double cpu0 = ProcessCpuSeconds(process->pid());
    const double self0 = ProcessCpuSeconds(getpid());
    LoopOutcome out = stream ? DriveStream(steps.get(), &warm, in_flight, o.duration, o.max_count)
                             : Drive(&client, steps.get(), warm, in_flight, o.duration, o.max_count, nullptr);
    const double cpu1 = ProcessCpuSeconds(process->pid());
    const double self1 = ProcessCpuSeconds(getpid());
    const auto steps_done = static_cast<double>(out.throughput.count);
    if (cpu0 >= 0 && cpu1 >= 0 && steps_done > 0) *cpu_us_per_step = (cpu1 - cpu0) * 1e6 / steps_done;
    if (self0 >= 0 && self1 >= 0 && steps_done > 0) *client_cpu_us_per_step = (self1 - self0) * 1e6 / steps_done;
    return out;
  };
  result.warm_single = measure(1, &result.cpu_us_per_step_single, &result.client_cpu_us_per_step_single);
  result.warm_many =
      measure(o.in_flight, &result.cpu_us_per_step_many, &result.client_cpu_us_per_step_many);
  result.stream_single = measure(1, &result.cpu_us_per_step_stream_single,
                                 &result.client_cpu_us_per_step_stream_single, true);
  result.stream_many = measure(o.in_flight, &result.cpu_us_per_step_stream_many,
                               &result.client_cpu_us_per_step_stream_many, true);
  for (auto* run : {&result.warm_single, &result.warm_many, &result.stream_single, &result.stream_many}) {
    if (std::string e = LoopError(**run); !e.empty()) {
      result.error = e;
      run->reset();
    }
  }

  LoopOutcome noop = DriveStream(steps.get(), nullptr, 1, o.duration / 2, o.max_count);
  if (LoopError(noop).empty()) result.stream_noop_single = noop;

  auto health = grpc::health::v1::Health::NewStub(channel);
  LoopOutcome h = DriveHealth(&client, health.get(), o.duration / 2, o.max_count);
  if (LoopError(h).empty()) result.health_single = h;

  if (!o.fresh) {
    process->CloseStdin();
    if (!process->Wait(std::chrono::seconds(15))) process->Signal(SIGKILL);
    return result;
  }
  ConnectionCounts counts;
  auto fresh = Drive(&client, steps.get(), StepRequest(o, true), 1, o.duration, o.max_count, &counts);
  if (std::string e = LoopError(fresh); !e.empty()) {
    result.fresh_error = e;
  } else {
    result.fresh_single = fresh;
    result.fresh_note = std::to_string(counts.steps - counts.reused) + " of " + std::to_string(counts.steps.load()) +
                        " steps on a new connection, " + std::to_string(counts.resumed.load()) +
                        " of those resumed a TLS session";
  }

  process->CloseStdin();
  if (!process->Wait(std::chrono::seconds(15))) process->Signal(SIGKILL);
  return result;
}

}  // namespace

PluginBenchResult RunPluginBench(const PluginBenchOptions& o) {
  PluginBenchResult result = RunMeasurements(o);
  if (!result.error.empty()) {
    if (std::string tail = LogTail(result.log_path); !tail.empty()) result.error += "; plugin stderr: " + tail;
  }
  return result;
}

}  // namespace wsstep::bench

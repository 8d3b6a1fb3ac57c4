#include "tests/bench/plugin_bench.h"

#include <curl/curl.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"
#include "plugin/cli/host_launcher.h"
#include "tests/support/faulty_origin.h"
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
                        int in_flight, Nanos duration, uint64_t max_count,
                        const std::string& traceparent = "") {
  LoopOutcome out;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + duration + kCallTimeout);
  if (!traceparent.empty()) ctx.AddMetadata("traceparent", traceparent);
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

// A plugin launched the way a host does, with the bench's credentials imported and one
// step run (a clear error if ExecuteRestStep is not wired or the step fails).
struct LaunchedPlugin {
  std::string error;     // "" when it is ready for steps
  std::string log_path;  // its stderr
  std::unique_ptr<plugin::PluginProcess> process;
  // The process whose CPU time is the plugin's: `process` itself, or under a prefix that
  // runs the plugin as its child (perf stat, perf record) that child.
  int measured_pid = -1;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::StepPluginService::Stub> steps;

  // Closes its stdin (the host going away) and waits; SIGKILL after 15 s.
  void Stop() {
    if (!process) return;
    process->CloseStdin();
    if (!process->Wait(std::chrono::seconds(15))) process->Signal(SIGKILL);
    process.reset();
  }
};

// `dir` holds the plugin's data directory and stderr log; `env` is added to its
// environment.
LaunchedPlugin LaunchPlugin(const PluginBenchOptions& o, const std::string& dir,
                            const std::vector<std::pair<std::string, std::string>>& env = {}) {
  LaunchedPlugin p;
  p.log_path = dir + "/plugin-stderr.log";
  plugin::LaunchOptions launch;
  launch.binary = o.binary;
  if (!o.prefix.empty()) {
    launch.binary = o.prefix.front();
    launch.args.assign(o.prefix.begin() + 1, o.prefix.end());
    launch.args.push_back(o.binary);
  }
  launch.automtls = o.automtls;
  launch.stderr_path = p.log_path;
  launch.env.push_back({"WSSTEP_DATA_DIR", dir + "/data"});
  launch.env.insert(launch.env.end(), env.begin(), env.end());
  launch.start_timeout = std::chrono::seconds(60);
  auto launched = plugin::PluginProcess::Launch(launch);
  if (!launched.ok()) {
    p.error = "launching " + o.binary + ": " + launched.error().ToString();
    return p;
  }
  p.process = std::move(launched).value();
  p.measured_pid = p.process->pid();
  if (!o.prefix.empty()) {
    // The plugin has answered the handshake, so a forking prefix's child exists by now.
    if (std::vector<int> children = ChildProcesses(p.measured_pid); children.size() == 1) {
      p.measured_pid = children.front();
    }
  }
  p.channel = p.process->channel();
  if (!p.channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30))) {
    p.error = "could not connect to the plugin at " + p.process->target();
    return p;
  }
  auto certs = v1::CertificateService::NewStub(p.channel);
  p.steps = v1::StepPluginService::NewStub(p.channel);
  p.error = ImportCredentials(*certs, o);
  if (!p.error.empty()) return p;
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::ExecuteRestStepResponse response;
  grpc::Status s = p.steps->ExecuteRestStep(&ctx, StepRequest(o, false), &response);
  p.error = CheckOutcome(s, response);
  return p;
}

// Runs `loop` and takes the CPU time per step of the plugin `plugin_pid`, of this process
// and of the origin's workers around it.
template <typename Loop>
PluginRun MeasureRun(int plugin_pid, const std::vector<int>& origin_pids, Loop loop) {
  const double plugin0 = ProcessCpuSeconds(plugin_pid);
  const double self0 = ProcessCpuSeconds(getpid());
  const double origin0 = ProcessesCpuSeconds(origin_pids);
  PluginRun run;
  run.loop = loop();
  const double plugin1 = ProcessCpuSeconds(plugin_pid);
  const double self1 = ProcessCpuSeconds(getpid());
  const double origin1 = ProcessesCpuSeconds(origin_pids);
  const auto steps = static_cast<double>(run.loop.throughput.count);
  if (steps > 0) {
    if (plugin0 >= 0 && plugin1 >= 0) run.cpu_us_per_step = (plugin1 - plugin0) * 1e6 / steps;
    if (self0 >= 0 && self1 >= 0) run.client_cpu_us_per_step = (self1 - self0) * 1e6 / steps;
    if (origin0 >= 0 && origin1 >= 0) run.origin_cpu_us_per_step = (origin1 - origin0) * 1e6 / steps;
  }
  return run;
}

// The single-flow rounds of PluginBenchOptions::libcurl_round on `launched` and on a
// second plugin launched with WSSTEP_SPIN_WAIT_US=0, appended to result.single_flow.
void RunSingleFlowRounds(const PluginBenchOptions& o, LaunchedPlugin& launched, QueueClient& client,
                         PluginBenchResult& result) {
  const std::string dir = o.work_dir + "/no-spin";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  LaunchedPlugin no_spin = LaunchPlugin(o, dir, {{"WSSTEP_SPIN_WAIT_US", "0"}});
  if (!no_spin.error.empty()) {
    result.single_flow_error = "the plugin with WSSTEP_SPIN_WAIT_US=0: " + no_spin.error;
    no_spin.Stop();
    return;
  }
  const v1::ExecuteRestStepRequest warm = StepRequest(o, false);
  const Nanos d = o.single_flow_duration;
  auto unary = [&](LaunchedPlugin& p) {
    return MeasureRun(p.measured_pid, o.origin_pids,
                      [&] { return Drive(&client, p.steps.get(), warm, 1, d, o.max_count, nullptr); });
  };
  auto stream = [&](LaunchedPlugin& p) {
    return MeasureRun(p.measured_pid, o.origin_pids,
                      [&] { return DriveStream(p.steps.get(), &warm, 1, d, o.max_count); });
  };
  Drive(&client, no_spin.steps.get(), warm, 1, o.warmup, 0, nullptr);
  for (int round = 0; round < o.single_flow_rounds && !Stopping(); ++round) {
    SingleFlowRound r;
    auto curl = o.libcurl_round();
    if (!curl.ok()) {
      result.single_flow_error = "libcurl, round " + std::to_string(round + 1) + ": " + curl.error().message;
      break;
    }
    r.libcurl = *curl;
    r.unary = unary(launched);
    r.stream = stream(launched);
    const LoopOutcome empty = DriveStream(launched.steps.get(), nullptr, 1, d, o.max_count);
    r.empty_stream = empty.throughput;
    r.unary_no_spin = unary(no_spin);
    r.stream_no_spin = stream(no_spin);
    std::string error;
    for (const LoopOutcome* loop : std::initializer_list<const LoopOutcome*>{
             &r.unary.loop, &r.stream.loop, &empty, &r.unary_no_spin.loop, &r.stream_no_spin.loop}) {
      if (error.empty()) error = LoopError(*loop);
    }
    if (!error.empty()) {
      result.single_flow_error = "round " + std::to_string(round + 1) + ": " + error;
      break;
    }
    result.single_flow.push_back(std::move(r));
  }
  no_spin.Stop();
}

PluginBenchResult RunMeasurements(const PluginBenchOptions& o) {
  PluginBenchResult result;
  LaunchedPlugin launched = LaunchPlugin(o, o.work_dir);
  result.log_path = launched.log_path;
  result.error = launched.error;
  if (!result.error.empty()) return result;
  auto channel = launched.channel;
  v1::StepPluginService::Stub* const steps = launched.steps.get();
  QueueClient client;

  const v1::ExecuteRestStepRequest warm = StepRequest(o, false);
  Drive(&client, steps, warm, o.in_flight, o.warmup, 0, nullptr);  // connections for all workers
  auto measure = [&](int in_flight, bool stream) -> std::optional<PluginRun> {
    PluginRun run = MeasureRun(launched.measured_pid, o.origin_pids, [&] {
      return stream ? DriveStream(steps, &warm, in_flight, o.duration, o.max_count)
                    : Drive(&client, steps, warm, in_flight, o.duration, o.max_count, nullptr);
    });
    if (std::string e = LoopError(run.loop); !e.empty()) {
      result.error = e;
      return std::nullopt;
    }
    return run;
  };
  result.warm_single = measure(1, false);
  result.warm_many = measure(o.in_flight, false);
  result.stream_single = measure(1, true);
  result.stream_many = measure(o.in_flight, true);

  if (o.libcurl_round) RunSingleFlowRounds(o, launched, client, result);

  for (auto [open, slot] : {std::pair{1, &result.stream_noop_single}, std::pair{o.in_flight, &result.stream_noop_many}}) {
    PluginRun noop = MeasureRun(launched.measured_pid, o.origin_pids, [&, open = open] {
      return DriveStream(steps, nullptr, open, o.duration / 2, o.max_count);
    });
    if (LoopError(noop.loop).empty()) *slot = noop;
  }

  auto health = grpc::health::v1::Health::NewStub(channel);
  LoopOutcome h = DriveHealth(&client, health.get(), o.duration / 2, o.max_count);
  if (LoopError(h).empty()) result.health_single = h;

  if (!o.fresh) {
    launched.Stop();
    return result;
  }
  ConnectionCounts counts;
  auto fresh = Drive(&client, steps, StepRequest(o, true), 1, o.duration, o.max_count, &counts);
  if (std::string e = LoopError(fresh); !e.empty()) {
    result.fresh_error = e;
  } else {
    result.fresh_single = fresh;
    result.fresh_note = std::to_string(counts.steps - counts.reused) + " of " + std::to_string(counts.steps.load()) +
                        " steps on a new connection, " + std::to_string(counts.resumed.load()) +
                        " of those resumed a TLS session";
  }

  launched.Stop();
  return result;
}

size_t AppendBody(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// GET `url` (the metrics endpoint); "" on failure.
std::string HttpGet(const std::string& url) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return "";
  std::string body;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, AppendBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
  const bool ok = curl_easy_perform(curl) == CURLE_OK;
  curl_easy_cleanup(curl);
  return ok ? body : "";
}

// The value of one series line that starts with `series` ("name{labels}"); -1 if absent.
double SeriesValue(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.compare(0, series.size() + 1, series + " ") == 0) {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return -1;
}

}  // namespace

// The endpoint a plugin launched with WSSTEP_METRICS_LISTEN announced on its stderr;
// "" when none.
std::string MetricsUrl(const std::string& log_path) {
  std::ifstream log(log_path);
  std::stringstream text;
  text << log.rdbuf();
  const std::string stderr_text = text.str();
  const std::string key = "\"metrics\":\"";
  const size_t at = stderr_text.find(key);
  if (at == std::string::npos) return "";
  const size_t from = at + key.size();
  return stderr_text.substr(from, stderr_text.find('"', from) - from);
}

ObservabilityBenchResult RunObservabilityBench(const PluginBenchOptions& o, int rounds) {
  ObservabilityBenchResult result;
  // Every step on a traced stream is a span of the host's trace, and goes out with a
  // child traceparent.
  const std::string traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  struct Side {
    const char* dir;
    std::vector<std::pair<std::string, std::string>> env;
    bool traced;
    std::vector<double>* cpu;
  };
  const Side sides[] = {
      {"off", {}, false, &result.off_cpu_us},
      {"metrics", {{"WSSTEP_METRICS_LISTEN", "127.0.0.1:0"}}, false, &result.metrics_cpu_us},
      {"on",
       {{"WSSTEP_METRICS_LISTEN", "127.0.0.1:0"}, {"WSSTEP_PROPAGATE_TRACE_CONTEXT", "true"}},
       true,
       &result.on_cpu_us},
  };
  const v1::ExecuteRestStepRequest warm = StepRequest(o, false);
  // Interleaved rounds, each in another order, so that a noisy moment of the machine
  // (or running first) does not favour one side. Each side's plugin is a new process in
  // every round: one process can stay several percent faster or slower than another
  // running the same binary for as long as it lives (where its threads and heap
  // landed), which interleaving alone cannot spread over the sides.
  constexpr size_t kSides = sizeof(sides) / sizeof(sides[0]);
  double scraped = 0;
  for (int round = 0; round < rounds && result.error.empty(); ++round) {
    for (size_t i = 0; i < kSides && result.error.empty(); ++i) {
      const Side& side = sides[(static_cast<size_t>(round) + i) % kSides];
      const std::string dir = o.work_dir + "/" + side.dir + "/round-" + std::to_string(round + 1);
      std::error_code ec;
      std::filesystem::create_directories(dir, ec);
      LaunchedPlugin plugin = LaunchPlugin(o, dir, side.env);
      auto drive = [&](Nanos duration, uint64_t max_count) {
        return DriveStream(plugin.steps.get(), &warm, o.in_flight, duration, max_count,
                           side.traced ? traceparent : "");
      };
      LoopOutcome warmed;
      PluginRun run;
      if (plugin.error.empty()) {
        warmed = drive(o.warmup, 0);
        run = MeasureRun(plugin.measured_pid, {}, [&] { return drive(o.duration, o.max_count); });
      }
      const LoopOutcome& out = run.loop;
      if (!plugin.error.empty()) {
        result.error = std::string(side.dir) + ": " + plugin.error;
      } else if (std::string e = LoopError(out); !e.empty()) {
        result.error = std::string(side.dir) + ": " + e;
      } else if (run.cpu_us_per_step < 0) {
        result.error = std::string(side.dir) + ": the plugin's CPU time could not be read from /proc";
      } else {
        side.cpu->push_back(run.cpu_us_per_step);
      }
      if (!result.error.empty()) {
        if (std::string tail = LogTail(plugin.log_path); !tail.empty()) result.error += "; plugin stderr: " + tail;
      } else if (side.traced) {
        // The observed plugin really counted: what its endpoint says after its run (the
        // launch's first step, the warm-up and the measured steps).
        result.on_steps += out.throughput.count + warmed.throughput.count + 1;
        const double counted = SeriesValue(HttpGet(MetricsUrl(plugin.log_path)),
                                           R"(wsstep_steps_total{code="",kind="rest",outcome="http"})");
        scraped = counted < 0 || scraped < 0 ? -1 : scraped + counted;
      }
      plugin.Stop();
    }
  }
  result.off_median_us = Median(result.off_cpu_us);
  result.metrics_median_us = Median(result.metrics_cpu_us);
  result.on_median_us = Median(result.on_cpu_us);
  if (result.error.empty()) result.scraped_http_steps = scraped;
  return result;
}

PluginBenchResult RunPluginBench(const PluginBenchOptions& o) {
  PluginBenchResult result = RunMeasurements(o);
  if (!result.error.empty()) {
    if (std::string tail = LogTail(result.log_path); !tail.empty()) result.error += "; plugin stderr: " + tail;
  }
  return result;
}

IsolationBenchResult RunIsolationBench(const PluginBenchOptions& o,
                                       const std::vector<int>& hanging, int samples) {
  IsolationBenchResult result;
  const int most = hanging.empty() ? 0 : *std::max_element(hanging.begin(), hanging.end());
  LaunchedPlugin launched =
      LaunchPlugin(o, o.work_dir, {{"WSSTEP_MAX_IN_FLIGHT_STEPS", std::to_string(most + 64)}});
  if (!launched.error.empty()) {
    result.error = launched.error;
    return result;
  }
  testing::FaultyOrigin dead(testing::FaultyOrigin::Fault::kNeverAnswers);
  if (!dead.Start()) {
    result.error = dead.start_error();
    return result;
  }
  // Verification off: no binding needed; the dead origin never gets as far as TLS.
  v1::ExecuteRestStepRequest hang;
  hang.mutable_step()->set_method("GET");
  hang.mutable_step()->set_url(dead.Url("/hang"));
  hang.mutable_step()->mutable_tls()->set_ssl_verification(false);
  const v1::ExecuteRestStepRequest healthy = StepRequest(o, false);

  struct Pending {
    grpc::ClientContext context;
    v1::ExecuteRestStepResponse response;
    grpc::Status status;
  };
  size_t reached = 0;
  for (int n : hanging) {
    IsolationRow row;
    row.hanging = n;
    grpc::CompletionQueue cq;
    std::vector<std::unique_ptr<Pending>> pending;
    for (int i = 0; i < n; ++i) {
      auto p = std::make_unique<Pending>();
      p->context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
      auto reader = launched.steps->AsyncExecuteRestStep(&p->context, hang, &cq);
      reader->Finish(&p->response, &p->status, p.get());
      pending.push_back(std::move(p));
    }
    reached += static_cast<size_t>(n);
    if (!dead.WaitForConnections(reached, std::chrono::seconds(60))) {
      row.error = std::to_string(dead.connections() - (reached - n)) + " of " + std::to_string(n) +
                  " hanging steps reached the dead origin";
    } else {
      LatencySamples latencies;
      for (int i = 0; i < samples && row.error.empty(); ++i) {
        grpc::ClientContext ctx;
        SetDeadline(&ctx);
        v1::ExecuteRestStepResponse response;
        const auto start = Clock::now();
        grpc::Status s = launched.steps->ExecuteRestStep(&ctx, healthy, &response);
        latencies.Add(Clock::now() - start);
        row.error = CheckOutcome(s, response);
      }
      if (row.error.empty()) {
        row.p50_us = latencies.PercentileUs(0.50);
        row.p99_us = latencies.PercentileUs(0.99);
        row.samples = static_cast<size_t>(samples);
      }
    }
    for (auto& p : pending) p->context.TryCancel();
    void* tag = nullptr;
    bool ok = false;
    for (int i = 0; i < n && cq.Next(&tag, &ok); ++i) {
    }
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }
    result.rows.push_back(std::move(row));
  }
  launched.Stop();
  return result;
}

}  // namespace wsstep::bench

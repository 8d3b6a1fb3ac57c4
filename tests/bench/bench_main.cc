// wsstep_bench: the benchmark harness of PRODUCT.md §5 (run it through scripts/bench.sh).
//
// In one run, on loopback, against one nginx mTLS origin, it measures the baselines (wrk
// through an nginx egress gateway, direct libcurl keep-alive and new-connection loops,
// openssl s_time -new) and wsstep (the real plugin binary over gRPC, the REST engine
// in-process, identities from PKCS#12/JKS against PEM, a store of 100,000 certificates),
// then prints one table of figures and §5 ratios and writes it as Markdown.
//
// Exit code: 0 when every figure was measured (whether or not a target was met), 1 when
// something could not be measured, 2 on a usage error.
//
//   wsstep_bench [--pki DIR] [--plugin PATH] [--out-dir DIR] [--duration S] [--smoke]
//                [--only wrk,curl,stime,engine,plugin,observability,isolation,formats,store,cluster] [--automtls]
//   wsstep_bench store-generate|store-measure|store-open --data-dir DIR ...   (child processes)
#include <curl/curl.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>
#include <vector>

#include "rest/engine.h"
#include "tests/bench/baselines.h"
#include "tests/bench/engine_bench.h"
#include "tests/bench/plugin_bench.h"
#include "tests/bench/report.h"
#include "tests/bench/stats.h"
#include "tests/bench/store_bench.h"
#include "tests/support/nginx.h"
#include "tests/support/pki.h"
#include "tests/support/postgres.h"
#include "tests/support/process.h"

namespace wsstep::bench {
namespace {

using testing::NginxConfig;
using testing::NginxServer;

// The origin's fixed response: small, like a typical JSON API answer.
constexpr std::string_view kPath = "/bench";
constexpr std::string_view kBody = "{\"status\":\"ok\",\"service\":\"wsstep-bench\"}";

const char* const kSectionWrk = "1 nginx egress gateway + wrk";
const char* const kSectionCurl = "2 direct libcurl";
const char* const kSectionSTime = "3 openssl s_time -new";
const char* const kSectionPlugin = "4 wsstep plugin over gRPC";
const char* const kSectionEngine = "4b wsstep REST engine in-process";
const char* const kSectionObservability = "4c metrics and tracing: off / on";
const char* const kSectionIsolation = "4d one dead origin (issue 20)";
const char* const kSectionFormats = "5 identity formats";

struct Options {
  std::string pki;
  std::string plugin = WSSTEP_BENCH_PLUGIN_BINARY;
  std::string out_dir = WSSTEP_BENCH_OUTPUT_DIR;
  std::string markdown;  // default <out_dir>/latest.md (smoke: <out_dir>/smoke.md)
  int duration_s = 8;
  int stime_s = 5;
  int in_flight = 16;
  size_t store_entries = 100'000;
  size_t lookups = 300'000;
  bool smoke = false;
  bool automtls = false;
  bool keepalive_only = false;  // skip the new-connection rows (profiling the warm path)
  int single_flow_rounds = 3;   // 0: no single-flow rounds (and no second plugin)
  std::string only;
  std::string plugin_prefix;  // space-separated command the plugin runs under

  uint64_t max_count = 0;  // per loop; smoke: 10
  std::set<std::string> phases;
  bool Runs(const std::string& phase) const { return phases.count(phase) != 0; }
};

std::string NowUtc() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&t));
  return buf;
}

std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      size_t colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  }
  return "unknown";
}

std::string ToolVersions() {
  std::string nginx = FirstLine(testing::RunCommand({"/usr/sbin/nginx", "-v"}).output);
  std::string openssl = FirstLine(testing::RunCommand({"openssl", "version"}).output);
  std::string wrk = FirstLine(testing::RunCommand({"wrk", "-v"}).output);
  return nginx + "; " + openssl + "; " + wrk.substr(0, wrk.find(" [")) + "; libcurl " +
         curl_version_info(CURLVERSION_NOW)->version + "; gRPC " + grpc::Version();
}

// This binary, read once at start-up: a rebuild during a long run replaces the file, and
// /proc/self/exe would then name the deleted one.
const std::string& SelfExe() {
  static const std::string path = [] {
    std::error_code ec;
    auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::string() : p.string();
  }();
  return path;
}

double Ratio(double a, double b) { return b > 0 ? a / b : 0; }

void AddThroughput(Report& r, const std::string& section, const std::string& what,
                   const Throughput& t, const std::string& rate_unit, const std::string& note = {}) {
  r.AddFigure(section, what + ": throughput", t.per_second, rate_unit, 0,
              // Short (smoke) loops need the decimals: "16 in 0.0 s" hid a 30 ms run.
              std::to_string(t.count) + " in " + FormatNumber(t.seconds, t.seconds < 1 ? 3 : 1) + " s" +
                  (note.empty() ? "" : "; " + note));
  r.AddFigure(section, what + ": latency p50", t.p50_us, "µs", 0);
  if (t.p99_us > 0) r.AddFigure(section, what + ": latency p99", t.p99_us, "µs", 0);
}

std::optional<Throughput> FromLoop(Report& r, const std::string& section, const std::string& what,
                                   const LoopOutcome& o, const std::string& rate_unit,
                                   const std::string& note = {}) {
  std::string problem;
  if (o.hung) problem = "operations still outstanding after the grace period";
  else if (o.failures > 0) problem = std::to_string(o.failures) + " failures, first: " + o.first_error;
  else if (o.throughput.count == 0) problem = "nothing completed";
  if (!problem.empty()) {
    r.AddMissing(section, what, problem);
    return std::nullopt;
  }
  AddThroughput(r, section, what, o.throughput, rate_unit, note);
  return o.throughput;
}

// Runs a child process of this binary, stoppable by our stop flag, and returns its
// key=value output (plus "exit" and, on trouble, "error").
std::map<std::string, std::string> RunSelf(const std::vector<std::string>& args,
                                           const std::string& log, std::chrono::minutes timeout) {
  std::vector<std::string> argv = {SelfExe()};
  argv.insert(argv.end(), args.begin(), args.end());
  testing::ChildProcess child;
  std::filesystem::remove(log);
  std::map<std::string, std::string> out;
  if (!child.Start(argv, log)) {
    out["error"] = "cannot start " + argv[0] + ": " + child.error();
    return out;
  }
  const auto deadline = Now() + timeout;
  while (child.Running() && !Stopping() && Now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  int code = child.Running() ? child.Stop(SIGTERM, std::chrono::seconds(10)) : child.exit_code().value_or(-1);
  out = ParseKeyValues(testing::ReadFile(log));
  out["exit"] = std::to_string(code);
  if (code != 0 && out.count("error") == 0) {
    out["error"] = Now() >= deadline ? "timed out" : "exited with " + std::to_string(code);
  }
  return out;
}

double Num(const std::map<std::string, std::string>& kv, const std::string& key) {
  auto it = kv.find(key);
  if (it == kv.end()) return -1;
  try {
    return std::stod(it->second);
  } catch (...) {
    return -1;
  }
}

// "2 worker processes, 123456 requests": what a per-request CPU row divides.
std::string WorkersNote(const std::vector<int>& workers, double requests) {
  return std::to_string(workers.size()) + " worker process" + (workers.size() == 1 ? "" : "es") +
         ", user + system CPU from /proc over " + FormatNumber(requests, 0) + " requests";
}

struct Figures {
  std::optional<Throughput> wrk1, wrk16, curl_ka, curl_ka16, curl_new, stime;
  // CPU µs per request or step (user + system, from /proc): the gateway's and the
  // origin's nginx workers over the wrk runs, the plugin (all threads) at N in flight.
  std::optional<double> gateway_cpu1, gateway_cpu16, origin_cpu_wrk16;
  std::optional<double> plugin_cpu16, stream_cpu16, plugin_origin_cpu16, stream_origin_cpu16;
  // Single flow: each round's plugin p50 / (libcurl p50 + empty stream p50), per way.
  std::vector<double> single_unary_ratios, single_stream_ratios;
  std::string single_flow_error;
  // The plugin's CPU per refused stream call at 1 and N open: gRPC's and the dispatch's.
  std::optional<double> stream_noop_cpu1, stream_noop_cpu16;
  std::optional<Throughput> plugin16, plugin_fresh, stream16;
  std::optional<Throughput> engine16, engine_fresh1, engine_full1;
  std::optional<double> p12_ratio, jks_ratio, p12_resolve_ratio, jks_resolve_ratio;
  std::optional<double> store_startup_s, store_resolve_p99_us, store_hot_p99_us, store_kib_per_entry;
  std::optional<double> cluster_startup_s, cluster_resolve_p99_us, cluster_propagation_p99_ms;
};

const char* const kSectionSingleFlow = "4a single flow, interleaved rounds";

// The single-flow rounds (PluginBenchOptions::libcurl_round): per round, each way's p50
// against its floor (libcurl keep-alive p50 + the empty stream round trip p50, same
// round), and what the spin costs at 1 in flight (the plugin beside one launched with
// WSSTEP_SPIN_WAIT_US=0). Fills fig's single-flow ratios.
void AddSingleFlowRows(Report& report, const PluginBenchResult& r, Figures& fig) {
  fig.single_flow_error = r.single_flow_error;
  if (!r.single_flow_error.empty()) report.AddMissing(kSectionSingleFlow, "rounds", r.single_flow_error);
  std::vector<double> cpu_spin, cpu_no_spin, p50_spin, p50_no_spin;
  const char* spin_env = std::getenv("WSSTEP_SPIN_WAIT_US");
  const std::string spin_label =
      spin_env != nullptr ? std::string("WSSTEP_SPIN_WAIT_US=") + spin_env : std::string("spin as default");
  for (size_t i = 0; i < r.single_flow.size(); ++i) {
    const SingleFlowRound& round = r.single_flow[i];
    const double floor = round.libcurl.p50_us + round.empty_stream.p50_us;
    const double unary = Ratio(round.unary.loop.throughput.p50_us, floor);
    const double stream = Ratio(round.stream.loop.throughput.p50_us, floor);
    fig.single_unary_ratios.push_back(unary);
    fig.single_stream_ratios.push_back(stream);
    report.AddFigure(kSectionSingleFlow, "round " + std::to_string(i + 1) + ": ExecuteSteps stream p50 / floor",
                     stream, "×", 2,
                     "stream " + FormatNumber(round.stream.loop.throughput.p50_us, 0) + " µs, ExecuteRestStep " +
                         FormatNumber(round.unary.loop.throughput.p50_us, 0) + " µs (" + FormatNumber(unary, 2) +
                         "×); floor " + FormatNumber(floor, 0) + " µs = libcurl " +
                         FormatNumber(round.libcurl.p50_us, 0) + " + empty stream " +
                         FormatNumber(round.empty_stream.p50_us, 0));
    // The spin's price: CPU per step and p50 at 1 in flight, the faster way of each plugin.
    const bool stream_faster = round.stream.loop.throughput.p50_us <= round.unary.loop.throughput.p50_us;
    const PluginRun& with = stream_faster ? round.stream : round.unary;
    const PluginRun& without = stream_faster ? round.stream_no_spin : round.unary_no_spin;
    cpu_spin.push_back(with.cpu_us_per_step);
    cpu_no_spin.push_back(without.cpu_us_per_step);
    p50_spin.push_back(with.loop.throughput.p50_us);
    p50_no_spin.push_back(without.loop.throughput.p50_us);
  }
  if (r.single_flow.empty()) return;
  const std::string rounds = "median of " + std::to_string(r.single_flow.size()) + " rounds, the faster way of each";
  report.AddFigure(kSectionSingleFlow, "1 in flight, " + spin_label + ": plugin CPU per step (all threads)",
                   Median(cpu_spin), "µs", 1, rounds + "; p50 " + FormatNumber(Median(p50_spin), 0) + " µs");
  report.AddFigure(kSectionSingleFlow, "1 in flight, WSSTEP_SPIN_WAIT_US=0: plugin CPU per step (all threads)",
                   Median(cpu_no_spin), "µs", 1,
                   rounds + "; p50 " + FormatNumber(Median(p50_no_spin), 0) + " µs (a second plugin, same rounds)");
}

int RunAll(Options& o) {
  Report report;
  report.SetFact("date", NowUtc());
  report.SetFact("cores (nproc)", std::to_string(CoreCount()));
  report.SetFact("cpu", CpuModel());
  report.SetFact("load average (1 min) at start", FormatNumber(LoadAverage1(), 2));
  report.SetFact("tools", ToolVersions());
  report.SetFact("settings",
                 std::string(o.smoke ? "SMOKE RUN (10 requests each; figures meaningless); " : "") +
                     std::to_string(o.duration_s) + " s per throughput figure, s_time " +
                     std::to_string(o.stime_s) + " s, " + std::to_string(o.in_flight) +
                     " in flight, plugin channel " + (o.automtls ? "AutoMTLS" : "plaintext unix socket") +
                     ", nginx worker_processes auto, TLS 1.3, client cert RSA 2048");

  const TlsFiles files{testing::PkiPath("client/rsa.pem"), testing::PkiPath("client/rsa.key.pem"),
                       testing::PkiPath("trust/bundle.pem")};
  for (const auto& f : {files.cert_file, files.key_file, files.ca_file}) {
    if (!std::filesystem::exists(f)) {
      std::cerr << "wsstep_bench: " << f << " is missing (generate the PKI with tests/pki/make_pki.sh)\n";
      return 1;
    }
  }
  testing::TempDir work("wsstep-bench-");
  const Nanos duration = std::chrono::seconds(o.duration_s);
  Figures fig;

  // ---- the origin and the gateway
  NginxConfig origin_config;
  origin_config.verify_client = testing::NginxVerifyClient::kOn;
  origin_config.responses.emplace_back(std::string(kPath), std::string(kBody), 200, "application/json");
  origin_config.echo_path = "";
  origin_config.worker_processes = 0;
  origin_config.keepalive_requests = 1'000'000;
  origin_config.extra_http_directives = "  access_log off;\n";
  NginxServer origin(origin_config);
  if (!origin.Start()) {
    std::cerr << "wsstep_bench: the nginx origin did not start: " << origin.start_error() << "\n";
    return 1;
  }
  const std::string origin_url = origin.base_url() + std::string(kPath);
  const std::vector<int> origin_workers = NginxWorkerPids(origin);
  report.SetFact("origin", origin_url + " (nginx, ssl_verify_client on, " + std::to_string(kBody.size()) +
                               "-byte JSON response)");

  std::cerr << "[bench] origin " << origin_url << "\n";
  if (o.Runs("wrk")) {
    NginxConfig gateway_config;
    gateway_config.tls = false;
    gateway_config.worker_processes = 0;
    gateway_config.keepalive_requests = 1'000'000;
    gateway_config.extra_http_directives = "  access_log off;\n";
    testing::NginxEgressGateway egress;
    egress.upstream_port = origin.port();
    egress.client_cert_file = files.cert_file;
    egress.client_key_file = files.key_file;
    egress.trusted_ca_file = files.ca_file;
    gateway_config.egress = egress;
    NginxServer gateway(gateway_config);
    if (!gateway.Start()) {
      report.AddMissing(kSectionWrk, "gateway", "nginx gateway did not start: " + gateway.start_error());
    } else {
      const std::string url = gateway.gateway_url() + std::string(kPath);
      const int seconds = o.smoke ? 1 : o.duration_s;
      const std::vector<int> gateway_workers = NginxWorkerPids(gateway);
      std::cerr << "[bench] wrk " << url << "\n";
      for (auto [threads, conns, slot, cpu_slot] : {std::tuple{1, 1, &fig.wrk1, &fig.gateway_cpu1},
                                                    std::tuple{2, o.in_flight, &fig.wrk16, &fig.gateway_cpu16}}) {
        const std::string what = std::to_string(conns) + " connection" + (conns > 1 ? "s" : "") + " (-t" +
                                 std::to_string(threads) + " -c" + std::to_string(conns) + ")";
        // The workers' CPU (user + system, from /proc) around the run: what the gateway
        // and the origin spend per proxied request.
        const double gateway0 = ProcessesCpuSeconds(gateway_workers);
        const double origin0 = ProcessesCpuSeconds(origin_workers);
        auto t = RunWrk(url, threads, conns, seconds);
        const double gateway1 = ProcessesCpuSeconds(gateway_workers);
        const double origin1 = ProcessesCpuSeconds(origin_workers);
        if (!t.ok()) {
          report.AddMissing(kSectionWrk, what, t.error().message);
          continue;
        }
        *slot = *t;
        AddThroughput(report, kSectionWrk, what, *t, "req/s");
        const auto requests = static_cast<double>(t->count);
        if (gateway0 < 0 || gateway1 < 0) {
          report.AddMissing(kSectionWrk, what + ": gateway worker CPU per request",
                            "the gateway's worker processes could not be read from /proc");
        } else {
          *cpu_slot = (gateway1 - gateway0) * 1e6 / requests;
          report.AddFigure(kSectionWrk, what + ": gateway worker CPU per proxied request", **cpu_slot, "µs", 1,
                           WorkersNote(gateway_workers, requests));
        }
        if (origin0 < 0 || origin1 < 0) {
          report.AddMissing(kSectionWrk, what + ": origin worker CPU per request",
                            "the origin's worker processes could not be read from /proc");
        } else {
          const double origin_us = (origin1 - origin0) * 1e6 / requests;
          if (conns == o.in_flight) fig.origin_cpu_wrk16 = origin_us;
          report.AddFigure(kSectionWrk, what + ": origin worker CPU per request", origin_us, "µs", 1,
                           WorkersNote(origin_workers, requests));
        }
      }
    }
  }

  if (o.Runs("curl")) {
    std::cerr << "[bench] libcurl loops\n";
    auto ka = CurlKeepAliveLoop(origin_url, files, duration, o.max_count);
    if (ka.ok()) {
      fig.curl_ka = *ka;
      AddThroughput(report, kSectionCurl, "keep-alive, one easy handle", *ka, "req/s");
    } else {
      report.AddMissing(kSectionCurl, "keep-alive, one easy handle", ka.error().message);
    }
    const int cores = std::max(1, CoreCount());
    const std::string many = "keep-alive, " + std::to_string(o.in_flight) + " in flight (" +
                             std::to_string(cores) + " curl multi handles, a thread each)";
    auto ka16 = CurlMultiKeepAliveLoop(origin_url, files, o.in_flight, cores, duration, o.max_count);
    if (ka16.ok()) {
      fig.curl_ka16 = *ka16;
      AddThroughput(report, kSectionCurl, many, *ka16, "req/s");
    } else {
      report.AddMissing(kSectionCurl, many, ka16.error().message);
    }
    auto fresh = CurlNewConnectionLoop(origin_url, files, duration, o.max_count);
    if (fresh.ok()) {
      fig.curl_new = *fresh;
      AddThroughput(report, kSectionCurl, "naive: new handle + connection, cert/key re-read each time", *fresh,
                    "conn/s");
    } else {
      report.AddMissing(kSectionCurl, "naive new connections", fresh.error().message);
    }
  }

  if (o.Runs("stime")) {
    std::cerr << "[bench] openssl s_time\n";
    std::string note;
    auto t = RunSTime(origin.port(), files, o.smoke ? 1 : o.stime_s, &note);
    if (t.ok()) {
      fig.stime = *t;
      report.AddFigure(kSectionSTime, "full handshakes, sequential", t->per_second, "conn/s", 0, note);
    } else {
      report.AddMissing(kSectionSTime, "full handshakes", t.error().message);
    }
  }

  rest::EngineOptions engine_options;  // event loops: one per core, as the plugin has
  rest::RestEngine engine(std::move(engine_options));
  const std::string n = std::to_string(o.in_flight);

  // What every phase that launches the plugin shares; its files go to `dir`.
  auto plugin_options = [&](const std::string& dir) {
    PluginBenchOptions p;
    p.binary = o.plugin;
    p.automtls = o.automtls;
    p.work_dir = work.Path(dir);
    std::filesystem::create_directories(p.work_dir);
    p.origin_port = origin.port();
    p.path = std::string(kPath);
    p.files = files;
    std::istringstream prefix(o.plugin_prefix);
    for (std::string word; prefix >> word;) p.prefix.push_back(word);
    return p;
  };

  if (o.Runs("plugin")) {
    std::cerr << "[bench] plugin " << o.plugin << "\n";
    PluginBenchOptions p = plugin_options("plugin");
    p.warmup = o.smoke ? Nanos(std::chrono::milliseconds(200)) : Nanos(std::chrono::seconds(1));
    p.duration = duration;
    p.max_count = o.max_count;
    p.in_flight = o.in_flight;
    p.fresh = !o.keepalive_only;
    p.origin_pids = origin_workers;
    p.single_flow_duration = o.smoke ? duration : std::max<Nanos>(duration / 4, std::chrono::seconds(2));
    p.single_flow_rounds = o.single_flow_rounds;
    if (o.single_flow_rounds > 0) {
      p.libcurl_round = [&] { return CurlKeepAliveLoop(origin_url, files, p.single_flow_duration, o.max_count); };
    }
    PluginBenchResult r = RunPluginBench(p);
    if (!r.error.empty() && !r.warm_single && !r.warm_many) {
      report.AddMissing(kSectionPlugin, "ExecuteRestStep (all rows)", r.error);
    } else {
      // A run's throughput rows, then the CPU each party spent per step in it.
      auto run_rows = [&](const std::string& what, const std::optional<PluginRun>& run) -> std::optional<Throughput> {
        if (!run) {
          report.AddMissing(kSectionPlugin, what, r.error);
          return std::nullopt;
        }
        auto t = FromLoop(report, kSectionPlugin, what, run->loop, "steps/s");
        if (!t) return t;
        if (run->cpu_us_per_step >= 0) {
          report.AddFigure(kSectionPlugin, what + ": plugin CPU per step (all threads)", run->cpu_us_per_step, "µs", 1,
                           run->client_cpu_us_per_step >= 0
                               ? "load generator (this process) " + FormatNumber(run->client_cpu_us_per_step, 1) +
                                     " µs/step"
                               : "");
        }
        if (run->origin_cpu_us_per_step >= 0) {
          report.AddFigure(kSectionPlugin, what + ": origin worker CPU per step", run->origin_cpu_us_per_step, "µs", 1,
                           WorkersNote(origin_workers, static_cast<double>(t->count)));
        }
        return t;
      };
      run_rows("keep-alive, 1 in flight", r.warm_single);
      fig.plugin16 = run_rows("keep-alive, " + n + " in flight", r.warm_many);
      run_rows("ExecuteSteps stream, 1 call open", r.stream_single);
      fig.stream16 = run_rows("ExecuteSteps stream, " + n + " calls open", r.stream_many);
      auto known = [](double v) { return v >= 0 ? std::optional<double>(v) : std::nullopt; };
      if (fig.plugin16) {
        fig.plugin_cpu16 = known(r.warm_many->cpu_us_per_step);
        fig.plugin_origin_cpu16 = known(r.warm_many->origin_cpu_us_per_step);
      }
      if (fig.stream16) {
        fig.stream_cpu16 = known(r.stream_many->cpu_us_per_step);
        fig.stream_origin_cpu16 = known(r.stream_many->origin_cpu_us_per_step);
      }
      // The refused stream calls: the stream's round trip, and the CPU a call costs the
      // plugin before any step work (alone on its messages, and 16 sharing them).
      for (auto [open, run] : {std::pair{std::string("1"), &r.stream_noop_single}, std::pair{n, &r.stream_noop_many}}) {
        const std::string what = "ExecuteSteps stream round trip alone (a call refused at once), " + open + " open";
        if (!*run) {
          report.AddMissing(kSectionPlugin, what, "the refused calls did not run");
          continue;
        }
        if (open == "1") {
          FromLoop(report, kSectionPlugin, what, (*run)->loop, "calls/s", "transport floor of a stream call, for comparison");
        }
        if ((*run)->cpu_us_per_step < 0) continue;
        (open == "1" ? fig.stream_noop_cpu1 : fig.stream_noop_cpu16) = (*run)->cpu_us_per_step;
        report.AddFigure(kSectionPlugin, what + ": plugin CPU per call (all threads)", (*run)->cpu_us_per_step, "µs", 1,
                         open == "1" ? "gRPC and the dispatch, a message each way per call"
                                     : "gRPC and the dispatch, the calls answered together share messages: " +
                                           FormatNumber((*run)->loop.throughput.per_second, 0) + " calls/s");
      }
      if (r.health_single) {
        FromLoop(report, kSectionPlugin, "gRPC round trip alone (Health/Check), 1 in flight", *r.health_single,
                 "calls/s", "transport floor, for comparison");
      }
      if (o.keepalive_only) {
        // not measured on purpose
      } else if (r.fresh_single) {
        fig.plugin_fresh = FromLoop(report, kSectionPlugin, "Connection: close, 1 in flight", *r.fresh_single,
                                    "steps/s", r.fresh_note);
      } else {
        report.AddMissing(kSectionPlugin, "Connection: close, 1 in flight", r.fresh_error);
      }
    }
    AddSingleFlowRows(report, r, fig);
  }

  if (o.Runs("isolation")) {
    std::cerr << "[bench] a healthy origin while steps hang on a dead one\n";
    const PluginBenchOptions p = plugin_options("isolation");
    const int samples = o.smoke ? 10 : 2000;
    IsolationBenchResult r = RunIsolationBench(p, {8, 64, 256}, samples);
    if (!r.error.empty()) report.AddMissing(kSectionIsolation, "all rows", r.error);
    for (const IsolationRow& row : r.rows) {
      const std::string what =
          "healthy origin, 1 in flight, while " + std::to_string(row.hanging) + " steps hang";
      if (!row.error.empty()) {
        report.AddMissing(kSectionIsolation, what, row.error);
        continue;
      }
      const std::string note = std::to_string(row.samples) + " sequential steps";
      report.AddFigure(kSectionIsolation, what + ": latency p50", row.p50_us, "µs", 0, note);
      report.AddFigure(kSectionIsolation, what + ": latency p99", row.p99_us, "µs", 0, note);
    }
  }

  if (o.Runs("observability")) {
    std::cerr << "[bench] metrics and tracing off / on\n";
    PluginBenchOptions p = plugin_options("observability");
    p.warmup = o.smoke ? Nanos(std::chrono::milliseconds(200)) : Nanos(std::chrono::seconds(1));
    // Many short rounds: the median of 9 resolves a few percent where one long run
    // cannot (this machine's noise is larger than that).
    p.duration = o.smoke ? duration : std::max<Nanos>(duration / 4, std::chrono::seconds(2));
    p.max_count = o.max_count;
    p.in_flight = o.in_flight;
    constexpr int kRounds = 9;
    const std::string what = "CPU per warm step (stream, " + n + " open): metrics + tracing on / off";
    ObservabilityBenchResult r = RunObservabilityBench(p, kRounds);
    if (!r.error.empty()) {
      report.AddMissing(kSectionObservability, "all rows", r.error);
      report.AddRatio(what, std::nullopt, RatioTarget::AtMost(1.03), "×", r.error);
    } else {
      auto rounds = [](const std::vector<double>& v) {
        std::string s;
        for (double x : v) s += (s.empty() ? "" : ", ") + FormatNumber(x, 1);
        return "median of " + std::to_string(v.size()) + " interleaved rounds: " + s;
      };
      report.AddFigure(kSectionObservability, "plugin CPU per step, metrics and tracing off",
                       r.off_median_us, "µs", 1, rounds(r.off_cpu_us));
      report.AddFigure(kSectionObservability, "plugin CPU per step, metrics on",
                       r.metrics_median_us, "µs", 1, rounds(r.metrics_cpu_us));
      report.AddFigure(kSectionObservability,
                       "plugin CPU per step, metrics on + traceparent propagated", r.on_median_us,
                       "µs", 1,
                       rounds(r.on_cpu_us) + "; their endpoints counted " +
                           FormatNumber(r.scraped_http_steps, 0) + " HTTP steps of the " +
                           std::to_string(r.on_steps) + " they ran");
      // Paired by round: the three sides of one round ran back to back, so the machine's
      // drift between rounds cancels out of each round's ratio.
      auto paired = [&](const std::vector<double>& side) {
        std::vector<double> ratios;
        for (size_t i = 0; i < side.size() && i < r.off_cpu_us.size(); ++i) {
          ratios.push_back(Ratio(side[i], r.off_cpu_us[i]));
        }
        return ratios;
      };
      const std::vector<double> on_ratios = paired(r.on_cpu_us), metrics_ratios = paired(r.metrics_cpu_us);
      std::string per_round;
      for (double x : on_ratios) per_round += (per_round.empty() ? "" : ", ") + FormatNumber(x, 3);
      report.AddRatio(what, Median(on_ratios), RatioTarget::AtMost(1.03), "×",
                      "median of the rounds' on / off: " + per_round +
                          "; ratio of the medians: " + FormatNumber(Ratio(r.on_median_us, r.off_median_us), 3) +
                          "×; metrics alone: " + FormatNumber(Median(metrics_ratios), 3) + "×");
    }
  } else {
    report.AddSkippedRatio("CPU per warm step: metrics + tracing on / off", RatioTarget::AtMost(1.03));
  }

  if (o.Runs("engine")) {
    std::cerr << "[bench] engine in-process\n";
    auto creds = CredentialsFromFiles(files);
    if (!creds.ok()) {
      report.AddMissing(kSectionEngine, "all rows", creds.error().ToString());
    } else {
      // Warm-up: a connection per worker.
      RunEngineLoop(engine, origin_url, *creds, o.in_flight, Connections::kKeepAlive,
                    o.smoke ? Nanos(std::chrono::milliseconds(200)) : Nanos(std::chrono::seconds(1)), 0);
      // Each row also says what the identity's partition did meanwhile (engine counters).
      const std::string fingerprint = (*creds).identity->fingerprint;
      auto run = [&](const std::string& what, int in_flight, Connections connections,
                     const std::string& url = std::string(),
                     rest::HttpVersion version = rest::HttpVersion::kDefault) {
        const rest::PartitionStats before = engine.StatsForIdentity(fingerprint);
        LoopOutcome outcome = RunEngineLoop(engine, url.empty() ? origin_url : url, *creds, in_flight,
                                            connections, duration, o.max_count, version);
        const rest::PartitionStats after = engine.StatsForIdentity(fingerprint);
        const std::string counters =
            std::to_string(after.reused_connections - before.reused_connections) + " reused, " +
            std::to_string(after.new_connections - before.new_connections) + " new connections (" +
            std::to_string(after.full_handshakes - before.full_handshakes) + " full handshakes, " +
            std::to_string(after.resumed_sessions - before.resumed_sessions) + " resumed)";
        return FromLoop(report, kSectionEngine, what, outcome, "steps/s", counters);
      };
      run("keep-alive, 1 in flight", 1, Connections::kKeepAlive);
      fig.engine16 = run("keep-alive, " + n + " in flight", o.in_flight, Connections::kKeepAlive);
      if (!o.keepalive_only) {
        fig.engine_fresh1 = run("no reuse (session resumed), 1 in flight", 1, Connections::kNewResumed);
        run("no reuse (session resumed), " + n + " in flight", o.in_flight, Connections::kNewResumed);
        fig.engine_full1 = run("no reuse, no resumption (full handshake), 1 in flight", 1,
                               Connections::kNewFullHandshake);
        run("no reuse, no resumption (full handshake), " + n + " in flight", o.in_flight,
            Connections::kNewFullHandshake);
      }
      // Issue 18: the same origin with `listen ... ssl http2`, h2 (negotiated by ALPN,
      // multiplexed per event loop) beside HTTP/1.1 forced by the step.
      NginxConfig h2_config = origin_config;
      h2_config.http2 = true;
      NginxServer h2_origin(h2_config);
      if (!h2_origin.Start()) {
        report.AddMissing(kSectionEngine, "HTTP/2 rows", "nginx (http2) did not start: " + h2_origin.start_error());
      } else {
        const std::string h2_url = h2_origin.base_url() + std::string(kPath);
        RunEngineLoop(engine, h2_url, *creds, o.in_flight, Connections::kKeepAlive,
                      o.smoke ? Nanos(std::chrono::milliseconds(200)) : Nanos(std::chrono::seconds(1)), 0);
        RunEngineLoop(engine, h2_url, *creds, o.in_flight, Connections::kKeepAlive,
                      o.smoke ? Nanos(std::chrono::milliseconds(200)) : Nanos(std::chrono::seconds(1)), 0,
                      rest::HttpVersion::kHttp11);
        run("HTTP/2 origin, h2, keep-alive, 1 in flight", 1, Connections::kKeepAlive, h2_url);
        run("HTTP/2 origin, h2, keep-alive, " + n + " in flight", o.in_flight, Connections::kKeepAlive,
            h2_url);
        run("HTTP/2 origin, HTTP/1.1 forced, keep-alive, 1 in flight", 1, Connections::kKeepAlive,
            h2_url, rest::HttpVersion::kHttp11);
        run("HTTP/2 origin, HTTP/1.1 forced, keep-alive, " + n + " in flight", o.in_flight,
            Connections::kKeepAlive, h2_url, rest::HttpVersion::kHttp11);
      }
    }
  }

  if (o.Runs("formats")) {
    std::cerr << "[bench] identity formats\n";
    FormatsOptions f;
    f.work_dir = work.Path("formats");
    std::filesystem::create_directories(f.work_dir);
    f.origin_port = origin.port();
    f.path = std::string(kPath);
    f.pem = files;
    f.pem_chain_file = testing::PkiPath("client/rsa.chain.pem");
    f.p12_file = testing::PkiPath("p12/rsa-modern.p12");
    f.p12_password = std::string(testing::pki::kP12Password);
    if (o.smoke) {
      f.rounds = 1;
      f.calls_per_round = 10;
      f.resolves = 100;
      f.jks_file = testing::PkiPath("jks/client.jks");
      f.jks_store_password = std::string(testing::pki::kStorePassword);
      f.jks_key_password = std::string(testing::pki::kJksKeyPassword);
    }
    FormatsResult r = RunFormatsBench(engine, f);
    for (const auto& c : r.formats) {
      const std::string what = c.format + " (" + c.source + ")";
      report.AddFigure(kSectionFormats, what + ": import (Create)", c.import_ms, "ms", 1);
      report.AddFigure(kSectionFormats, what + ": first call (identity built)", c.first_call_us, "µs", 0);
      if (c.call.count > 0) {
        report.AddFigure(kSectionFormats, what + ": resolve + execute per call, p50", c.call.p50_us, "µs", 0,
                         std::to_string(c.call.count) + " calls, mean " + FormatNumber(c.call.mean_us, 0) + " µs");
        report.AddFigure(kSectionFormats, what + ": ResolveForCall alone, p50", c.resolve.p50_us, "µs", 2,
                         "p99 " + FormatNumber(c.resolve.p99_us, 2) + " µs");
      }
    }
    if (!r.error.empty()) {
      report.AddMissing(kSectionFormats, "per-call cost", r.error);
    }
    auto find = [&](const std::string& name) -> const FormatCost* {
      for (const auto& c : r.formats) {
        if (c.format == name && c.call.count > 0) return &c;
      }
      return nullptr;
    };
    if (const FormatCost* pem = find("PEM")) {
      if (const FormatCost* p12 = find("PKCS#12")) {
        fig.p12_ratio = Ratio(p12->call.p50_us, pem->call.p50_us);
        fig.p12_resolve_ratio = Ratio(p12->resolve.p50_us, pem->resolve.p50_us);
      }
      if (const FormatCost* jks = find("JKS")) {
        fig.jks_ratio = Ratio(jks->call.p50_us, pem->call.p50_us);
        fig.jks_resolve_ratio = Ratio(jks->resolve.p50_us, pem->resolve.p50_us);
      }
    }
  }

  if (o.Runs("store")) {
    const std::string kSectionStore = "6 store of " + std::to_string(o.store_entries) + " certificates";
    const std::string data_dir = o.out_dir + "/store-" + std::to_string(o.store_entries);
    std::cerr << "[bench] store of " << o.store_entries << " certificates in " << data_dir << "\n";
    std::filesystem::create_directories(o.out_dir);
    const std::vector<std::string> common = {"--data-dir", data_dir, "--entries", std::to_string(o.store_entries),
                                             "--cert", testing::PkiPath("client/ec256.pem"), "--key",
                                             testing::PkiPath("client/ec256.key.pem"), "--lookups",
                                             std::to_string(o.lookups)};
    std::vector<std::string> gen_args = {"store-generate"};
    gen_args.insert(gen_args.end(), common.begin(), common.end());
    auto gen = RunSelf(gen_args, work.Path("store-generate.out"), std::chrono::minutes(60));
    if (gen.count("error")) {
      report.AddMissing(kSectionStore, "all rows", "generating: " + gen["error"]);
    } else {
      if (Num(gen, "generated") > 0) {
        report.AddFigure(kSectionStore, "generation (CreateMany, batches of 1,000), this run", Num(gen, "generate_s"),
                         "s", 1, "one-off; cached in " + data_dir);
      } else {
        report.AddFigure(kSectionStore, "generation", 0, "s", 0, "cached from an earlier run in " + data_dir);
      }
      std::vector<std::string> args = {"store-measure"};
      args.insert(args.end(), common.begin(), common.end());
      auto m = RunSelf(args, work.Path("store-measure.out"), std::chrono::minutes(20));
      if (m.count("error")) {
        report.AddMissing(kSectionStore, "measurement", m["error"]);
      } else {
        const double startup = Num(m, "first_open_s");
        fig.store_startup_s = startup;
        fig.store_resolve_p99_us = Num(m, "snapshot_resolve_p99_us");
        fig.store_hot_p99_us = Num(m, "resolve_for_call_p99_us");
        report.AddFigure(kSectionStore, "entries", Num(m, "entries"), "", 0);
        // Where the first Open's time went: on the CPU, and what is left (waiting for the
        // disk when the file is not in the page cache, or for the CPU on a busy machine).
        report.AddFigure(kSectionStore, "startup: CertificateStore::Open, first in a fresh process", startup, "s", 3,
                         "CPU user " + FormatNumber(Num(m, "first_open_user_s"), 3) + " s, system " +
                             FormatNumber(Num(m, "first_open_sys_s"), 3) + " s, " + m["first_open_minor_faults"] +
                             " page faults");
        report.AddFigure(kSectionStore, "startup: Open again, median", Num(m, "reopen_median_s"), "s", 3,
                         "each: " + m["reopen_s"] + " s");
        report.AddFigure(kSectionStore, "resolve (snapshot, random hosts): p50", Num(m, "snapshot_resolve_p50_us"),
                         "µs", 2, m["snapshot_resolve_count"] + " lookups");
        report.AddFigure(kSectionStore, "resolve (snapshot, random hosts): p99", Num(m, "snapshot_resolve_p99_us"),
                         "µs", 2,
                         "as a step resolves (no explanation of a success); median of 3 passes: " +
                             m["snapshot_resolve_p99_passes_us"] + " µs");
        report.AddFigure(kSectionStore, "resolve with the explanation (ResolveCertificate API): p50",
                         Num(m, "explained_resolve_p50_us"), "µs", 2,
                         "p99 " + FormatNumber(Num(m, "explained_resolve_p99_us"), 2) + " µs");
        const std::string hot = "ResolveForCall, cached identities (" +
                                std::to_string(std::min<size_t>(1000, o.store_entries)) + " hosts): ";
        report.AddFigure(kSectionStore, hot + "p50",
                         Num(m, "resolve_for_call_p50_us"), "µs", 2, m["resolve_for_call_count"] + " lookups");
        report.AddFigure(kSectionStore, hot + "p99",
                         Num(m, "resolve_for_call_p99_us"), "µs", 2);
        report.AddFigure(kSectionStore, "ResolveForCall, first use of an entry (decrypt + parse): p50",
                         Num(m, "cold_resolve_for_call_p50_us"), "µs", 0);
        const double before = Num(m, "rss_before_kib"), open = Num(m, "rss_open_kib"), after = Num(m, "rss_after_kib");
        report.AddFigure(kSectionStore, "resident memory (VmRSS) before Open", before / 1024, "MiB", 1);
        report.AddFigure(kSectionStore, "resident memory after Open", open / 1024, "MiB", 1,
                         "+" + FormatNumber((open - before) / 1024, 1) + " MiB for the store");
        const double entry_count = Num(m, "entries");
        if (before >= 0 && open >= 0 && entry_count > 0) {
          fig.store_kib_per_entry = (open - before) / entry_count;
          report.AddFigure(kSectionStore, "resident memory per entry (after Open - before)",
                           *fig.store_kib_per_entry * 1024, "bytes", 0);
          const double heap = Num(m, "heap_open_kib") - Num(m, "heap_before_kib");
          report.AddFigure(kSectionStore, "of which malloc'd and live (mallinfo2), per entry", heap * 1024 / entry_count,
                           "bytes", 0,
                           "of that, the EntryMetadata struct alone: " + m["entry_struct_bytes"] +
                               " bytes; heap blocks of its leaf certificate facts " +
                               FormatNumber(Num(m, "entry_bytes_certificate"), 0) + ", bindings " +
                               FormatNumber(Num(m, "entry_bytes_bindings"), 0) + ", chain subjects " +
                               FormatNumber(Num(m, "entry_bytes_chain_subjects"), 0) + ", other strings " +
                               FormatNumber(Num(m, "entry_bytes_strings") + Num(m, "entry_bytes_trusted") +
                                                Num(m, "entry_bytes_attributes"),
                                            0) +
                               "; the snapshot's index and the rest " +
                               FormatNumber(Num(m, "entry_bytes_index_and_rest"), 0) +
                               " bytes; the rest of the RSS: freed pages the allocator kept, SQLite's page cache, code");
        }
        report.AddFigure(kSectionStore, "resident memory after the lookups", after / 1024, "MiB", 1,
                         "includes " + FormatNumber(static_cast<double>(o.lookups) * 64 / 1048576.0, 0) +
                             " MiB of prepared lookup requests and the cached identities");
        for (const char* k : {"snapshot_resolve_failures", "explained_resolve_failures", "resolve_for_call_failures",
                              "cold_resolve_for_call_failures"}) {
          if (Num(m, k) > 0) report.AddMissing(kSectionStore, k, m[k] + " lookups failed");
        }
      }
    }
  }

  if (o.Runs("cluster")) {
    const std::string kSectionCluster =
        "7 several plugins on one PostgreSQL database, " + std::to_string(o.store_entries) + " certificates";
    const std::string data_dir = o.out_dir + "/store-" + std::to_string(o.store_entries);
    std::cerr << "[bench] the same store in PostgreSQL (a server of the run's own)\n";
    std::filesystem::create_directories(o.out_dir);
    const std::vector<std::string> common = {"--data-dir", data_dir, "--entries", std::to_string(o.store_entries),
                                             "--cert", testing::PkiPath("client/ec256.pem"), "--key",
                                             testing::PkiPath("client/ec256.key.pem"), "--lookups",
                                             std::to_string(o.lookups)};
    std::vector<std::string> gen_args = {"store-generate"};  // reuses the store phase's
    gen_args.insert(gen_args.end(), common.begin(), common.end());
    auto gen = RunSelf(gen_args, work.Path("cluster-generate.out"), std::chrono::minutes(60));
    testing::PrivatePostgres pg;
    if (gen.count("error")) {
      report.AddMissing(kSectionCluster, "all rows", "generating: " + gen["error"]);
    } else if (!pg.ok()) {
      report.AddMissing(kSectionCluster, "all rows", "PostgreSQL: " + pg.error());
    } else {
      std::vector<std::string> with_store = common;
      with_store.insert(with_store.end(), {"--store", pg.conninfo(), "--imports", o.smoke ? "100" : "1000",
                                           "--changes", o.smoke ? "10" : "200"});
      auto run = [&](const char* sub, std::chrono::minutes limit) {
        std::vector<std::string> args = {sub};
        args.insert(args.end(), with_store.begin(), with_store.end());
        return RunSelf(args, work.Path(std::string(sub) + ".out"), limit);
      };
      auto load = run("cluster-load", std::chrono::minutes(30));
      auto m = load.count("error") ? load : run("store-measure", std::chrono::minutes(20));
      auto c = m.count("error") ? m : run("cluster-measure", std::chrono::minutes(20));
      if (c.count("error")) {
        report.AddMissing(kSectionCluster, "measurement", c["error"]);
      } else {
        fig.cluster_startup_s = Num(m, "first_open_s");
        fig.cluster_resolve_p99_us = Num(m, "snapshot_resolve_p99_us");
        fig.cluster_propagation_p99_ms = Num(c, "propagation_p99_ms");
        report.AddFigure(kSectionCluster, "wsstep store copy from the SQLite store", Num(load, "copy_s"), "s", 1,
                         load["copied"] + " entries, one transaction");
        report.AddFigure(kSectionCluster, "startup: CertificateStore::Open, first in a fresh process",
                         Num(m, "first_open_s"), "s", 3);
        report.AddFigure(kSectionCluster, "resolve (snapshot, random hosts): p99", Num(m, "snapshot_resolve_p99_us"),
                         "µs", 2, m["snapshot_resolve_count"] + " lookups");
        report.AddFigure(kSectionCluster, "imports into PostgreSQL (CreateMany, batches of 100)",
                         Num(c, "import_pg_per_s"), "entries/s", 0);
        report.AddFigure(kSectionCluster, "imports into SQLite, same batches", Num(c, "import_sqlite_per_s"),
                         "entries/s", 0);
        report.AddFigure(kSectionCluster, "a change through one store until another store's feed has it: p50",
                         Num(c, "propagation_p50_ms"), "ms", 2, c["propagation_count"] + " changes");
        report.AddFigure(kSectionCluster, "the same: p99", Num(c, "propagation_p99_ms"), "ms", 2);
        report.AddFigure(kSectionCluster, "the Update call through the first store itself: p50",
                         Num(c, "local_update_p50_ms"), "ms", 2,
                         "p99 " + FormatNumber(Num(c, "local_update_p99_ms"), 2) +
                             " ms; a change shares the unchanged entries and re-indexes them");
        if (Num(c, "propagation_missed") > 0) {
          report.AddMissing(kSectionCluster, "propagation", c["propagation_missed"] + " changes not seen in 10 s");
        }
      }
    }
  }

  // ---- ratios
  auto Join = [](const std::vector<std::string>& parts) {
    std::string out;
    for (const auto& p : parts) {
      if (p.empty()) continue;
      out += (out.empty() ? "" : "; ") + p;
    }
    return out;
  };
  const std::string engine_n = "engine in-process: ";
  auto note_ratio = [](const std::string& label, std::optional<double> v) {
    return v ? label + FormatNumber(*v, 2) + "×" : std::string();
  };
  // Warm steps: CPU per step against the gateway's CPU per proxied request (PRODUCT.md
  // §5: on 2 shared cores throughput cannot compare a gRPC plugin with wrk driving a
  // gateway; CPU per request can). Throughput ratios go in the note.
  const std::string warm_what = "warm CPU per step, " + n + " in flight: plugin (all threads) / nginx gateway workers (wrk -c" + n + ")";
  if (!o.Runs("plugin") || !o.Runs("wrk")) {
    report.AddSkippedRatio(warm_what, RatioTarget::AtMost(1.0));
  } else {
    std::optional<double> unary, stream;
    if (fig.plugin_cpu16 && fig.gateway_cpu16) unary = Ratio(*fig.plugin_cpu16, *fig.gateway_cpu16);
    if (fig.stream_cpu16 && fig.gateway_cpu16) stream = Ratio(*fig.stream_cpu16, *fig.gateway_cpu16);
    const bool stream_best = stream && (!unary || *stream <= *unary);
    std::string way;
    if (unary || stream) way = stream_best ? "the better way: ExecuteSteps stream" : "the better way: ExecuteRestStep";
    std::string cpu;
    if (fig.gateway_cpu16) cpu = "gateway " + FormatNumber(*fig.gateway_cpu16, 1) + " µs/request";
    if (fig.stream_cpu16) cpu += "; stream " + FormatNumber(*fig.stream_cpu16, 1) + " µs/step";
    if (fig.plugin_cpu16) cpu += "; ExecuteRestStep " + FormatNumber(*fig.plugin_cpu16, 1) + " µs/step";
    // What gRPC and the dispatch cost a call before any step work (a refused call at the
    // same concurrency): the rest of a stream step's CPU is the step's own.
    if (fig.stream_noop_cpu1 && fig.stream_noop_cpu16) {
      cpu += "; a refused stream call (gRPC and the dispatch alone) " + FormatNumber(*fig.stream_noop_cpu1, 1) +
             " µs with a message each way, " + FormatNumber(*fig.stream_noop_cpu16, 1) + " µs with " + n +
             " sharing messages";
    }
    // The origin does the same work whoever calls it: shown so the reader can check.
    std::string origin;
    if (fig.origin_cpu_wrk16) origin = "origin workers " + FormatNumber(*fig.origin_cpu_wrk16, 1) + " µs/request under the gateway";
    const std::optional<double> origin_plugin = stream_best ? fig.stream_origin_cpu16 : fig.plugin_origin_cpu16;
    if (origin_plugin) origin += ", " + FormatNumber(*origin_plugin, 1) + " µs/step under the plugin";
    std::optional<double> tput_unary, tput_stream, tput_engine, ceiling;
    if (fig.plugin16 && fig.wrk16) tput_unary = Ratio(fig.plugin16->per_second, fig.wrk16->per_second);
    if (fig.stream16 && fig.wrk16) tput_stream = Ratio(fig.stream16->per_second, fig.wrk16->per_second);
    if (fig.engine16 && fig.wrk16) tput_engine = Ratio(fig.engine16->per_second, fig.wrk16->per_second);
    // What libcurl does alone at the same concurrency bounds anything built on it here.
    if (fig.curl_ka16 && fig.wrk16) ceiling = Ratio(fig.curl_ka16->per_second, fig.wrk16->per_second);
    report.AddRatio(warm_what, stream_best ? stream : unary, RatioTarget::AtMost(1.0), "×",
                    Join({way, note_ratio("ExecuteSteps stream: ", stream), note_ratio("ExecuteRestStep: ", unary), cpu,
                          origin,
                          "steps/s ÷ gateway req/s (not targeted): " +
                              Join({note_ratio("stream ", tput_stream), note_ratio("unary ", tput_unary),
                                    note_ratio(engine_n, tput_engine), note_ratio("libcurl alone ", ceiling)})}));
  }
  // Single-flow latency: the plugin's p50 against its floor, the median of interleaved
  // rounds (AddSingleFlowRows), so one noisy round cannot decide it.
  const std::string single_what = "single-flow p50: plugin / floor (libcurl keep-alive p50 + empty stream round trip p50)";
  if (!o.Runs("plugin") || o.single_flow_rounds == 0) {
    report.AddSkippedRatio(single_what, RatioTarget::AtMost(1.15));
  } else if (fig.single_stream_ratios.empty()) {
    report.AddRatio(single_what, std::nullopt, RatioTarget::AtMost(1.15), "×",
                    fig.single_flow_error.empty() ? "no round ran" : fig.single_flow_error);
  } else {
    const double stream = Median(fig.single_stream_ratios);
    const double unary = Median(fig.single_unary_ratios);
    auto list = [](const std::vector<double>& v) {
      std::string out;
      for (double x : v) out += (out.empty() ? "" : ", ") + FormatNumber(x, 2);
      return out;
    };
    report.AddRatio(single_what, std::min(stream, unary), RatioTarget::AtMost(1.15), "×",
                    std::string(stream <= unary ? "the better way: ExecuteSteps stream" : "the better way: ExecuteRestStep") +
                        "; median of " + std::to_string(fig.single_stream_ratios.size()) +
                        " interleaved rounds; stream " + FormatNumber(stream, 2) + "× (" + list(fig.single_stream_ratios) +
                        "); ExecuteRestStep " + FormatNumber(unary, 2) + "× (" + list(fig.single_unary_ratios) + ")");
  }
  // New connections. The proto cannot ask the plugin for a new connection per step, so
  // the engine's reuse_connections=false figure stands for wsstep: a new TCP and TLS
  // connection per step that resumes the identity's TLS session, as the plugin's own
  // new connections do. The full-handshake figure is given beside it.
  const std::string fresh_how = "wsstep = engine with reuse_connections=false (session resumed; the proto has no such switch)";
  struct NewConnectionBaseline {
    const char* name;
    const char* phase;
    const std::optional<Throughput>* figure;
    double target;
  };
  for (const NewConnectionBaseline& b : {NewConnectionBaseline{"naive libcurl", "curl", &fig.curl_new, 3.0},
                                         NewConnectionBaseline{"openssl s_time -new", "stime", &fig.stime, 2.0}}) {
    const std::string what = std::string("new connections/s: wsstep / ") + b.name;
    if (!o.Runs("engine") || !o.Runs(b.phase) || o.keepalive_only) {
      report.AddSkippedRatio(what, RatioTarget::AtLeast(b.target));
      continue;
    }
    std::optional<double> v, full, p;
    if (fig.engine_fresh1 && *b.figure) v = Ratio(fig.engine_fresh1->per_second, (*b.figure)->per_second);
    if (fig.engine_full1 && *b.figure) full = Ratio(fig.engine_full1->per_second, (*b.figure)->per_second);
    if (fig.plugin_fresh && *b.figure) p = Ratio(fig.plugin_fresh->per_second, (*b.figure)->per_second);
    std::string how = fresh_how;
    if (full) how += "; engine with full handshakes: " + FormatNumber(*full, 2) + "×";
    if (p) how += "; plugin with Connection: close (resumed): " + FormatNumber(*p, 2) + "×";
    report.AddRatio(what, v, RatioTarget::AtLeast(b.target), "×", how);
  }
  // Formats.
  if (!o.Runs("formats")) {
    report.AddSkippedRatio("per call: PKCS#12 / PEM", RatioTarget::About(1.0, 0.1));
    report.AddSkippedRatio("per call: JKS / PEM", RatioTarget::About(1.0, 0.1));
  } else {
    report.AddRatio("per call: PKCS#12 / PEM (resolve + execute, p50)", fig.p12_ratio, RatioTarget::About(1.0, 0.1),
                    "×", note_ratio("ResolveForCall alone: ", fig.p12_resolve_ratio));
    report.AddRatio("per call: JKS / PEM (resolve + execute, p50)", fig.jks_ratio, RatioTarget::About(1.0, 0.1), "×",
                    note_ratio("ResolveForCall alone: ", fig.jks_resolve_ratio));
  }
  // Store.
  const std::string entries = std::to_string(o.store_entries);
  if (!o.Runs("store")) {
    report.AddSkippedRatio(entries + " certificates: startup", RatioTarget::AtMost(0.5), "s");
    report.AddSkippedRatio(entries + " certificates: resolve p99", RatioTarget::AtMost(2.0), "µs");
    report.AddSkippedRatio(entries + " certificates: resident memory per entry", RatioTarget::AtMost(0.5), "KiB");
  } else {
    report.AddRatio(entries + " certificates: startup (Open)", fig.store_startup_s, RatioTarget::AtMost(0.5), "s");
    report.AddRatio(entries + " certificates: resolve p99 (snapshot, random hosts)", fig.store_resolve_p99_us,
                    RatioTarget::AtMost(2.0), "µs",
                    fig.store_hot_p99_us ? "ResolveForCall (cached identity) p99: " +
                                               FormatNumber(*fig.store_hot_p99_us, 2) + " µs"
                                         : "");
    report.AddRatio(entries + " certificates: resident memory per entry (VmRSS after Open - before)",
                    fig.store_kib_per_entry, RatioTarget::AtMost(0.5), "KiB");
  }

  // Several plugins on PostgreSQL.
  if (!o.Runs("cluster")) {
    report.AddSkippedRatio(entries + " certificates in PostgreSQL: startup", RatioTarget::AtMost(2.0), "s");
    report.AddSkippedRatio("resolve p99: PostgreSQL / SQLite", RatioTarget::About(1.0, 0.25));
    report.AddSkippedRatio("a change reaches the other plugin: p99", RatioTarget::AtMost(1000), "ms");
  } else {
    report.AddRatio(entries + " certificates in PostgreSQL: startup (Open)", fig.cluster_startup_s,
                    RatioTarget::AtMost(2.0), "s");
    std::optional<double> resolve_ratio;
    if (fig.cluster_resolve_p99_us && fig.store_resolve_p99_us && *fig.store_resolve_p99_us > 0) {
      resolve_ratio = *fig.cluster_resolve_p99_us / *fig.store_resolve_p99_us;
    }
    report.AddRatio("resolve p99: PostgreSQL / SQLite (both served by the snapshot)", resolve_ratio,
                    RatioTarget::About(1.0, 0.25), "×",
                    o.Runs("store") ? "" : "run the store phase too for the SQLite side");
    report.AddRatio("a change reaches the other plugin: p99", fig.cluster_propagation_p99_ms,
                    RatioTarget::AtMost(1000), "ms");
  }

  report.SetFact("load average (1 min) at end", FormatNumber(LoadAverage1(), 2));
  std::cout << report.Text() << std::flush;

  if (Stopping()) {
    // A partial table must not replace the last complete one (the README carries it).
    std::cerr << "wsstep_bench: interrupted; the Markdown table was not written\n";
    return 1;
  }
  const std::string md_path = !o.markdown.empty() ? o.markdown : o.out_dir + (o.smoke ? "/smoke.md" : "/latest.md");
  std::filesystem::create_directories(std::filesystem::path(md_path).parent_path());
  std::ofstream md(md_path);
  md << report.Markdown();
  md.close();
  if (!md) {
    std::cerr << "wsstep_bench: cannot write " << md_path << "\n";
    return 1;
  }
  std::cerr << "[bench] table written to " << md_path << "\n";
  if (!report.complete()) {
    std::cerr << "wsstep_bench: " << report.missing() << " figure(s) could not be measured (see NOT MEASURED)\n";
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace wsstep::bench

int main(int argc, char** argv) {
  using namespace wsstep::bench;
  InstallStopHandlers();
  SelfExe();
  Options o;
  StoreScaleOptions store;
  CLI::App app{"wsstep benchmark harness (PRODUCT.md §5); see scripts/bench.sh"};
  app.add_option("--pki", o.pki, "generated test PKI (tests/pki/make_pki.sh); default $WSSTEP_TEST_PKI");
  app.add_option("--plugin", o.plugin, "the wsstep plugin binary")->capture_default_str();
  app.add_option("--out-dir", o.out_dir, "store cache and the Markdown table")->capture_default_str();
  app.add_option("--markdown", o.markdown, "Markdown output (default <out-dir>/latest.md)");
  app.add_option("--duration", o.duration_s, "seconds per throughput figure")->capture_default_str();
  app.add_option("--stime", o.stime_s, "seconds of openssl s_time")->capture_default_str();
  app.add_option("--in-flight", o.in_flight, "the concurrent measurements' in-flight count")->capture_default_str();
  app.add_option("--store-entries", o.store_entries, "entries of the large store")->capture_default_str();
  app.add_option("--lookups", o.lookups, "timed resolutions in the large store")->capture_default_str();
  app.add_flag("--smoke", o.smoke, "10 requests each, tiny store: checks the harness, measures nothing");
  app.add_flag("--automtls", o.automtls, "secure the plugin channel with go-plugin AutoMTLS");
  app.add_option("--single-flow-rounds", o.single_flow_rounds,
                 "interleaved single-flow rounds of the plugin phase; 0: none, and no second plugin (profiling)")
      ->capture_default_str();
  app.add_flag("--keepalive-only", o.keepalive_only,
               "skip the new-connection rows (e.g. to profile only the warm per-step path)");
  app.add_option("--plugin-prefix", o.plugin_prefix,
                 "run every plugin the plugin, observability and isolation phases launch under this command (absolute path first), e.g. \"/usr/bin/valgrind --tool=callgrind\"");
  app.add_option("--only", o.only,
                 "comma-separated phases: wrk,curl,stime,plugin,observability,isolation,engine,formats,store,cluster");

  for (const char* name : {"store-generate", "store-measure", "store-open", "cluster-load", "cluster-measure"}) {
    CLI::App* sub = app.add_subcommand(name, "child process of the store and cluster phases");
    sub->add_option("--data-dir", store.data_dir)->required();
    sub->add_option("--entries", store.entries);
    sub->add_option("--cert", store.cert_file);
    sub->add_option("--key", store.key_file);
    sub->add_option("--lookups", store.lookups);
    sub->add_option("--store", store.store);
    sub->add_option("--imports", store.imports);
    sub->add_option("--changes", store.changes);
  }
  CLI11_PARSE(app, argc, argv);

  if (!o.pki.empty()) {
    // Absolute: nginx resolves relative paths against its own prefix directory.
    setenv("WSSTEP_TEST_PKI", std::filesystem::absolute(o.pki).c_str(), 1);
  }
  if (app.got_subcommand("store-generate")) return StoreGenerateMain(store);
  if (app.got_subcommand("store-measure")) return StoreMeasureMain(store);
  if (app.got_subcommand("store-open")) return StoreOpenMain(store);
  if (app.got_subcommand("cluster-load")) return ClusterLoadMain(store);
  if (app.got_subcommand("cluster-measure")) return ClusterMeasureMain(store);

  const std::set<std::string> all = {"wrk",    "curl",    "stime", "plugin",    "observability",
                                     "engine", "formats", "store", "isolation", "cluster"};
  if (o.only.empty()) {
    o.phases = all;
  } else {
    std::stringstream list(o.only);
    for (std::string p; std::getline(list, p, ',');) {
      if (all.count(p) == 0) {
        std::cerr << "wsstep_bench: --only: unknown phase '" << p << "'\n";
        return 2;
      }
      o.phases.insert(p);
    }
  }
  if (o.smoke) {
    o.duration_s = 2;
    o.max_count = 10;
    o.store_entries = std::min<size_t>(o.store_entries, 200);
    o.lookups = std::min<size_t>(o.lookups, 2000);
  }
  if (o.duration_s < 1 || o.stime_s < 1 || o.in_flight < 1 || o.store_entries < 1 || o.lookups < 1 ||
      o.single_flow_rounds < 0) {
    std::cerr << "wsstep_bench: durations, --in-flight, --store-entries and --lookups must be positive, "
                 "--single-flow-rounds not negative\n";
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int code = RunAll(o);
  curl_global_cleanup();
  return code;
}

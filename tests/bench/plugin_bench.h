// wsstep end to end, as a workflow host sees it: launches the real `wsstep` binary through
// the go-plugin handshake (plugin/cli/host_launcher.h), imports the client certificate and
// the trust bundle over CertificateService, binds them to localhost:<origin port>, then
// drives ExecuteRestStep (verification on) from a closed-loop gRPC client (callback API,
// N calls in flight on one channel).
#ifndef WSSTEP_TESTS_BENCH_PLUGIN_BENCH_H_
#define WSSTEP_TESTS_BENCH_PLUGIN_BENCH_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "tests/bench/baselines.h"
#include "tests/bench/closed_loop.h"

namespace wsstep::bench {

struct PluginBenchOptions {
  std::string binary;           // the `wsstep` executable
  // A command the binary runs under, e.g. {"valgrind", "--tool=callgrind"} to profile
  // the plugin's per-step path; empty: run it directly.
  std::vector<std::string> prefix;
  bool automtls = false;        // secure the gRPC channel as go-plugin AutoMTLS does
  std::string work_dir;         // the plugin's data directory and stderr log go here
  uint16_t origin_port = 0;     // nginx mTLS origin on 127.0.0.1
  std::string path = "/bench";  // the origin's fixed response
  TlsFiles files;               // client certificate, key and trust bundle to import
  Nanos warmup = std::chrono::seconds(1);
  Nanos duration = std::chrono::seconds(8);
  uint64_t max_count = 0;       // per measurement; 0 = duration only
  int in_flight = 16;           // the concurrent measurement (the single-flow one is 1)
  bool fresh = true;            // also measure one new connection per step
  // The origin's nginx worker processes: their CPU time is sampled around each measured
  // run as the plugin's is, so the table shows the origin's share per step beside it.
  std::vector<int> origin_pids;
  // Single flow (PRODUCT.md §5): `single_flow_rounds` interleaved rounds, each running
  // libcurl's keep-alive loop (`libcurl_round`, the caller's), then the plugin at 1 in
  // flight (ExecuteRestStep, an ExecuteSteps stream), the empty stream round trip, and
  // the same two ways on a second plugin launched with WSSTEP_SPIN_WAIT_US=0 (what the
  // spin costs and saves), each for `single_flow_duration`. No rounds without
  // `libcurl_round`.
  int single_flow_rounds = 3;
  Nanos single_flow_duration = std::chrono::seconds(2);
  std::function<Result<Throughput>()> libcurl_round;
};

// One measured run of the plugin: its loop, and the CPU time per step of the plugin
// (all threads), of this process (the load generator) and of the origin's workers;
// each negative if unknown.
struct PluginRun {
  LoopOutcome loop;
  double cpu_us_per_step = -1;
  double client_cpu_us_per_step = -1;
  double origin_cpu_us_per_step = -1;
};

// One round of the single-flow comparison (see PluginBenchOptions::libcurl_round).
struct SingleFlowRound {
  Throughput libcurl;       // direct libcurl keep-alive, one easy handle
  PluginRun unary;          // ExecuteRestStep, 1 in flight
  PluginRun stream;         // ExecuteSteps, 1 call open
  Throughput empty_stream;  // a stream call refused at once: the gRPC round trip alone
  PluginRun unary_no_spin;  // the same on the plugin launched with WSSTEP_SPIN_WAIT_US=0
  PluginRun stream_no_spin;
};

struct PluginBenchResult {
  // Why nothing could be measured (launch, import or the first step failed); "" if fine.
  std::string error;
  std::optional<PluginRun> warm_single;  // ExecuteRestStep keep-alive, 1 in flight
  std::optional<PluginRun> warm_many;    // ExecuteRestStep keep-alive, in_flight
  // The same steps as calls on one ExecuteSteps stream (1 and in_flight open at once).
  std::optional<PluginRun> stream_single;
  std::optional<PluginRun> stream_many;
  // A stream call that the plugin refuses at once (neither rest nor soap), 1 open: the
  // stream's own round trip, so the table can tell transport cost from step cost; with
  // the plugin's CPU per call: what gRPC and the server's dispatch cost a call that has
  // a message each way to itself.
  std::optional<PluginRun> stream_noop_single;
  // The same refused calls, in_flight open at once: answered together, so they share
  // messages, and the CPU per call shows what batching saves.
  std::optional<PluginRun> stream_noop_many;
  // grpc.health.v1.Health/Check, 1 in flight: the gRPC round trip alone, so the table
  // can tell transport cost from step cost.
  std::optional<LoopOutcome> health_single;
  // One new connection per step: the proto has no "no reuse" switch yet, so the step
  // sends "Connection: close" and the origin closes after answering; the engine may
  // resume the TLS session on the next connection (`fresh_note` says how many did).
  std::optional<LoopOutcome> fresh_single;
  std::string fresh_error;
  std::string fresh_note;
  // The single-flow rounds, in the order they ran; `single_flow_error` says why there
  // are fewer than asked for ("" when all ran).
  std::vector<SingleFlowRound> single_flow;
  std::string single_flow_error;
  std::string log_path;  // the plugin's stderr
};

PluginBenchResult RunPluginBench(const PluginBenchOptions& options);

// What metrics and tracing cost a warm step (PRODUCT.md §5: at most 3%). Three sides: a
// plain plugin, one with Prometheus metrics on (WSSTEP_METRICS_LISTEN), and one with
// metrics and trace propagation on (WSSTEP_PROPAGATE_TRACE_CONTEXT) whose stream carries
// a host traceparent, so that every step is traced and sends a child traceparent. Each
// round launches each side's plugin anew (in a rotating order), warms it and drives
// `in_flight` stream calls for `duration`; the plugin's CPU per step (all threads,
// /proc) is taken per round.
struct ObservabilityBenchResult {
  std::string error;  // "" when every round ran
  std::vector<double> off_cpu_us, metrics_cpu_us, on_cpu_us;  // CPU µs per step, per round
  double off_median_us = -1;
  double metrics_median_us = -1;
  double on_median_us = -1;
  uint64_t on_steps = 0;            // steps the observed plugins ran (launch, warm-up, measured)
  double scraped_http_steps = -1;   // their wsstep_steps_total, scraped after each run
};
ObservabilityBenchResult RunObservabilityBench(const PluginBenchOptions& options, int rounds);

// Issue 20: a healthy origin's step latency while N steps hang on a dead origin (one that
// accepts connections and never answers: tests/support/faulty_origin.h). For each N in
// turn, N ExecuteRestStep calls to the dead origin are started and left hanging (every one
// has reached the origin before anything is measured), then `samples` warm steps to the
// healthy origin run one after another; then the hanging calls are cancelled. The plugin
// runs with max_in_flight_steps above the largest N, so the hanging steps are admitted.
struct IsolationRow {
  int hanging = 0;
  std::string error;  // "" when measured
  double p50_us = -1;
  double p99_us = -1;
  size_t samples = 0;
};
struct IsolationBenchResult {
  std::string error;  // the plugin could not be started
  std::vector<IsolationRow> rows;
};
IsolationBenchResult RunIsolationBench(const PluginBenchOptions& options,
                                       const std::vector<int>& hanging, int samples);

}  // namespace wsstep::bench

#endif  // WSSTEP_TESTS_BENCH_PLUGIN_BENCH_H_

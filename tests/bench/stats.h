// Measurement helpers of the benchmark harness (tests/bench/): latency samples and their
// percentiles, a stop flag that every bounded loop checks, and process facts (resident
// memory, load average, core count).
//
//   LatencySamples samples;
//   samples.Reserve(100'000);
//   const auto start = Now();
//   while (!LoopDone(start, duration, samples.count(), max_count)) {
//     const auto t0 = Now();
//     DoOneRequest();
//     samples.Add(Now() - t0);
//   }
//   Throughput t = samples.Summarize(Now() - start);   // per_second, p50_us, p99_us
#ifndef WSSTEP_TESTS_BENCH_STATS_H_
#define WSSTEP_TESTS_BENCH_STATS_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace wsstep::bench {

using Clock = std::chrono::steady_clock;
using Nanos = std::chrono::nanoseconds;

inline Clock::time_point Now() { return Clock::now(); }

// What one measured loop produced.
struct Throughput {
  uint64_t count = 0;     // operations completed successfully
  double seconds = 0;     // wall time of the measured loop
  double per_second = 0;  // count / seconds
  double p50_us = 0;
  double p99_us = 0;
  double mean_us = 0;
};

// Per-operation durations. Not thread-safe: one per thread, then Merge.
class LatencySamples {
 public:
  void Reserve(size_t n) { ns_.reserve(n); }
  void Add(Nanos d) { ns_.push_back(d.count()); }
  void Merge(const LatencySamples& other);
  size_t count() const { return ns_.size(); }
  // The q-quantile (0..1) in microseconds, nearest-rank; 0 when empty. Sorts lazily.
  double PercentileUs(double q);
  double MeanUs() const;
  Throughput Summarize(Nanos wall);

 private:
  std::vector<int64_t> ns_;
  bool sorted_ = false;
};

// True when a measured loop must end: the duration has passed, `max_count` operations
// are done (0: no count bound), or the harness is stopping (SIGINT/SIGTERM).
bool LoopDone(Clock::time_point start, Nanos duration, uint64_t done, uint64_t max_count);

// Set by SIGINT/SIGTERM (InstallStopHandlers): every loop ends early and the harness
// unwinds, so RAII stops the servers and the plugin it started.
void InstallStopHandlers();
bool Stopping();

// VmRSS of this process in KiB (/proc/self/status); 0 if unreadable.
uint64_t ResidentKib();
// User + system CPU time a process has used so far, in seconds (/proc/<pid>/stat);
// negative if unreadable.
double ProcessCpuSeconds(int pid);
// The processes whose parent is `pid` (from /proc), e.g. an nginx master's workers.
std::vector<int> ChildProcesses(int pid);
// User + system CPU time all of `pids` have used so far, in seconds; negative if any of
// them is unreadable (or there are none).
double ProcessesCpuSeconds(const std::vector<int>& pids);
// The 1-minute load average (/proc/loadavg); negative if unreadable.
double LoadAverage1();
// Online processors (what `nproc` prints).
int CoreCount();

// "12 345.6"-style formatting helpers for the report.
std::string FormatNumber(double v, int decimals);

// The median of `v`; -1 when it is empty.
double Median(std::vector<double> v);

}  // namespace wsstep::bench

#endif  // WSSTEP_TESTS_BENCH_STATS_H_

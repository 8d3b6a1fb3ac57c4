#include "tests/bench/stats.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

namespace wsstep::bench {
namespace {

std::atomic<bool> g_stopping{false};

extern "C" void OnStopSignal(int) { g_stopping.store(true); }

}  // namespace

void LatencySamples::Merge(const LatencySamples& other) {
  ns_.insert(ns_.end(), other.ns_.begin(), other.ns_.end());
  sorted_ = false;
}

double LatencySamples::PercentileUs(double q) {
  if (ns_.empty()) return 0;
  if (!sorted_) {
    std::sort(ns_.begin(), ns_.end());
    sorted_ = true;
  }
  // Nearest rank: the smallest sample with at least q of the samples at or below it.
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(ns_.size())));
  rank = std::clamp<size_t>(rank, 1, ns_.size());
  return static_cast<double>(ns_[rank - 1]) / 1000.0;
}

double LatencySamples::MeanUs() const {
  if (ns_.empty()) return 0;
  long double sum = std::accumulate(ns_.begin(), ns_.end(), static_cast<long double>(0));
  return static_cast<double>(sum / ns_.size() / 1000.0L);
}

Throughput LatencySamples::Summarize(Nanos wall) {
  Throughput t;
  t.count = ns_.size();
  t.seconds = std::chrono::duration<double>(wall).count();
  t.per_second = t.seconds > 0 ? static_cast<double>(t.count) / t.seconds : 0;
  t.p50_us = PercentileUs(0.50);
  t.p99_us = PercentileUs(0.99);
  t.mean_us = MeanUs();
  return t;
}

bool LoopDone(Clock::time_point start, Nanos duration, uint64_t done, uint64_t max_count) {
  if (g_stopping.load(std::memory_order_relaxed)) return true;
  if (max_count != 0 && done >= max_count) return true;
  return Now() - start >= duration;
}

void InstallStopHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  // A closed pipe to a child (wrk, openssl) must be an error, not our death.
  signal(SIGPIPE, SIG_IGN);
}

bool Stopping() { return g_stopping.load(); }

uint64_t ResidentKib() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) {
      std::istringstream fields(line.substr(6));
      uint64_t kib = 0;
      fields >> kib;
      return kib;
    }
  }
  return 0;
}

double ProcessCpuSeconds(int pid) {
  // The process's CPU-time clock has nanosecond resolution; /proc/<pid>/stat counts in
  // clock ticks (10 ms), which rounds a short measurement to 0 µs per step.
  clockid_t clock;
  timespec ts{};
  if (clock_getcpuclockid(static_cast<pid_t>(pid), &clock) == 0 && clock_gettime(clock, &ts) == 0) {
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
  }
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  std::getline(in, text);
  // The command name (field 2) is in parentheses and may contain spaces: count fields
  // from the last ')'. utime and stime are fields 14 and 15.
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i >= 14) ticks += std::stod(field);
  }
  const long hz = sysconf(_SC_CLK_TCK);
  return hz > 0 ? ticks / static_cast<double>(hz) : -1;
}

std::vector<int> ChildProcesses(int pid) {
  std::vector<int> children;
  std::error_code ec;
  for (const auto& dir : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = dir.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(dir.path() / "stat");
    std::string text;
    std::getline(in, text);
    // Field 4 (ppid) follows the state, after the parenthesized command name.
    const size_t close = text.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(text.substr(close + 2));
    std::string state;
    int ppid = -1;
    if (fields >> state >> ppid && ppid == pid) children.push_back(std::stoi(name));
  }
  std::sort(children.begin(), children.end());
  return children;
}

double ProcessesCpuSeconds(const std::vector<int>& pids) {
  if (pids.empty()) return -1;
  double total = 0;
  for (int pid : pids) {
    const double s = ProcessCpuSeconds(pid);
    if (s < 0) return -1;
    total += s;
  }
  return total;
}

double LoadAverage1() {
  std::ifstream in("/proc/loadavg");
  double load = -1;
  if (!(in >> load)) return -1;
  return load;
}

int CoreCount() {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

double Median(std::vector<double> v) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v.size() % 2 == 1 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

std::string FormatNumber(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

}  // namespace wsstep::bench

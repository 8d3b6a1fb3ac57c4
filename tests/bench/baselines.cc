#include "tests/bench/baselines.h"

#include <curl/curl.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <mutex>
#include <regex>
#include <thread>
#include <vector>

#include "tests/support/process.h"

namespace wsstep::bench {
namespace {

using testing::CommandResult;
using testing::RunCommand;

struct CurlEasyDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
using CurlEasyPtr = std::unique_ptr<CURL, CurlEasyDeleter>;

Error BenchError(std::string message) {
  return Error(Code::kInternal, std::move(message));
}

// wrk's time units (format_time in wrk's stats): us, ms, s, m, h.
double ToMicros(double value, const std::string& unit) {
  if (unit == "us") return value;
  if (unit == "ms") return value * 1e3;
  if (unit == "s") return value * 1e6;
  if (unit == "m") return value * 60e6;
  if (unit == "h") return value * 3600e6;
  return -1;
}

std::string Excerpt(const std::string& text) {
  return text.size() <= 600 ? text : text.substr(0, 600) + "...";
}

size_t DiscardBody(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

// Options every request of both libcurl loops uses.
void SetCommonOptions(CURL* h, const std::string& url, const TlsFiles& files, std::string* body) {
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_SSLCERT, files.cert_file.c_str());
  curl_easy_setopt(h, CURLOPT_SSLKEY, files.key_file.c_str());
  curl_easy_setopt(h, CURLOPT_CAINFO, files.ca_file.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10'000L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &DiscardBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
}

Status Perform(CURL* h, const std::string& url) {
  CURLcode rc = curl_easy_perform(h);
  if (rc != CURLE_OK) {
    return BenchError("libcurl " + url + ": " + curl_easy_strerror(rc));
  }
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) return BenchError("libcurl " + url + ": HTTP " + std::to_string(status));
  return Status();
}

}  // namespace

Result<Throughput> ParseWrkOutput(const std::string& output) {
  Throughput t;
  std::smatch m;
  static const std::regex kRps(R"(Requests/sec:\s+([0-9.]+))");
  static const std::regex kCount(R"((\d+) requests in ([0-9.]+)(us|ms|s|m|h),)");
  static const std::regex kMean(R"(Latency\s+([0-9.]+)(us|ms|s|m|h)\s)");
  static const std::regex kP50(R"(\n\s+50%\s+([0-9.]+)(us|ms|s|m|h))");
  static const std::regex kP99(R"(\n\s+99%\s+([0-9.]+)(us|ms|s|m|h))");
  if (output.find("Non-2xx or 3xx responses") != std::string::npos) {
    return BenchError("wrk saw non-2xx/3xx responses: " + Excerpt(output));
  }
  if (!std::regex_search(output, m, kRps)) return BenchError("wrk output without Requests/sec: " + Excerpt(output));
  t.per_second = std::stod(m[1]);
  if (!std::regex_search(output, m, kCount)) return BenchError("wrk output without a request count: " + Excerpt(output));
  t.count = std::stoull(m[1]);
  t.seconds = ToMicros(std::stod(m[2]), m[3]) / 1e6;
  if (!std::regex_search(output, m, kP50)) return BenchError("wrk output without a 50% latency: " + Excerpt(output));
  t.p50_us = ToMicros(std::stod(m[1]), m[2]);
  if (std::regex_search(output, m, kP99)) t.p99_us = ToMicros(std::stod(m[1]), m[2]);
  if (std::regex_search(output, m, kMean)) t.mean_us = ToMicros(std::stod(m[1]), m[2]);
  if (t.count == 0) return BenchError("wrk completed no request: " + Excerpt(output));
  return t;
}

Result<Throughput> RunWrk(const std::string& url, int threads, int connections, int seconds) {
  CommandResult r = RunCommand({"wrk", "-t" + std::to_string(threads), "-c" + std::to_string(connections),
                                "-d" + std::to_string(seconds) + "s", "--latency", url},
                               {}, std::chrono::seconds(seconds + 60));
  if (r.exit_code != 0) {
    return BenchError("wrk exited with " + std::to_string(r.exit_code) + ": " + Excerpt(r.output));
  }
  return ParseWrkOutput(r.output);
}

std::vector<int> NginxWorkerPids(const testing::NginxServer& server) {
  if (server.dir().empty()) return {};
  // nginx opens its listeners before it writes its pid file, and a listener accepts
  // connections at once: the file may not be there yet right after Start (at most 2 s).
  int master = 0;
  for (int i = 0; i < 40 && master <= 0; ++i) {
    std::ifstream in(server.dir() + "/nginx.pid");
    if (!(in >> master) || master <= 0) {
      master = 0;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  if (master <= 0) return {};
  // Nor has it necessarily forked every worker: wait (at most 2 s) until two looks 50 ms
  // apart agree.
  std::vector<int> workers = ChildProcesses(master);
  for (int i = 0; i < 40; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::vector<int> again = ChildProcesses(master);
    if (!again.empty() && again == workers) break;
    workers = std::move(again);
  }
  return workers;
}

Result<Throughput> RunSTime(uint16_t port, const TlsFiles& files, int seconds, std::string* note) {
  const auto start = Now();
  CommandResult r = RunCommand({"openssl", "s_time", "-connect", "127.0.0.1:" + std::to_string(port),
                                "-new", "-cert", files.cert_file, "-key", files.key_file, "-CAfile",
                                files.ca_file, "-time", std::to_string(seconds)},
                               {}, std::chrono::seconds(seconds + 60));
  const double wall = std::chrono::duration<double>(Now() - start).count();
  if (r.exit_code != 0) {
    return BenchError("openssl s_time exited with " + std::to_string(r.exit_code) + ": " + Excerpt(r.output));
  }
  // "1234 connections in 1.23s; 1003.25 connections/user sec, bytes read 0"
  static const std::regex kLine(R"((\d+) connections in ([0-9.]+)s; ([0-9.]+) connections/user sec)");
  std::smatch m;
  if (!std::regex_search(r.output, m, kLine)) {
    return BenchError("openssl s_time output did not parse: " + Excerpt(r.output));
  }
  Throughput t;
  t.count = std::stoull(m[1]);
  t.seconds = wall;
  t.per_second = wall > 0 ? static_cast<double>(t.count) / wall : 0;
  t.mean_us = t.count > 0 ? wall * 1e6 / static_cast<double>(t.count) : 0;
  if (note != nullptr) {
    *note = std::string(m[1]) + " connections in " + FormatNumber(wall, 1) + " s wall; s_time's own figure: " +
            std::string(m[3]) + "/user-CPU s";
  }
  if (t.count == 0) return BenchError("openssl s_time made no connection: " + Excerpt(r.output));
  return t;
}

Result<Throughput> CurlKeepAliveLoop(const std::string& url, const TlsFiles& files,
                                     Nanos duration, uint64_t max_count) {
  CurlEasyPtr h(curl_easy_init());
  if (!h) return BenchError("curl_easy_init failed");
  std::string body;
  SetCommonOptions(h.get(), url, files, &body);
  WSSTEP_RETURN_IF_ERROR(Perform(h.get(), url));  // warm-up: connection and handshake

  LatencySamples samples;
  samples.Reserve(1 << 16);
  const auto start = Now();
  while (!LoopDone(start, duration, samples.count(), max_count)) {
    body.clear();
    const auto t0 = Now();
    WSSTEP_RETURN_IF_ERROR(Perform(h.get(), url));
    samples.Add(Now() - t0);
  }
  return samples.Summarize(Now() - start);
}

Result<Throughput> CurlNewConnectionLoop(const std::string& url, const TlsFiles& files,
                                         Nanos duration, uint64_t max_count) {
  LatencySamples samples;
  samples.Reserve(1 << 14);
  std::string body;
  const auto start = Now();
  while (!LoopDone(start, duration, samples.count(), max_count)) {
    body.clear();
    const auto t0 = Now();
    CurlEasyPtr h(curl_easy_init());
    if (!h) return BenchError("curl_easy_init failed");
    SetCommonOptions(h.get(), url, files, &body);
    curl_easy_setopt(h.get(), CURLOPT_FORBID_REUSE, 1L);
    WSSTEP_RETURN_IF_ERROR(Perform(h.get(), url));
    h.reset();
    samples.Add(Now() - t0);
  }
  return samples.Summarize(Now() - start);
}

Result<Throughput> CurlMultiKeepAliveLoop(const std::string& url, const TlsFiles& files, int in_flight,
                                          int threads, Nanos duration, uint64_t max_count) {
  threads = std::max(1, std::min(threads, in_flight));
  struct Handle {
    CurlEasyPtr easy;
    std::string body;
    Clock::time_point started;
  };
  std::mutex mu;
  LatencySamples all;
  std::string first_error;
  std::atomic<uint64_t> done{0};
  // Every thread warms its handles (connection and handshake) before anyone is timed.
  std::atomic<int> warm{0};
  Clock::time_point start;
  std::atomic<bool> go{false};
  auto run = [&](int handles) {
    LatencySamples samples;
    samples.Reserve(1 << 16);
    std::string error;
    CURLM* multi = curl_multi_init();
    std::vector<Handle> hs(static_cast<size_t>(handles));
    for (auto& h : hs) {
      h.easy.reset(curl_easy_init());
      SetCommonOptions(h.easy.get(), url, files, &h.body);
      if (Status s = Perform(h.easy.get(), url); !s.ok() && error.empty()) error = s.error().message;
    }
    warm++;
    while (!go.load()) std::this_thread::yield();
    for (auto& h : hs) {
      curl_easy_setopt(h.easy.get(), CURLOPT_PRIVATE, &h);
      h.started = Now();
      curl_multi_add_handle(multi, h.easy.get());
    }
    int running = static_cast<int>(hs.size());
    while (error.empty() && running > 0) {
      curl_multi_perform(multi, &running);
      int queued = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
        if (msg->msg != CURLMSG_DONE) continue;
        Handle* h = nullptr;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &h);
        long status = 0;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        if (msg->data.result != CURLE_OK || status != 200) {
          error = "libcurl " + url + ": " +
                  (msg->data.result != CURLE_OK ? std::string(curl_easy_strerror(msg->data.result))
                                                : "HTTP " + std::to_string(status));
          break;
        }
        curl_multi_remove_handle(multi, h->easy.get());
        samples.Add(Now() - h->started);
        if (LoopDone(start, duration, done.fetch_add(1) + 1, max_count)) continue;
        h->body.clear();
        h->started = Now();
        curl_multi_add_handle(multi, h->easy.get());
        ++running;
      }
      if (running > 0) curl_multi_poll(multi, nullptr, 0, 100, nullptr);
    }
    for (auto& h : hs) curl_multi_remove_handle(multi, h.easy.get());
    curl_multi_cleanup(multi);
    std::lock_guard<std::mutex> lock(mu);
    all.Merge(samples);
    if (first_error.empty()) first_error = error;
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back(run, in_flight / threads + (t < in_flight % threads ? 1 : 0));
  }
  while (warm.load() < threads) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  start = Now();
  go = true;
  for (auto& t : pool) t.join();
  const Nanos wall = Now() - start;
  if (!first_error.empty()) return BenchError(first_error);
  return all.Summarize(wall);
}

}  // namespace wsstep::bench

// The baselines of PRODUCT.md §5, measured in the same run as wsstep against the same
// nginx mTLS origin: wrk through an nginx egress gateway, direct libcurl loops (keep-alive,
// and "naive" new connections), and `openssl s_time -new` (the handshake limit).
#ifndef WSSTEP_TESTS_BENCH_BASELINES_H_
#define WSSTEP_TESTS_BENCH_BASELINES_H_

#include <string>
#include <vector>

#include "core/error.h"
#include "tests/bench/stats.h"
#include "tests/support/nginx.h"

namespace wsstep::bench {

// Client identity and trust as files, exactly what a naive client hands libcurl/openssl.
struct TlsFiles {
  std::string cert_file;
  std::string key_file;
  std::string ca_file;
};

// `wrk -t<threads> -c<connections> -d<seconds>s --latency <url>`: requests/s from
// "Requests/sec", p50/p99 from the latency distribution, mean from the thread stats.
// Fails if wrk cannot run, reports non-2xx/3xx responses, or its output does not parse.
Result<Throughput> RunWrk(const std::string& url, int threads, int connections, int seconds);

// Parses wrk's output (exposed for the smoke run's self-check).
Result<Throughput> ParseWrkOutput(const std::string& output);

// The worker processes of a started nginx (the children of the master named in its pid
// file): what a gateway or an origin spends per request is their CPU time (user +
// system, ProcessesCpuSeconds) over a run divided by the run's requests. Empty if the
// pid file cannot be read or no worker is found.
std::vector<int> NginxWorkerPids(const testing::NginxServer& server);

// `openssl s_time -connect 127.0.0.1:<port> -new -cert -key -CAfile -time <seconds>`:
// per_second = connections / wall seconds of the run (s_time's own rate is per *user
// CPU* second, which is not comparable with wall-clock figures; it goes in `note`).
Result<Throughput> RunSTime(uint16_t port, const TlsFiles& files, int seconds, std::string* note);

// One easy handle, performed again and again: keep-alive and TLS session reuse as
// libcurl does them. One warm-up request is not counted.
Result<Throughput> CurlKeepAliveLoop(const std::string& url, const TlsFiles& files,
                                     Nanos duration, uint64_t max_count);

// A fresh easy handle per request with CURLOPT_FORBID_REUSE: a new TCP connection and a
// full TLS handshake each time, the certificate, key and CA files re-read by libcurl for
// every connection ("naive libcurl").
Result<Throughput> CurlNewConnectionLoop(const std::string& url, const TlsFiles& files,
                                         Nanos duration, uint64_t max_count);

// `in_flight` easy handles kept busy on keep-alive connections, spread over `threads`
// curl multi handles (one thread each, so one per core): libcurl's own throughput with
// nothing around it — no queue, no gRPC, no audit. The ceiling of anything built on
// libcurl on this machine. Latencies are per request (added to the multi to done).
Result<Throughput> CurlMultiKeepAliveLoop(const std::string& url, const TlsFiles& files, int in_flight,
                                          int threads, Nanos duration, uint64_t max_count);

}  // namespace wsstep::bench

#endif  // WSSTEP_TESTS_BENCH_BASELINES_H_

// Helpers for the end-to-end reliability suites (tests/e2e): many concurrent
// ExecuteRestStep calls through one completion queue (each cancellable on its own), the
// plugin's memory as /proc shows it, origins that hold every request until a test opens
// a gate, and the raw private-key numbers for secret scans.
//
//   MockEngine engine;                       // tests/mock_engine: the real binary
//   ASSERT_TRUE(engine.Start()) << engine.start_error();
//   ConcurrentRestCalls calls(engine.process().channel());
//   for (int i = 0; i < 1000; ++i) calls.Start(request, "step-" + std::to_string(i), 30s);
//   ASSERT_TRUE(calls.WaitAll(std::chrono::seconds(40)));
//   EXPECT_TRUE(calls.result(0).status.ok());
#ifndef WSSTEP_TESTS_E2E_E2E_UTIL_H_
#define WSSTEP_TESTS_E2E_E2E_UTIL_H_

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/mock_engine/mock_engine.h"
#include "tests/support/pki.h"
#include "tests/support/process.h"
#include "tests/support/tls_server.h"
#include "wsstep/v1/step_plugin_service.grpc.pb.h"

// Defined in a build with AddressSanitizer (GCC or clang), whose quarantine and redzones
// make the plugin's resident memory grow more: memory bounds add an allowance then.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WSSTEP_TEST_UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define WSSTEP_TEST_UNDER_ASAN 1
#endif

namespace wsstep::e2e {

namespace v1 = ::wsstep::v1;
using Clock = std::chrono::steady_clock;

// What one asynchronous call ended with.
struct CallResult {
  grpc::Status status;
  v1::ExecuteRestStepResponse response;
  Clock::time_point started;
  Clock::time_point finished;
  bool done = false;
};

// Fires ExecuteRestStep calls without waiting for them (a host with many workflows in
// flight). One thread drains the completion queue; results are kept per call index. The
// destructor cancels what is still running and waits for every call to finish.
class ConcurrentRestCalls {
 public:
  explicit ConcurrentRestCalls(std::shared_ptr<grpc::Channel> channel);
  ~ConcurrentRestCalls();
  ConcurrentRestCalls(const ConcurrentRestCalls&) = delete;
  ConcurrentRestCalls& operator=(const ConcurrentRestCalls&) = delete;

  // Starts one call with this deadline and step id; returns its index.
  size_t Start(const v1::ExecuteRestStepRequest& request, const std::string& step_id,
               std::chrono::milliseconds deadline);
  // The host gives up on call `index` (ClientContext::TryCancel).
  void Cancel(size_t index);
  // Waits until at least `count` calls finished; false on timeout.
  bool WaitFinished(size_t count, std::chrono::milliseconds timeout);
  bool WaitAll(std::chrono::milliseconds timeout) { return WaitFinished(size(), timeout); }
  size_t size() const;
  size_t finished() const;
  // A copy of the call's result (done = false while it runs).
  CallResult result(size_t index) const;

 private:
  struct Call;
  void Drain();

  std::unique_ptr<v1::StepPluginService::Stub> stub_;
  grpc::CompletionQueue cq_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Call>> calls_;
  size_t finished_ = 0;
  std::thread drainer_;
};

// The plugin's "step finished" log line of `step_id` (waits for it; empty, with a test
// failure, when it never comes).
std::string FinishedLineOf(mock_engine::MockEngine& engine, const std::string& step_id);

// Call options for MockEngine calls: a step id and a deadline.
inline mock_engine::CallOptions Opts(std::string step_id,
                                     std::chrono::milliseconds deadline = std::chrono::seconds(30)) {
  mock_engine::CallOptions o;
  o.step_id = std::move(step_id);
  o.workflow_id = "wf-e2e";
  o.deadline = deadline;
  return o;
}

// Resident set and its high-water mark of a process, in KiB (/proc/<pid>/status VmRSS and
// VmHWM); nullopt when the process is gone.
std::optional<int64_t> VmRssKib(pid_t pid);
std::optional<int64_t> VmHwmKib(pid_t pid);

// A handler for testing::TlsServer that holds every request until Open() (or the
// destructor, or Close()), then answers 200 with body "released <target>". Counts the
// requests that arrived and those still held.
class Gate {
 public:
  Gate() = default;
  ~Gate() { Open(); }
  std::function<testing::ServerResponse(const testing::ServerRequest&)> Handler();
  void Open();
  int arrived() const { return arrived_.load(); }
  int waiting() const { return waiting_.load(); }
  // Waits until `n` requests are held at the gate; false on timeout.
  bool WaitForWaiting(int n, std::chrono::milliseconds timeout) const;

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool open_ = false;
  std::atomic<int> arrived_{0};
  std::atomic<int> waiting_{0};
};

// An mTLS origin (server/localhost, client certificates verified against trust/bundle.pem)
// answering with `handler`.
testing::TlsServerConfig MtlsOriginConfig(
    std::function<testing::ServerResponse(const testing::ServerRequest&)> handler);

// Imports trust/bundle.pem ("trust") and the client/rsa key pair ("id"), both bound to
// localhost:port in the default environment; returns the key pair's entry. A failed
// import is a test failure (and an entry with an empty id).
v1::Certificate ImportRsaIdentity(mock_engine::MockEngine& engine, uint32_t port);

// Starts `wsstep serve` the way an administrator does before typing CLI commands: its
// store in <work>/data, listening on unix://<work>/w.sock, its log in <work>/serve.log.
// Returns the socket path once it listens; "" (and a test failure saying why) otherwise.
std::string StartServeForCli(testing::ChildProcess& server, const testing::TempDir& work);

// `wsstep ARGS...` against the plugin served on `socket`, with `env` added.
testing::CommandResult RunCli(const std::string& socket, const std::vector<std::string>& args,
                              const testing::EnvList& env = {});
// StartServeForCli, then `wsstep cert import` of the trust store (trust/bundle.pem, named
// "trust") and the RSA client certificate (client/rsa.pem, "id"), both bound to
// localhost:`port`. The socket; "" (and a test failure saying why) when any of it fails.
std::string StartServeWithRsaIdentity(testing::ChildProcess& server, const testing::TempDir& work,
                                      uint32_t port);

// "<tag><tag>...x...</tag></tag>", `depth` elements deep.
std::string NestedXml(const std::string& tag, int depth);

// The private number(s) of a PEM private key (RSA d, p, q; EC and Ed25519 private
// scalar), as big-endian bytes in 16-byte windows: a key leaked outside any encoding
// still matches.
mock_engine::Secret KeyNumberSecret(const std::string& pki_rel);
mock_engine::Secret KeyNumberSecretFromPem(const std::string& label, const std::string& pem);

// Every leak of `secrets` in `text`, labelled with `where`.
std::vector<std::string> Leaks(const std::string& where, const std::string& text,
                               const std::vector<mock_engine::Secret>& secrets);

}  // namespace wsstep::e2e

#endif  // WSSTEP_TESTS_E2E_E2E_UTIL_H_

// RestEngine: executes REST steps (and SOAP's envelope POSTs, and OAuth2 token calls)
// over libcurl + OpenSSL with mutual TLS, from credentials already resolved by the store.
//
//   EngineOptions options;
//   options.credentials = my_source;             // for redirects / token endpoints
//   RestEngine engine(std::move(options));
//   RestStep step;
//   step.url = "https://api.bank.example/accounts";
//   step.tls.ssl_verification = true;
//   Result<RestResult> r = engine.Execute(std::move(step), credentials,
//                                        std::chrono::steady_clock::now() + 30s);
//   if (!r.ok()) route_on(r.error().code);       // the §2 catalog, with hint and detail
//   else if (r->status >= 400) ...               // non-2xx is a result, not an error
//
// Identity safety: connections and TLS sessions are pooled per *partition*: one per
// (client certificate + version, trust set, verify_peer, verify_host, tls_server_name,
// min_tls_version, pin, private trust). Each partition owns its own curl handles and
// share (connection cache, TLS session cache, DNS cache), so a connection or session made
// with one identity is never used for another, whatever libcurl would have matched.
//
// Concurrency: a few event loops (rest/event_loop.h; one thread and one curl multi handle
// each, one per core by default) drive every transfer at once. A step waiting for its
// server holds no thread, so a slow or dead origin costs only its own steps: a healthy
// origin's steps never wait behind it. A step's own time limit (timeouts.total) runs from
// admission, and a step that cannot finish by its deadline is answered TIMEOUT with the
// phase it was in ("queued", "connect", "tls_handshake", "first_byte", "reading").
// Optionally (max_in_flight_per_origin) one origin runs at most that many steps; as many
// more wait for a place, in order, and beyond those a step is answered ORIGIN_BUSY at once.
// When max_queue steps are in flight, TrySubmit returns Refusal::kEngineBusy (Submit
// completes at once with FAILED_PRECONDITION, detail reason=engine_busy).
//
// Proxies (rest/proxy.h): a step's own proxy, or the engine's, reached with CONNECT; the
// route is part of the partition, so tunnelled and direct connections never mix.
//
// Retries (RetryPolicy in rest/step.h): a step that asks is tried again after a transient
// failure; the wait is a timer on an event loop (EventLoop::After), never a sleeping thread,
// and never outlasts the step's deadline. Such steps always run on an event loop.
//
// Descriptors: the sockets of all connections together stay within a budget derived from
// RLIMIT_NOFILE (rest/socket_budget.h), so the process keeps descriptors for its listener
// and store; a step that finds none is answered DESCRIPTORS_EXHAUSTED, and idle
// connections are closed when the budget runs short.
//
// A caller with a thread of its own (the plugin's gRPC step thread) can lend it
// (LendThisThread): a step submitted on it while the engine is idle runs right there,
// which saves the hand-off to a loop and back (thread switches are the larger part of a
// warm step's cost on a small machine).
#ifndef WSSTEP_REST_ENGINE_H_
#define WSSTEP_REST_ENGINE_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/identity.h"
#include "rest/credential_source.h"
#include "rest/prepared_step.h"
#include "rest/spin_wait.h"
#include "rest/step.h"

namespace wsstep::rest {

using Deadline = std::chrono::steady_clock::time_point;

// Shared cancellation flag: copy it into the call, Cancel() from anywhere (a gRPC
// cancellation callback); the transfer aborts with Code::kCancelled.
class CancelToken {
 public:
  CancelToken() : flag_(std::make_shared<std::atomic<bool>>(false)) {}
  // Watches a flag the caller already owns (e.g. set by a gRPC cancellation callback),
  // so no thread has to forward one flag into another. Null: a fresh flag.
  explicit CancelToken(std::shared_ptr<std::atomic<bool>> flag)
      : flag_(flag ? std::move(flag) : std::make_shared<std::atomic<bool>>(false)) {}
  void Cancel() const { flag_->store(true); }
  bool cancelled() const { return flag_->load(); }

 private:
  std::shared_ptr<std::atomic<bool>> flag_;
};

// Where the "system CAs" come from when trust is not private. Empty fields: OpenSSL's
// defaults (X509_STORE_set_default_paths, i.e. /etc/ssl/certs on Debian).
struct SystemTrust {
  std::string ca_file;
  std::string ca_path;
};

// The engine's defaults, in one place: the plugin's configuration and transfer options
// start from these too. 0 event loops: one per core, at most 4.
inline constexpr int kDefaultWorkers = 0;
inline constexpr size_t kDefaultMaxQueue = 1024;
// Where verify_peer / verify_host may not be turned off unless configured otherwise.
inline constexpr std::string_view kDefaultProtectedEnvironment = "production";

struct EngineOptions {
  // Event-loop threads; each drives any number of transfers. 0: one per core, at most 4.
  int workers = kDefaultWorkers;
  size_t max_queue = kDefaultMaxQueue;  // steps in flight at once; more: engine busy
  // Steps of one origin (scheme://host:port) running at once; as many more wait, in
  // order; beyond those: ORIGIN_BUSY. 0: no cap.
  int max_in_flight_per_origin = 0;
  // Sockets all connections together may hold; 0: from RLIMIT_NOFILE (SocketBudget).
  size_t max_connections = 0;
  size_t max_partitions = 256;  // idle partitions beyond this are dropped, oldest first
  size_t max_idle_handles_per_partition = 64;
  // Environments where verify_peer / verify_host may not be turned off.
  std::set<std::string> protected_environments = {std::string(kDefaultProtectedEnvironment)};
  // Credentials for other hosts (redirect hops, OAuth2 token endpoints). Null: such
  // hosts get no client certificate and system trust.
  std::shared_ptr<CredentialSource> credentials;
  SystemTrust system_trust;
  // A cached OAuth2 token is renewed this long before it expires.
  std::chrono::seconds oauth2_expiry_margin{30};
  std::string user_agent = "wsstep/0.1";
  // The plugin's proxy: used by every step that names none of its own (and is not
  // `direct`), except for hosts on its no_proxy list. Empty url: direct. The environment's
  // proxy variables are never read here (rest/proxy.h).
  ProxySettings proxy;
  // Offer HTTP/2 by ALPN to TLS origins (steps may say otherwise: RestStep::http_version).
  bool offer_http2 = true;
  // A lent thread (LendThisThread) looks at its socket this long before it sleeps, while
  // its origin answers about that fast (rest/spin_wait.h); 0: never.
  std::chrono::microseconds spin_wait = SpinAdvisor::kDefaultSpin;
};

using StepCallback = std::function<void(Result<RestResult>)>;

// Why the engine did not take a step (TrySubmit). The step never started: nothing was sent.
enum class Refusal {
  kEngineBusy,    // EngineOptions::max_queue steps are already waiting
  kShuttingDown,  // Shutdown() was called
};
// "engine_busy", "shutting_down": what Submit's error says in detail "reason", and what
// the plugin tells hosts there.
std::string_view RefusalName(Refusal refusal);

// Counters of one identity partition, for tests and benchmarks.
struct PartitionStats {
  std::string key;                   // the partition key (no secrets: fingerprints and ids)
  std::string identity_fingerprint;  // "" when no client certificate
  std::string identity_entry_id;
  uint64_t requests = 0;             // HTTP requests sent (each hop, token calls included)
  uint64_t new_connections = 0;
  uint64_t reused_connections = 0;   // requests that went over a kept-alive connection
  uint64_t resumed_sessions = 0;     // new connections whose TLS session was resumed
  uint64_t full_handshakes = 0;      // new TLS connections without resumption

  // Adds the other's counters to these (keys and ids are left as they are).
  void AddCounters(const PartitionStats& other);
};

class RestEngine {
 public:
  explicit RestEngine(EngineOptions options = {});
  // Shutdown(), then releases every connection.
  ~RestEngine();
  RestEngine(const RestEngine&) = delete;
  RestEngine& operator=(const RestEngine&) = delete;

  // Starts a step. `credentials` are for the step's URL host (what the store resolved;
  // empty when ssl_verification is off); other hosts (redirect hops, the OAuth2 token
  // endpoint) get theirs from EngineOptions::credentials. `done` runs exactly once, on an
  // event loop's thread — or on the calling thread when the step is refused at once (invalid,
  // engine busy, shut down). `done` must not block: it runs on an event loop that drives
  // other steps' transfers. The step never runs past `deadline` (nor past its own
  // timeouts.total counted from now); cancelling `cancel` aborts it within ~50 ms with
  // CANCELLED.
  void Submit(RestStep step, core::CallCredentials credentials, Deadline deadline,
              CancelToken cancel, StepCallback done);
  // Submit of a step Prepare already checked: its URLs are not parsed again.
  void Submit(PreparedStep step, core::CallCredentials credentials, Deadline deadline,
              CancelToken cancel, StepCallback done);

  // Submit for a caller that answers a refusal in its own terms: when the engine does not
  // take the step (queue full, shutting down), `done` is never called and the refusal is
  // returned. Otherwise nullopt, and `done` runs exactly once, as with Submit (an invalid
  // step is an answer, not a refusal).
  [[nodiscard]] std::optional<Refusal> TrySubmit(PreparedStep step,
                                                 core::CallCredentials credentials,
                                                 Deadline deadline, CancelToken cancel,
                                                 StepCallback done);

  // While the returned lease lives (on this thread) and allows it, a Submit made on this
  // thread when no other step is running or queued runs the step right here, before
  // Submit returns; otherwise the step goes to an event loop as usual. A step run here
  // that has waited kSlowLentStep for its server calls `on_slow` (when given) once, on
  // this thread, so the caller can have another thread take its work meanwhile; such a
  // step polls its socket every 2 ms. The lease holds the thread's own connection cache. Destroy it
  // on the same thread, before the engine.
  class ThreadLease {
   public:
    virtual ~ThreadLease() = default;
    // Whether the next Submit calls on this thread may run here (default: yes).
    void AllowRunHere(bool allow) { allow_run_here_ = allow; }

   protected:
    bool allow_run_here_ = true;
  };
  static constexpr std::chrono::milliseconds kSlowLentStep{2};
  std::unique_ptr<ThreadLease> LendThisThread(std::function<void()> on_slow = {});

  // Submit and wait.
  Result<RestResult> Execute(RestStep step, core::CallCredentials credentials,
                             Deadline deadline, CancelToken cancel = {});

  // Design-time and pre-send checks: URL scheme and syntax, header names and values,
  // query parameters, TLS option values, verification off in a protected environment,
  // ssl_verification over http. INVALID_STEP_CONFIG naming the field, or OK.
  Status Validate(const RestStep& step) const;
  // Validate, keeping what it parsed: the step with its URL's parts, for Submit and for
  // the caller's own use (resolving the client certificate for url()).
  Result<PreparedStep> Prepare(RestStep step) const;

  // Stops accepting steps, lets waiting and running ones finish (each bounded by its own
  // deadline; cancel their tokens to cut that short), joins the event loops. Idempotent;
  // later Submit calls complete with FAILED_PRECONDITION, detail reason=shutting_down
  // (TrySubmit returns Refusal::kShuttingDown).
  void Shutdown();

  // A snapshot of every live partition's counters.
  std::vector<PartitionStats> Stats() const;
  // Counters of all partitions whose client certificate has this fingerprint, summed
  // ("" = partitions without a client certificate).
  PartitionStats StatsForIdentity(const std::string& fingerprint) const;
  // Counters per store entry since the engine started, partitions dropped from the table
  // included (so they only ever grow: what metrics counters need). One element per
  // identity_entry_id ("" = no client certificate); key is empty.
  std::vector<PartitionStats> TotalsByEntry() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace wsstep::rest

#endif  // WSSTEP_REST_ENGINE_H_

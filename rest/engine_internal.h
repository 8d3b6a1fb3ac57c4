// Internal to the REST engine (engine.cc and step_task.cc): RestEngine::Impl, what the
// engine holds (options, event loops, partitions, admission), and StepTask, one step from
// admission to answer. Not part of the rest/ API.
#ifndef WSSTEP_REST_ENGINE_INTERNAL_H_
#define WSSTEP_REST_ENGINE_INTERNAL_H_

#include <arpa/inet.h>
#include <curl/curl.h>
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <deque>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "core/mutex.h"
#include "core/ossl.h"
#include "rest/event_loop.h"
#include "rest/http_text.h"
#include "rest/oauth2.h"
#include "rest/partition.h"
#include "rest/proxy.h"
#include "rest/socket_budget.h"
#include "rest/spin_wait.h"
#include "rest/tls_diagnosis.h"
#include "rest/tls_util.h"
#include "rest/transfer.h"
#include "rest/warning.h"

namespace wsstep::rest {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

class StepTask;
using StepTaskPtr = std::shared_ptr<StepTask>;

// Whether a.Origin() == b.Origin(), without building either string: a step asks a few
// times per request (is this hop its own origin?). ParseHttpUrl keeps an IPv6 host without
// its brackets, so equal hosts are equal text.
inline bool SameOrigin(const UrlParts& a, const UrlParts& b) {
  return a.scheme == b.scheme && a.port == b.port && a.host == b.host;
}

// Where a step's transfers run: right here on a lent thread, or on an event loop.
using TransferExecutor = std::function<void(std::unique_ptr<Transfer>, TransferDone)>;

struct RestEngine::Impl {
  explicit Impl(EngineOptions o)
      : options(std::move(o)),
        engine_proxy(ParseProxySettings(options.proxy, "engine.proxy")),
        sockets(options.max_connections),
        trust(options.system_trust),
        partitions(&trust, options.max_partitions) {}

  // Everything one step needs while it runs.
  struct StepRun {
    const PreparedStep* prepared;
    const RestStep* step;               // prepared->step()
    UrlParts origin;                    // the step URL's origin: auth belongs to it
    core::CallCredentials credentials;  // for `origin`
    Deadline deadline;
    bool deadline_is_caller;
    steady_clock::time_point admitted;  // the step's limits count from here
    const CancelToken* cancel;
    TransferDriver* driver = nullptr;     // a lent thread's; null on an event loop
    std::function<void()> while_waiting;  // tells a lent thread's caller it is slow
    std::chrono::milliseconds poll_interval{50};
    std::chrono::microseconds spin{0};  // TransferLimits::spin
    ProxyConfig proxy;                  // the step's own proxy settings, parsed
  };

  // The design-time and pre-send checks; `url` and `token_url` receive the parsed URLs.
  Status Check(const RestStep& step, UrlParts* url, std::optional<UrlParts>* token_url) const;
  // Begins a request to `target` with `creds` and hands it to `executor`; `done` gets
  // the response (at once when the request could not be begun).
  void Send(const StepRun& run, const HttpRequest& request, const UrlParts& target,
            const core::CallCredentials& creds, bool same_origin, const TransferExecutor& executor,
            TransferDone done);
  // The partition of a request to `target` with `creds` (the step's pin and server name
  // only for its own origin).
  Result<std::shared_ptr<Partition>> PartitionFor(const StepRun& run, const UrlParts& target,
                                                  const core::CallCredentials& creds,
                                                  bool same_origin);
  TransferLimits LimitsFor(const StepRun& run);
  // Whether the step's requests offer h2 (its own choice, else the engine's).
  bool OffersHttp2(const RestStep& step) const {
    return step.http_version == HttpVersion::kHttp2 ||
           (step.http_version == HttpVersion::kDefault && options.offer_http2);
  }
  // A RestStep::probe, instead of the step's request (blocking: on the caller's thread).
  Result<RestResult> Probe(const StepRun& run, const HandshakeProbe& probe);
  Result<core::CallCredentials> CredentialsFor(const StepRun& run, const UrlParts& target,
                                               CredentialPurpose purpose);
  // Idle connections a lent thread's TransferDriver keeps per partition.
  size_t DriverCacheSize() const {
    return std::max<size_t>(options.max_idle_handles_per_partition, 1);
  }
  static Error CancelledBeforeStart(const std::string& url);
  // Validates, then starts the step on an event loop, runs it on this thread (a lent
  // one), or queues it behind its origin's running steps. A refusal leaves `done` uncalled
  // and unmoved; otherwise `done` is taken and runs exactly once.
  std::optional<Refusal> Admit(PreparedStep step, core::CallCredentials credentials,
                               Deadline deadline, CancelToken cancel, StepCallback& done);
  // What Submit answers a refusal with: FAILED_PRECONDITION, detail reason.
  Error RefusalError(Refusal refusal) const;
  // The least busy event loop.
  EventLoop& PickLoop();
  void StartOnLoop(StepTaskPtr task);
  // A step has answered: frees its place (and its origin's), starts the next step waiting
  // for that origin.
  void StepEnded(const std::string& origin);
  // On the loops' ticks: answers waiting steps that were cancelled or whose deadline
  // passed before they could start. True while steps still wait.
  bool ExpireWaiting();
  // Closes idle connections (idle partitions, oldest first) when sockets run short.
  void RelievePressure();

  EngineOptions options;
  // options.proxy, parsed once; its error answers every step (a plugin checks its
  // configuration before it starts an engine, so this is for direct users of the engine).
  Result<ProxyConfig> engine_proxy{ProxyConfig{}};
  SocketBudget sockets;  // before the partitions: their connections close through it
  TrustStoreCache trust;
  PartitionTable partitions;
  TokenCache tokens;

  // Steps of one origin ("https://host:port"): running, and waiting for a place.
  struct OriginSlots {
    int running = 0;
    std::deque<StepTaskPtr> waiting;
  };

  Mutex mu;
  CondVar idle_cv;                                                 // in_flight reached 0
  size_t in_flight ABSL_GUARDED_BY(mu) = 0;                        // admitted and not yet answered
  std::map<std::string, OriginSlots> origins ABSL_GUARDED_BY(mu);  // only origins with steps
  std::atomic<size_t> waiting{0};  // steps waiting in `origins`, readable unlocked
  bool stopping ABSL_GUARDED_BY(mu) = false;
  std::vector<std::unique_ptr<EventLoop>> loops;  // fixed between construction and Shutdown
  std::atomic<size_t> next_loop{0};
};

// One step from admission to answer, as a chain of transfers (OAuth2 token call, the
// request, each redirect hop). Each transfer's completion continues it: on an event loop
// no thread waits for the server. All of it runs on one thread at a time.
class StepTask : public std::enable_shared_from_this<StepTask> {
 public:
  using Impl = RestEngine::Impl;
  StepTask(Impl* impl, PreparedStep step, core::CallCredentials credentials, Deadline deadline,
           bool deadline_is_caller, CancelToken cancel, StepCallback done,
           steady_clock::time_point admitted)
      : impl_(impl),
        prepared_(std::move(step)),
        cancel_(std::move(cancel)),
        done_(std::move(done)),
        admitted_(admitted),
        origin_key_(prepared_.url().Origin()) {
    run_.prepared = &prepared_;
    run_.step = &prepared_.step();
    run_.credentials = std::move(credentials);
    run_.deadline = deadline;
    run_.deadline_is_caller = deadline_is_caller;
    run_.admitted = admitted;
    run_.cancel = &cancel_;
    run_.origin = prepared_.url();
  }

  const std::string& origin_key() const { return origin_key_; }
  bool retries() const { return prepared_.step().retry.max_attempts > 1; }
  // A streamed body (rest/body_stream.h) is resumed by posting to the transfer's loop.
  bool streams() const {
    return prepared_.step().response_body != nullptr || prepared_.step().body_source != nullptr;
  }
  const CancelToken& cancel() const { return cancel_; }
  Deadline deadline() const { return run_.deadline; }

  // Runs the step with `executor` (on this thread) from its first transfer to its answer.
  void Begin(TransferExecutor executor, TransferDriver* driver = nullptr,
             std::function<void()> on_slow = {}, std::chrono::microseconds spin = {});
  // The answer of a step that never started (cancelled, or its deadline passed while it
  // waited for its origin).
  void AnswerUnstarted(bool cancelled);
  // The step's answer; frees its place. Exactly once.
  void Finish(Result<RestResult> result);
  // Replaces the answer callback (the lent thread observes the result first).
  StepCallback& done() { return done_; }

 private:
  void NextHop();
  void OnResponse(Result<HttpResponse> response);
  // After a transient failure, when the step's retry policy allows another attempt in
  // time: records this one, sets a timer on an event loop for the next, and says true.
  bool ScheduleRetry(const Result<HttpResponse>& response);
  void RecordAttempt(const Result<RestResult>* final_result, const Result<HttpResponse>* response,
                     std::string retry_reason);
  void FetchToken();
  void OnToken(Result<HttpResponse> response);
  TransferDone Continue(void (StepTask::*next)(Result<HttpResponse>)) {
    return [self = shared_from_this(), next](Result<HttpResponse> r) {
      ((*self).*next)(std::move(r));
    };
  }

  Impl* impl_;
  PreparedStep prepared_;
  CancelToken cancel_;
  StepCallback done_;
  const steady_clock::time_point admitted_;
  const std::string origin_key_;
  Impl::StepRun run_;
  TransferExecutor executor_;
  bool finished_ = false;

  // The request in progress and where the step is on its way.
  const OAuth2ClientCredentials* oauth_ = nullptr;
  bool token_refreshed_ = false;
  std::string token_key_;
  std::optional<SecretBytes> token_;
  SecretBytes token_form_;  // the token request's body, alive while it is sent
  core::CallCredentials token_creds_;
  std::string current_url_;
  std::string display_url_;
  UrlParts current_;
  std::string method_;
  bool keep_body_ = true;
  int hops_ = 0;
  HttpRequest request_;
  RestResult result_;
  // Retries: the attempt running, when it began, and the wait before it.
  int attempt_ = 1;
  steady_clock::time_point attempt_start_;
  milliseconds attempt_delay_{0};
  bool attempt_delay_from_retry_after_ = false;
};

}  // namespace wsstep::rest

#endif  // WSSTEP_REST_ENGINE_INTERNAL_H_

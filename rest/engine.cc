#include "rest/engine.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <deque>
#include <map>
#include <future>
#include <limits>
#include <mutex>
#include <random>
#include <thread>

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

namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    // OpenSSL writes to sockets with write(2): a peer that went away would raise SIGPIPE
    // and kill the process. libcurl only guards against that when it may touch signal
    // handlers (not with CURLOPT_NOSIGNAL, which threads need), so ignore it here unless
    // the host application installed its own handler.
    struct sigaction current {};
    if (sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      signal(SIGPIPE, SIG_IGN);
    }
  });
}

Error InvalidStep(std::string field, std::string message, std::string hint) {
  return Error(Code::kInvalidStepConfig, field + ": " + message, std::move(hint),
               Side::kConfiguration)
      .With("field", std::move(field));
}

SecretBytes Concat(std::string_view prefix, std::string_view secret) {
  SecretBytes out(prefix);
  out.Append(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(secret.data()),
                                      secret.size()));
  return out;
}

SecretBytes Base64Secret(const SecretBytes& raw) {
  SecretBytes out(4 * ((raw.size() + 2) / 3) + 1);
  int n = EVP_EncodeBlock(out.data(), raw.data(), static_cast<int>(raw.size()));
  out.Resize(static_cast<size_t>(n));
  return out;
}

bool IsRedirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// Request headers that carry credentials: never sent to another origin.
bool IsCredentialHeader(std::string_view name, const Auth& auth) {
  if (EqualsIgnoreCase(name, "Authorization") || EqualsIgnoreCase(name, "Proxy-Authorization") ||
      EqualsIgnoreCase(name, "Cookie")) {
    return true;
  }
  if (const auto* key = std::get_if<ApiKeyAuth>(&auth)) {
    return key->location == ApiKeyLocation::kHeader && EqualsIgnoreCase(name, key->name);
  }
  return false;
}

// A DNS name (letters, digits, '-' and '.', under 254 characters), or an IPv4 address
// written the one usual way. A name whose last label is a number ("1", "10.1",
// "0x7f.1", "010.0.0.1") is an IPv4 address to URL parsers in another spelling: the
// connection would go to, and verify, an address the designer never wrote ("1" is
// 0.0.0.1).
bool IsServerName(std::string_view name) {
  const bool dns_chars =
      name.size() < 254 && std::all_of(name.begin(), name.end(), [](unsigned char c) {
        return std::isalnum(c) != 0 || c == '-' || c == '.';
      });
  if (!dns_chars) return false;
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  const size_t dot = name.rfind('.');
  std::string_view last = dot == std::string_view::npos ? name : name.substr(dot + 1);
  const bool hex = last.size() > 2 && (last.starts_with("0x") || last.starts_with("0X"));
  if (hex) last.remove_prefix(2);
  const bool numeric =
      !last.empty() && std::all_of(last.begin(), last.end(), [hex](unsigned char c) {
        return hex ? std::isxdigit(c) != 0 : std::isdigit(c) != 0;
      });
  if (!numeric) return true;
  in_addr addr{};
  return !hex && ::inet_pton(AF_INET, std::string(name).c_str(), &addr) == 1;
}

// Methods RFC 9110 §9.2.2 calls idempotent: repeating one changes nothing more.
bool IsIdempotentMethod(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "PUT" || method == "DELETE" ||
         method == "OPTIONS";
}

// Failures after which the request surely did not reach the application (or, for an
// idempotent request, may be repeated): no connection, a connection that broke before an
// answer, a TIMEOUT before the request was sent. Never a certificate, verification or
// configuration failure.
bool IsRetryableFailure(const Error& e) {
  switch (e.code) {
    case Code::kConnectionRefused:
    case Code::kDnsFailure:
    case Code::kProxyUnreachable:
    case Code::kTransferFailed:
      return true;
    case Code::kTimeout: {
      auto phase = e.detail.find("phase");
      return phase != e.detail.end() &&
             (phase->second == "connect" || phase->second == "tls_handshake");
    }
    default:
      return false;
  }
}

bool IsRetryableStatus(int status) {
  return status == 429 || status == 502 || status == 503 || status == 504;
}

// Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP date; nullopt when absent or
// unreadable. A date in the past means "now".
std::optional<milliseconds> ParseRetryAfter(const std::vector<Header>& headers) {
  for (const auto& h : headers) {
    if (!EqualsIgnoreCase(h.name, "Retry-After")) continue;
    const std::string& v = h.value;
    if (!v.empty() && std::all_of(v.begin(), v.end(), [](unsigned char c) {
          return std::isdigit(c) != 0;
        })) {
      if (v.size() > 9) return milliseconds(std::numeric_limits<int32_t>::max());
      return milliseconds(std::stoll(v) * 1000);
    }
    const time_t when = curl_getdate(v.c_str(), nullptr);
    if (when < 0) return std::nullopt;
    const auto now = std::chrono::system_clock::now();
    const auto at = std::chrono::system_clock::from_time_t(when);
    return at <= now ? milliseconds(0) : std::chrono::duration_cast<milliseconds>(at - now);
  }
  return std::nullopt;
}

// Full jitter (the AWS architecture blog's "Exponential Backoff And Jitter"): uniform in
// [0, min(max_delay, base_delay * 2^(retry-1))], so that many clients failing together
// do not come back together.
milliseconds Backoff(const RetryPolicy& policy, int retry) {
  int64_t cap = policy.base_delay.count();
  for (int i = 1; i < retry && cap < policy.max_delay.count(); ++i) cap *= 2;
  cap = std::min<int64_t>(cap, policy.max_delay.count());
  if (cap <= 0) return milliseconds(0);
  thread_local std::mt19937_64 random{std::random_device{}()};
  return milliseconds(std::uniform_int_distribution<int64_t>(0, cap)(random));
}

}  // namespace

std::optional<std::string> RestResult::FindHeader(std::string_view name) const {
  for (const auto& h : headers) {
    if (EqualsIgnoreCase(h.name, name)) return h.value;
  }
  return std::nullopt;
}

class StepTask;
using StepTaskPtr = std::shared_ptr<StepTask>;

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
    const RestStep* step;  // prepared->step()
    UrlParts origin;              // the step URL's origin: auth belongs to it
    core::CallCredentials credentials;  // for `origin`
    Deadline deadline;
    bool deadline_is_caller;
    steady_clock::time_point admitted;  // the step's limits count from here
    const CancelToken* cancel;
    TransferDriver* driver = nullptr;  // a lent thread's; null on an event loop
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
            const core::CallCredentials& creds, bool same_origin,
            const TransferExecutor& executor, TransferDone done);
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

  std::mutex mu;
  std::condition_variable idle_cv;     // in_flight reached 0
  size_t in_flight = 0;                // admitted and not yet answered (under mu)
  std::map<std::string, OriginSlots> origins;  // only origins with steps (under mu)
  std::atomic<size_t> waiting{0};      // steps waiting in `origins`, readable unlocked
  bool stopping = false;               // under mu
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

Status RestEngine::Impl::Check(const RestStep& step, UrlParts* url_out,
                               std::optional<UrlParts>* token_url_out) const {
  if (!IsToken(step.method)) {
    return InvalidStep("method", "\"" + step.method + "\" is not a valid HTTP method",
                       "Use GET, POST, PUT, PATCH, DELETE, HEAD or another token.");
  }
  WSSTEP_ASSIGN_OR_RETURN(*url_out, ParseHttpUrl(step.url, "url"));
  if (step.tls.ssl_verification && url_out->scheme != "https") {
    return InvalidStep("tls.ssl_verification",
                       "SSL certificate verification is on but the URL " + step.url +
                           " is plain http: a client certificate is only ever sent over TLS",
                       "Use an https:// URL, or switch SSL certificate verification off.");
  }
  for (size_t i = 0; i < step.headers.size(); ++i) {
    WSSTEP_RETURN_IF_ERROR(ValidateHeader(step.headers[i].name, step.headers[i].value,
                                          "headers[" + std::to_string(i) + "]"));
  }
  if (!IsSafeHeaderValue(step.content_type)) {
    return InvalidStep("content_type", "contains CR, LF or NUL",
                       "Give a media type such as application/json.");
  }
  for (size_t i = 0; i < step.query.size(); ++i) {
    if (step.query[i].name.empty()) {
      return InvalidStep("query[" + std::to_string(i) + "]", "empty parameter name",
                         "Give every query parameter a name.");
    }
  }
  if (const auto* basic = std::get_if<BasicAuth>(&step.auth)) {
    if (basic->username.find(':') != std::string::npos || !IsSafeHeaderValue(basic->username)) {
      return InvalidStep("auth.basic.username", "must not contain ':', CR, LF or NUL",
                         "Basic authentication cannot carry a colon in the user name.");
    }
  } else if (const auto* bearer = std::get_if<BearerAuth>(&step.auth)) {
    if (bearer->token.empty() || !IsSafeHeaderValue(bearer->token.view())) {
      return InvalidStep("auth.bearer.token", "is empty or contains CR, LF or NUL",
                         "Paste the token without line breaks.");
    }
  } else if (const auto* key = std::get_if<ApiKeyAuth>(&step.auth)) {
    if (key->location == ApiKeyLocation::kHeader) {
      if (!IsToken(key->name)) {
        return InvalidStep("auth.api_key.name", "\"" + key->name + "\" is not a valid header name",
                           "Use the header name the API documents, e.g. X-API-Key.");
      }
      if (!IsSafeHeaderValue(key->value.view())) {
        return InvalidStep("auth.api_key.value", "contains CR, LF or NUL",
                           "Paste the key without line breaks.");
      }
    } else if (key->name.empty()) {
      return InvalidStep("auth.api_key.name", "empty query parameter name",
                         "Use the parameter name the API documents, e.g. api_key.");
    }
  } else if (const auto* oauth = std::get_if<OAuth2ClientCredentials>(&step.auth)) {
    WSSTEP_ASSIGN_OR_RETURN(UrlParts token_url,
                            ParseHttpUrl(oauth->token_url, "auth.oauth2.token_url"));
    const bool https = token_url.scheme == "https";
    *token_url_out = std::move(token_url);
    if (!https && step.tls.ssl_verification) {
      return InvalidStep("auth.oauth2.token_url", "must be https when SSL verification is on",
                         "Use the token endpoint's https:// URL.");
    }
    if (oauth->client_id.empty()) {
      return InvalidStep("auth.oauth2.client_id", "is empty", "Give the OAuth2 client id.");
    }
    OAuth2ClientAuth method = oauth->client_authentication;
    if ((method == OAuth2ClientAuth::kClientSecretBasic ||
         method == OAuth2ClientAuth::kClientSecretPost) &&
        oauth->client_secret.empty()) {
      return InvalidStep("auth.oauth2.client_secret",
                         "is empty but client_authentication sends a client secret",
                         "Give the client secret, or use TLS_CLIENT_AUTH to authenticate "
                         "with the client certificate bound to the token host.");
    }
    if (method == OAuth2ClientAuth::kTlsClientAuth && !oauth->client_secret.empty()) {
      // Dropping it silently would hide a designer's mistake about how the client logs in.
      return InvalidStep("auth.oauth2.client_secret",
                         "is set but client_authentication TLS_CLIENT_AUTH never sends it",
                         "Remove the client secret, or choose CLIENT_SECRET_BASIC or "
                         "CLIENT_SECRET_POST.");
    }
  }
  const TlsOptions& tls = step.tls;
  if (!tls.min_tls_version.empty() && tls.min_tls_version != "1.2" &&
      tls.min_tls_version != "1.3") {
    return InvalidStep("tls.min_tls_version",
                       "\"" + tls.min_tls_version + "\" is not supported (use 1.2 or 1.3)",
                       "TLS versions below 1.2 are never used.");
  }
  if (!tls.pinned_public_key.empty()) {
    WSSTEP_RETURN_IF_ERROR(NormalizePin(tls.pinned_public_key).status());
  }
  if (!tls.tls_server_name.empty()) {
    if (!IsServerName(tls.tls_server_name)) {
      return InvalidStep("tls.tls_server_name",
                         "\"" + tls.tls_server_name + "\" is not a DNS name",
                         "Give the name in the server's certificate, e.g. api.example.com.");
    }
  }
  if ((!tls.verify_peer || !tls.verify_host) &&
      options.protected_environments.count(tls.environment) > 0) {
    std::string field = !tls.verify_peer ? "tls.verify_peer" : "tls.verify_host";
    return InvalidStep(field,
                       "certificate verification cannot be turned off in the protected "
                       "environment \"" + tls.environment + "\"",
                       "Keep verify_peer and verify_host on; to trust a private CA, upload it "
                       "as a trust store bound to this host.");
  }
  if (step.follow_redirects && (step.max_redirects < 0 || step.max_redirects > 50)) {
    return InvalidStep("max_redirects", "must be between 0 and 50",
                       "Use a small bound such as 5.");
  }
  if (step.timeouts.connect.count() < 0 || step.timeouts.total.count() < 0) {
    return InvalidStep("timeouts", "must not be negative", "Use 0 for no limit of its own.");
  }
  if (step.max_response_bytes == 0) {
    return InvalidStep("max_response_bytes", "must be positive", "The default is 10 MiB.");
  }
  WSSTEP_RETURN_IF_ERROR(ParseProxySettings(step.proxy, "proxy").status());
  const RetryPolicy& retry = step.retry;
  if (retry.max_attempts < 0 || retry.max_attempts > kMaxRetryAttempts) {
    return InvalidStep("retry.max_attempts",
                       "must be between 0 and " + std::to_string(kMaxRetryAttempts),
                       "Use a few attempts, e.g. 3; 0 or 1 means no retry.");
  }
  if (retry.base_delay.count() < 0 || retry.max_delay.count() < 0) {
    return InvalidStep("retry", "delays must not be negative",
                       "Leave them unset for 200 ms and 10 s.");
  }
  if (retry.base_delay > retry.max_delay) {
    return InvalidStep("retry.base_delay", "is longer than retry.max_delay",
                       "Make base_delay at most max_delay.");
  }
  return {};
}

Result<core::CallCredentials> RestEngine::Impl::CredentialsFor(const StepRun& run,
                                                                const UrlParts& target,
                                                                CredentialPurpose purpose) {
  if (target.Origin() == run.origin.Origin()) return run.credentials;
  if (target.scheme != "https") return core::CallCredentials{};
  const RestStep& step = *run.step;
  if (!step.tls.ssl_verification || !options.credentials) return core::CallCredentials{};
  CredentialContext context{purpose, step.step_id, step.workflow_id};
  WSSTEP_ASSIGN_OR_RETURN(ResolvedCredentials resolved,
                          options.credentials->Resolve(target.host, target.port,
                                                       step.tls.environment,
                                                       step.tls.certificate_name, context));
  return std::move(resolved.credentials);
}

void RestEngine::Impl::Send(const StepRun& run, const HttpRequest& request,
                            const UrlParts& target, const core::CallCredentials& creds,
                            bool same_origin, const TransferExecutor& executor,
                            TransferDone done) {
  // Before the partition is looked up: dropping idle partitions must not drop this one.
  if (sockets.UnderPressure()) RelievePressure();
  Result<std::shared_ptr<Partition>> partition = PartitionFor(run, target, creds, same_origin);
  if (!partition.ok()) return done(partition.error());
  Result<std::unique_ptr<Transfer>> transfer =
      Transfer::Begin(std::move(partition).value(), request, LimitsFor(run));
  if (!transfer.ok()) return done(transfer.error());
  executor(std::move(transfer).value(), std::move(done));
}

void RestEngine::Impl::RelievePressure() {
  // Idle partitions hold only idle connections (and their TLS sessions): dropping them
  // closes those sockets; the next step to such an identity connects anew.
  partitions.DropIdle();
}


Result<std::shared_ptr<Partition>> RestEngine::Impl::PartitionFor(
    const StepRun& run, const UrlParts& target, const core::CallCredentials& creds,
    bool same_origin) {
  TlsOptions tls = run.step->tls;
  std::string pin;
  if (same_origin) {
    if (!tls.pinned_public_key.empty()) {
      WSSTEP_ASSIGN_OR_RETURN(pin, NormalizePin(tls.pinned_public_key));
    }
  } else {
    // The pin and the server name describe the step's own host, not another one.
    tls.pinned_public_key.clear();
    tls.tls_server_name.clear();
  }
  // A client certificate is only ever attached to a TLS connection.
  core::CallCredentials hop_creds = target.scheme == "https" ? creds : core::CallCredentials{};
  if (!engine_proxy.ok()) return engine_proxy.error();
  return partitions.Get(hop_creds, tls, pin, ChooseProxy(run.proxy, *engine_proxy, target),
                        OffersHttp2(*run.step));
}

TransferLimits RestEngine::Impl::LimitsFor(const StepRun& run) {
  const RestStep& step = *run.step;
  TransferLimits limits;
  limits.deadline = run.deadline;
  limits.deadline_is_caller = run.deadline_is_caller;
  limits.time_limit = std::chrono::duration_cast<std::chrono::milliseconds>(run.deadline - run.admitted);
  limits.connect_timeout = step.timeouts.connect;
  limits.max_response_bytes = step.max_response_bytes;
  limits.cancel = run.cancel;
  limits.reuse_connections = step.reuse_connections;
  limits.resume_sessions = step.resume_tls_sessions;
  limits.http2 = OffersHttp2(step);
  limits.user_agent = options.user_agent;
  limits.max_idle_handles = options.max_idle_handles_per_partition;
  limits.while_waiting = run.while_waiting;
  limits.poll_interval = run.poll_interval;
  limits.spin = run.spin;
  limits.sockets = &sockets;
  return limits;
}

Result<RestResult> RestEngine::Impl::Probe(const StepRun& run, const HandshakeProbe& probe) {
  WSSTEP_ASSIGN_OR_RETURN(std::shared_ptr<Partition> partition,
                          PartitionFor(run, run.origin, run.credentials, /*same_origin=*/true));
  HttpRequest request;
  request.method = "GET";
  request.url = run.step->url;
  request.url_parts = &run.origin;
  WSSTEP_ASSIGN_OR_RETURN(RestResult result,
                          run.driver->Probe(*partition, request, LimitsFor(run), probe));
  result.warnings = TlsOptionWarnings(run.step->tls);
  if (result.tls.client_certificate_requested && !result.tls.client_certificate) {
    result.warnings.push_back(ClientCertificateNotSent(run.origin.host, run.origin.port,
                                                       run.step->tls.ssl_verification));
  }
  return result;
}

void StepTask::Begin(TransferExecutor executor, TransferDriver* driver,
                     std::function<void()> on_slow, std::chrono::microseconds spin) {
  executor_ = std::move(executor);
  run_.driver = driver;
  run_.spin = spin;
  const RestStep& step = *run_.step;
  if (on_slow) {
    // On a lent thread: short waits, so that the caller hears soon that the step is slow.
    run_.poll_interval = std::chrono::milliseconds(2);
    run_.while_waiting = [start = steady_clock::now(), on_slow = std::move(on_slow),
                          told = false]() mutable {
      if (!told && steady_clock::now() - start >= RestEngine::kSlowLentStep) {
        told = true;
        on_slow();
      }
    };
  }
  if (cancel_.cancelled()) return Finish(Impl::CancelledBeforeStart(step.url));
  {
    auto proxy = ParseProxySettings(step.proxy, "proxy");
    if (!proxy.ok()) return Finish(proxy.error());
    run_.proxy = std::move(proxy).value();
  }
  attempt_start_ = steady_clock::now();
  if (step.probe) {
    TransferDriver own;
    if (run_.driver == nullptr) run_.driver = &own;
    Result<RestResult> probed = impl_->Probe(run_, *step.probe);
    run_.driver = nullptr;
    return Finish(std::move(probed));
  }

  std::vector<QueryParam> query = step.query;
  if (const auto* key = std::get_if<ApiKeyAuth>(&step.auth);
      key != nullptr && key->location == ApiKeyLocation::kQuery) {
    query.push_back({key->name, "REDACTED"});
    auto shown = AppendQuery(step.url, query);
    if (!shown.ok()) return Finish(shown.error());
    display_url_ = std::move(shown).value();
    query.back().value.assign(key->value.view());
  }
  auto url = AppendQuery(step.url, query);
  for (auto& q : query) OPENSSL_cleanse(q.value.data(), q.value.size());
  if (!url.ok()) return Finish(url.error());
  // Query parameters change neither scheme, host nor port: the prepared parts stand.
  if (display_url_.empty()) display_url_ = *url;
  current_url_ = std::move(url).value();
  current_ = run_.origin;
  method_ = step.method;
  oauth_ = std::get_if<OAuth2ClientCredentials>(&step.auth);
  result_.warnings = TlsOptionWarnings(step.tls);
  NextHop();
}

void StepTask::NextHop() {
  const RestStep& step = *run_.step;
  const bool same_origin = current_.Origin() == run_.origin.Origin();
  if (oauth_ != nullptr && same_origin && !token_) return FetchToken();
  request_ = HttpRequest();
  request_.method = method_;
  request_.url = current_url_;
  request_.url_parts = &current_;
  request_.display_url = display_url_;
  for (const auto& h : step.headers) {
    if (!same_origin && IsCredentialHeader(h.name, step.auth)) continue;
    request_.headers.push_back(h);
  }
  if (keep_body_) {
    request_.body = step.body;
    request_.content_type = step.content_type;
  }
  if (same_origin) {
    if (const auto* basic = std::get_if<BasicAuth>(&step.auth)) {
      SecretBytes raw = Concat(basic->username + ":", basic->password.view());
      request_.secret_headers.push_back(
          {"Authorization", Concat("Basic ", Base64Secret(raw).view())});
    } else if (const auto* bearer = std::get_if<BearerAuth>(&step.auth)) {
      request_.secret_headers.push_back({"Authorization", Concat("Bearer ", bearer->token.view())});
    } else if (const auto* key = std::get_if<ApiKeyAuth>(&step.auth);
               key != nullptr && key->location == ApiKeyLocation::kHeader) {
      request_.secret_headers.push_back({key->name, key->value.Clone()});
    } else if (oauth_ != nullptr) {
      request_.secret_headers.push_back({"Authorization", Concat("Bearer ", token_->view())});
    }
  }
  auto hop_creds = impl_->CredentialsFor(run_, current_, CredentialPurpose::kRedirect);
  if (!hop_creds.ok()) return Finish(hop_creds.error());
  impl_->Send(run_, request_, current_, *hop_creds, same_origin, executor_,
              Continue(&StepTask::OnResponse));
}

void StepTask::FetchToken() {
  const UrlParts& target = *prepared_.token_url();
  auto creds = impl_->CredentialsFor(run_, target, CredentialPurpose::kOAuth2Token);
  if (!creds.ok()) {
    Error e = creds.error();
    e.message = "OAuth2 token endpoint " + oauth_->token_url + ": " + e.message;
    return Finish(std::move(e).With("token_endpoint", oauth_->token_url));
  }
  token_key_ = TokenCacheKey(*oauth_, *creds);
  if (!token_refreshed_) {
    if (auto cached = impl_->tokens.Find(token_key_, steady_clock::now())) {
      token_ = std::move(*cached);
      return NextHop();
    }
  }
  token_form_ = TokenRequestBody(*oauth_);
  request_ = HttpRequest();
  request_.method = "POST";
  request_.url = oauth_->token_url;
  request_.url_parts = &target;
  request_.body = token_form_.view();
  request_.content_type = "application/x-www-form-urlencoded";
  request_.headers.push_back({"Accept", "application/json"});
  if (auto basic = TokenRequestBasicCredentials(*oauth_)) {
    request_.secret_headers.push_back(
        {"Authorization", Concat("Basic ", Base64Secret(*basic).view())});
  }
  token_creds_ = std::move(creds).value();
  impl_->Send(run_, request_, target, token_creds_, target.Origin() == run_.origin.Origin(),
              executor_, Continue(&StepTask::OnToken));
}

void StepTask::OnToken(Result<HttpResponse> response) {
  const std::string& token_url = oauth_->token_url;
  if (!response.ok()) {
    Error e = response.error();
    e.message = "OAuth2 token endpoint " + token_url + ": " + e.message;
    return Finish(std::move(e).With("token_endpoint", token_url));
  }
  auto token = ParseTokenResponse(response->status, response->body, token_url);
  OPENSSL_cleanse(response->body.data(), response->body.size());
  if (!token.ok()) return Finish(token.error());
  const auto now = steady_clock::now();
  auto lifetime = token->expires_in.count() > 0 ? token->expires_in : std::chrono::seconds(60);
  auto expires_at = now + lifetime - impl_->options.oauth2_expiry_margin;
  if (expires_at > now) impl_->tokens.Store(token_key_, token->value, expires_at);
  token_ = std::move(token->value);
  NextHop();
}

void StepTask::OnResponse(Result<HttpResponse> response) {
  const RestStep& step = *run_.step;
  const bool same_origin = current_.Origin() == run_.origin.Origin();
  if (ScheduleRetry(response)) return;
  if (!response.ok()) {
    Error e = response.error();
    if (hops_ > 0) e.With("redirects_followed", std::to_string(hops_));
    return Finish(std::move(e));
  }
  // A cached token the API no longer accepts (revoked, rotated): fetch a new one once.
  if (oauth_ != nullptr && same_origin && response->status == 401 && !token_refreshed_) {
    token_refreshed_ = true;
    token_.reset();
    return NextHop();
  }
  if (step.follow_redirects && IsRedirect(response->status) && !response->redirect_url.empty()) {
    if (hops_ >= step.max_redirects) {
      return Finish(Error(Code::kTransferFailed,
                          step.url + ": more than " + std::to_string(step.max_redirects) +
                              " redirects (last to " + response->redirect_url + ")",
                          "Point the step at the final URL, or raise max_redirects.",
                          Side::kServer)
                        .With("redirects_followed", std::to_string(hops_))
                        .With("url", step.url));
    }
    auto next = ParseHttpUrl(response->redirect_url, "Location");
    if (!next.ok()) {
      return Finish(Error(Code::kInvalidResponse,
                          display_url_ + ": redirect to an unusable location \"" +
                              response->redirect_url + "\"",
                          "Only http(s) redirects are followed.", Side::kServer)
                        .With("location", response->redirect_url));
    }
    if (current_.scheme == "https" && next->scheme == "http" && step.tls.ssl_verification) {
      return Finish(Error(Code::kInvalidResponse,
                          display_url_ + ": refused a redirect from https to plain http (" +
                              response->redirect_url + ")",
                          "The server downgrades to plain http; fix the server or the step's URL.",
                          Side::kServer)
                        .With("location", response->redirect_url));
    }
    ++hops_;
    int s = response->status;
    if (s == 303 || ((s == 301 || s == 302) && method_ == "POST")) {
      if (method_ != "HEAD") method_ = "GET";
      keep_body_ = false;
    }
    current_url_ = response->redirect_url;
    display_url_ = current_url_;
    current_ = std::move(next).value();
    return NextHop();
  }

  HttpResponse& r = *response;
  HttpRefusalFacts refusal;
  refusal.url = display_url_;
  refusal.status = r.status;
  refusal.body = r.body;
  refusal.used_tls = r.tls.used_tls;
  refusal.certificate_requested = r.tls.client_certificate_requested;
  refusal.certificate_presented = r.tls.client_certificate.has_value();
  if (r.tls.client_certificate) {
    refusal.certificate_name = r.tls.client_certificate->name;
    refusal.certificate_fingerprint = r.tls.client_certificate->fingerprint;
  }
  if (auto refused = ClassifyHttpRefusal(refusal)) return Finish(*std::move(refused));
  RestResult& result = result_;
  result.status = r.status;
  result.headers = std::move(r.headers);
  result.body = std::move(r.body);
  result.content_type = std::move(r.content_type);
  result.effective_url = display_url_;
  result.redirects_followed = hops_;
  result.timings = r.timings;
  result.tls = std::move(r.tls);
  result.timings.total_us =
      std::chrono::duration_cast<std::chrono::microseconds>(steady_clock::now() - admitted_)
          .count();
  if (result.tls.client_certificate_requested && !result.tls.client_certificate) {
    result.warnings.push_back(
        ClientCertificateNotSent(current_.host, current_.port, step.tls.ssl_verification));
  }
  if (result.status == 401 || result.status == 403) {
    result.application_refused = true;
    result.application_refused_message =
        "TLS succeeded, the application refused: HTTP " + std::to_string(result.status) +
        " from " + display_url_ + " (check the step's credentials or the identity's "
        "permissions, not the certificate setup)";
  }
  Finish(std::move(result_));
}

void StepTask::RecordAttempt(const Result<RestResult>* final_result,
                             const Result<HttpResponse>* response, std::string retry_reason) {
  const std::shared_ptr<AttemptLog>& log = run_.step->attempts;
  if (log == nullptr) return;
  AttemptRecord a;
  a.number = attempt_;
  a.delay = attempt_delay_;
  a.delay_from_retry_after = attempt_delay_from_retry_after_;
  a.duration =
      std::chrono::duration_cast<std::chrono::microseconds>(steady_clock::now() - attempt_start_);
  a.retry_reason = std::move(retry_reason);
  if (final_result != nullptr) {
    if (final_result->ok()) {
      a.http_status = (*final_result)->status;
    } else {
      a.error = final_result->error();
    }
  } else if (response != nullptr) {
    if (response->ok()) {
      a.http_status = (*response)->status;
    } else {
      a.error = response->error();
    }
  }
  log->push_back(std::move(a));
}

bool StepTask::ScheduleRetry(const Result<HttpResponse>& response) {
  const RetryPolicy& policy = run_.step->retry;
  if (policy.max_attempts <= 1 || attempt_ >= policy.max_attempts) return false;
  if (!policy.idempotent && !IsIdempotentMethod(method_)) return false;
  std::string reason;
  std::optional<milliseconds> retry_after;
  if (response.ok()) {
    if (!IsRetryableStatus(response->status)) return false;
    reason = "status_" + std::to_string(response->status);
    retry_after = ParseRetryAfter(response->headers);
  } else {
    if (!IsRetryableFailure(response.error())) return false;
    reason = std::string(CodeName(response.error().code));
  }
  const milliseconds delay = retry_after ? *retry_after : Backoff(policy, attempt_);
  // A retry that could not finish before the deadline would only turn this answer into a
  // TIMEOUT: give the answer we have.
  if (cancel_.cancelled() || steady_clock::now() + delay >= run_.deadline) return false;
  RecordAttempt(nullptr, &response, reason);
  ++attempt_;
  attempt_delay_ = delay;
  attempt_delay_from_retry_after_ = retry_after.has_value();
  // The wait is a timer on an event loop; the next attempt runs there.
  EventLoop& loop = impl_->PickLoop();
  executor_ = [&loop](std::unique_ptr<Transfer> transfer, TransferDone done) {
    loop.Start(std::move(transfer), std::move(done));
  };
  run_.driver = nullptr;
  run_.while_waiting = {};
  run_.poll_interval = EventLoop::kPollInterval;
  run_.spin = std::chrono::microseconds(0);
  loop.After(steady_clock::now() + delay, [self = shared_from_this()] {
    if (self->cancel_.cancelled()) {
      FailureContext cancelled;
      cancelled.url = self->display_url_;
      cancelled.cancelled = true;
      return self->Finish(Classify(cancelled).With("waiting_to_retry", "true"));
    }
    self->attempt_start_ = steady_clock::now();
    self->NextHop();
  }, &cancel_);
  return true;
}

void StepTask::AnswerUnstarted(bool cancelled) {
  if (cancelled) return Finish(Impl::CancelledBeforeStart(run_.step->url));
  FailureContext f;
  f.url = run_.step->url;
  f.host = run_.origin.host;
  f.port = run_.origin.port;
  f.https = run_.origin.scheme == "https";
  f.queued = true;
  f.deadline_exceeded = true;
  f.limit = run_.deadline_is_caller ? TimeLimit::kCallerDeadline : TimeLimit::kStepTimeout;
  f.time_limit = std::chrono::duration_cast<std::chrono::milliseconds>(run_.deadline - admitted_);
  Finish(Classify(f).With("started", "false"));
}

void StepTask::Finish(Result<RestResult> result) {
  if (finished_) return;
  finished_ = true;
  if (run_.step->retry.max_attempts > 1) {
    RecordAttempt(&result, nullptr, "");
    if (!result.ok() && attempt_ > 1) {
      Error e = result.error();
      result = std::move(e).With("attempts", std::to_string(attempt_));
    }
  }
  if (!result.ok() && result.error().code == Code::kDescriptorsExhausted) {
    impl_->RelievePressure();
  }
  impl_->StepEnded(origin_key_);
  StepCallback done = std::move(done_);
  done(std::move(result));
}


Error RestEngine::Impl::CancelledBeforeStart(const std::string& url) {
  FailureContext failure;
  failure.url = url;
  failure.cancelled = true;
  return Classify(failure).With("started", "false");
}

namespace {

class Lease final : public RestEngine::ThreadLease {
 public:
  Lease(RestEngine::Impl* impl, size_t max_cached_connections, std::function<void()> on_slow,
        std::chrono::microseconds spin_wait);
  ~Lease() override;
  bool allow_run_here() const { return allow_run_here_; }
  RestEngine::Impl* impl;
  TransferDriver driver;
  std::function<void()> on_slow;
  // A lent thread runs a step only when the engine has nothing else to do, so waiting
  // for the origin is all it would do anyway: it spins first while the origin answers
  // about as fast as a spin lasts (a nearby one). Learns from each step's transfer time.
  SpinAdvisor spin;
  Lease* previous;
};

thread_local Lease* t_lease = nullptr;

Lease::Lease(RestEngine::Impl* i, size_t max_cached_connections,
             std::function<void()> slow, std::chrono::microseconds spin_wait)
    : impl(i),
      driver(max_cached_connections),
      on_slow(std::move(slow)),
      spin(spin_wait),
      previous(t_lease) {
  t_lease = this;
}

Lease::~Lease() { t_lease = previous; }

}  // namespace

std::unique_ptr<RestEngine::ThreadLease> RestEngine::LendThisThread(
    std::function<void()> on_slow) {
  return std::make_unique<Lease>(impl_.get(), impl_->DriverCacheSize(), std::move(on_slow),
                                 impl_->options.spin_wait);
}

static int DefaultEventLoops() {
  const unsigned cores = std::thread::hardware_concurrency();
  return static_cast<int>(std::clamp(cores, 1u, 4u));
}

RestEngine::RestEngine(EngineOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  GlobalInit();
  const int n = impl_->options.workers > 0 ? impl_->options.workers : DefaultEventLoops();
  // Idle connections each partition keeps (libcurl trims the partition's connection
  // cache to this whenever a transfer on the loop returns a connection to it).
  const size_t cached = impl_->DriverCacheSize();
  for (int i = 0; i < n; ++i) {
    impl_->loops.push_back(
        std::make_unique<EventLoop>(cached, [impl = impl_.get()] { return impl->ExpireWaiting(); }));
  }
}

RestEngine::~RestEngine() { Shutdown(); }

void RestEngine::Shutdown() {
  std::unique_lock<std::mutex> lock(impl_->mu);
  impl_->stopping = true;
  // Running and waiting steps end by themselves, each bounded by its own deadline.
  impl_->idle_cv.wait(lock, [this] { return impl_->in_flight == 0; });
  lock.unlock();
  for (auto& loop : impl_->loops) loop->Stop();
}

EventLoop& RestEngine::Impl::PickLoop() {
  const size_t first = next_loop.fetch_add(1, std::memory_order_relaxed) % loops.size();
  EventLoop* best = loops[first].get();
  for (size_t i = 1; i < loops.size(); ++i) {
    EventLoop* other = loops[(first + i) % loops.size()].get();
    if (other->load() < best->load()) best = other;
  }
  return *best;
}

void RestEngine::Impl::StartOnLoop(StepTaskPtr task) {
  EventLoop& loop = PickLoop();
  loop.Post([task, &loop] {
    task->Begin([&loop](std::unique_ptr<Transfer> transfer, TransferDone done) {
      loop.Start(std::move(transfer), std::move(done));
    });
  });
}

void RestEngine::Impl::StepEnded(const std::string& origin) {
  StepTaskPtr next;
  std::vector<std::pair<StepTaskPtr, bool>> unstarted;  // (step, cancelled)
  {
    std::lock_guard<std::mutex> lock(mu);
    --in_flight;
    auto it = origins.find(origin);
    if (it != origins.end()) {
      OriginSlots& slots = it->second;
      --slots.running;
      const auto now = steady_clock::now();
      while (!slots.waiting.empty() && next == nullptr) {
        StepTaskPtr task = std::move(slots.waiting.front());
        slots.waiting.pop_front();
        waiting.fetch_sub(1, std::memory_order_relaxed);
        const bool cancelled = task->cancel().cancelled();
        if (cancelled || now >= task->deadline()) {
          ++slots.running;  // its answer ends it through StepEnded like any other
          unstarted.emplace_back(std::move(task), cancelled);
        } else {
          ++slots.running;
          next = std::move(task);
        }
      }
      if (slots.running == 0 && slots.waiting.empty()) origins.erase(it);
    }
    if (in_flight == 0) idle_cv.notify_all();
  }
  for (auto& [task, cancelled] : unstarted) task->AnswerUnstarted(cancelled);
  if (next) StartOnLoop(std::move(next));
}

bool RestEngine::Impl::ExpireWaiting() {
  if (waiting.load(std::memory_order_relaxed) == 0) return false;
  std::vector<std::pair<StepTaskPtr, bool>> unstarted;
  {
    std::lock_guard<std::mutex> lock(mu);
    const auto now = steady_clock::now();
    for (auto& [origin, slots] : origins) {
      for (auto it = slots.waiting.begin(); it != slots.waiting.end();) {
        const bool cancelled = (*it)->cancel().cancelled();
        if (cancelled || now >= (*it)->deadline()) {
          ++slots.running;  // answered below; StepEnded gives the place back
          unstarted.emplace_back(std::move(*it), cancelled);
          it = slots.waiting.erase(it);
          waiting.fetch_sub(1, std::memory_order_relaxed);
        } else {
          ++it;
        }
      }
    }
  }
  for (auto& [task, cancelled] : unstarted) task->AnswerUnstarted(cancelled);
  return waiting.load(std::memory_order_relaxed) > 0;
}

std::string_view RefusalName(Refusal refusal) {
  switch (refusal) {
    case Refusal::kEngineBusy: return "engine_busy";
    case Refusal::kShuttingDown: return "shutting_down";
  }
  return "refused";  // unreachable: -Wswitch names a missing value
}

Error RestEngine::Impl::RefusalError(Refusal refusal) const {
  Error e;
  switch (refusal) {
    case Refusal::kEngineBusy:
      // A refusal happens when max_queue steps are in flight (never more).
      e = Error(Code::kFailedPrecondition,
                "engine busy: " + std::to_string(options.max_queue) +
                    " steps are already in flight",
                "Retry later or raise the engine's limit of steps in flight.", Side::kNone);
      break;
    case Refusal::kShuttingDown:
      e = Error(Code::kFailedPrecondition, "the REST engine is shutting down",
                "Retry on another plugin instance.", Side::kNone);
      break;
  }
  return std::move(e).With("reason", std::string(RefusalName(refusal)));
}

Result<PreparedStep> RestEngine::Prepare(RestStep step) const {
  UrlParts url;
  std::optional<UrlParts> token_url;
  WSSTEP_RETURN_IF_ERROR(impl_->Check(step, &url, &token_url));
  return PreparedStep(std::move(step), std::move(url), std::move(token_url));
}

void RestEngine::Submit(RestStep step, core::CallCredentials credentials, Deadline deadline,
                        CancelToken cancel, StepCallback done) {
  Result<PreparedStep> prepared = Prepare(std::move(step));
  if (!prepared.ok()) return done(prepared.error());
  Submit(std::move(prepared).value(), std::move(credentials), deadline, std::move(cancel),
         std::move(done));
}

void RestEngine::Submit(PreparedStep step, core::CallCredentials credentials, Deadline deadline,
                        CancelToken cancel, StepCallback done) {
  if (auto refusal = impl_->Admit(std::move(step), std::move(credentials), deadline,
                                  std::move(cancel), done)) {
    done(impl_->RefusalError(*refusal));
  }
}

std::optional<Refusal> RestEngine::TrySubmit(PreparedStep step, core::CallCredentials credentials,
                                             Deadline deadline, CancelToken cancel,
                                             StepCallback done) {
  return impl_->Admit(std::move(step), std::move(credentials), deadline, std::move(cancel), done);
}

std::optional<Refusal> RestEngine::Impl::Admit(PreparedStep step,
                                               core::CallCredentials credentials,
                                               Deadline deadline, CancelToken cancel,
                                               StepCallback& done) {
  // The step's own time limit runs from here, whatever it waits for afterwards.
  const auto admitted = steady_clock::now();
  bool deadline_is_caller = true;
  const auto total = step.step().timeouts.total;
  if (total.count() > 0 && admitted + total < deadline) {
    deadline = admitted + total;
    deadline_is_caller = false;
  }
  Lease* lease = t_lease != nullptr && t_lease->impl == this ? t_lease : nullptr;
  const bool probe = step.step().probe.has_value();
  const int cap = options.max_in_flight_per_origin;
  enum class Where { kLoop, kHere, kWaiting, kOriginBusy } where = Where::kLoop;
  StepTaskPtr task;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (stopping) return Refusal::kShuttingDown;
    if (in_flight >= options.max_queue) return Refusal::kEngineBusy;
    task = std::make_shared<StepTask>(this, std::move(step), std::move(credentials), deadline,
                                      deadline_is_caller, std::move(cancel), std::move(done),
                                      admitted);
    OriginSlots& slots = origins[task->origin_key()];
    if (cap > 0 && slots.running >= cap) {
      if (slots.waiting.size() >= static_cast<size_t>(cap)) {
        where = Where::kOriginBusy;
      } else {
        where = Where::kWaiting;
        slots.waiting.push_back(task);
        waiting.fetch_add(1, std::memory_order_relaxed);
        ++in_flight;
      }
    } else {
      // Probes block their thread (a connection test's handshake): they run on the
      // caller's, never on an event loop.
      // A step that may retry runs on a loop from the start: its later attempts do.
      const bool may_retry = task->retries();
      if (probe || (lease != nullptr && lease->allow_run_here() && in_flight == 0 && !may_retry)) {
        where = Where::kHere;
      }
      ++slots.running;
      ++in_flight;
    }
  }
  switch (where) {
    case Where::kWaiting:
      // A loop with nothing running sleeps: have one watch the waiting step's deadline.
      loops.front()->Wake();
      return std::nullopt;
    case Where::kOriginBusy: {
      StepCallback answer = std::move(task->done());
      answer(Error(Code::kOriginBusy,
                   task->origin_key() + ": " + std::to_string(cap) +
                       " steps to this origin are running and " + std::to_string(cap) +
                       " more are waiting; the step was not started",
                   "The origin is slow or hanging: check it, lower its steps' timeouts, or "
                   "raise max_in_flight_per_origin.",
                   Side::kPlugin)
                 .With("origin", task->origin_key())
                 .With("max_in_flight_per_origin", std::to_string(cap))
                 .With("started", "false"));
      return std::nullopt;
    }
    case Where::kLoop:
      StartOnLoop(std::move(task));
      return std::nullopt;
    case Where::kHere:
      break;
  }
  // On this thread, outside the lock: a lent thread's step, or a probe.
  if (lease == nullptr || probe) {
    task->Begin([](std::unique_ptr<Transfer> transfer, TransferDone transfer_done) {
      TransferDriver driver;
      transfer_done(driver.Drive(*transfer));
    });
    return std::nullopt;
  }
  StepCallback answer = std::move(task->done());
  task->done() = [lease, answer = std::move(answer)](Result<RestResult> result) {
    if (result.ok()) {
      lease->spin.Observe(std::chrono::microseconds(result->timings.total_us));
    } else {
      lease->spin.ObserveFailure();
    }
    answer(std::move(result));
  };
  task->Begin(
      [lease](std::unique_ptr<Transfer> transfer, TransferDone transfer_done) {
        transfer_done(lease->driver.Drive(*transfer));
      },
      &lease->driver, lease->on_slow, lease->spin.Budget());
  return std::nullopt;
}


Result<RestResult> RestEngine::Execute(RestStep step, core::CallCredentials credentials,
                                       Deadline deadline, CancelToken cancel) {
  std::promise<Result<RestResult>> promise;
  auto future = promise.get_future();
  Submit(std::move(step), std::move(credentials), deadline, std::move(cancel),
         [&promise](Result<RestResult> r) { promise.set_value(std::move(r)); });
  return future.get();
}

Status RestEngine::Validate(const RestStep& step) const {
  UrlParts url;
  std::optional<UrlParts> token_url;
  return impl_->Check(step, &url, &token_url);
}

std::vector<PartitionStats> RestEngine::Stats() const { return impl_->partitions.Stats(); }

PartitionStats RestEngine::StatsForIdentity(const std::string& fingerprint) const {
  PartitionStats sum;
  sum.identity_fingerprint = fingerprint;
  for (const auto& s : impl_->partitions.Stats()) {
    if (s.identity_fingerprint != fingerprint) continue;
    sum.key += (sum.key.empty() ? "" : " | ") + s.key;
    sum.identity_entry_id = s.identity_entry_id;
    sum.AddCounters(s);
  }
  return sum;
}

std::vector<PartitionStats> RestEngine::TotalsByEntry() const {
  return impl_->partitions.TotalsByEntry();
}

void PartitionStats::AddCounters(const PartitionStats& other) {
  requests += other.requests;
  new_connections += other.new_connections;
  reused_connections += other.reused_connections;
  resumed_sessions += other.resumed_sessions;
  full_handshakes += other.full_handshakes;
}

}  // namespace wsstep::rest

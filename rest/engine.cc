#include "rest/engine.h"
#include "rest/engine_internal.h"

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

}  // namespace

std::optional<std::string> RestResult::FindHeader(std::string_view name) const {
  for (const auto& h : headers) {
    if (EqualsIgnoreCase(h.name, name)) return h.value;
  }
  return std::nullopt;
}

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
  if (step.body_source != nullptr && !step.body.empty()) {
    return InvalidStep("body", "is set although the body is streamed",
                       "Give the body either whole or streamed, not both.");
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
  if (SameOrigin(target, run.origin)) return run.credentials;
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
  // The step's own options as they are for its own origin (no copy on the warm path).
  std::optional<TlsOptions> other_host;
  std::string pin;
  if (same_origin) {
    if (!run.step->tls.pinned_public_key.empty()) {
      WSSTEP_ASSIGN_OR_RETURN(pin, NormalizePin(run.step->tls.pinned_public_key));
    }
  } else {
    // The pin and the server name describe the step's own host, not another one.
    other_host = run.step->tls;
    other_host->pinned_public_key.clear();
    other_host->tls_server_name.clear();
  }
  const TlsOptions& tls = other_host ? *other_host : run.step->tls;
  // A client certificate is only ever attached to a TLS connection.
  static const core::CallCredentials kNoCredentials;
  const core::CallCredentials& hop_creds = target.scheme == "https" ? creds : kNoCredentials;
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
  MutexLock lock(impl_->mu);
  impl_->stopping = true;
  // Running and waiting steps end by themselves, each bounded by its own deadline.
  while (impl_->in_flight != 0) impl_->idle_cv.Wait(lock);
  lock.Unlock();
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
    MutexLock lock(mu);
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
    if (in_flight == 0) idle_cv.NotifyAll();
  }
  for (auto& [task, cancelled] : unstarted) task->AnswerUnstarted(cancelled);
  if (next) StartOnLoop(std::move(next));
}

bool RestEngine::Impl::ExpireWaiting() {
  if (waiting.load(std::memory_order_relaxed) == 0) return false;
  std::vector<std::pair<StepTaskPtr, bool>> unstarted;
  {
    MutexLock lock(mu);
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
    MutexLock lock(mu);
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
      // So does a step with a streamed body: its resume is posted to a loop.
      const bool loop_only = task->retries() || task->streams();
      if (probe || (lease != nullptr && lease->allow_run_here() && in_flight == 0 && !loop_only)) {
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

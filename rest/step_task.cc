// StepTask: one REST step as a chain of transfers (OAuth2 token, the request, each
// redirect hop), with its retries and the record of each attempt. Driven by the engine
// (engine.cc) on an event loop or a lent thread.
#include <openssl/evp.h>

#include "rest/engine_internal.h"

namespace wsstep::rest {
namespace {

SecretBytes Concat(std::string_view prefix, std::string_view secret) {
  SecretBytes out(prefix);
  out.Append(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(secret.data()), secret.size()));
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
    if (!v.empty() &&
        std::all_of(v.begin(), v.end(), [](unsigned char c) { return std::isdigit(c) != 0; })) {
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
  const bool same_origin = SameOrigin(current_, run_.origin);
  if (oauth_ != nullptr && same_origin && !token_) return FetchToken();
  request_ = HttpRequest();
  request_.method = method_;
  request_.url = current_url_;
  request_.url_parts = &current_;
  // Only a URL that carries a secret is shown as another text (empty: `url`).
  if (display_url_ != current_url_) request_.display_url = display_url_;
  for (const auto& h : step.headers) {
    if (!same_origin && IsCredentialHeader(h.name, step.auth)) continue;
    request_.headers.push_back(h);
  }
  if (keep_body_) {
    request_.body = step.body;
    request_.body_source = step.body_source.get();
    request_.content_type = step.content_type;
  }
  request_.response_body = step.response_body.get();
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
  impl_->Send(run_, request_, target, token_creds_, SameOrigin(target, run_.origin), executor_,
              Continue(&StepTask::OnToken));
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
  const bool same_origin = SameOrigin(current_, run_.origin);
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
  // A streamed request body was read once: a redirect that would send it again is the
  // step's answer, not followed.
  const int status = response->status;
  const bool resends_body =
      keep_body_ && !(status == 303 || ((status == 301 || status == 302) && method_ == "POST"));
  if (step.follow_redirects && IsRedirect(status) && !response->redirect_url.empty() &&
      !(step.body_source != nullptr && resends_body)) {
    if (hops_ >= step.max_redirects) {
      return Finish(Error(Code::kTransferFailed,
                          step.url + ": more than " + std::to_string(step.max_redirects) +
                              " redirects (last to " + response->redirect_url + ")",
                          "Point the step at the final URL, or raise max_redirects.", Side::kServer)
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
  result.body_streamed = r.body_streamed;
  result.body_bytes = r.body_bytes;
  result.content_type = std::move(r.content_type);
  result.effective_url = std::move(display_url_);  // the step ends here
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
    result.application_refused_message = "TLS succeeded, the application refused: HTTP " +
                                         std::to_string(result.status) + " from " +
                                         result.effective_url +
                                         " (check the step's credentials or the identity's "
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
  // Bytes of a streamed body already moved cannot be taken back or read again.
  if (run_.step->body_source != nullptr && response.ok()) return false;
  if (!response.ok() && (response.error().detail.count("body_bytes_streamed") != 0 ||
                         response.error().detail.count("request_body_bytes_sent") != 0)) {
    return false;
  }
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
  loop.After(
      steady_clock::now() + delay,
      [self = shared_from_this()] {
        if (self->cancel_.cancelled()) {
          FailureContext cancelled;
          cancelled.url = self->display_url_;
          cancelled.cancelled = true;
          return self->Finish(Classify(cancelled).With("waiting_to_retry", "true"));
        }
        self->attempt_start_ = steady_clock::now();
        self->NextHop();
      },
      &cancel_);
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

}  // namespace wsstep::rest

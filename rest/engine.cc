#include "rest/engine.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

#include "core/ossl.h"
#include "rest/http_text.h"
#include "rest/oauth2.h"
#include "rest/partition.h"
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

struct Job {
  PreparedStep step;
  core::CallCredentials credentials;
  Deadline deadline;
  CancelToken cancel;
  StepCallback done;
};

}  // namespace

std::optional<std::string> RestResult::FindHeader(std::string_view name) const {
  for (const auto& h : headers) {
    if (EqualsIgnoreCase(h.name, name)) return h.value;
  }
  return std::nullopt;
}

struct RestEngine::Impl {
  explicit Impl(EngineOptions o)
      : options(std::move(o)),
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
    const CancelToken* cancel;
    TransferDriver* driver;
    std::function<void()> while_waiting;  // also tells a lent thread's caller it is slow
    std::chrono::milliseconds poll_interval{50};
    std::chrono::microseconds spin{0};  // TransferLimits::spin
  };

  // The design-time and pre-send checks; `url` and `token_url` receive the parsed URLs.
  Status Check(const RestStep& step, UrlParts* url, std::optional<UrlParts>* token_url) const;
  Result<RestResult> Run(TransferDriver& driver, const PreparedStep& step,
                         core::CallCredentials creds,
                         Deadline deadline, const CancelToken& cancel,
                         std::function<void()> on_slow = {},
                         std::chrono::microseconds spin = {});
  Result<HttpResponse> Send(StepRun& run, HttpRequest& request, const UrlParts& target,
                            const core::CallCredentials& creds, bool same_origin);
  // The partition of a request to `target` with `creds` (the step's pin and server name
  // only for its own origin).
  Result<std::shared_ptr<Partition>> PartitionFor(const StepRun& run, const UrlParts& target,
                                                  const core::CallCredentials& creds,
                                                  bool same_origin);
  TransferLimits LimitsFor(const StepRun& run) const;
  // A RestStep::probe, instead of the step's request.
  Result<RestResult> Probe(const StepRun& run, const HandshakeProbe& probe);
  Result<core::CallCredentials> CredentialsFor(StepRun& run, const UrlParts& target,
                                               CredentialPurpose purpose);
  Result<SecretBytes> OAuth2Token(StepRun& run, const OAuth2ClientCredentials& oauth,
                                  const UrlParts& token_url, bool refresh,
                                  std::string* cache_key);
  void WorkerLoop();
  // Idle connections a TransferDriver (a worker's or a lent thread's) keeps per partition.
  size_t DriverCacheSize() const {
    return std::max<size_t>(options.max_idle_handles_per_partition,
                            static_cast<size_t>(std::max(1, options.workers)));
  }
  // Answers queued steps whose token was cancelled (CANCELLED, never started). Called by
  // busy workers between socket waits: a queue only forms when every worker is busy.
  void AnswerCancelledInQueue();
  static Error CancelledBeforeStart(const std::string& url);
  // Validates, then queues the step or runs it on this thread (a lent one). A refusal
  // leaves `done` uncalled and unmoved; otherwise `done` is taken and runs exactly once.
  std::optional<Refusal> Admit(PreparedStep step, core::CallCredentials credentials,
                               Deadline deadline, CancelToken cancel, StepCallback& done);
  // What Submit answers a refusal with: FAILED_PRECONDITION, detail reason.
  Error RefusalError(Refusal refusal) const;

  EngineOptions options;
  TrustStoreCache trust;
  PartitionTable partitions;
  TokenCache tokens;

  int running = 0;  // steps running, on workers or lent threads (under mu)

  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job> queue;
  std::atomic<size_t> queued{0};  // queue.size(), readable without the lock
  bool stopping = false;
  std::vector<std::thread> workers;
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
  return {};
}

Result<core::CallCredentials> RestEngine::Impl::CredentialsFor(StepRun& run,
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

Result<HttpResponse> RestEngine::Impl::Send(StepRun& run, HttpRequest& request,
                                            const UrlParts& target,
                                            const core::CallCredentials& creds,
                                            bool same_origin) {
  WSSTEP_ASSIGN_OR_RETURN(std::shared_ptr<Partition> partition,
                          PartitionFor(run, target, creds, same_origin));
  return run.driver->Perform(*partition, request, LimitsFor(run));
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
  return partitions.Get(hop_creds, tls, pin);
}

TransferLimits RestEngine::Impl::LimitsFor(const StepRun& run) const {
  const RestStep& step = *run.step;
  TransferLimits limits;
  limits.deadline = run.deadline;
  limits.deadline_is_caller = run.deadline_is_caller;
  limits.connect_timeout = step.timeouts.connect;
  limits.max_response_bytes = step.max_response_bytes;
  limits.cancel = run.cancel;
  limits.reuse_connections = step.reuse_connections;
  limits.resume_sessions = step.resume_tls_sessions;
  limits.user_agent = options.user_agent;
  limits.max_idle_handles = options.max_idle_handles_per_partition;
  limits.while_waiting = run.while_waiting;
  limits.poll_interval = run.poll_interval;
  limits.spin = run.spin;
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

Result<SecretBytes> RestEngine::Impl::OAuth2Token(StepRun& run,
                                                  const OAuth2ClientCredentials& oauth,
                                                  const UrlParts& target, bool refresh,
                                                  std::string* cache_key) {
  auto creds = CredentialsFor(run, target, CredentialPurpose::kOAuth2Token);
  if (!creds.ok()) {
    Error e = creds.error();
    e.message = "OAuth2 token endpoint " + oauth.token_url + ": " + e.message;
    return e.With("token_endpoint", oauth.token_url);
  }
  *cache_key = TokenCacheKey(oauth, *creds);
  auto now = steady_clock::now();
  if (!refresh) {
    if (auto cached = tokens.Find(*cache_key, now)) return std::move(*cached);
  }
  SecretBytes form = TokenRequestBody(oauth);
  HttpRequest request;
  request.method = "POST";
  request.url = oauth.token_url;
  request.url_parts = &target;
  request.body = form.view();
  request.content_type = "application/x-www-form-urlencoded";
  request.headers.push_back({"Accept", "application/json"});
  if (auto basic = TokenRequestBasicCredentials(oauth)) {
    request.secret_headers.push_back(
        {"Authorization", Concat("Basic ", Base64Secret(*basic).view())});
  }
  auto response = Send(run, request, target, *creds, target.Origin() == run.origin.Origin());
  if (!response.ok()) {
    Error e = response.error();
    e.message = "OAuth2 token endpoint " + oauth.token_url + ": " + e.message;
    return e.With("token_endpoint", oauth.token_url);
  }
  WSSTEP_ASSIGN_OR_RETURN(AccessToken token,
                          ParseTokenResponse(response->status, response->body, oauth.token_url));
  OPENSSL_cleanse(response->body.data(), response->body.size());
  auto lifetime = token.expires_in.count() > 0 ? token.expires_in : std::chrono::seconds(60);
  auto expires_at = now + lifetime - options.oauth2_expiry_margin;
  if (expires_at > now) tokens.Store(*cache_key, token.value, expires_at);
  return std::move(token.value);
}

Result<RestResult> RestEngine::Impl::Run(TransferDriver& driver, const PreparedStep& prepared,
                                         core::CallCredentials creds, Deadline deadline,
                                         const CancelToken& cancel,
                                         std::function<void()> on_slow,
                                         std::chrono::microseconds spin) {
  auto start = steady_clock::now();
  // Prepare checked the step and parsed its URLs before it was submitted.
  const RestStep& step = prepared.step();
  StepRun run;
  run.prepared = &prepared;
  run.step = &step;
  run.credentials = std::move(creds);
  run.deadline = deadline;
  run.deadline_is_caller = true;
  if (step.timeouts.total.count() > 0 && start + step.timeouts.total < deadline) {
    run.deadline = start + step.timeouts.total;
    run.deadline_is_caller = false;
  }
  run.cancel = &cancel;
  run.driver = &driver;
  run.spin = spin;
  if (on_slow) {
    // On a lent thread: short waits, so that the caller hears soon that the step is slow.
    run.poll_interval = std::chrono::milliseconds(2);
    run.while_waiting = [this, start, on_slow = std::move(on_slow), told = false]() mutable {
      AnswerCancelledInQueue();
      if (!told && steady_clock::now() - start >= kSlowLentStep) {
        told = true;
        on_slow();
      }
    };
  } else {
    run.while_waiting = [this] { AnswerCancelledInQueue(); };
  }

  if (step.probe) {
    run.origin = prepared.url();
    return Probe(run, *step.probe);
  }

  std::vector<QueryParam> query = step.query;
  std::string display_url;  // the URL without the API key, for errors and results
  if (const auto* key = std::get_if<ApiKeyAuth>(&step.auth);
      key != nullptr && key->location == ApiKeyLocation::kQuery) {
    query.push_back({key->name, "REDACTED"});
    WSSTEP_ASSIGN_OR_RETURN(display_url, AppendQuery(step.url, query));
    query.back().value.assign(key->value.view());
  }
  auto url = AppendQuery(step.url, query);
  for (auto& q : query) OPENSSL_cleanse(q.value.data(), q.value.size());
  if (!url.ok()) return url.error();
  // Query parameters change neither scheme, host nor port: the prepared parts stand.
  run.origin = prepared.url();
  if (display_url.empty()) display_url = *url;

  RestResult result;
  result.warnings = TlsOptionWarnings(step.tls);

  const auto* oauth = std::get_if<OAuth2ClientCredentials>(&step.auth);
  bool token_refreshed = false;
  std::string token_key;
  std::optional<SecretBytes> token;

  std::string current_url = *url;
  UrlParts current = run.origin;
  std::string method = step.method;
  bool keep_body = true;
  int hops = 0;
  for (;;) {
    bool same_origin = current.Origin() == run.origin.Origin();
    HttpRequest request;
    request.method = method;
    request.url = current_url;
    request.url_parts = &current;
    request.display_url = display_url;
    for (const auto& h : step.headers) {
      if (!same_origin && IsCredentialHeader(h.name, step.auth)) continue;
      request.headers.push_back(h);
    }
    if (keep_body) {
      request.body = step.body;
      request.content_type = step.content_type;
    }
    if (same_origin) {
      if (const auto* basic = std::get_if<BasicAuth>(&step.auth)) {
        SecretBytes raw = Concat(basic->username + ":", basic->password.view());
        request.secret_headers.push_back(
            {"Authorization", Concat("Basic ", Base64Secret(raw).view())});
      } else if (const auto* bearer = std::get_if<BearerAuth>(&step.auth)) {
        request.secret_headers.push_back({"Authorization", Concat("Bearer ", bearer->token.view())});
      } else if (const auto* key = std::get_if<ApiKeyAuth>(&step.auth);
                 key != nullptr && key->location == ApiKeyLocation::kHeader) {
        request.secret_headers.push_back({key->name, key->value.Clone()});
      } else if (oauth != nullptr) {
        if (!token) {
          WSSTEP_ASSIGN_OR_RETURN(token, OAuth2Token(run, *oauth, *prepared.token_url(),
                                                     token_refreshed, &token_key));
        }
        request.secret_headers.push_back({"Authorization", Concat("Bearer ", token->view())});
      }
    }
    WSSTEP_ASSIGN_OR_RETURN(core::CallCredentials hop_creds,
                            CredentialsFor(run, current, CredentialPurpose::kRedirect));
    auto response = Send(run, request, current, hop_creds, same_origin);
    if (!response.ok()) {
      Error e = response.error();
      if (hops > 0) e.With("redirects_followed", std::to_string(hops));
      return e;
    }
    // A cached token the API no longer accepts (revoked, rotated): fetch a new one once.
    if (oauth != nullptr && same_origin && response->status == 401 && !token_refreshed) {
      token_refreshed = true;
      token.reset();
      continue;
    }
    if (step.follow_redirects && IsRedirect(response->status) && !response->redirect_url.empty()) {
      if (hops >= step.max_redirects) {
        return Error(Code::kTransferFailed,
                     step.url + ": more than " + std::to_string(step.max_redirects) +
                         " redirects (last to " + response->redirect_url + ")",
                     "Point the step at the final URL, or raise max_redirects.", Side::kServer)
            .With("redirects_followed", std::to_string(hops))
            .With("url", step.url);
      }
      auto next = ParseHttpUrl(response->redirect_url, "Location");
      if (!next.ok()) {
        return Error(Code::kInvalidResponse,
                     display_url + ": redirect to an unusable location \"" +
                         response->redirect_url + "\"",
                     "Only http(s) redirects are followed.", Side::kServer)
            .With("location", response->redirect_url);
      }
      if (current.scheme == "https" && next->scheme == "http" && step.tls.ssl_verification) {
        return Error(Code::kInvalidResponse,
                     display_url + ": refused a redirect from https to plain http (" +
                         response->redirect_url + ")",
                     "The server downgrades to plain http; fix the server or the step's URL.",
                     Side::kServer)
            .With("location", response->redirect_url);
      }
      ++hops;
      int s = response->status;
      if (s == 303 || ((s == 301 || s == 302) && method == "POST")) {
        if (method != "HEAD") method = "GET";
        keep_body = false;
      }
      current_url = response->redirect_url;
      display_url = current_url;
      current = std::move(next).value();
      continue;
    }

    HttpResponse& r = *response;
    HttpRefusalFacts refusal;
    refusal.url = display_url;
    refusal.status = r.status;
    refusal.body = r.body;
    refusal.used_tls = r.tls.used_tls;
    refusal.certificate_requested = r.tls.client_certificate_requested;
    refusal.certificate_presented = r.tls.client_certificate.has_value();
    if (r.tls.client_certificate) {
      refusal.certificate_name = r.tls.client_certificate->name;
      refusal.certificate_fingerprint = r.tls.client_certificate->fingerprint;
    }
    if (auto refused = ClassifyHttpRefusal(refusal)) return *std::move(refused);
    result.status = r.status;
    result.headers = std::move(r.headers);
    result.body = std::move(r.body);
    result.content_type = std::move(r.content_type);
    result.effective_url = display_url;
    result.redirects_followed = hops;
    result.timings = r.timings;
    result.tls = std::move(r.tls);
    result.timings.total_us =
        std::chrono::duration_cast<std::chrono::microseconds>(steady_clock::now() - start)
            .count();
    if (result.tls.client_certificate_requested && !result.tls.client_certificate) {
      result.warnings.push_back(
          ClientCertificateNotSent(current.host, current.port, step.tls.ssl_verification));
    }
    if (result.status == 401 || result.status == 403) {
      result.application_refused = true;
      result.application_refused_message =
          "TLS succeeded, the application refused: HTTP " + std::to_string(result.status) +
          " from " + display_url + " (check the step's credentials or the identity's "
          "permissions, not the certificate setup)";
    }
    return result;
  }
}

Error RestEngine::Impl::CancelledBeforeStart(const std::string& url) {
  FailureContext failure;
  failure.url = url;
  failure.cancelled = true;
  return Classify(failure).With("started", "false");
}

void RestEngine::Impl::AnswerCancelledInQueue() {
  if (queued.load(std::memory_order_relaxed) == 0) return;
  std::vector<Job> cancelled;
  {
    std::lock_guard<std::mutex> lock(mu);
    for (auto it = queue.begin(); it != queue.end();) {
      if (it->cancel.cancelled()) {
        cancelled.push_back(std::move(*it));
        it = queue.erase(it);
      } else {
        ++it;
      }
    }
    queued.store(queue.size(), std::memory_order_relaxed);
  }
  for (auto& job : cancelled) job.done(CancelledBeforeStart(job.step.step().url));  // unlocked
}

void RestEngine::Impl::WorkerLoop() {
  TransferDriver driver(DriverCacheSize());
  for (;;) {
    std::optional<Job> next;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return stopping || !queue.empty(); });
      if (queue.empty()) return;  // stopping and drained
      next.emplace(std::move(queue.front()));
      queue.pop_front();
      queued.store(queue.size(), std::memory_order_relaxed);
      ++running;
    }
    Job& job = *next;
    if (job.cancel.cancelled()) {  // the caller gave up while it waited: never start it
      job.done(CancelledBeforeStart(job.step.step().url));
    } else {
      Result<RestResult> result =
          Run(driver, job.step, std::move(job.credentials), job.deadline, job.cancel);
      job.done(std::move(result));
    }
    std::lock_guard<std::mutex> lock(mu);
    --running;
  }
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

RestEngine::RestEngine(EngineOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  GlobalInit();
  int n = std::max(1, impl_->options.workers);
  for (int i = 0; i < n; ++i) impl_->workers.emplace_back([this] { impl_->WorkerLoop(); });
}

RestEngine::~RestEngine() { Shutdown(); }

void RestEngine::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopping && impl_->workers.empty()) return;
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  for (auto& t : impl_->workers) {
    if (t.joinable()) t.join();
  }
  impl_->workers.clear();
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
      // A refusal happens when the queue holds max_queue steps (it never holds more).
      e = Error(Code::kFailedPrecondition,
                "engine busy: " + std::to_string(options.max_queue) + " steps are already waiting",
                "Retry later or raise the engine's queue limit.", Side::kNone);
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
  Lease* lease = t_lease != nullptr && t_lease->impl == this ? t_lease : nullptr;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (stopping) return Refusal::kShuttingDown;
    if (queue.size() >= options.max_queue) return Refusal::kEngineBusy;
    if (lease != nullptr && lease->allow_run_here() && running == 0 && queue.empty()) {
      ++running;  // runs here, below
    } else {
      queue.push_back(Job{std::move(step), std::move(credentials), deadline, std::move(cancel),
                          std::move(done)});
      queued.store(queue.size(), std::memory_order_relaxed);
      lease = nullptr;
    }
  }
  if (lease == nullptr) {
    cv.notify_one();
    return std::nullopt;
  }
  // On the lent thread, outside the lock.
  Result<RestResult> result =
      cancel.cancelled()
          ? Result<RestResult>(
                CancelledBeforeStart(step.step().url))
          : Run(lease->driver, step, std::move(credentials), deadline, cancel, lease->on_slow,
                lease->spin.Budget());
  if (result.ok()) {
    lease->spin.Observe(std::chrono::microseconds(result->timings.total_us));
  } else {
    lease->spin.ObserveFailure();
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    --running;
  }
  done(std::move(result));
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

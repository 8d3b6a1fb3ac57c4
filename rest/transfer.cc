#include "rest/transfer.h"

#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/ossl.h"
#include "core/x509_info.h"
#include "rest/curl_handles.h"
#include "rest/http_text.h"
#include "rest/tls_diagnosis.h"
#include "rest/tls_util.h"

namespace wsstep::rest {

namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

using curl::Setopt;

using curl::Append;
using curl::SlistPtr;

struct TransferState {
  Partition* partition = nullptr;
  SocketBudget::OpenContext open;  // whether the socket could not be had
  const TransferLimits* limits = nullptr;
  CURL* easy = nullptr;
  std::string verify_name;
  bool verify_name_is_ip = false;
  // The observation of a connection this transfer created (set in the SSL_CTX callback),
  // and the one of the connection the response actually came over.
  std::shared_ptr<TlsObservation> created;
  std::shared_ptr<TlsObservation> used;
  bool facts_captured = false;
  bool too_large = false;
  // Streamed bodies (rest/body_stream.h): whether this response's body goes to the sink
  // (decided at its first byte), how the loop un-pauses the transfer, and what moved.
  enum class BodyRoute { kUndecided, kKeep, kSink } route = BodyRoute::kUndecided;
  ResumeTransfer resume;
  ResponseBodySink* sink = nullptr;
  RequestBodySource* source = nullptr;
  uint64_t sent_bytes = 0;  // of the request body, read from `source`
  bool source_failed = false;
  HttpResponse response;
  char error[CURL_ERROR_SIZE] = {0};
};

// The header lines every request sends unless it sets them itself: no Content-Type label
// (libcurl would add application/x-www-form-urlencoded to a body) and no Expect (no
// 100-continue round trip). Static and shared: libcurl only reads a header list, so every
// transfer may end its list with these nodes at once, and a request without lines of its
// own (a bare GET, the warm path's usual step) sends them alone.
constexpr std::string_view kContentType = "Content-Type";
char kNoContentTypeLine[] = "Content-Type:";
char kNoExpectLine[] = "Expect:";
curl_slist kNoExpect{kNoExpectLine, nullptr};
curl_slist kNoContentTypeNoExpect{kNoContentTypeLine, &kNoExpect};

// Installs the partition's TLS material on the SSL_CTX libcurl just made for a new
// connection: certificate, key and chain from memory (never a file), the cached trust
// store, the host name to verify, and the observation callbacks.
CURLcode SslCtxCallback(CURL*, void* ssl_ctx, void* user) {
  auto* st = static_cast<TransferState*>(user);
  auto* ctx = static_cast<SSL_CTX*>(ssl_ctx);
  const TlsProfile& p = st->partition->profile();
  SSL_CTX_set1_cert_store(ctx, p.trust_store.get());
  if (p.identity && p.identity->leaf && p.identity->key) {
    if (SSL_CTX_use_certificate(ctx, p.identity->leaf.get()) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, p.identity->key.get()) != 1) {
      ossl::ClearErrors();
      return CURLE_SSL_CERTPROBLEM;
    }
    for (const auto& cert : p.identity->chain) {
      if (SSL_CTX_add1_chain_cert(ctx, cert.get()) != 1) {
        ossl::ClearErrors();
        return CURLE_SSL_CERTPROBLEM;
      }
    }
  }
  if (p.verify_host) {
    // OpenSSL checks the name during chain verification, so a mismatch is reported as
    // X509_V_ERR_HOSTNAME_MISMATCH with the certificate at hand (libcurl checks again).
    X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (st->verify_name_is_ip) {
      X509_VERIFY_PARAM_set1_ip_asc(param, st->verify_name.c_str());
    } else {
      X509_VERIFY_PARAM_set1_host(param, st->verify_name.c_str(), st->verify_name.size());
    }
  }
  st->created = ObserveConnection(ctx);
  return CURLE_OK;
}

// Reads the connection's TLS facts while libcurl still has it attached (after the
// transfer the handle no longer points at its connection).
void CaptureTlsFacts(TransferState& st) {
  st.facts_captured = true;
  const curl_tlssessioninfo* info = nullptr;
  if (curl_easy_getinfo(st.easy, CURLINFO_TLS_SSL_PTR, &info) != CURLE_OK || info == nullptr ||
      info->backend != CURLSSLBACKEND_OPENSSL || info->internals == nullptr) {
    return;
  }
  auto* ssl = static_cast<SSL*>(info->internals);
  TlsFacts& f = st.response.tls;
  f.used_tls = true;
  f.protocol = SSL_get_version(ssl);
  const char* cipher = SSL_get_cipher_name(ssl);
  f.cipher = cipher != nullptr ? cipher : "";
  f.session_resumed = SSL_session_reused(ssl) == 1;
  if (X509* peer = SSL_get0_peer_certificate(ssl)) {
    auto names = st.partition->PeerNamesOf(peer);
    f.server_subject = names->subject;
    f.server_issuer = names->issuer;
    f.server_not_after = names->not_after;
  }
  st.used = ObservationOf(ssl);
}

size_t HeaderCallback(char* data, size_t size, size_t count, void* user) {
  auto* st = static_cast<TransferState*>(user);
  size_t len = size * count;
  if (!st->facts_captured) CaptureTlsFacts(*st);
  std::string_view line(data, len);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.rfind("HTTP/", 0) == 0) {
    st->response.headers.clear();  // a new response (after 100 Continue)
    return len;
  }
  size_t colon = line.find(':');
  if (line.empty() || colon == std::string_view::npos) return len;
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  // Room for a usual response's headers at once, rather than growing 1, 2, 4, 8, 16.
  if (st->response.headers.capacity() == 0) st->response.headers.reserve(16);
  st->response.headers.push_back({std::string(line.substr(0, colon)), std::string(value)});
  return len;
}

size_t WriteCallback(char* data, size_t size, size_t count, void* user) {
  auto* st = static_cast<TransferState*>(user);
  size_t len = size * count;
  if (!st->facts_captured) CaptureTlsFacts(*st);
  HttpResponse& r = st->response;
  if (r.body_bytes + len > st->limits->max_response_bytes) {
    st->too_large = true;
    return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
  }
  if (st->route == TransferState::BodyRoute::kUndecided) {
    long status = 0;
    curl_easy_getinfo(st->easy, CURLINFO_RESPONSE_CODE, &status);
    const bool sink = st->sink != nullptr && status >= 200 && status < 300;
    st->route = sink ? TransferState::BodyRoute::kSink : TransferState::BodyRoute::kKeep;
    if (sink) {
      r.body_streamed = true;
      st->sink->Begin(static_cast<int>(status), r.headers, st->resume);
    }
  }
  if (st->route == TransferState::BodyRoute::kSink) {
    // No room: libcurl keeps these bytes and offers them again once resumed.
    if (!st->sink->Write(std::string_view(data, len))) {
      return CURL_WRITEFUNC_PAUSE;
    }
  } else {
    r.body.append(data, len);
  }
  r.body_bytes += len;
  return len;
}

size_t ReadCallback(char* out, size_t size, size_t count, void* user) {
  auto* st = static_cast<TransferState*>(user);
  const RequestBodySource::Read read = st->source->ReadSome(out, size * count, st->resume);
  switch (read.state) {
    case RequestBodySource::State::kData:
      st->sent_bytes += read.bytes;
      return read.bytes;
    case RequestBodySource::State::kWait:
      return CURL_READFUNC_PAUSE;
    case RequestBodySource::State::kEnd:
      return 0;
    case RequestBodySource::State::kFailed:
      break;
  }
  st->source_failed = true;
  return CURL_READFUNC_ABORT;
}

int64_t InfoMicros(CURL* easy, CURLINFO what) {
  curl_off_t v = 0;
  curl_easy_getinfo(easy, what, &v);
  return static_cast<int64_t>(v);
}

std::string InfoString(CURL* easy, CURLINFO what) {
  char* v = nullptr;
  curl_easy_getinfo(easy, what, &v);
  return v != nullptr ? std::string(v) : std::string();
}

long TlsVersionOption(const std::string& min) {
  if (min == "1.3") return CURL_SSLVERSION_TLSv1_3;
  return CURL_SSLVERSION_TLSv1_2;  // never below 1.2
}

// The failure context both a transfer and a probe start from.
FailureContext BaseFailure(const std::string& shown_url, const UrlParts& url,
                           const TlsProfile& profile, const TransferLimits& limits,
                           milliseconds remaining) {
  FailureContext failure;
  const bool https = url.scheme == "https";
  failure.url = shown_url;
  failure.host = url.host;
  failure.port = url.port;
  failure.https = https;
  failure.verify_peer = profile.verify_peer;
  failure.verify_host = profile.verify_host;
  failure.min_tls_version = profile.min_tls_version;
  failure.pinned_public_key = profile.pin;
  failure.had_client_certificate = https && profile.identity != nullptr;
  if (failure.had_client_certificate) failure.client_certificate_name = profile.identity->name;
  failure.max_response_bytes = limits.max_response_bytes;
  failure.proxy = profile.proxy.url;
  failure.proxy_credentials = profile.proxy.has_credentials();
  failure.limit = limits.deadline_is_caller ? TimeLimit::kCallerDeadline : TimeLimit::kStepTimeout;
  // The whole limit when the caller knows it (a step's timeout counts from admission),
  // else what was left of it when the transfer began.
  failure.time_limit =
      limits.time_limit.count() > 0 ? limits.time_limit : std::max(remaining, milliseconds(0));
  return failure;
}

// Where libcurl connects and whom it speaks to: with tls_server_name, the URL names the
// server (SNI, Host, verification) and CONNECT_TO sends the connection to the URL's host.
struct ConnectionTarget {
  std::string url;
  SlistPtr connect_to;  // must outlive the transfer
};

Result<ConnectionTarget> TargetOf(const std::string& request_url, const UrlParts& url,
                                  const TlsProfile& profile, TransferState& st) {
  ConnectionTarget target;
  target.url = request_url;
  st.verify_name = url.host;
  st.verify_name_is_ip = url.host_is_ip;
  if (url.scheme == "https" && !profile.tls_server_name.empty()) {
    WSSTEP_ASSIGN_OR_RETURN(target.url, ReplaceHost(request_url, profile.tls_server_name));
    std::string to_host = url.host_is_ipv6 ? "[" + url.host + "]" : url.host;
    std::string port = std::to_string(url.port);
    if (!Append(target.connect_to,
                profile.tls_server_name + ":" + port + ":" + to_host + ":" + port)) {
      return Error(Code::kInternal, "out of memory building CONNECT_TO");
    }
    st.verify_name = profile.tls_server_name;
    st.verify_name_is_ip = false;
  }
  return target;
}

// The route the partition decided, and nothing else: libcurl would otherwise take a proxy
// from the process environment (https_proxy, ALL_PROXY, no_proxy) for any request whose
// CURLOPT_PROXY is unset. "" disables proxies; an empty NOPROXY disables the environment's
// no_proxy. A proxy is always a CONNECT tunnel, plain http URLs included, so the origin's
// TLS (and client certificate) run end to end and the proxy sees no request.
void SetProxyOptions(CURL* easy, const ProxyRoute& proxy) {
  Setopt(easy, CURLOPT_PROXY, proxy.url.c_str());
  Setopt(easy, CURLOPT_NOPROXY, "");
  if (proxy.url.empty()) return;
  Setopt(easy, CURLOPT_PROXYTYPE, static_cast<long>(CURLPROXY_HTTP));
  Setopt(easy, CURLOPT_HTTPPROXYTUNNEL, 1L);
  // The proxy's answer to CONNECT is not the origin's: keep it out of the response headers.
  Setopt(easy, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  if (proxy.has_credentials()) {
    Setopt(easy, CURLOPT_PROXYAUTH, static_cast<long>(CURLAUTH_BASIC));
    Setopt(easy, CURLOPT_PROXYUSERNAME, proxy.username.c_str());
    // libcurl keeps its own copy (freed on curl_easy_reset); ours is wiped at once.
    std::string password(proxy.password ? proxy.password->view() : std::string_view());
    Setopt(easy, CURLOPT_PROXYPASSWORD, password.c_str());
    OPENSSL_cleanse(password.data(), password.size());
  }
}

// The connection options a transfer and a probe share: target, trust (the partition's
// store only), verification, TLS version, pin, and the SSL_CTX callback that installs the
// client certificate and observes the handshake.
void SetConnectionOptions(CURL* easy, TransferState& st, const TlsProfile& profile,
                          const ConnectionTarget& target) {
  Setopt(easy, CURLOPT_URL, target.url.c_str());
  Setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  Setopt(easy, CURLOPT_NOSIGNAL, 1L);
  Setopt(easy, CURLOPT_ERRORBUFFER, st.error);
  if (target.connect_to) Setopt(easy, CURLOPT_CONNECT_TO, target.connect_to.get());
  // Trust comes only from the partition's X509_STORE. Debian's libcurl has a built-in
  // CAPATH (/etc/ssl/certs) and CAINFO: clear both, or the system CAs would still count
  // for private-only trust (and libcurl would re-read the bundle for every connection).
  Setopt(easy, CURLOPT_CAINFO, nullptr);
  Setopt(easy, CURLOPT_CAPATH, nullptr);
  // libcurl (7.87+) caches the X509_STORE of a connection in the *multi* handle and puts
  // it on the next connection's SSL_CTX. The multi belongs to a worker, not a partition,
  // so that cache would carry one partition's trust into another's connections.
  Setopt(easy, CURLOPT_CA_CACHE_TIMEOUT, 0L);
  Setopt(easy, CURLOPT_SSL_VERIFYPEER, profile.verify_peer ? 1L : 0L);
  Setopt(easy, CURLOPT_SSL_VERIFYHOST, profile.verify_host ? 2L : 0L);
  Setopt(easy, CURLOPT_SSLVERSION, TlsVersionOption(profile.min_tls_version));
  if (!profile.pin.empty()) Setopt(easy, CURLOPT_PINNEDPUBLICKEY, profile.pin.c_str());
  SetProxyOptions(easy, profile.proxy);
  Setopt(easy, CURLOPT_SSL_CTX_FUNCTION, &SslCtxCallback);
  Setopt(easy, CURLOPT_SSL_CTX_DATA, &st);
  if (st.open.budget != nullptr) {
    Setopt(easy, CURLOPT_OPENSOCKETFUNCTION, &SocketBudget::Open);
    Setopt(easy, CURLOPT_OPENSOCKETDATA, &st.open);
    Setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, &SocketBudget::Close);
    Setopt(easy, CURLOPT_CLOSESOCKETDATA, st.open.budget);
  }
}

}  // namespace

TransferDriver::TransferDriver(size_t max_cached_connections) : multi_(curl_multi_init()) {
  if (!multi_) {
    std::fprintf(stderr, "wsstep: curl_multi_init failed\n");
    std::abort();
  }
  // Connections live in the partition's share, but libcurl sizes that cache from the
  // multi handle that finishes a transfer: by default 4 per easy handle added to it. A
  // driver's multi holds one transfer at a time, so with more drivers than 4 on one
  // partition every finished transfer closed another driver's idle connection, and
  // concurrent steps paid a new TLS connection almost every time.
  curl::CheckMulti(curl_multi_setopt(multi_.get(), CURLMOPT_MAXCONNECTS,
                                     static_cast<long>(max_cached_connections)),
                   "curl_multi_setopt(MAXCONNECTS)");
}

TransferDriver::~TransferDriver() = default;

// Everything one transfer owns while libcurl drives it; libcurl holds pointers into it.
struct Transfer::State {
  std::shared_ptr<Partition> partition;
  TransferLimits limits;
  TransferState st;
  curl::HeaderList headers;  // the request's own lines, ending in the shared ones
  ConnectionTarget target;
  FailureContext failure;
  std::string shown_url;
  bool https = false;
  std::chrono::milliseconds remaining{0};
  std::chrono::milliseconds connect_limit{0};
  bool ended = false;
  std::shared_ptr<char> alive = std::make_shared<char>(0);
};

Transfer::Transfer(std::unique_ptr<State> state) : s_(std::move(state)) {}

Transfer::~Transfer() {
  if (s_ && !s_->ended && s_->st.easy != nullptr) {
    s_->partition->active--;
    s_->partition->Return(s_->st.easy, s_->limits.max_idle_handles);
  }
}

CURL* Transfer::easy() const { return s_->st.easy; }
const TransferLimits& Transfer::limits() const { return s_->limits; }
void Transfer::SetResume(ResumeTransfer resume) { s_->st.resume = std::move(resume); }
std::weak_ptr<void> Transfer::alive() const { return s_->alive; }
bool Transfer::streams_body() const { return s_->st.sink != nullptr || s_->st.source != nullptr; }

Result<std::unique_ptr<Transfer>> Transfer::Begin(std::shared_ptr<Partition> partition,
                                                  const HttpRequest& request,
                                                  TransferLimits limits) {
  UrlParts parsed;
  if (request.url_parts == nullptr) {
    WSSTEP_ASSIGN_OR_RETURN(parsed, ParseHttpUrl(request.url));
  }
  const UrlParts& url = request.url_parts != nullptr ? *request.url_parts : parsed;
  auto state = std::make_unique<State>();
  State& s = *state;
  s.partition = std::move(partition);
  s.limits = std::move(limits);
  const TlsProfile& profile = s.partition->profile();
  s.https = url.scheme == "https";
  s.remaining = std::chrono::duration_cast<milliseconds>(s.limits.deadline - steady_clock::now());
  s.shown_url = request.display_url.empty() ? request.url : request.display_url;
  s.failure = BaseFailure(s.shown_url, url, profile, s.limits, s.remaining);
  if (s.remaining.count() <= 0) {
    s.failure.deadline_exceeded = true;
    return Classify(s.failure);
  }

  TransferState& st = s.st;
  st.partition = s.partition.get();
  st.limits = &s.limits;
  st.open.budget = s.limits.sockets;
  st.sink = request.response_body;
  WSSTEP_ASSIGN_OR_RETURN(s.target, TargetOf(request.url, url, profile, st));
  s.failure.verify_name = st.verify_name;

  bool has_content_type = false, has_user_agent = false;
  size_t header_bytes = 0;
  for (const auto& h : request.headers) {
    has_content_type = has_content_type || EqualsIgnoreCase(h.name, kContentType);
    has_user_agent = has_user_agent || EqualsIgnoreCase(h.name, "User-Agent");
    header_bytes += h.name.size() + h.value.size();
  }
  for (const auto& h : request.secret_headers)
    header_bytes += h.name.size() + h.value.view().size();
  const bool own_content_type = !has_content_type && !request.content_type.empty();
  const size_t own_lines =
      request.headers.size() + request.secret_headers.size() + (own_content_type ? 1 : 0);
  if (own_lines > 0) {  // a bare request sends the static lines alone: nothing to allocate
    s.headers.Reserve(
        own_lines,
        header_bytes + (own_content_type ? kContentType.size() + request.content_type.size() : 0));
  }
  for (const auto& h : request.headers) s.headers.Add(h.name, h.value);
  for (const auto& h : request.secret_headers) s.headers.Add(h.name, h.value.view());
  if (own_content_type) s.headers.Add(kContentType, request.content_type);
  curl_slist* header_list =
      s.headers.Link(has_content_type || own_content_type ? &kNoExpect : &kNoContentTypeNoExpect);
  bool send_body = !request.body.empty() || request.body_source != nullptr ||
                   request.method == "POST" || request.method == "PUT" || request.method == "PATCH";

  CURL* easy = s.partition->Borrow();
  if (easy == nullptr) return Error(Code::kInternal, "curl_easy_init failed");
  st.easy = easy;
  s.partition->active++;
  curl_easy_reset(easy);
  std::unique_ptr<Transfer> transfer(new Transfer(std::move(state)));

  SetConnectionOptions(easy, st, profile, s.target);
  if (s.limits.http2 && s.https) {
    // Once a partition's connection is known to speak h2, steps on the same event loop
    // multiplex over it. No CURLOPT_PIPEWAIT: a transfer waiting for a connection that
    // another loop's multi handle is still making is only woken by its own multi handle,
    // so it would sit until its timeout.
    Setopt(easy, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
  } else {
    Setopt(easy, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  }
  Setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);  // hops are the engine's business
  if (!s.limits.reuse_connections) {
    Setopt(easy, CURLOPT_FRESH_CONNECT, 1L);
    Setopt(easy, CURLOPT_FORBID_REUSE, 1L);
  }
  // The session cache lives in the partition's share, so a session only ever resumes
  // under the identity that made it.
  if (!s.limits.resume_sessions) Setopt(easy, CURLOPT_SSL_SESSIONID_CACHE, 0L);

  Setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(s.remaining.count()));
  s.connect_limit = s.remaining;
  if (s.limits.connect_timeout.count() > 0 && s.limits.connect_timeout < s.remaining) {
    s.connect_limit = s.limits.connect_timeout;
  }
  Setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(s.connect_limit.count()));
  Setopt(easy, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(s.limits.max_response_bytes));

  if (request.method == "HEAD") {
    Setopt(easy, CURLOPT_NOBODY, 1L);
  } else if (request.method == "GET" && !send_body) {
    Setopt(easy, CURLOPT_HTTPGET, 1L);
  } else {
    if (request.body_source != nullptr) {
      // Read as it comes. Without a length libcurl sends HTTP/1.1 chunked (h2: DATA
      // frames until the end).
      st.source = request.body_source;
      std::optional<uint64_t> length = request.body_source->length();
      Setopt(easy, CURLOPT_POST, 1L);
      Setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
             length ? static_cast<curl_off_t>(*length) : static_cast<curl_off_t>(-1));
      Setopt(easy, CURLOPT_READFUNCTION, &ReadCallback);
      Setopt(easy, CURLOPT_READDATA, &st);
    } else if (send_body) {
      Setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
      Setopt(easy, CURLOPT_POSTFIELDS, request.body.empty() ? "" : request.body.data());
    }
    if (request.method != "POST" || !send_body) {
      Setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }
  }
  if (!has_user_agent && !s.limits.user_agent.empty()) {
    Setopt(easy, CURLOPT_USERAGENT, s.limits.user_agent.c_str());
  }
  Setopt(easy, CURLOPT_HTTPHEADER, header_list);
  Setopt(easy, CURLOPT_HEADERFUNCTION, &HeaderCallback);
  Setopt(easy, CURLOPT_HEADERDATA, &st);
  Setopt(easy, CURLOPT_WRITEFUNCTION, &WriteCallback);
  Setopt(easy, CURLOPT_WRITEDATA, &st);
  return transfer;
}

Result<HttpResponse> Transfer::End(Stop stop, CURLcode result) {
  State& s = *s_;
  s.ended = true;
  CURL* easy = s.st.easy;
  Partition& partition = *s.partition;
  const TlsProfile& profile = partition.profile();
  FailureContext& failure = s.failure;
  TransferState& st = s.st;
  const bool finished = stop == Stop::kFinished;
  failure.cancelled = stop == Stop::kCancelled;
  failure.deadline_exceeded = stop == Stop::kDeadline;

  long connects = 0;
  curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects);
  long os_errno = 0;
  curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &os_errno);
  int64_t t_dns = InfoMicros(easy, CURLINFO_NAMELOOKUP_TIME_T);
  int64_t t_connect = InfoMicros(easy, CURLINFO_CONNECT_TIME_T);
  int64_t t_tls = InfoMicros(easy, CURLINFO_APPCONNECT_TIME_T);
  int64_t t_first = InfoMicros(easy, CURLINFO_STARTTRANSFER_TIME_T);
  int64_t t_total = InfoMicros(easy, CURLINFO_TOTAL_TIME_T);
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  long connect_code = 0;
  if (!profile.proxy.url.empty()) curl_easy_getinfo(easy, CURLINFO_HTTP_CONNECTCODE, &connect_code);
  HttpResponse& resp = st.response;
  resp.status = static_cast<int>(status);
  resp.content_type = InfoString(easy, CURLINFO_CONTENT_TYPE);
  resp.redirect_url = InfoString(easy, CURLINFO_REDIRECT_URL);
  resp.effective_url = s.shown_url;

  partition.requests++;
  bool reused = connects == 0 && (finished && result == CURLE_OK);
  if (reused) partition.reused_connections++;
  partition.new_connections += static_cast<uint64_t>(connects);
  if (connects > 0 && s.https && resp.tls.used_tls) {
    if (resp.tls.session_resumed) {
      partition.resumed_sessions++;
    } else {
      partition.full_handshakes++;
    }
  }
  partition.active--;
  partition.Return(easy, s.limits.max_idle_handles);
  st.easy = nullptr;

  if (!finished || result != CURLE_OK) {
    failure.curl_code = finished ? static_cast<int>(result) : 0;
    failure.curl_message = st.error[0] != 0 ? st.error
                           : finished       ? curl_easy_strerror(result)
                                            : "aborted";
    failure.response_too_large = st.too_large;
    failure.request_body_failed = st.source_failed;
    failure.proxy_status = static_cast<int>(connect_code);
    failure.descriptors_exhausted =
        st.open.exhausted || (!finished ? false : os_errno == EMFILE || os_errno == ENFILE);
    // libcurl stamps the connect time only once the TLS layer above TCP has connected
    // too; a handshake that started (the observation) means TCP had connected.
    failure.connected =
        t_connect > 0 || resp.status > 0 || (st.created && st.created->handshake_started);
    failure.tls_connected = t_tls > 0 || resp.status > 0;
    failure.response_started = st.facts_captured;
    if (!failure.connected && s.connect_limit < s.remaining) {
      failure.time_limit = s.connect_limit;
      failure.limit = TimeLimit::kStepTimeout;
    }
    std::shared_ptr<TlsObservation> obs = st.created ? st.created : st.used;
    failure.tls = s.https ? obs.get() : nullptr;
    Error e = Classify(failure);
    // What already moved cannot move again: the engine does not retry such a step.
    if (resp.body_streamed && resp.body_bytes > 0) {
      e.With("body_bytes_streamed", std::to_string(resp.body_bytes));
    }
    if (st.sent_bytes > 0) e.With("request_body_bytes_sent", std::to_string(st.sent_bytes));
    return e;
  }

  resp.timings.dns_us = t_dns;
  resp.timings.connect_us = t_connect > t_dns ? t_connect - t_dns : 0;
  resp.timings.tls_us = t_tls > t_connect ? t_tls - t_connect : 0;
  resp.timings.first_byte_us = t_first;
  resp.timings.total_us = t_total;
  resp.tls.connection_reused = connects == 0;
  resp.tls.proxy = profile.proxy.url;
  long http_version = 0;
  curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION, &http_version);
  resp.tls.http_version = http_version == CURL_HTTP_VERSION_2_0   ? "HTTP/2"
                          : http_version == CURL_HTTP_VERSION_1_1 ? "HTTP/1.1"
                          : http_version == CURL_HTTP_VERSION_1_0 ? "HTTP/1.0"
                                                                  : "";
  const TlsObservation* obs = st.used ? st.used.get() : st.created.get();
  // A resumed session carries the identity of the handshake that created it, and
  // sessions only resume within this partition (this identity).
  bool presented = obs != nullptr && (obs->certificate_sent || resp.tls.session_resumed);
  resp.tls.client_certificate_requested = obs != nullptr && obs->certificate_requested;
  if (s.https && profile.identity && presented) {
    resp.tls.client_certificate = PresentedCertificate{
        profile.identity->entry_id, profile.identity->name, profile.identity->fingerprint};
  }
  return std::move(st.response);
}

Result<HttpResponse> TransferDriver::Perform(std::shared_ptr<Partition> partition,
                                             const HttpRequest& request,
                                             const TransferLimits& limits) {
  WSSTEP_ASSIGN_OR_RETURN(std::unique_ptr<Transfer> transfer,
                          Transfer::Begin(std::move(partition), request, limits));
  return Drive(*transfer);
}

Result<HttpResponse> TransferDriver::Drive(Transfer& transfer) {
  CURL* easy = transfer.easy();
  const TransferLimits& limits = transfer.limits();
  // Drive the transfer, looking at the cancel token and deadline between socket events.
  CURLcode result = CURLE_OK;
  Transfer::Stop stop = Transfer::Stop::kFinished;
  curl::CheckMulti(curl_multi_add_handle(multi_.get(), easy), "curl_multi_add_handle");
  for (;;) {
    int running = 0;
    curl_multi_perform(multi_.get(), &running);
    int queued = 0;
    bool finished = false;
    while (CURLMsg* msg = curl_multi_info_read(multi_.get(), &queued)) {
      if (msg->msg == CURLMSG_DONE && msg->easy_handle == easy) {
        result = msg->data.result;
        finished = true;
      }
    }
    if (finished) break;
    if (limits.cancel != nullptr && limits.cancel->cancelled()) {
      stop = Transfer::Stop::kCancelled;
      break;
    }
    auto now = steady_clock::now();
    if (now >= limits.deadline) {
      stop = Transfer::Stop::kDeadline;
      break;
    }
    auto wait =
        std::min(limits.poll_interval,
                 std::chrono::duration_cast<milliseconds>(limits.deadline - now) + milliseconds(1));
    bool ready = false;
    if (limits.spin.count() > 0) {
      const auto spin_until = std::min(steady_clock::now() + limits.spin, limits.deadline);
      do {
        int events = 0;
        curl_multi_poll(multi_.get(), nullptr, 0, 0, &events);
        ready = events > 0;
      } while (!ready && steady_clock::now() < spin_until &&
               (limits.cancel == nullptr || !limits.cancel->cancelled()));
    }
    if (!ready) curl_multi_poll(multi_.get(), nullptr, 0, static_cast<int>(wait.count()), nullptr);
    if (limits.while_waiting) limits.while_waiting();
  }
  curl_multi_remove_handle(multi_.get(), easy);
  return transfer.End(stop, result);
}

namespace {

using curl::EasyPtr;

// Aborts a probe's connect and handshake when the caller cancels.
int ProbeProgress(void* cancel, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* token = static_cast<const CancelToken*>(cancel);
  return token != nullptr && token->cancelled() ? 1 : 0;
}

// The TLS facts of a probe's connection, from what the callbacks observed: also after a
// failed handshake (the certificate we offered, the chain the server sent).
void FactsFromObservation(const TlsObservation& obs, const TlsProfile& profile, TlsFacts& f) {
  f.used_tls = obs.handshake_started;
  f.protocol = obs.protocol;
  f.cipher = obs.cipher;
  if (obs.peer_recorded) {
    f.server_subject = obs.peer.subject;
    f.server_issuer = obs.peer.issuer;
    f.server_not_after = obs.peer.not_after;
  }
  f.client_certificate_requested = obs.certificate_requested;
  if (profile.identity && obs.certificate_sent) {
    f.client_certificate = PresentedCertificate{profile.identity->entry_id, profile.identity->name,
                                                profile.identity->fingerprint};
  }
}

// Waits until `fd` is ready for `events`, the cancel token fires or `until` passes.
// True when ready.
bool WaitForSocket(curl_socket_t fd, short events, steady_clock::time_point until,
                   const CancelToken* cancel) {
  for (;;) {
    if (cancel != nullptr && cancel->cancelled()) return false;
    auto now = steady_clock::now();
    if (now >= until) return false;
    auto wait = std::min(std::chrono::duration_cast<milliseconds>(until - now) + milliseconds(1),
                         milliseconds(50));
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, static_cast<int>(wait.count()));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

// Status and body of an HTTP/1.x answer, once its head is complete; status 0 otherwise.
struct ProbeAnswer {
  int status = 0;
  std::string_view body;
  bool complete = false;  // the whole body (Content-Length) is here
};

ProbeAnswer ParseProbeAnswer(std::string_view bytes) {
  ProbeAnswer a;
  size_t head_end = bytes.find("\r\n\r\n");
  if (!bytes.starts_with("HTTP/") || head_end == std::string_view::npos) return a;
  size_t space = bytes.find(' ');
  if (space == std::string_view::npos || space + 4 > bytes.size()) return a;
  int status = 0;
  for (size_t i = space + 1; i < space + 4; ++i) {
    if (bytes[i] < '0' || bytes[i] > '9') return a;
    status = status * 10 + (bytes[i] - '0');
  }
  a.status = status;
  a.body = bytes.substr(head_end + 4);
  std::string_view head = bytes.substr(0, head_end);
  size_t pos = 0;
  while ((pos = head.find("\r\n", pos)) != std::string_view::npos) {
    pos += 2;
    std::string_view line = head.substr(pos, head.find("\r\n", pos) - pos);
    constexpr std::string_view kLength = "content-length:";
    if (line.size() > kLength.size() && EqualsIgnoreCase(line.substr(0, kLength.size()), kLength)) {
      size_t length = std::strtoul(std::string(line.substr(kLength.size())).c_str(), nullptr, 10);
      a.complete = a.body.size() >= length;
    }
  }
  return a;
}

}  // namespace

Result<RestResult> TransferDriver::Probe(Partition& partition, const HttpRequest& request,
                                         const TransferLimits& limits,
                                         const HandshakeProbe& probe) {
  UrlParts parsed;
  if (request.url_parts == nullptr) {
    WSSTEP_ASSIGN_OR_RETURN(parsed, ParseHttpUrl(request.url));
  }
  const UrlParts& url = request.url_parts != nullptr ? *request.url_parts : parsed;
  const TlsProfile& profile = partition.profile();
  const auto start = steady_clock::now();
  auto remaining = std::chrono::duration_cast<milliseconds>(limits.deadline - start);
  const std::string& shown_url = request.display_url.empty() ? request.url : request.display_url;
  FailureContext failure = BaseFailure(shown_url, url, profile, limits, remaining);

  RestResult result;
  result.effective_url = shown_url;
  result.probe = std::make_shared<ProbeReport>();
  ProbeReport& report = *result.probe;
  // The handshake's own limit, unless the caller's deadline comes first.
  milliseconds handshake_limit = probe.handshake_timeout;
  failure.limit = TimeLimit::kHandshakeTimeout;
  if (remaining < handshake_limit) {
    handshake_limit = std::max(remaining, milliseconds(0));
    failure.limit =
        limits.deadline_is_caller ? TimeLimit::kCallerDeadline : TimeLimit::kStepTimeout;
  }
  failure.time_limit = handshake_limit;
  if (handshake_limit.count() <= 0) {
    failure.deadline_exceeded = true;
    report.failure = Classify(failure);
    report.timed_out = failure.limit;
    return result;
  }

  TransferState st;
  st.partition = &partition;
  st.limits = &limits;
  st.open.budget = limits.sockets;
  WSSTEP_ASSIGN_OR_RETURN(ConnectionTarget target, TargetOf(request.url, url, profile, st));
  failure.verify_name = st.verify_name;
  EasyPtr easy(curl_easy_init());
  if (!easy) return Error(Code::kInternal, "curl_easy_init failed");
  st.easy = easy.get();
  SetConnectionOptions(easy.get(), st, profile, target);
  // One new connection with a full handshake: the server judges the certificate now.
  // HTTP/1.1 in ALPN: the probe writes its request itself, as HTTP/1.1.
  Setopt(easy.get(), CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  Setopt(easy.get(), CURLOPT_CONNECT_ONLY, 1L);
  Setopt(easy.get(), CURLOPT_FRESH_CONNECT, 1L);
  Setopt(easy.get(), CURLOPT_SSL_SESSIONID_CACHE, 0L);
  Setopt(easy.get(), CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(handshake_limit.count()));
  Setopt(easy.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(handshake_limit.count()));
  Setopt(easy.get(), CURLOPT_NOPROGRESS, 0L);
  Setopt(easy.get(), CURLOPT_XFERINFOFUNCTION, &ProbeProgress);
  Setopt(easy.get(), CURLOPT_XFERINFODATA, limits.cancel);

  const CURLcode connected = curl_easy_perform(easy.get());
  const int64_t t_dns = InfoMicros(easy.get(), CURLINFO_NAMELOOKUP_TIME_T);
  const int64_t t_connect = InfoMicros(easy.get(), CURLINFO_CONNECT_TIME_T);
  const int64_t t_tls = InfoMicros(easy.get(), CURLINFO_APPCONNECT_TIME_T);
  result.timings.dns_us = t_dns;
  result.timings.connect_us = t_connect > t_dns ? t_connect - t_dns : 0;
  result.timings.tls_us = t_tls > t_connect ? t_tls - t_connect : 0;
  result.tls.proxy = profile.proxy.url;
  auto finish = [&](std::optional<Error> error) {
    if (st.created) {
      FactsFromObservation(*st.created, profile, result.tls);
      report.server_chain = st.created->chain;
    }
    if (failure.deadline_exceeded && error && error->code == Code::kTimeout) {
      report.timed_out = failure.limit;
      report.time_limit = failure.time_limit;
    }
    report.failure = std::move(error);
    result.timings.total_us =
        std::chrono::duration_cast<std::chrono::microseconds>(steady_clock::now() - start).count();
    return result;
  };
  failure.tls = st.created.get();
  if (connected != CURLE_OK) {
    failure.curl_code = static_cast<int>(connected);
    failure.curl_message = st.error[0] != 0 ? st.error : curl_easy_strerror(connected);
    // libcurl stamps the connect time only when the TLS layer above it has connected
    // too; the observation knows that the handshake started (after TCP connected).
    failure.connected = t_connect > 0 || (st.created && st.created->handshake_started);
    failure.tls_connected = t_tls > 0;
    failure.cancelled = connected == CURLE_ABORTED_BY_CALLBACK;
    failure.descriptors_exhausted = st.open.exhausted;
    failure.deadline_exceeded = connected == CURLE_OPERATION_TIMEDOUT;
    if (!profile.proxy.url.empty()) {
      long connect_code = 0;
      curl_easy_getinfo(easy.get(), CURLINFO_HTTP_CONNECTCODE, &connect_code);
      failure.proxy_status = static_cast<int>(connect_code);
    }
    return finish(Classify(failure));
  }
  failure.connected = failure.tls_connected = true;

  // The request; then whatever comes back first: an alert (TLS 1.3 servers judge our
  // certificate after our handshake is done), a close, an answer, or nothing.
  curl_socket_t fd = CURL_SOCKET_BAD;
  curl_easy_getinfo(easy.get(), CURLINFO_ACTIVESOCKET, &fd);
  const std::string host =
      st.verify_name_is_ip && url.host_is_ipv6 ? "[" + st.verify_name + "]" : st.verify_name;
  std::string head = request.method + " / HTTP/1.1\r\nHost: " + host +
                     (url.port == 443 ? std::string() : ":" + std::to_string(url.port)) +
                     "\r\nUser-Agent: " + limits.user_agent +
                     "\r\nAccept: */*\r\nConnection: close\r\n\r\n";
  const auto answer_until = std::min(steady_clock::now() + probe.answer_wait, limits.deadline);
  CURLcode io = CURLE_OK;
  for (size_t sent = 0; sent < head.size();) {
    size_t n = 0;
    io = curl_easy_send(easy.get(), head.data() + sent, head.size() - sent, &n);
    if (io == CURLE_AGAIN) {
      if (!WaitForSocket(fd, POLLOUT, answer_until, limits.cancel)) break;
      continue;
    }
    if (io != CURLE_OK) break;
    sent += n;
  }
  std::string answer;
  bool closed = false;
  ProbeAnswer parsed_answer;
  if (io == CURLE_OK || io == CURLE_AGAIN || io == CURLE_SEND_ERROR) {
    // After a failed send the server's alert may still be waiting to be read.
    CURLcode read = CURLE_OK;
    char buf[4096];
    while (answer.size() < 64 * 1024) {
      size_t n = 0;
      read = curl_easy_recv(easy.get(), buf, sizeof buf, &n);
      if (read == CURLE_AGAIN) {
        if (!WaitForSocket(fd, POLLIN, answer_until, limits.cancel)) break;
        continue;
      }
      if (read != CURLE_OK) break;
      if (n == 0) {
        closed = true;
        break;
      }
      answer.append(buf, n);
      parsed_answer = ParseProbeAnswer(answer);
      if (parsed_answer.complete) break;
    }
    if (read != CURLE_OK && read != CURLE_AGAIN) io = read;
    if (io == CURLE_AGAIN) io = CURLE_OK;
  }
  failure.cancelled = limits.cancel != nullptr && limits.cancel->cancelled();
  parsed_answer = ParseProbeAnswer(answer);
  if (parsed_answer.status != 0) {
    report.http_status = parsed_answer.status;
    HttpRefusalFacts refusal;
    refusal.url = shown_url;
    refusal.status = parsed_answer.status;
    refusal.body = parsed_answer.body;
    refusal.used_tls = url.scheme == "https";
    if (st.created) {
      refusal.certificate_requested = st.created->certificate_requested;
      refusal.certificate_presented = profile.identity && st.created->certificate_sent;
    }
    if (refusal.certificate_presented) {
      refusal.certificate_name = profile.identity->name;
      refusal.certificate_fingerprint = profile.identity->fingerprint;
    }
    return finish(ClassifyHttpRefusal(refusal));
  }
  if (failure.cancelled) return finish(Classify(failure));
  if (io != CURLE_OK || closed) {
    // Refused (an alert, or the connection closed right after our certificate), or the
    // connection broke before any answer.
    failure.curl_code = io != CURLE_OK ? static_cast<int>(io) : CURLE_GOT_NOTHING;
    failure.curl_message = st.error[0] != 0 ? std::string(st.error)
                           : io != CURLE_OK ? std::string(curl_easy_strerror(io))
                                            : "the server closed the connection without answering";
    failure.response_started = !answer.empty();
    return finish(Classify(failure));
  }
  report.answer_wait_expired = true;
  report.time_limit = probe.answer_wait;
  return finish(std::nullopt);
}

}  // namespace wsstep::rest

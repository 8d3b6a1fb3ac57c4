// What a REST step asks for and what it gets back (PRODUCT.md §2). Plain values: the
// plugin fills a RestStep from the proto, SOAP fills one for its envelope POST, and the
// engine (rest/engine.h) turns it into one or more HTTP transfers.
//
// Secrets (passwords, tokens, API keys, client secrets) are SecretBytes, so a RestStep
// is move-only; nothing here is ever logged or copied into an error message.
#ifndef WSSTEP_REST_STEP_H_
#define WSSTEP_REST_STEP_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/model.h"
#include "core/error.h"
#include "core/secret.h"
#include "rest/body_stream.h"
#include "rest/tls_diagnosis.h"
#include "rest/warning.h"

namespace wsstep::rest {

struct Header {
  std::string name;
  std::string value;
  bool operator==(const Header&) const = default;
};

struct QueryParam {
  std::string name;   // raw text; the engine percent-encodes it
  std::string value;  // raw text; the engine percent-encodes it
};

// ---------------------------------------------------------------- authentication
struct NoAuth {};

// Authorization: Basic base64(username ":" password).
struct BasicAuth {
  std::string username;
  SecretBytes password;
};

// Authorization: Bearer <token>.
struct BearerAuth {
  SecretBytes token;
};

enum class ApiKeyLocation { kHeader, kQuery };

// An API key sent as a header (name: value) or as a query parameter (name=value).
struct ApiKeyAuth {
  std::string name;
  SecretBytes value;
  ApiKeyLocation location = ApiKeyLocation::kHeader;
};

// How the client authenticates at the token endpoint (step.proto
// OAuth2ClientCredentials.ClientAuthentication).
enum class OAuth2ClientAuth {
  // CLIENT_SECRET_BASIC when client_secret is non-empty, TLS_CLIENT_AUTH otherwise.
  kUnspecified,
  // RFC 6749 §2.3.1: Authorization: Basic base64(urlencode(id) ":" urlencode(secret)).
  kClientSecretBasic,
  // client_id and client_secret in the form body.
  kClientSecretPost,
  // RFC 8705 tls_client_auth: only client_id in the form; the client certificate bound
  // to the token host authenticates the client. A client_secret is refused.
  kTlsClientAuth,
};

// OAuth 2.0 client credentials grant (RFC 6749 §4.4). The token request is a form POST
// to token_url through the same transfer path as the step, presenting the client
// certificate bound to the token host (RFC 8705 mutual-TLS client authentication).
// client_authentication says where client_id and client_secret go (rest/oauth2.h
// EffectiveClientAuth resolves kUnspecified). The token is cached per (token_url,
// client_id, scope, audience, client authentication, client secret, client certificate)
// until expires_in minus a margin, and sent as a Bearer token.
struct OAuth2ClientCredentials {
  std::string token_url;
  std::string client_id;
  SecretBytes client_secret;
  std::string scope;     // optional, space-separated
  std::string audience;  // optional, sent as "audience" when non-empty
  OAuth2ClientAuth client_authentication = OAuth2ClientAuth::kUnspecified;
};

using Auth = std::variant<NoAuth, BasicAuth, BearerAuth, ApiKeyAuth, OAuth2ClientCredentials>;

// ---------------------------------------------------------------- TLS options
struct TlsOptions {
  // The designer's toggle: use the certificate store (client certificate and bound
  // trust) for this host. The caller resolves the first hop's credentials; the engine
  // asks its CredentialSource for other hosts (redirects, token endpoint) only when this
  // is on. With an http:// URL it is INVALID_STEP_CONFIG.
  bool ssl_verification = false;
  std::string certificate_name;  // explicit certificate (name or id); empty: by binding
  std::string environment = std::string(core::kDefaultEnvironment);
  // Turning either off adds a warning to the result, and is INVALID_STEP_CONFIG in a
  // protected environment (EngineOptions::protected_environments).
  bool verify_peer = true;
  bool verify_host = true;
  // SNI and certificate-verification name, for calls to an address. The engine connects
  // to the URL's host but speaks to this name (Host header included).
  std::string tls_server_name;
  std::string min_tls_version;    // "", "1.2" or "1.3"
  // SPKI SHA-256 pin: "sha256//<base64>" (several joined by ';') or 64 hex digits
  // (colons allowed).
  std::string pinned_public_key;
  // True: only the trust anchors handed in count; the system CAs do not. Also true when
  // the credentials say so (CallCredentials::private_trust_only).
  bool private_trust_only = false;
};

struct Timeouts {
  std::chrono::milliseconds connect{10'000};  // 0: no limit of its own
  std::chrono::milliseconds total{60'000};    // whole step, every hop; 0: caller's deadline only
};

// ---------------------------------------------------------------- networks
// An explicit HTTP proxy (PRODUCT.md §2 "Networks"). Every connection through it is a
// CONNECT tunnel to the origin's host and port; TLS runs end to end inside it, so the
// origin sees the client certificate and the proxy sees only the tunnel. The engine never
// reads proxy variables from the environment (https_proxy, no_proxy, ALL_PROXY...): a
// caller that wants them turns them into these settings (plugin/process/config.h).
struct ProxySettings {
  // "http://host:port" or "host:port"; "": none (the engine's, for a step).
  std::string url;
  std::string username;  // basic credentials for the proxy; "" with no password: none
  std::shared_ptr<const SecretBytes> password;  // null: none (shared: options are copied)
  // Hosts reached directly: "example.com" (that host and every name under it; a leading
  // dot means the same), an IP address, or "*" (every host). Case-insensitive.
  std::vector<std::string> no_proxy;
  bool direct = false;  // a step's: no proxy at all, whatever the engine's settings say
};

// The proxy a connection actually goes through, decided per request (step settings over
// the engine's, the no-proxy lists, the target host). Part of a connection's identity
// partition: a tunnelled and a direct connection never share a pool, nor do two proxies,
// nor two proxy users.
struct ProxyRoute {
  std::string url;       // normalized "http://host:port"; "" = direct
  std::string host;      // the proxy's host and port, for errors
  uint16_t port = 0;
  std::string username;
  std::shared_ptr<const SecretBytes> password;  // null: no credentials
  bool has_credentials() const { return password != nullptr || !username.empty(); }
};

// When a step is tried again (RetryPolicy in step.proto). Only idempotent requests (GET,
// HEAD, PUT, DELETE, OPTIONS, or `idempotent`), only after a connection failure, a
// TIMEOUT before the request went out, or HTTP 429/502/503/504, never past the step's
// deadline, never after a certificate or verification failure. The wait before retry n is
// uniformly random in [0, min(max_delay, base_delay * 2^(n-1))], or the answer's
// Retry-After (seconds or an HTTP date) when it gives one.
inline constexpr int kMaxRetryAttempts = 10;
struct RetryPolicy {
  int max_attempts = 1;  // 1: no retry
  std::chrono::milliseconds base_delay{200};
  std::chrono::milliseconds max_delay{10'000};
  bool idempotent = false;  // the request may be repeated whatever its method
};

// One attempt of a step with a retry policy (RestResult::attempts, or the caller's
// AttemptLog for a step that ended in an error).
struct AttemptRecord {
  int number = 1;
  int http_status = 0;           // 0: no answer
  std::optional<Error> error;    // the attempt's failure, when it got no answer
  std::chrono::microseconds duration{0};
  std::chrono::milliseconds delay{0};  // waited before it
  bool delay_from_retry_after = false;
  std::string retry_reason;      // why another attempt followed; "" for the last
};
using AttemptLog = std::vector<AttemptRecord>;

// The HTTP version a step asks for over TLS. HTTP/2 is offered by ALPN and used when the
// origin takes it; steps of one identity partition then share (multiplex) one connection
// where they run on the same event loop. Plain http:// is always HTTP/1.1.
enum class HttpVersion {
  kDefault,  // the engine's setting (EngineOptions::offer_http2)
  kHttp11,   // HTTP/1.1 only
  kHttp2,    // offer h2, whatever the engine's setting
};

inline constexpr size_t kDefaultMaxResponseBytes = 10 * 1024 * 1024;

// A step that is a connection test (TestConnection) rather than a request: one new
// connection with a full handshake (no reuse, no resumption), then `GET /` with
// "Connection: close" and a short wait for what comes back. The verdict comes from that
// exchange, not from the HTTP status: a TLS alert during the handshake or on the first read
// (TLS 1.3 servers judge the client certificate after the client has finished its
// handshake), the connection closed right after our certificate, or a TLS front end's
// certificate error page (tls_diagnosis.h ClassifyHttpRefusal) is a failure; any other
// answer, or none within answer_wait, is success.
struct HandshakeProbe {
  std::chrono::milliseconds handshake_timeout{10'000};  // connect + TLS handshake
  std::chrono::milliseconds answer_wait{1'000};         // after the handshake
};

// What a probe found (RestResult::probe). The TLS facts are in RestResult::tls, also when
// the probe failed.
struct ProbeReport {
  std::optional<Error> failure;  // the catalog error; nullopt: nothing failed
  // Every certificate the server sent, leaf first (empty if it sent none).
  std::vector<PeerCertificateFacts> server_chain;
  int http_status = 0;              // of the answer to the GET; 0 when none came
  // The limit that ended the probe with TIMEOUT, and its length.
  std::optional<TimeLimit> timed_out;
  std::chrono::milliseconds time_limit{0};
  bool answer_wait_expired = false;  // no answer, no refusal within answer_wait
};
inline constexpr int kDefaultMaxRedirects = 5;

struct RestStep {
  std::string method = "GET";  // any token; HEAD sends no body and reads none
  std::string url;             // absolute http:// or https:// URL; may carry a query
  std::vector<QueryParam> query;  // appended in order after the URL's own query
  std::vector<Header> headers;    // sent in order; CR, LF or NUL anywhere is refused
  std::string body;               // bytes; sent when non-empty (or method needs it)
  // Set: the body comes from here as the caller receives it (rest/body_stream.h), and
  // `body` must be empty.
  std::shared_ptr<RequestBodySource> body_source;
  // Set: a 2xx response's body goes here as it arrives instead of into RestResult::body
  // (rest/body_stream.h); max_response_bytes still bounds it.
  std::shared_ptr<ResponseBodySink> response_body;
  std::string content_type;       // Content-Type of the body, unless a header sets it
  Auth auth = NoAuth{};
  TlsOptions tls;
  Timeouts timeouts;
  bool follow_redirects = false;
  int max_redirects = kDefaultMaxRedirects;  // used when follow_redirects
  size_t max_response_bytes = kDefaultMaxResponseBytes;
  // false: a new connection for every request (it still resumes the identity's TLS
  // session, as any HTTP client would; sessions never cross identities).
  bool reuse_connections = true;
  bool resume_tls_sessions = true;  // false: every new connection makes a full handshake
  // The step's proxy; empty url: the engine's (EngineOptions::proxy), unless direct.
  ProxySettings proxy;
  RetryPolicy retry;
  HttpVersion http_version = HttpVersion::kDefault;
  // Filled with every attempt when the step has a retry policy (max_attempts > 1), also
  // when the step ends in an error; read it after the answer. Null: not recorded.
  std::shared_ptr<AttemptLog> attempts;
  std::string step_id;            // for logs and the audit trail
  std::string workflow_id;
  // Set: test the connection instead of sending the step's request (see HandshakeProbe);
  // the result's `probe` holds the verdict. method, body, auth and redirects are ignored.
  std::optional<HandshakeProbe> probe;
};

// ---------------------------------------------------------------- result
// Phase durations in microseconds, from libcurl's *_TIME_T counters for the last hop.
// dns, connect and tls are the durations of those phases (0 on a reused connection);
// first_byte is from the start of the last hop to its first response byte; total is the
// whole step (token call and every redirect hop included).
struct Timings {
  int64_t dns_us = 0;
  int64_t connect_us = 0;
  int64_t tls_us = 0;
  int64_t first_byte_us = 0;
  int64_t total_us = 0;
};

struct PresentedCertificate {
  std::string entry_id;
  std::string name;
  std::string fingerprint;  // SHA-256 "ab:cd:..."
};

struct TlsFacts {
  bool used_tls = false;
  std::string protocol;  // "TLSv1.3"
  std::string cipher;    // "TLS_AES_256_GCM_SHA384"
  std::string server_subject;
  std::string server_issuer;
  core::UnixSeconds server_not_after = 0;
  // The client certificate the server asked for and got; nullopt when none was sent.
  std::optional<PresentedCertificate> client_certificate;
  // The server sent a CertificateRequest on this connection's handshake. True with no
  // client_certificate means it asked and none was configured (servers such as nginx
  // then answer HTTP 400 instead of failing the handshake); a warning says so.
  bool client_certificate_requested = false;
  bool connection_reused = false;  // the request went over a kept-alive connection
  bool session_resumed = false;    // the connection's handshake resumed a TLS session
  std::string proxy;               // the proxy tunnelled through ("http://host:port"), or ""
  std::string http_version;        // "HTTP/2" or "HTTP/1.1" (of the response)
};

// A non-2xx status is a result, not an error — except the HTTP 400/495/496 pages of TLS
// front ends (nginx) that stand for a missing or refused client certificate: those are
// CLIENT_CERT_REQUIRED / CLIENT_CERT_REJECTED errors (tls_diagnosis.h ClassifyHttpRefusal).
struct RestResult {
  int status = 0;
  std::vector<Header> headers;  // in arrival order, repeats kept
  std::string body;             // empty when it went to RestStep::response_body
  bool body_streamed = false;   // it went to RestStep::response_body
  uint64_t body_bytes = 0;      // the body's size, kept or streamed
  std::string content_type;
  std::string effective_url;  // the URL of the last hop
  int redirects_followed = 0;
  Timings timings;
  TlsFacts tls;
  std::vector<Warning> warnings;  // in the order they arose (rest/warning.h)
  // 401 and 403: the TLS handshake (and client certificate) was accepted, the
  // application refused the request. The message says so.
  bool application_refused = false;
  std::string application_refused_message;
  // Only for a RestStep::probe: the verdict and what the server sent. (Held by pointer:
  // an inline optional makes GCC 12 warn maybe-uninitialized about every Result of this.)
  std::shared_ptr<ProbeReport> probe;

  // First header with this name (case-insensitive); nullopt if absent.
  std::optional<std::string> FindHeader(std::string_view name) const;
};

}  // namespace wsstep::rest

#endif  // WSSTEP_REST_STEP_H_

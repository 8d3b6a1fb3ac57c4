// The one place that decides why a transfer failed (PRODUCT.md §2 error catalog).
//
// libcurl's result code alone is not enough on this stack: a server rejecting our
// certificate surfaces as CURLE_RECV_ERROR (56) under TLS 1.3, CURLE_SSL_CONNECT_ERROR
// (35) under TLS 1.2, and an expired client certificate may even show up as
// CURLE_PEER_FAILED_VERIFICATION (60). So OpenSSL callbacks record what really happened
// on each connection (TlsObservation: alerts with their direction, whether the server
// asked for a certificate and whether we sent one, the first X.509 verification error
// with the server's chain), and Classify() decides from those first, curl's code last.
#ifndef WSSTEP_REST_TLS_DIAGNOSIS_H_
#define WSSTEP_REST_TLS_DIAGNOSIS_H_

#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/model.h"

namespace wsstep::rest {

struct TlsAlert {
  bool received = false;  // true: the server sent it (it rejected us); false: we sent it
  int level = 0;          // 1 warning, 2 fatal
  int description = 0;    // RFC 8446 AlertDescription
};

// RFC name of an alert description: "unknown_ca", "certificate_required", ...
std::string AlertName(int description);

// Facts about the server certificate, captured during verification.
struct PeerCertificateFacts {
  std::string subject;
  std::string issuer;
  core::UnixSeconds not_before = 0;
  core::UnixSeconds not_after = 0;
  std::vector<std::string> sans;  // "DNS:localhost", "IP:127.0.0.1"
  std::string spki_sha256_base64;
};

// What OpenSSL told us about one connection's handshake. Written by the callbacks on the
// thread driving the connection; read after the transfer.
struct TlsObservation {
  bool handshake_started = false;
  bool handshake_done = false;
  std::vector<TlsAlert> alerts;
  bool certificate_requested = false;  // the server sent a CertificateRequest
  bool certificate_sent = false;       // we answered with a non-empty Certificate
  // First X.509 verification failure (X509_V_OK if none), at which depth, on which cert.
  int verify_error = 0;
  int verify_error_depth = -1;
  std::string verify_error_subject;
  core::UnixSeconds verify_error_not_after = 0;
  bool peer_recorded = false;
  PeerCertificateFacts peer;
  std::vector<std::string> chain_subjects;  // as the server sent them, leaf first
  std::vector<PeerCertificateFacts> chain;  // every certificate it sent, leaf first
  // Stamped when the handshake completes.
  std::string protocol;
  std::string cipher;
};

// Installs the observation callbacks on a fresh SSL_CTX (called from
// CURLOPT_SSL_CTX_FUNCTION) and returns the observation the callbacks will fill. The
// SSL_CTX owns a reference, so it stays valid for as long as the connection lives.
std::shared_ptr<TlsObservation> ObserveConnection(SSL_CTX* ctx);
// The observation attached to an existing connection's SSL, or null.
std::shared_ptr<TlsObservation> ObservationOf(const SSL* ssl);

// The limit that ended a transfer or a probe, as errors name it (detail "limit").
enum class TimeLimit {
  kStepTimeout,       // the step's timeouts (total, or connect)
  kCallerDeadline,    // the caller's deadline (the gRPC call's)
  kHandshakeTimeout,  // a probe's limit for connect + TLS handshake
};
// "step_timeout", "caller_deadline", "handshake_timeout".
std::string_view TimeLimitName(TimeLimit limit);

// Everything Classify needs to know about the failed transfer.
struct FailureContext {
  int curl_code = 0;           // CURLcode
  std::string curl_message;    // CURLOPT_ERRORBUFFER text
  std::string url;
  std::string host;            // the host we connected to (URL host)
  uint16_t port = 0;
  std::string verify_name;     // the name we verified (tls_server_name or host)
  bool https = false;
  bool verify_peer = true;
  bool verify_host = true;
  std::string min_tls_version;
  std::string pinned_public_key;
  bool had_client_certificate = false;
  std::string client_certificate_name;
  bool cancelled = false;
  bool deadline_exceeded = false;   // one of our limits aborted it
  TimeLimit limit = TimeLimit::kStepTimeout;  // ... this one, of time_limit
  std::chrono::milliseconds time_limit{0};
  bool response_too_large = false;
  size_t max_response_bytes = 0;
  bool request_body_failed = false;  // the caller's streamed request body failed
  bool connected = false;           // TCP connect completed
  bool tls_connected = false;       // TLS handshake completed
  bool response_started = false;    // any response byte arrived
  bool queued = false;              // never started: waited for a place to run
  bool descriptors_exhausted = false;  // no socket: the process is out of descriptors
  const TlsObservation* tls = nullptr;  // null when no TLS connection was attempted
  std::string proxy;                // the proxy tunnelled through ("http://host:port"), or ""
  bool proxy_credentials = false;   // credentials were offered to it
  int proxy_status = 0;             // its answer to CONNECT (CURLINFO_HTTP_CONNECTCODE); 0: none
};

// The catalog error for a failed transfer: code, message naming the URL, hint, side and
// detail ("alert", "alert_direction", "sans", "not_after", "chain", "verify_error",
// "curl_code", "host", "port", "url", ...).
Error Classify(const FailureContext& failure);

// TLS front ends such as nginx do not fail the handshake over a missing or unacceptable
// client certificate: they complete it and answer HTTP 400 ("No required SSL certificate
// was sent", "The SSL certificate error"; 496/495 when mapped). Given such a response on
// a TLS connection, the catalog error it stands for (CLIENT_CERT_REQUIRED or
// CLIENT_CERT_REJECTED, alert "none"); nullopt for any other response.
// Every response of a step is looked at, so the facts only point at the caller's text.
struct HttpRefusalFacts {
  std::string_view url;
  int status = 0;
  std::string_view body;
  bool used_tls = false;
  bool certificate_requested = false;
  bool certificate_presented = false;
  std::string_view certificate_name;  // of the presented certificate
  std::string_view certificate_fingerprint;
};
std::optional<Error> ClassifyHttpRefusal(const HttpRefusalFacts& facts);

}  // namespace wsstep::rest

#endif  // WSSTEP_REST_TLS_DIAGNOSIS_H_

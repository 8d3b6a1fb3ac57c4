#include "rest/tls_diagnosis.h"

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <mutex>

#include "core/ossl.h"
#include "core/x509_info.h"
#include "rest/tls_util.h"

namespace wsstep::rest {

namespace {

// SSL_CTX ex_data slot holding a heap std::shared_ptr<TlsObservation>, freed with the
// SSL_CTX (that is, with the connection libcurl made it for).
void FreeObservation(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/,
                     long /*argl*/, void* /*argp*/) {
  delete static_cast<std::shared_ptr<TlsObservation>*>(ptr);
}

int ObservationIndex() {
  static const int index =
      SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, &FreeObservation);
  return index;
}

TlsObservation* Lookup(const SSL* ssl) {
  if (ssl == nullptr) return nullptr;
  auto* holder = static_cast<std::shared_ptr<TlsObservation>*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ObservationIndex()));
  return holder != nullptr ? holder->get() : nullptr;
}

void InfoCallback(const SSL* ssl, int where, int ret) {
  TlsObservation* obs = Lookup(ssl);
  if (obs == nullptr) return;
  if ((where & SSL_CB_HANDSHAKE_START) != 0) obs->handshake_started = true;
  if ((where & SSL_CB_HANDSHAKE_DONE) != 0) {
    obs->handshake_done = true;
    obs->protocol = SSL_get_version(ssl);
    const char* cipher = SSL_get_cipher_name(ssl);
    obs->cipher = cipher != nullptr ? cipher : "";
  }
  if ((where & SSL_CB_ALERT) != 0) {
    TlsAlert alert;
    alert.received = (where & SSL_CB_READ) != 0;
    alert.level = (ret >> 8) & 0xff;
    alert.description = ret & 0xff;
    obs->alerts.push_back(alert);
  }
}

// Spots the CertificateRequest the server sends and the Certificate we answer with.
// The callback sees handshake messages in clear, also the encrypted ones of TLS 1.3.
void MessageCallback(int write_p, int /*version*/, int content_type, const void* buf,
                     size_t len, SSL* ssl, void* /*arg*/) {
  if (content_type != SSL3_RT_HANDSHAKE || len < 4) return;
  TlsObservation* obs = Lookup(ssl);
  if (obs == nullptr) return;
  const auto* b = static_cast<const unsigned char*>(buf);
  if (write_p == 0 && b[0] == SSL3_MT_CERTIFICATE_REQUEST) obs->certificate_requested = true;
  if (write_p != 0 && b[0] == SSL3_MT_CERTIFICATE) {
    size_t offset = 4;  // type + 24-bit length
    if (SSL_version(ssl) == TLS1_3_VERSION) {
      if (len < 5) return;
      offset += 1 + b[4];  // certificate_request_context
    }
    if (len < offset + 3) return;
    size_t list_len = (size_t{b[offset]} << 16) | (size_t{b[offset + 1]} << 8) | b[offset + 2];
    obs->certificate_sent = list_len > 0;
  }
}

void RecordPeer(TlsObservation& obs, X509_STORE_CTX* xs) {
  obs.peer_recorded = true;
  X509* leaf = X509_STORE_CTX_get0_cert(xs);
  if (leaf != nullptr) obs.peer = DescribePeer(leaf);
  STACK_OF(X509)* sent = X509_STORE_CTX_get0_untrusted(xs);
  for (int i = 0; sent != nullptr && i < sk_X509_num(sent); ++i) {
    obs.chain.push_back(DescribePeer(sk_X509_value(sent, i)));
  }
  if (obs.chain.empty() && leaf != nullptr) obs.chain.push_back(obs.peer);
  for (const auto& cert : obs.chain) obs.chain_subjects.push_back(cert.subject);
}

int VerifyCallback(int ok, X509_STORE_CTX* xs) {
  auto* ssl = static_cast<SSL*>(
      X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx()));
  TlsObservation* obs = Lookup(ssl);
  if (obs == nullptr) return ok;
  if (!obs->peer_recorded) RecordPeer(*obs, xs);
  if (ok == 0 && obs->verify_error == X509_V_OK) {
    obs->verify_error = X509_STORE_CTX_get_error(xs);
    obs->verify_error_depth = X509_STORE_CTX_get_error_depth(xs);
    if (X509* cert = X509_STORE_CTX_get_current_cert(xs)) {
      obs->verify_error_subject = core::NameOneLine(X509_get_subject_name(cert));
      obs->verify_error_not_after = core::AsnTimeToUnix(X509_get0_notAfter(cert)).value_or(0);
    }
  }
  return ok;
}

std::string Join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += sep;
    out += item;
  }
  return out;
}

bool IsCertificateAlert(int d) {
  switch (d) {
    case SSL3_AD_BAD_CERTIFICATE:
    case SSL3_AD_UNSUPPORTED_CERTIFICATE:
    case SSL3_AD_CERTIFICATE_REVOKED:
    case SSL3_AD_CERTIFICATE_EXPIRED:
    case SSL3_AD_CERTIFICATE_UNKNOWN:
    case TLS1_AD_UNKNOWN_CA:
    case TLS1_AD_ACCESS_DENIED:
    case TLS13_AD_CERTIFICATE_REQUIRED:
      return true;
    default:
      return false;
  }
}

std::string RejectionHint(int alert) {
  switch (alert) {
    case TLS1_AD_UNKNOWN_CA:
      return "The server does not trust the issuer of the client certificate: have the "
             "server trust your CA (send it the CA certificate), or bind a certificate "
             "issued by a CA the server trusts; check that the chain is uploaded with it.";
    case SSL3_AD_CERTIFICATE_EXPIRED:
      return "The server considers the client certificate expired: upload a renewed "
             "certificate and bind it to this host.";
    case SSL3_AD_CERTIFICATE_REVOKED:
      return "The server says the client certificate is revoked: obtain a new one.";
    case TLS1_AD_ACCESS_DENIED:
      return "The server verified the certificate but denies this identity access: ask "
             "the server's operator to authorize it.";
    default:
      return "The server refused the client certificate: check that it is the one the "
             "server expects (issuer, extended key usage clientAuth, validity) and that "
             "its chain is complete.";
  }
}

Error WithCommon(Error e, const FailureContext& f) {
  e.With("url", f.url).With("host", f.host).With("port", std::to_string(f.port));
  e.With("curl_code", std::to_string(f.curl_code));
  if (!f.proxy.empty()) e.With("proxy", f.proxy);
  if (f.tls != nullptr && !f.tls->protocol.empty()) e.With("tls_version", f.tls->protocol);
  return e;
}

const TlsAlert* FirstFatal(const TlsObservation* tls, bool received) {
  if (tls == nullptr) return nullptr;
  for (const auto& a : tls->alerts) {
    if (a.received != received) continue;
    if (a.description == SSL3_AD_CLOSE_NOTIFY || a.description == SSL_AD_USER_CANCELLED) {
      continue;
    }
    return &a;
  }
  return nullptr;
}

Error ServerCertificateError(const FailureContext& f) {
  const TlsObservation& t = *f.tls;
  std::string chain = Join(t.chain_subjects, " <- ");
  std::string reason = X509_verify_cert_error_string(t.verify_error);
  if (t.verify_error == X509_V_ERR_CERT_HAS_EXPIRED) {
    std::string when = core::FormatUtc(t.verify_error_not_after);
    Error e(Code::kServerCertExpired,
            f.url + ": the server's certificate \"" + t.verify_error_subject +
                "\" expired on " + when,
            "The server must renew its certificate; there is nothing to fix on this side "
            "(turning verification off would hide the problem).",
            Side::kServer);
    e.With("not_after", when).With("subject", t.verify_error_subject).With("chain", chain);
    return WithCommon(std::move(e), f);
  }
  if (t.verify_error == X509_V_ERR_HOSTNAME_MISMATCH ||
      t.verify_error == X509_V_ERR_IP_ADDRESS_MISMATCH) {
    std::string sans = Join(t.peer.sans, ", ");
    Error e(Code::kHostnameMismatch,
            f.url + ": the server's certificate is for " +
                (sans.empty() ? "\"" + t.peer.subject + "\"" : sans) + ", not \"" +
                f.verify_name + "\"",
            "Call the server by a name its certificate lists, or set tls_server_name to one "
            "of them when calling by address.",
            Side::kServer);
    e.With("sans", sans).With("subject", t.peer.subject).With("expected_name", f.verify_name);
    return WithCommon(std::move(e), f);
  }
  Error e(Code::kServerCertUntrusted,
          f.url + ": the server's certificate chain is not trusted (" + reason + "): " + chain,
          "Add the CA that issued the server's certificate (the last certificate of the "
          "chain, or its issuer) to a trust store bound to this host.",
          Side::kServer);
  e.With("chain", chain).With("verify_error", reason).With("subject", t.peer.subject);
  e.With("issuer", t.peer.issuer);
  if (t.verify_error == X509_V_ERR_CERT_NOT_YET_VALID) {
    e.With("not_before", core::FormatUtc(t.peer.not_before));
  }
  return WithCommon(std::move(e), f);
}

}  // namespace

std::string_view TimeLimitName(TimeLimit limit) {
  switch (limit) {
    case TimeLimit::kStepTimeout: return "step_timeout";
    case TimeLimit::kCallerDeadline: return "caller_deadline";
    case TimeLimit::kHandshakeTimeout: return "handshake_timeout";
  }
  return "step_timeout";  // unreachable: -Wswitch names a missing value
}

std::string AlertName(int d) {
  switch (d) {
    case 0: return "close_notify";
    case 10: return "unexpected_message";
    case 20: return "bad_record_mac";
    case 22: return "record_overflow";
    case 40: return "handshake_failure";
    case 42: return "bad_certificate";
    case 43: return "unsupported_certificate";
    case 44: return "certificate_revoked";
    case 45: return "certificate_expired";
    case 46: return "certificate_unknown";
    case 47: return "illegal_parameter";
    case 48: return "unknown_ca";
    case 49: return "access_denied";
    case 50: return "decode_error";
    case 51: return "decrypt_error";
    case 70: return "protocol_version";
    case 71: return "insufficient_security";
    case 80: return "internal_error";
    case 86: return "inappropriate_fallback";
    case 90: return "user_canceled";
    case 109: return "missing_extension";
    case 110: return "unsupported_extension";
    case 112: return "unrecognized_name";
    case 113: return "bad_certificate_status_response";
    case 115: return "unknown_psk_identity";
    case 116: return "certificate_required";
    case 120: return "no_application_protocol";
    default: return "alert_" + std::to_string(d);
  }
}

std::shared_ptr<TlsObservation> ObserveConnection(SSL_CTX* ctx) {
  auto obs = std::make_shared<TlsObservation>();
  auto* holder = new std::shared_ptr<TlsObservation>(obs);
  if (auto* old = static_cast<std::shared_ptr<TlsObservation>*>(
          SSL_CTX_get_ex_data(ctx, ObservationIndex()))) {
    delete old;
  }
  SSL_CTX_set_ex_data(ctx, ObservationIndex(), holder);
  SSL_CTX_set_info_callback(ctx, &InfoCallback);
  SSL_CTX_set_msg_callback(ctx, &MessageCallback);
  // Keep the verification mode libcurl chose (it follows verify_peer); only observe.
  SSL_CTX_set_verify(ctx, SSL_CTX_get_verify_mode(ctx), &VerifyCallback);
  return obs;
}

std::shared_ptr<TlsObservation> ObservationOf(const SSL* ssl) {
  if (ssl == nullptr) return nullptr;
  auto* holder = static_cast<std::shared_ptr<TlsObservation>*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ObservationIndex()));
  return holder != nullptr ? *holder : nullptr;
}

Error Classify(const FailureContext& f) {
  const TlsObservation* t = f.tls;

  if (f.cancelled) {
    return WithCommon(Error(Code::kCancelled, f.url + ": the call was cancelled",
                            "The caller cancelled the step; nothing to fix.", Side::kNone),
                      f);
  }
  if (f.response_too_large || f.curl_code == CURLE_FILESIZE_EXCEEDED) {
    Error e(Code::kResponseTooLarge,
            f.url + ": the response is larger than max_response_bytes (" +
                std::to_string(f.max_response_bytes) + " bytes)",
            "Raise max_response_bytes for this step, or ask for less data (paging, filters).",
            Side::kServer);
    e.With("max_response_bytes", std::to_string(f.max_response_bytes));
    return WithCommon(std::move(e), f);
  }
  if (f.request_body_failed) {
    return WithCommon(Error(Code::kInvalidArgument,
                            f.url + ": the request body the caller streamed failed; the "
                                    "request was aborted",
                            "The caller's message names what was wrong with the body.",
                            Side::kConfiguration),
                      f);
  }
  if (f.descriptors_exhausted) {
    Error e(Code::kDescriptorsExhausted,
            f.url + ": the plugin ran out of file descriptors and could not open a connection "
                    "to " + f.host + ":" + std::to_string(f.port),
            "Raise the plugin's descriptor limit (ulimit -n, systemd LimitNOFILE) or lower "
            "how many connections it keeps (fewer identities or steps in flight at once).",
            Side::kPlugin);
    return WithCommon(std::move(e), f);
  }
  // The proxy answered the CONNECT with something other than 2xx: no tunnel, so nothing
  // reached the origin (libcurl 7.88 reports these as CURLE_RECV_ERROR or
  // CURLE_COULDNT_CONNECT; the CONNECT status says what happened).
  if (!f.proxy.empty() && f.proxy_status >= 300 && !f.cancelled) {
    const std::string status = std::to_string(f.proxy_status);
    const std::string target = f.host + ":" + std::to_string(f.port);
    // 407 is the standard answer; some proxies (tinyproxy) answer wrong credentials with 401.
    if (f.proxy_status == 407 || f.proxy_status == 401) {
      Error e(Code::kProxyAuthRequired,
              f.url + ": the proxy " + f.proxy +
                  (f.proxy_credentials ? " rejected the proxy credentials"
                                       : " requires credentials and none were configured") +
                  " (HTTP " + status + " to CONNECT " + target + ")",
              f.proxy_credentials
                  ? "Check the proxy user name and password (the step's proxy settings, or "
                    "the plugin's proxy configuration)."
                  : "Give the proxy user name and password in the step's proxy settings or "
                    "the plugin's proxy configuration.",
              Side::kProxy);
      e.With("proxy_status", status);
      return WithCommon(std::move(e), f);
    }
    const bool upstream = f.proxy_status == 502 || f.proxy_status == 504;
    Error e(Code::kProxyRefused,
            f.url + ": the proxy " + f.proxy + " refused to open a tunnel to " + target +
                " (HTTP " + status + " to CONNECT" +
                (upstream ? ": it could not reach the origin)" : ")"),
            upstream ? "The proxy could not connect to the origin: check the host and port, "
                       "and that the origin is reachable from the proxy."
                     : "The proxy's rules forbid this host or port: ask the proxy's operator "
                       "to allow CONNECT to " + target + ", or list the host in no_proxy if "
                       "it is reachable directly.",
            Side::kProxy);
    e.With("proxy_status", status);
    return WithCommon(std::move(e), f);
  }
  if (f.deadline_exceeded || f.curl_code == CURLE_OPERATION_TIMEDOUT) {
    // Where the time went: waiting for a place to run, TCP, TLS, the server thinking
    // (no byte of the answer yet), or the answer arriving too slowly.
    std::string phase = f.queued                             ? "queued"
                        : !f.connected                       ? "connect"
                        : (f.https && !f.tls_connected)      ? "tls_handshake"
                        : !f.response_started                ? "first_byte"
                                                             : "reading";
    std::string limit = f.limit == TimeLimit::kCallerDeadline ? "the caller's deadline"
                        : f.limit == TimeLimit::kHandshakeTimeout ? "the handshake timeout"
                                                                  : "the step's timeout";
    std::string hint;
    std::string what;
    Side side = Side::kServer;
    if (phase == "queued") {
      what = "the step never started: it waited for a free place to run (other steps to "
             "the same origin held them all)";
      hint = "The origin's earlier steps are slow or hanging: check the server, lower its "
             "steps' timeouts, or raise max_in_flight_per_origin.";
      side = Side::kPlugin;
    } else if (phase == "connect") {
      what = "no connection";
      hint = "The server did not accept a connection in time: check that it is up and "
             "reachable from the plugin, or raise the connect timeout.";
      side = Side::kNetwork;
    } else if (phase == "tls_handshake") {
      what = "no tls_handshake";
      hint = "The server accepted the TCP connection but did not complete the TLS handshake "
             "in time: check that this port speaks TLS (not plain HTTP or another protocol), "
             "or raise the timeout.";
    } else if (phase == "first_byte") {
      what = "no answer (the request was sent, not one byte came back)";
      hint = "The server accepted the connection but did not answer in time: raise the "
             "step's timeout or check the server.";
    } else {
      what = "no complete response (the answer started but did not finish)";
      hint = "The server began answering but sent the rest too slowly: raise the step's "
             "timeout or check the server and the network.";
    }
    Error e(Code::kTimeout,
            f.url + ": " + what + " within " + limit + " (" +
                std::to_string(f.time_limit.count()) + " ms)",
            std::move(hint), side);
    e.With("phase", phase).With("timeout_ms", std::to_string(f.time_limit.count()));
    e.With("limit", std::string(TimeLimitName(f.limit)));
    return WithCommon(std::move(e), f);
  }
  // Through a proxy, the only connection the plugin makes itself is to the proxy.
  if (!f.proxy.empty() && f.proxy_status == 0 &&
      (f.curl_code == CURLE_COULDNT_RESOLVE_PROXY ||
       (f.curl_code == CURLE_COULDNT_CONNECT && (t == nullptr || !t->handshake_started)))) {
    Error e(Code::kProxyUnreachable,
            f.url + ": the proxy " + f.proxy +
                (f.curl_code == CURLE_COULDNT_RESOLVE_PROXY
                     ? " does not resolve"
                     : " refused the connection or is unreachable"),
            "Check the proxy's host and port (the step's proxy settings or the plugin's "
            "configuration) and that the proxy is running and reachable from the plugin.",
            Side::kProxy);
    return WithCommon(std::move(e), f);
  }
  if (f.curl_code == CURLE_COULDNT_RESOLVE_HOST) {
    Error e(Code::kDnsFailure, f.url + ": the host name \"" + f.host + "\" does not resolve",
            "Check the host name in the URL, and the plugin host's DNS.", Side::kNetwork);
    return WithCommon(std::move(e), f);
  }
  if (f.curl_code == CURLE_COULDNT_CONNECT && (t == nullptr || !t->handshake_started)) {
    Error e(Code::kConnectionRefused,
            f.url + ": the connection to " + f.host + ":" + std::to_string(f.port) +
                " was refused or the address is unreachable",
            "Check the port and that the server is listening and reachable from the plugin "
            "(firewall, proxy).",
            Side::kNetwork);
    return WithCommon(std::move(e), f);
  }
  if (f.curl_code == CURLE_SSL_PINNEDPUBKEYNOTMATCH) {
    std::string actual = t != nullptr && !t->peer.spki_sha256_base64.empty()
                             ? "sha256//" + t->peer.spki_sha256_base64
                             : "";
    Error e(Code::kPinMismatch,
            f.url + ": the server's public key " +
                (actual.empty() ? std::string("does not match") : actual + " does not match") +
                " the pinned key",
            "The server's key changed (or the pin is wrong): verify the new key out of band, "
            "then update pinned_public_key.",
            Side::kServer);
    e.With("expected", f.pinned_public_key).With("actual", actual);
    if (t != nullptr) e.With("subject", t->peer.subject);
    return WithCommon(std::move(e), f);
  }

  // The server rejected us: it sent a fatal alert.
  if (const TlsAlert* a = FirstFatal(t, /*received=*/true)) {
    std::string alert = AlertName(a->description);
    bool cert_alert = IsCertificateAlert(a->description) ||
                      (a->description == SSL3_AD_HANDSHAKE_FAILURE && t->certificate_requested);
    if (cert_alert && t->certificate_requested && !t->certificate_sent) {
      Error e(Code::kClientCertRequired,
              f.url + ": the server requires a client certificate and none was configured "
                      "(it answered with TLS alert " + alert + ")",
              "Upload the client certificate for this host and bind it to " + f.host + ":" +
                  std::to_string(f.port) + ", and switch on SSL certificate verification for "
                  "the step.",
              Side::kConfiguration);
      e.With("alert", alert).With("alert_direction", "received");
      return WithCommon(std::move(e), f);
    }
    if (cert_alert) {
      Error e(Code::kClientCertRejected,
              f.url + ": the server rejected the client certificate" +
                  (f.client_certificate_name.empty() ? std::string()
                                                     : " \"" + f.client_certificate_name + "\"") +
                  " with TLS alert " + alert,
              RejectionHint(a->description), Side::kClient);
      e.With("alert", alert).With("alert_direction", "received");
      if (!f.client_certificate_name.empty()) e.With("certificate", f.client_certificate_name);
      return WithCommon(std::move(e), f);
    }
    Error e(Code::kTlsHandshakeFailed,
            f.url + ": the TLS handshake failed: the server sent alert " + alert +
                (f.min_tls_version.empty() ? std::string()
                                           : " (we required TLS >= " + f.min_tls_version + ")"),
            a->description == TLS1_AD_PROTOCOL_VERSION
                ? "The server and the step share no TLS version: lower min_tls_version or "
                  "upgrade the server."
                : "The server and the plugin share no protocol version or cipher suite: "
                  "compare the server's TLS configuration with the step's min_tls_version.",
            Side::kServer);
    e.With("alert", alert).With("alert_direction", "received");
    if (!f.min_tls_version.empty()) e.With("min_tls_version", f.min_tls_version);
    return WithCommon(std::move(e), f);
  }

  // TLS 1.3 servers check the client certificate after the client considers the
  // handshake done; one that closes without an alert (or whose alert a TCP reset destroyed)
  // leaves only this pattern: certificate requested, handshake done, connection gone
  // before any response.
  if (t != nullptr && t->handshake_done && t->protocol == "TLSv1.3" && t->certificate_requested &&
      !f.response_started && FirstFatal(t, /*received=*/false) == nullptr &&
      (f.curl_code == CURLE_RECV_ERROR || f.curl_code == CURLE_SEND_ERROR ||
       f.curl_code == CURLE_GOT_NOTHING || f.curl_code == CURLE_COULDNT_CONNECT ||
       f.curl_code == CURLE_SSL_CONNECT_ERROR)) {
    if (!t->certificate_sent) {
      Error e(Code::kClientCertRequired,
              f.url + ": the server asked for a client certificate, none was configured, and "
                      "it closed the connection",
              "Upload the client certificate for this host and bind it to " + f.host + ":" +
                  std::to_string(f.port) + ".",
              Side::kConfiguration);
      e.With("alert", "none").With("alert_direction", "none");
      return WithCommon(std::move(e), f);
    }
    Error e(Code::kClientCertRejected,
            f.url + ": the server closed the connection right after receiving the client "
                    "certificate" +
                (f.client_certificate_name.empty() ? std::string()
                                                   : " \"" + f.client_certificate_name + "\"") +
                " without a TLS alert: it most likely rejected it",
            RejectionHint(0), Side::kClient);
    e.With("alert", "none").With("alert_direction", "none");
    return WithCommon(std::move(e), f);
  }

  // We rejected the server's certificate.
  if (t != nullptr && t->verify_error != X509_V_OK &&
      (f.curl_code == CURLE_PEER_FAILED_VERIFICATION || f.curl_code == CURLE_SSL_CONNECT_ERROR ||
       FirstFatal(t, /*received=*/false) != nullptr)) {
    bool name_error = t->verify_error == X509_V_ERR_HOSTNAME_MISMATCH ||
                      t->verify_error == X509_V_ERR_IP_ADDRESS_MISMATCH;
    if ((name_error && f.verify_host) || (!name_error && f.verify_peer)) {
      Error e = ServerCertificateError(f);
      if (const TlsAlert* sent = FirstFatal(t, false)) {
        e.With("alert", AlertName(sent->description)).With("alert_direction", "sent");
      }
      return e;
    }
  }
  // libcurl's own host name check (after OpenSSL accepted the chain).
  if (f.curl_code == CURLE_PEER_FAILED_VERIFICATION && t != nullptr && f.verify_host) {
    std::string sans = Join(t->peer.sans, ", ");
    Error e(Code::kHostnameMismatch,
            f.url + ": the server's certificate is for " + sans + ", not \"" + f.verify_name +
                "\"",
            "Call the server by a name its certificate lists, or set tls_server_name to one "
            "of them when calling by address.",
            Side::kServer);
    e.With("sans", sans).With("subject", t->peer.subject).With("expected_name", f.verify_name);
    return WithCommon(std::move(e), f);
  }
  if (const TlsAlert* sent = FirstFatal(t, /*received=*/false);
      sent != nullptr || f.curl_code == CURLE_SSL_CONNECT_ERROR ||
      f.curl_code == CURLE_SSL_CIPHER || f.curl_code == CURLE_PEER_FAILED_VERIFICATION) {
    std::string alert = sent != nullptr ? AlertName(sent->description) : "";
    Error e(Code::kTlsHandshakeFailed,
            f.url + ": the TLS handshake failed" +
                (alert.empty() ? std::string() : " (we sent alert " + alert + ")") + ": " +
                f.curl_message,
            "Compare the server's TLS versions and cipher suites with the step's "
            "min_tls_version; check the server's certificate type.",
            Side::kServer);
    if (!alert.empty()) e.With("alert", alert).With("alert_direction", "sent");
    if (!f.min_tls_version.empty()) e.With("min_tls_version", f.min_tls_version);
    return WithCommon(std::move(e), f);
  }
  Error e(Code::kTransferFailed, f.url + ": the transfer failed: " + f.curl_message,
          "The connection broke before a complete response arrived: check the server's logs "
          "and any proxy in between; the step can be retried.",
          Side::kNetwork);
  return WithCommon(std::move(e), f);
}

std::optional<Error> ClassifyHttpRefusal(const HttpRefusalFacts& h) {
  if (!h.used_tls) return std::nullopt;
  bool missing = h.status == 496 ||
                 (h.status == 400 &&
                  h.body.find("No required SSL certificate was sent") != std::string_view::npos);
  bool rejected = h.status == 495 ||
                  (h.status == 400 && h.body.find("The SSL certificate error") != std::string_view::npos);
  if (!missing && !rejected) return std::nullopt;
  const std::string url(h.url);
  const std::string name(h.certificate_name);
  Error e;
  if (missing || !h.certificate_presented) {
    e = Error(Code::kClientCertRequired,
              url + ": the server requires a client certificate and none was sent (HTTP " +
                  std::to_string(h.status) + " from its TLS front end)",
              "Upload the client certificate for this host, bind it to the host and port, and "
              "switch on SSL certificate verification for the step.",
              Side::kConfiguration);
  } else {
    e = Error(Code::kClientCertRejected,
              url + ": the server rejected the client certificate \"" + name +
                  "\" after the handshake (HTTP " + std::to_string(h.status) +
                  " \"The SSL certificate error\" from its TLS front end)",
              RejectionHint(0), Side::kClient);
    e.With("certificate", name).With("fingerprint", std::string(h.certificate_fingerprint));
  }
  e.With("alert", "none").With("alert_direction", "none");
  e.With("http_status", std::to_string(h.status)).With("url", url);
  if (h.certificate_requested) e.With("certificate_requested", "true");
  return e;
}

}  // namespace wsstep::rest

// Classify() on synthetic observations: the decisions that the loopback tests cannot
// force on demand (libcurl codes that contradict the alert, a reset that ate the alert).
#include "rest/tls_diagnosis.h"

#include <curl/curl.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

namespace wsstep::rest {
namespace {

FailureContext Base(const TlsObservation& obs, int curl_code) {
  FailureContext f;
  f.curl_code = curl_code;
  f.curl_message = "curl says something";
  f.url = "https://api.example:8443/x";
  f.host = "api.example";
  f.port = 8443;
  f.verify_name = "api.example";
  f.https = true;
  f.connected = true;
  f.tls = &obs;
  return f;
}

TlsAlert Received(int d) { return TlsAlert{true, 2, d}; }
TlsAlert Sent(int d) { return TlsAlert{false, 2, d}; }

TEST(ClassifyTest, TheAlertDecidesNotCurlsCode) {
  // An expired client certificate under TLS 1.2 can surface as CURLE_PEER_FAILED_VERIFICATION.
  TlsObservation obs;
  obs.handshake_started = true;
  obs.certificate_requested = true;
  obs.certificate_sent = true;
  obs.alerts = {Received(SSL3_AD_CERTIFICATE_EXPIRED)};
  for (int code : {CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CONNECT_ERROR, CURLE_RECV_ERROR}) {
    FailureContext f = Base(obs, code);
    f.had_client_certificate = true;
    f.client_certificate_name = "billing";
    Error e = Classify(f);
    EXPECT_EQ(e.code, Code::kClientCertRejected) << code;
    EXPECT_EQ(e.detail.at("alert"), "certificate_expired");
    EXPECT_EQ(e.detail.at("certificate"), "billing");
    EXPECT_EQ(e.side, Side::kClient);
  }
}

TEST(ClassifyTest, HandshakeFailureWithoutCertificateRequestIsAHandshakeProblem) {
  TlsObservation obs;
  obs.handshake_started = true;
  obs.alerts = {Received(SSL3_AD_HANDSHAKE_FAILURE)};
  Error e = Classify(Base(obs, CURLE_SSL_CONNECT_ERROR));
  EXPECT_EQ(e.code, Code::kTlsHandshakeFailed);
  EXPECT_EQ(e.detail.at("alert"), "handshake_failure");
}

TEST(ClassifyTest, CloseNotifyIsNotARejection) {
  TlsObservation obs;
  obs.handshake_done = true;
  obs.protocol = "TLSv1.2";
  obs.alerts = {TlsAlert{true, 1, SSL3_AD_CLOSE_NOTIFY}};
  Error e = Classify(Base(obs, CURLE_RECV_ERROR));
  EXPECT_EQ(e.code, Code::kTransferFailed);
}

TEST(ClassifyTest, Tls13ResetAfterTheCertificateIsARejection) {
  TlsObservation obs;
  obs.handshake_started = obs.handshake_done = true;
  obs.protocol = "TLSv1.3";
  obs.certificate_requested = true;
  obs.certificate_sent = true;
  Error e = Classify(Base(obs, CURLE_RECV_ERROR));
  EXPECT_EQ(e.code, Code::kClientCertRejected);
  EXPECT_EQ(e.detail.at("alert"), "none");
  obs.certificate_sent = false;
  EXPECT_EQ(Classify(Base(obs, CURLE_RECV_ERROR)).code, Code::kClientCertRequired);
  // Once a response started, a reset is a transfer failure.
  FailureContext f = Base(obs, CURLE_RECV_ERROR);
  f.response_started = true;
  EXPECT_EQ(Classify(f).code, Code::kTransferFailed);
}

TEST(ClassifyTest, VerifyErrorsCountOnlyWhenVerificationIsOn) {
  TlsObservation obs;
  obs.handshake_started = true;
  obs.verify_error = X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT;
  obs.chain_subjects = {"CN=api.example"};
  obs.alerts = {Sent(TLS1_AD_UNKNOWN_CA)};
  FailureContext f = Base(obs, CURLE_PEER_FAILED_VERIFICATION);
  Error e = Classify(f);
  EXPECT_EQ(e.code, Code::kServerCertUntrusted);
  EXPECT_EQ(e.detail.at("chain"), "CN=api.example");
  EXPECT_EQ(e.detail.at("alert_direction"), "sent");

  // verify_peer off: the same observation on a connection that then timed out.
  TlsObservation quiet;
  quiet.verify_error = X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT;
  FailureContext timeout = Base(quiet, CURLE_OPERATION_TIMEDOUT);
  timeout.verify_peer = false;
  EXPECT_EQ(Classify(timeout).code, Code::kTimeout);
}

TEST(ClassifyTest, CurlsOwnHostnameCheckNamesTheSans) {
  TlsObservation obs;
  obs.handshake_done = true;
  obs.peer.sans = {"DNS:a.example", "DNS:b.example"};
  Error e = Classify(Base(obs, CURLE_PEER_FAILED_VERIFICATION));
  EXPECT_EQ(e.code, Code::kHostnameMismatch);
  EXPECT_EQ(e.detail.at("sans"), "DNS:a.example, DNS:b.example");
}

TEST(ClassifyTest, PlainCodes) {
  TlsObservation none;
  FailureContext f = Base(none, CURLE_COULDNT_RESOLVE_HOST);
  EXPECT_EQ(Classify(f).code, Code::kDnsFailure);
  f = Base(none, CURLE_COULDNT_CONNECT);
  f.connected = false;
  EXPECT_EQ(Classify(f).code, Code::kConnectionRefused);
  f = Base(none, CURLE_OPERATION_TIMEDOUT);
  f.connected = false;
  EXPECT_EQ(Classify(f).detail.at("phase"), "connect");
  f = Base(none, CURLE_FILESIZE_EXCEEDED);
  EXPECT_EQ(Classify(f).code, Code::kResponseTooLarge);
  f = Base(none, CURLE_ABORTED_BY_CALLBACK);
  f.cancelled = true;
  EXPECT_EQ(Classify(f).code, Code::kCancelled);
  f = Base(none, CURLE_SSL_PINNEDPUBKEYNOTMATCH);
  f.pinned_public_key = "sha256//AAAA";
  EXPECT_EQ(Classify(f).code, Code::kPinMismatch);
}

TEST(ClassifyTest, HttpRefusalOnlyForTlsFrontEndPages) {
  HttpRefusalFacts h;
  h.url = "https://api.example/x";
  h.used_tls = true;
  h.status = 400;
  h.body = "{\"error\":\"bad input\"}";
  EXPECT_FALSE(ClassifyHttpRefusal(h).has_value());  // an ordinary 400 stays a result
  h.body = "<center>No required SSL certificate was sent</center>";
  EXPECT_EQ(ClassifyHttpRefusal(h)->code, Code::kClientCertRequired);
  h.body = "<center>The SSL certificate error</center>";
  h.certificate_presented = true;
  h.certificate_name = "billing";
  auto rejected = ClassifyHttpRefusal(h);
  ASSERT_TRUE(rejected.has_value());
  EXPECT_EQ(rejected->code, Code::kClientCertRejected);
  EXPECT_EQ(rejected->detail.at("certificate"), "billing");
  h.used_tls = false;
  EXPECT_FALSE(ClassifyHttpRefusal(h).has_value());
}

TEST(ClassifyTest, AlertNames) {
  EXPECT_EQ(AlertName(48), "unknown_ca");
  EXPECT_EQ(AlertName(116), "certificate_required");
  EXPECT_EQ(AlertName(70), "protocol_version");
  EXPECT_EQ(AlertName(200), "alert_200");
}

}  // namespace
}  // namespace wsstep::rest

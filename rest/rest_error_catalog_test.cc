// Every §2 catalog code reproduced against a real TLS server on loopback, asserting the
// code and the named detail (alert, chain, SANs, dates...).
#include <gtest/gtest.h>
#include <openssl/sha.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "core/x509_info.h"
#include "rest/engine.h"
#include "rest/rest_test_util.h"
#include "rest/tls_util.h"

namespace wsstep::rest {
namespace {

using namespace std::chrono_literals;
using testing::ClientAuth;
using testing::ServerResponse;
using testing::TlsServer;
using testing::TlsVersions;
using namespace testutil;

class ErrorCatalogTest : public ::testing::Test {
 protected:
  std::unique_ptr<TlsServer> Serve(testing::TlsServerConfig config) {
    auto server = std::make_unique<TlsServer>(std::move(config));
    EXPECT_TRUE(server->Start()) << server->start_error();
    return server;
  }
  Result<RestResult> Call(const std::string& url, const core::CallCredentials& creds,
                          RestStep step = {}) {
    if (step.url.empty()) step = Get(url);
    return engine_.Execute(std::move(step), creds, Soon());
  }
  RestEngine engine_;
};

struct RejectCase {
  TlsVersions versions;
  std::string client;     // client certificate ("" = none)
  std::string server_ca;  // what the server trusts for client certificates
  Code code;
  std::string alert;
};

class ClientRejectionTest : public ErrorCatalogTest,
                            public ::testing::WithParamInterface<RejectCase> {};

TEST_P(ClientRejectionTest, ClassifiesFromTheAlertTheServerSent) {
  const RejectCase& c = GetParam();
  auto config = ServerConfig("localhost", ClientAuth::kRequired, c.server_ca);
  config.versions = c.versions;
  auto server = Serve(std::move(config));
  auto r = Call(server->BaseUrl() + "/x", Creds(c.client));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, c.code) << r.error().ToString();
  EXPECT_EQ(r.error().detail.at("alert"), c.alert) << r.error().ToString();
  EXPECT_EQ(r.error().detail.at("alert_direction"), "received");
  EXPECT_FALSE(r.error().hint.empty());
  EXPECT_EQ(server->request_count(), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Alerts, ClientRejectionTest,
    ::testing::Values(
        RejectCase{TlsVersions::kTls12Only, "rsa", "ca/other-root.pem", Code::kClientCertRejected,
                   "unknown_ca"},
        RejectCase{TlsVersions::kTls13Only, "rsa", "ca/other-root.pem", Code::kClientCertRejected,
                   "unknown_ca"},
        RejectCase{TlsVersions::kTls12Only, "expired", "ca/root.pem", Code::kClientCertRejected,
                   "certificate_expired"},
        RejectCase{TlsVersions::kTls13Only, "expired", "ca/root.pem", Code::kClientCertRejected,
                   "certificate_expired"},
        RejectCase{TlsVersions::kTls12Only, "", "ca/root.pem", Code::kClientCertRequired,
                   "handshake_failure"},
        RejectCase{TlsVersions::kTls13Only, "", "ca/root.pem", Code::kClientCertRequired,
                   "certificate_required"}),
    [](const auto& info) {
      return std::string(info.param.versions == TlsVersions::kTls12Only ? "Tls12_" : "Tls13_") +
             (info.param.client.empty() ? "none" : info.param.client) + "_" +
             (info.param.server_ca == "ca/root.pem" ? "root" : "other");
    });

TEST_F(ErrorCatalogTest, ServerCertSelfSignedIsUntrustedWithItsChain) {
  auto server = Serve(ServerConfig("self-signed", ClientAuth::kNone));
  auto r = Call(server->BaseUrl() + "/", Creds(""));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kServerCertUntrusted) << r.error().ToString();
  EXPECT_EQ(r.error().detail.at("chain"), "CN=localhost,O=wsstep tests");
  EXPECT_EQ(r.error().detail.at("alert_direction"), "sent");
  EXPECT_NE(r.error().hint.find("trust store"), std::string::npos);
  EXPECT_EQ(r.error().side, Side::kServer);
}

TEST_F(ErrorCatalogTest, ServerCertFromAnotherCaIsUntrusted) {
  auto server = Serve(ServerConfig("other-ca", ClientAuth::kNone));
  auto r = Call(server->BaseUrl() + "/", Creds("rsa"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kServerCertUntrusted) << r.error().ToString();
  EXPECT_EQ(r.error().detail.at("chain"), "CN=localhost,O=wsstep tests");
  EXPECT_EQ(r.error().detail.at("issuer"), "CN=wsstep Other Root CA,O=wsstep tests");
  EXPECT_EQ(r.error().detail.at("verify_error"), "unable to get local issuer certificate");
}

TEST_F(ErrorCatalogTest, ServerCertExpiredNamesTheDate) {
  auto server = Serve(ServerConfig("expired", ClientAuth::kNone));
  auto r = Call(server->BaseUrl() + "/", Creds(""));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kServerCertExpired) << r.error().ToString();
  auto cert = ReadCerts("server/expired.pem");
  std::string not_after =
      core::FormatUtc(core::AsnTimeToUnix(X509_get0_notAfter(cert[0].get())).value());
  EXPECT_EQ(r.error().detail.at("not_after"), not_after);
  EXPECT_NE(r.error().message.find(not_after), std::string::npos);
}

TEST_F(ErrorCatalogTest, HostnameMismatchNamesTheSans) {
  auto server = Serve(ServerConfig("wrong-name", ClientAuth::kNone));
  auto r = Call(server->BaseUrl() + "/", Creds(""));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kHostnameMismatch) << r.error().ToString();
  EXPECT_EQ(r.error().detail.at("sans"), "DNS:wrong.example");
  EXPECT_EQ(r.error().detail.at("expected_name"), "localhost");
}

TEST_F(ErrorCatalogTest, PinMismatchAndMatch) {
  auto server = Serve(ServerConfig("localhost", ClientAuth::kNone));
  std::string server_pin =
      "sha256//" + SpkiSha256Base64(ReadCerts("server/localhost.pem")[0].get());
  std::string other_pin = "sha256//" + SpkiSha256Base64(ReadCerts("ca/root.pem")[0].get());

  RestStep wrong = Get(server->BaseUrl() + "/");
  wrong.tls.pinned_public_key = other_pin;
  auto r = Call("", Creds(""), std::move(wrong));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kPinMismatch) << r.error().ToString();
  EXPECT_EQ(r.error().detail.at("expected"), other_pin);
  EXPECT_EQ(r.error().detail.at("actual"), server_pin);

  RestStep right = Get(server->BaseUrl() + "/");
  right.tls.pinned_public_key = server_pin;
  auto ok = Call("", Creds(""), std::move(right));
  ASSERT_TRUE(ok.ok()) << ok.error().ToString();
  EXPECT_EQ(ok->status, 200);
}

TEST_F(ErrorCatalogTest, HexPinIsAccepted) {
  auto server = Serve(ServerConfig("localhost", ClientAuth::kNone));
  auto cert = ReadCerts("server/localhost.pem");
  unsigned char* der = nullptr;
  int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert[0].get()), &der);
  unsigned char md[32];
  SHA256(der, static_cast<size_t>(len), md);
  OPENSSL_free(der);
  RestStep step = Get(server->BaseUrl() + "/");
  step.tls.pinned_public_key = ossl::HexColon(md, sizeof(md));
  auto r = Call("", Creds(""), std::move(step));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
}

TEST_F(ErrorCatalogTest, TlsHandshakeFailedOnVersion) {
  auto config = ServerConfig("localhost", ClientAuth::kNone);
  config.versions = TlsVersions::kTls12Only;
  auto server = Serve(std::move(config));
  RestStep step = Get(server->BaseUrl() + "/");
  step.tls.min_tls_version = "1.3";
  auto r = Call("", Creds(""), std::move(step));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kTlsHandshakeFailed) << r.error().ToString();
  EXPECT_EQ(r.error().detail.at("alert"), "protocol_version");
  EXPECT_EQ(r.error().detail.at("min_tls_version"), "1.3");
}

TEST_F(ErrorCatalogTest, ConnectionRefusedOnAClosedPort) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);  // nothing listens there now
  auto r = Call("https://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/", Creds(""));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kConnectionRefused) << r.error().ToString();
  EXPECT_EQ(r.error().side, Side::kNetwork);
}

TEST_F(ErrorCatalogTest, DnsFailureForAnInvalidName) {
  auto r = Call("https://no-such-host.invalid/", Creds(""));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kDnsFailure) << r.error().ToString();
  EXPECT_EQ(r.error().detail.at("host"), "no-such-host.invalid");
}

ServerResponse Stall(const testing::ServerRequest&) {
  ServerResponse r;
  r.mode = ServerResponse::Mode::kStall;
  return r;
}

TEST_F(ErrorCatalogTest, TimeoutHonoursTheStepTimeout) {
  auto config = ServerConfig("localhost", ClientAuth::kNone);
  config.handler = Stall;
  auto server = Serve(std::move(config));
  RestStep step = Get(server->BaseUrl() + "/");
  step.timeouts.total = 800ms;
  auto start = std::chrono::steady_clock::now();
  auto r = Call("", Creds(""), std::move(step));
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kTimeout) << r.error().ToString();
  // The status line and headers came, the body did not.
  EXPECT_EQ(r.error().detail.at("phase"), "reading");
  EXPECT_EQ(r.error().detail.at("limit"), "step_timeout");
  // Timing is the behaviour under test here: never before the step timeout, and well
  // before the caller's 20 s deadline (the generous upper bound only tells the two apart;
  // the detail above already names which limit fired).
  EXPECT_GE(took, 750ms);
  EXPECT_LT(took, 10s);
}

TEST_F(ErrorCatalogTest, TimeoutHonoursTheCallersDeadline) {
  auto config = ServerConfig("localhost", ClientAuth::kNone);
  config.handler = Stall;
  auto server = Serve(std::move(config));
  auto start = std::chrono::steady_clock::now();
  auto r = engine_.Execute(Get(server->BaseUrl() + "/"), Creds(""), In(600ms));
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kTimeout) << r.error().ToString();
  EXPECT_EQ(r.error().detail.at("limit"), "caller_deadline");
  // Timing is the behaviour under test: the stall would last until the server stops, so
  // the call ends because of the 600 ms deadline (generous bound: a loaded machine).
  EXPECT_GE(took, 550ms);
  EXPECT_LT(took, 10s);
}

TEST_F(ErrorCatalogTest, CancelAbortsTheTransfer) {
  auto config = ServerConfig("localhost", ClientAuth::kNone);
  config.handler = Stall;
  auto server = Serve(std::move(config));
  CancelToken cancel;
  // Cancels once the request is at the server and the response has stalled: the
  // transfer is under way, so this is an abort, not a step that never started.
  std::thread canceller([cancel, &server] {
    EXPECT_TRUE(server->WaitForRequests(1)) << "the request never reached the server";
    cancel.Cancel();
  });
  auto r = engine_.Execute(Get(server->BaseUrl() + "/"), Creds(""), Soon(), cancel);
  canceller.join();
  ASSERT_FALSE(r.ok());
  // Not TIMEOUT: the stall would last until the 20 s deadline.
  EXPECT_EQ(r.error().code, Code::kCancelled) << r.error().ToString();
  EXPECT_EQ(r.error().detail.count("started"), 0u)
      << "started=false: the step was answered as never started, not aborted";
}

TEST_F(ErrorCatalogTest, ResponseTooLargeWithAndWithoutContentLength) {
  for (bool chunked : {false, true}) {
    auto config = ServerConfig("localhost", ClientAuth::kNone);
    config.handler = [chunked](const testing::ServerRequest&) {
      ServerResponse r;
      r.huge_body_bytes = 3 * 1024 * 1024;
      r.chunked = chunked;
      return r;
    };
    auto server = Serve(std::move(config));
    RestStep step = Get(server->BaseUrl() + "/big");
    step.max_response_bytes = 1024 * 1024;
    auto r = Call("", Creds(""), std::move(step));
    ASSERT_FALSE(r.ok()) << "chunked=" << chunked;
    EXPECT_EQ(r.error().code, Code::kResponseTooLarge) << r.error().ToString();
    EXPECT_EQ(r.error().detail.at("max_response_bytes"), "1048576");

    RestStep fits = Get(server->BaseUrl() + "/big");
    fits.max_response_bytes = 4 * 1024 * 1024;
    auto ok = Call("", Creds(""), std::move(fits));
    ASSERT_TRUE(ok.ok()) << ok.error().ToString();
    EXPECT_EQ(ok->body.size(), 3u * 1024 * 1024);
  }
}

TEST_F(ErrorCatalogTest, ConnectionResetIsATransferFailure) {
  auto config = ServerConfig("localhost", ClientAuth::kNone);
  config.handler = [](const testing::ServerRequest&) {
    ServerResponse r;
    r.mode = ServerResponse::Mode::kReset;
    return r;
  };
  auto server = Serve(std::move(config));
  auto r = Call(server->BaseUrl() + "/", Creds(""));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kTransferFailed) << r.error().ToString();
  EXPECT_EQ(r.error().side, Side::kNetwork);
  EXPECT_EQ(server->request_count(), 1u);
}

TEST_F(ErrorCatalogTest, InvalidHeaderIsRefusedBeforeAnythingIsSent) {
  auto server = Serve(ServerConfig("localhost", ClientAuth::kNone));
  struct Bad {
    std::string name, value, shown, field;
  };
  for (const Bad& bad : {Bad{"X-Evil", "a\r\nInjected: 1", "X-Evil", "headers[1].value"},
                         Bad{"X-Evil", std::string("a\0b", 3), "X-Evil", "headers[1].value"},
                         Bad{"X-Evil\nInjected", "a", "X-Evil\\nInjected", "headers[1].name"},
                         Bad{"Bad Name", "a", "Bad Name", "headers[1].name"}}) {
    RestStep step = Get(server->BaseUrl() + "/");
    step.headers.push_back({"X-Fine", "ok"});
    step.headers.push_back({bad.name, bad.value});
    auto r = Call("", Creds(""), std::move(step));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Code::kInvalidStepConfig) << r.error().ToString();
    EXPECT_EQ(r.error().detail.at("field"), bad.field);
    EXPECT_EQ(r.error().detail.at("header"), bad.shown);
    EXPECT_EQ(r.error().message.find("Injected: 1"), std::string::npos);
  }
  EXPECT_EQ(server->request_count(), 0u);
  EXPECT_EQ(server->connection_count(), 0u);
}

TEST_F(ErrorCatalogTest, InvalidStepConfigCases) {
  RestStep ftp = Get("ftp://localhost/");
  EXPECT_EQ(engine_.Validate(ftp).code(), Code::kInvalidStepConfig);

  RestStep http = Get("http://localhost:1/");
  http.tls.ssl_verification = true;
  Status s = engine_.Validate(http);
  EXPECT_EQ(s.code(), Code::kInvalidStepConfig);
  EXPECT_EQ(s.error().detail.at("field"), "tls.ssl_verification");

  RestStep prod = Get("https://localhost:1/");
  prod.tls.environment = "production";
  prod.tls.verify_peer = false;
  s = engine_.Validate(prod);
  EXPECT_EQ(s.code(), Code::kInvalidStepConfig);
  EXPECT_EQ(s.error().detail.at("field"), "tls.verify_peer");
  prod.tls.verify_peer = true;
  prod.tls.verify_host = false;
  EXPECT_EQ(engine_.Validate(prod).error().detail.at("field"), "tls.verify_host");

  RestStep version = Get("https://localhost:1/");
  version.tls.min_tls_version = "1.0";
  EXPECT_EQ(engine_.Validate(version).error().detail.at("field"), "tls.min_tls_version");

  RestStep pin = Get("https://localhost:1/");
  pin.tls.pinned_public_key = "not a pin";
  EXPECT_EQ(engine_.Validate(pin).error().detail.at("field"), "tls.pinned_public_key");

  RestStep userinfo = Get("https://user:pw@localhost:1/");
  EXPECT_EQ(engine_.Validate(userinfo).code(), Code::kInvalidStepConfig);
  EXPECT_EQ(engine_.Validate(userinfo).error().message.find("pw"), std::string::npos);
}

}  // namespace
}  // namespace wsstep::rest

// `wsstep test-connection` and CertificateService/TestConnection against real servers
// (nginx and the `openssl s_server` command), through the real `wsstep serve`: the
// verdict comes from the TLS exchange, not from an HTTP answer (issue 15).
//
// Each case runs twice, from the command line and over gRPC, and asserts the catalog
// code, the TLS alert, the certificate shown as offered, every certificate the server
// sent, the HTTP answer, the timeout that fired and the exit code.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "core/ossl.h"
#include "core/x509_info.h"
#include "tests/e2e/e2e_util.h"
#include "tests/support/nginx.h"
#include "tests/support/openssl_server.h"
#include "tests/support/pki.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"
#include "wsstep/v1/certificate_service.grpc.pb.h"

namespace wsstep::e2e {
namespace {

namespace v1 = ::wsstep::v1;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::PkiPath;

std::string SubjectOf(const std::string& pem_file) {
  std::FILE* f = std::fopen(pem_file.c_str(), "r");
  if (f == nullptr) throw std::runtime_error("cannot open " + pem_file);
  ossl::X509Ptr cert(PEM_read_X509(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  if (!cert) throw std::runtime_error("no certificate in " + pem_file);
  return core::NameOneLine(X509_get_subject_name(cert.get()));
}

// What a probe must show, from both the command line and gRPC.
struct Expected {
  bool ok = false;
  std::string code;                // catalog code; "" when ok
  std::string alert;               // detail "alert"; "" for none expected
  std::string offered;             // the client certificate shown as offered; "" for none
  std::vector<std::string> chain;  // every subject the server sent, leaf first
  int http_status = 0;
  v1::ProbeTimeout timed_out = v1::PROBE_TIMEOUT_UNSPECIFIED;
  std::string timeout_line;  // a line the CLI must print about the timeout
};

// A TCP port that accepts connections (the kernel completes them) and never speaks.
class SilentListener {
 public:
  SilentListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd_, 8) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("cannot listen on 127.0.0.1");
    }
    port_ = ntohs(addr.sin_port);
  }
  ~SilentListener() { ::close(fd_); }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

class TestConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    socket_ = StartServeForCli(server_, work_);
    ASSERT_FALSE(socket_.empty());
    // Unbound key pairs: a test names the one to offer (--certificate).
    Import({"--name", "good", "--type", "key-pair", "--file", PkiPath("client/rsa.chain.pem"),
            "--key-file", PkiPath("client/rsa.key.pem")});
    Import({"--name", "rogue", "--type", "key-pair", "--file", PkiPath("client/self-signed.pem"),
            "--key-file", PkiPath("client/self-signed.key.pem")});
    Import({"--name", "leafonly", "--type", "key-pair", "--file",
            PkiPath("client/rsa.leaf-only.pem"), "--key-file", PkiPath("client/rsa.key.pem")});
    channel_ = grpc::CreateChannel("unix://" + socket_, grpc::InsecureChannelCredentials());
    certs_ = v1::CertificateService::NewStub(channel_);
  }
  void TearDown() override { server_.Stop(SIGTERM, std::chrono::seconds(20)); }

  testing::CommandResult Wsstep(std::vector<std::string> args) {
    std::vector<std::string> argv = {WSSTEP_BINARY, "--plugin", "unix://" + socket_};
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::RunCommand(argv);
  }
  void Import(std::vector<std::string> args) {
    args.insert(args.begin(), {"cert", "import"});
    auto r = Wsstep(args);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  // The test PKI's CAs (root and intermediate), trusted for the server on localhost:port.
  // OpenSSL completes a client certificate's chain from the trust store it verifies the
  // server with, so a test of an incomplete chain trusts the root alone (`ca/root.pem`).
  void TrustServerOn(uint16_t port, const std::string& trust = "trust/bundle.pem") {
    const std::string port_text = std::to_string(port);
    Import({"--name", "trust-" + port_text, "--type", "trust-store", "--file", PkiPath(trust),
            "--bind", "localhost:" + port_text});
  }

  // Probes localhost:port offering `certificate`, from the CLI and over gRPC, and checks
  // both against `want`.
  void ExpectProbe(uint16_t port, const std::string& certificate, const Expected& want,
                   std::vector<std::string> extra_args = {},
                   std::optional<std::chrono::milliseconds> handshake_timeout = {}) {
    std::vector<std::string> args = {"test-connection", "localhost:" + std::to_string(port),
                                     "--certificate", certificate};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    const auto cli = Wsstep(args);
    SCOPED_TRACE(cli.output);
    EXPECT_EQ(cli.exit_code, want.ok ? 0 : 1);
    EXPECT_THAT(cli.output, HasSubstr(want.ok ? "handshake OK\n" : "handshake FAILED\n"));
    EXPECT_THAT(cli.output,
                HasSubstr("client certificate offered: " +
                          (want.offered.empty() ? std::string("(none)") : want.offered) + "\n"));
    std::string chain_lines;
    for (const auto& subject : want.chain) chain_lines += "server chain: " + subject + "\n";
    if (!want.chain.empty()) {
      EXPECT_THAT(cli.output, HasSubstr(chain_lines));
    }
    if (!want.ok) {
      EXPECT_THAT(cli.output, HasSubstr("wsstep: " + want.code + ": "));
      // The offered line never contradicts the error that names the certificate.
      if (!want.offered.empty() && want.code == "CLIENT_CERT_REJECTED") {
        EXPECT_THAT(cli.output, HasSubstr("\"" + want.offered + "\""));
      }
    }
    if (!want.alert.empty()) {
      EXPECT_THAT(cli.output, HasSubstr("  alert: " + want.alert + "\n"));
    }
    if (want.http_status != 0) {
      EXPECT_THAT(cli.output, HasSubstr("HTTP answer: " + std::to_string(want.http_status) + "\n"));
    }
    if (!want.timeout_line.empty()) {
      EXPECT_THAT(cli.output, HasSubstr(want.timeout_line));
    }

    v1::TestConnectionRequest req;
    req.set_host("localhost");
    req.set_port(port);
    req.mutable_tls()->set_ssl_verification(true);
    req.mutable_tls()->set_certificate(certificate);
    if (handshake_timeout) {
      req.mutable_timeout()->set_seconds(handshake_timeout->count() / 1000);
      req.mutable_timeout()->set_nanos(static_cast<int32_t>(handshake_timeout->count() % 1000) *
                                       1'000'000);
    }
    v1::TestConnectionResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    const grpc::Status status = certs_->TestConnection(&ctx, req, &resp);
    ASSERT_TRUE(status.ok()) << status.error_message();
    SCOPED_TRACE(resp.DebugString());
    EXPECT_EQ(resp.ok(), want.ok);
    EXPECT_EQ(resp.error().code(), want.code);
    if (!want.alert.empty()) {
      EXPECT_EQ(resp.error().detail().at("alert"), want.alert);
    }
    EXPECT_EQ(resp.tls().has_client_certificate() ? resp.tls().client_certificate().name() : "",
              want.offered);
    std::vector<std::string> chain;
    for (const auto& c : resp.server_chain()) chain.push_back(c.subject());
    EXPECT_THAT(chain, ElementsAreArray(want.chain));
    EXPECT_EQ(resp.http_status(), want.http_status);
    EXPECT_EQ(resp.timed_out(), want.timed_out);
  }

  Expected Accepted(const std::string& offered, int http_status) const;
  Expected Rejected(const std::string& offered, const std::string& alert,
                    int http_status = 0) const;

  testing::TempDir work_{"wsstep-testconn-"};
  testing::ChildProcess server_;
  std::string socket_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::CertificateService::Stub> certs_;
  const std::string leaf_ = SubjectOf(PkiPath("server/localhost.pem"));
  const std::string intermediate_ = SubjectOf(PkiPath("ca/intermediate.pem"));
};

// The verdicts the cases below expect: the server sent leaf + intermediate every time.
Expected TestConnectionTest::Accepted(const std::string& offered, int http_status) const {
  Expected want;
  want.ok = true;
  want.offered = offered;
  want.chain = {leaf_, intermediate_};
  want.http_status = http_status;
  return want;
}

Expected TestConnectionTest::Rejected(const std::string& offered, const std::string& alert,
                                      int http_status) const {
  Expected want;
  want.code = "CLIENT_CERT_REJECTED";
  want.alert = alert;
  want.offered = offered;
  want.chain = {leaf_, intermediate_};
  want.http_status = http_status;
  return want;
}

// `openssl s_server` with the localhost leaf and the intermediate, and `more`.
std::unique_ptr<testing::OpenSslServer> SServer(std::vector<std::string> more) {
  std::vector<std::string> args = {
      "-cert", PkiPath("server/localhost.pem"),     "-cert_chain", PkiPath("ca/intermediate.pem"),
      "-key",  PkiPath("server/localhost.key.pem"), "-www",        "-Verify",
      "2"};
  args.insert(args.end(), more.begin(), more.end());
  return std::make_unique<testing::OpenSslServer>(std::move(args));
}

// The first case: `s_server -www` answers GET only, so a probe that waited for
// the answer to HEAD timed out; the handshake (with a client certificate) succeeded.
TEST_F(TestConnectionTest, OpensslWwwServerAcceptingTheCertificateIsOk) {
  auto s_server = SServer({});
  ASSERT_TRUE(s_server->Start()) << s_server->start_error();
  TrustServerOn(s_server->port());
  ExpectProbe(s_server->port(), "good", Accepted("good", 200));
}

// A server that accepts TCP and never speaks TLS: the handshake timeout fires, and the
// answer names it with the limit as given, not what was left of it.
TEST_F(TestConnectionTest, ASilentServerTimesOutNamingTheHandshakeTimeout) {
  SilentListener silent;
  Expected want;
  want.code = "TIMEOUT";
  want.timed_out = v1::PROBE_TIMEOUT_HANDSHAKE;
  want.timeout_line = "timed out: the handshake timeout (--handshake-timeout) (500 ms)\n";
  ExpectProbe(silent.port(), "good", want, {"--handshake-timeout", "0.5"},
              std::chrono::milliseconds(500));
  const auto cli = Wsstep({"test-connection", "localhost:" + std::to_string(silent.port()),
                           "--certificate", "good", "--handshake-timeout", "0.5"});
  EXPECT_THAT(cli.output, HasSubstr("no tls_handshake within the handshake timeout (500 ms)"));
  EXPECT_THAT(cli.output, HasSubstr("  limit: handshake_timeout\n"));
}

// TLS 1.3: s_server rejects the certificate after our handshake is done; the alert
// arrives on the first read.
TEST_F(TestConnectionTest, OpensslRejectingAnUntrustedCertificateUnderTls13IsUnknownCa) {
  auto s_server = SServer({"-verify_return_error", "-CAfile", PkiPath("trust/bundle.pem")});
  ASSERT_TRUE(s_server->Start()) << s_server->start_error();
  TrustServerOn(s_server->port());
  ExpectProbe(s_server->port(), "rogue", Rejected("rogue", "unknown_ca"));
}

// TLS 1.2: the same rejection inside the handshake; what we offered is still shown.
TEST_F(TestConnectionTest, OpensslRejectingAnUntrustedCertificateUnderTls12IsUnknownCa) {
  auto s_server =
      SServer({"-verify_return_error", "-CAfile", PkiPath("trust/bundle.pem"), "-tls1_2"});
  ASSERT_TRUE(s_server->Start()) << s_server->start_error();
  TrustServerOn(s_server->port());
  ExpectProbe(s_server->port(), "rogue", Rejected("rogue", "unknown_ca"));
}

// A chain without its intermediate, to a server that trusts only the root.
TEST_F(TestConnectionTest, OpensslRejectingAnIncompleteChainIsUnknownCa) {
  auto s_server = SServer({"-verify_return_error", "-CAfile", PkiPath("ca/root.pem")});
  ASSERT_TRUE(s_server->Start()) << s_server->start_error();
  TrustServerOn(s_server->port(), "ca/root.pem");
  ExpectProbe(s_server->port(), "leafonly", Rejected("leafonly", "unknown_ca"));
}

testing::NginxConfig NginxRequiring(std::string client_ca_file) {
  testing::NginxConfig config;
  config.verify_client = testing::NginxVerifyClient::kOn;
  config.client_ca_file = std::move(client_ca_file);
  config.responses.emplace_back("/", "hello");
  return config;
}

TEST_F(TestConnectionTest, NginxAcceptingTheCertificateIsOkWithItsWholeChain) {
  testing::NginxServer nginx(NginxRequiring(PkiPath("trust/bundle.pem")));
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();
  TrustServerOn(nginx.port());
  ExpectProbe(nginx.port(), "good", Accepted("good", 200));
}

// nginx completes the handshake and answers HTTP 400 "The SSL certificate error".
TEST_F(TestConnectionTest, NginxRefusingAnUntrustedCertificateIsRejected) {
  testing::NginxServer nginx(NginxRequiring(PkiPath("trust/bundle.pem")));
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();
  TrustServerOn(nginx.port());
  ExpectProbe(nginx.port(), "rogue", Rejected("rogue", "none", 400));
}

TEST_F(TestConnectionTest, NginxRefusingAnIncompleteChainIsRejected) {
  testing::NginxServer nginx(NginxRequiring(PkiPath("ca/root.pem")));
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();
  TrustServerOn(nginx.port(), "ca/root.pem");
  ExpectProbe(nginx.port(), "leafonly", Rejected("leafonly", "none", 400));
}

}  // namespace
}  // namespace wsstep::e2e

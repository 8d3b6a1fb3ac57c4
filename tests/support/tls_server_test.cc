#include "tests/support/tls_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "tests/support/pki.h"

namespace wsstep::testing {
namespace {

// A minimal blocking OpenSSL client: one connection, several requests.
class Client {
 public:
  Client(uint16_t port, const std::string& cert, const std::string& key, int max_version = 0) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (max_version != 0) SSL_CTX_set_max_proto_version(ctx_, max_version);
    if (!cert.empty()) {
      SSL_CTX_use_certificate_chain_file(ctx_, cert.c_str());
      SSL_CTX_use_PrivateKey_file(ctx_, key.c_str(), SSL_FILETYPE_PEM);
    }
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    handshake_ok_ = connected_ && SSL_connect(ssl_) == 1;
  }
  ~Client() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
    ::close(fd_);
    ERR_clear_error();
  }
  bool handshake_ok() const { return handshake_ok_; }

  // Sends a request and reads one response with a Content-Length body.
  std::string Get(const std::string& path) {
    if (!Send(path)) return "";
    std::string in;
    char buf[4096];
    for (;;) {
      size_t end = in.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t cl = in.find("Content-Length: ");
        size_t len = std::stoul(in.substr(cl + 16));
        if (in.size() >= end + 4 + len) return in.substr(end + 4, len);
      }
      int n = SSL_read(ssl_, buf, sizeof(buf));
      if (n <= 0) return in;
      in.append(buf, static_cast<size_t>(n));
    }
  }

  bool Send(const std::string& path) {
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nX-Test: yes\r\n\r\n";
    return SSL_write(ssl_, req.data(), static_cast<int>(req.size())) > 0;
  }

  // Reads until the header block ends or the connection does; what came so far.
  std::string ReadHeaders() {
    std::string in;
    char buf[4096];
    while (in.find("\r\n\r\n") == std::string::npos) {
      int n = SSL_read(ssl_, buf, sizeof(buf));
      if (n <= 0) break;
      in.append(buf, static_cast<size_t>(n));
    }
    return in;
  }

  // Reads until the server closes the connection: the bytes that came before it did.
  std::string ReadToClose() {
    std::string in;
    char buf[4096];
    for (;;) {
      int n = SSL_read(ssl_, buf, sizeof(buf));
      if (n <= 0) return in;
      in.append(buf, static_cast<size_t>(n));
    }
  }

  // A read that waits longer than this fails instead of hanging the test.
  void SetReadTimeout(int seconds) {
    timeval tv{seconds, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  bool connected_ = false;
  bool handshake_ok_ = false;
};

TlsServerConfig MtlsConfig() {
  TlsServerConfig c;
  c.cert_file = PkiPath("server/localhost.chain.pem");
  c.key_file = PkiPath("server/localhost.key.pem");
  c.client_auth = ClientAuth::kRequired;
  c.client_ca_file = PkiPath("ca/root.pem");
  return c;
}

TEST(TlsServerTest, RecordsClientCertificateAndKeepAlive) {
  TlsServerConfig config = MtlsConfig();
  config.handler = [](const ServerRequest& r) {
    ServerResponse resp;
    resp.body = "hello " + r.target;
    return resp;
  };
  TlsServer server(std::move(config));
  ASSERT_TRUE(server.Start()) << server.start_error();
  {
    Client client(server.port(), PkiPath("client/rsa.chain.pem"), PkiPath("client/rsa.key.pem"));
    ASSERT_TRUE(client.handshake_ok());
    EXPECT_EQ(client.Get("/a"), "hello /a");
    EXPECT_EQ(client.Get("/b?x=1"), "hello /b?x=1");
  }
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  std::string fp = Sha256FingerprintOfPemFile(PkiPath("client/rsa.pem"));
  for (const auto& r : requests) {
    EXPECT_EQ(r.client_cert_fingerprint, fp);
    EXPECT_EQ(r.connection_id, 1);
    EXPECT_EQ(r.tls_version, "TLSv1.3");
    EXPECT_EQ(r.request.Header("x-test"), "yes");
  }
  EXPECT_EQ(requests[0].request_line, "GET /a HTTP/1.1");
  EXPECT_EQ(requests[1].request_on_connection, 2);
  server.Stop();
}

TEST(TlsServerTest, RefusesMissingCertificateAndRecordsTheFailedHandshake) {
  TlsServerConfig config = MtlsConfig();
  config.versions = TlsVersions::kTls12Only;
  TlsServer server(std::move(config));
  ASSERT_TRUE(server.Start()) << server.start_error();
  {
    Client client(server.port(), "", "");
    EXPECT_FALSE(client.handshake_ok());
  }
  // The server thread records the failure right after the handshake, on its own thread.
  ASSERT_TRUE(server.WaitForConnections(1)) << "the failed handshake was never recorded";
  auto conns = server.connections();
  ASSERT_EQ(conns.size(), 1u);
  EXPECT_FALSE(conns[0].handshake_ok);
  EXPECT_FALSE(conns[0].handshake_error.empty());
  EXPECT_EQ(server.request_count(), 0u);
}

TEST(TlsServerTest, StopEndsAStalledResponse) {
  TlsServerConfig config = MtlsConfig();
  config.client_auth = ClientAuth::kNone;
  config.handler = [](const ServerRequest&) {
    ServerResponse r;
    r.mode = ServerResponse::Mode::kStall;
    return r;
  };
  TlsServer server(std::move(config));
  ASSERT_TRUE(server.Start()) << server.start_error();
  Client client(server.port(), "", "");
  ASSERT_TRUE(client.handshake_ok());
  client.SetReadTimeout(30);
  ASSERT_TRUE(client.Send("/"));
  // Once the headers are here the server is in its stall: only Stop() can end it.
  const std::string headers = client.ReadHeaders();
  ASSERT_EQ(headers.find("HTTP/1.1 200"), 0u) << headers;
  ASSERT_NE(headers.find("\r\nContent-Length: "), std::string::npos) << headers;
  ASSERT_TRUE(headers.ends_with("\r\n\r\n")) << headers;  // and none of the body
  server.Stop();
  // The read ends because Stop() closed the connection, with none of the promised body.
  EXPECT_EQ(client.ReadToClose(), "");
  EXPECT_EQ(server.request_count(), 1u);
}

}  // namespace
}  // namespace wsstep::testing

// TlsServer: an in-process HTTP/1.1 server over OpenSSL (or plain TCP) on 127.0.0.1 with
// an ephemeral port, for tests that must see what a real peer sees: which client
// certificate was presented on every request, the TLS version, whether the session was
// resumed and which connection carried the request.
//
//   TlsServerConfig config;
//   config.cert_file = PkiPath("server/localhost.chain.pem");
//   config.key_file = PkiPath("server/localhost.key.pem");
//   config.client_auth = ClientAuth::kRequired;
//   config.client_ca_file = PkiPath("ca/root.pem");
//   TlsServer server(std::move(config));
//   ASSERT_TRUE(server.Start()) << server.start_error();
//   ... "https://localhost:" + std::to_string(server.port()) + "/path" ...
//   EXPECT_EQ(server.requests()[0].client_cert_fingerprint, expected);
//
// One acceptor thread plus one thread per connection (a test server: connections are
// few). Keep-alive is honoured. Stop() (also run by the destructor) closes every socket
// and joins every thread, so a stalled response never outlives the test.
#ifndef WSSTEP_TESTS_SUPPORT_TLS_SERVER_H_
#define WSSTEP_TESTS_SUPPORT_TLS_SERVER_H_

#include <openssl/ssl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace wsstep::testing {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct ServerRequest {
  std::string method;
  std::string target;  // "/path?query", as sent
  std::string version; // "HTTP/1.1"
  HeaderList headers;
  std::string body;
  // Case-insensitive lookup of the first header with this name; "" if absent.
  std::string Header(const std::string& name) const;
  bool HasHeader(const std::string& name) const;
};

struct ServerResponse {
  enum class Mode {
    kNormal,
    kStall,  // sends the status line and headers (promising a body), then sends nothing
    kReset,  // closes the connection with a TCP reset instead of answering
  };
  int status = 200;
  HeaderList headers;  // Content-Length is added unless chunked or present
  std::string body = "ok";
  Mode mode = Mode::kNormal;
  // > 0: the body is this many 'x' bytes, streamed (the `body` field is ignored).
  size_t huge_body_bytes = 0;
  // The huge body is sent chunked, without Content-Length (so a client cannot refuse
  // it up front and must count).
  bool chunked = false;
  bool close_connection = false;
  // kStall / kReset: first send the status line, the headers (promising the whole body)
  // and this many bytes of the body, then stall or reset: a failure mid-response.
  size_t partial_body_bytes = 0;

  static ServerResponse Redirect(int status, std::string location);
};

// Everything the server saw for one request.
struct RequestRecord {
  int connection_id = 0;         // 1, 2, ... in accept order
  int request_on_connection = 0; // 1 for the first request of its connection
  bool tls = false;
  std::string tls_version;       // "TLSv1.2", "TLSv1.3"; "" over plain TCP
  bool session_resumed = false;
  std::string client_cert_fingerprint;  // SHA-256 "ab:cd:..", "" if none was presented
  std::string client_cert_subject;      // one line; "" if none
  // Subjects of the certificates the client sent after its own, in the order it sent
  // them (duplicates included); empty if it sent none.
  std::vector<std::string> client_chain_subjects;
  std::string request_line;             // "GET /x HTTP/1.1"
  ServerRequest request;
};

// One accepted connection, including ones whose handshake failed.
struct ConnectionRecord {
  int connection_id = 0;
  bool handshake_ok = false;
  std::string handshake_error;  // OpenSSL's reason when the handshake failed
  std::string tls_version;
  bool session_resumed = false;
  std::string client_cert_fingerprint;
};

enum class ClientAuth { kNone, kOptional, kRequired };
enum class TlsVersions { kAny, kTls12Only, kTls13Only };

struct TlsServerConfig {
  bool plain_http = false;  // no TLS at all
  std::string cert_file;    // PEM: leaf, optionally followed by its chain
  std::string key_file;
  std::string chain_file;   // optional extra chain certificates (PEM)
  TlsVersions versions = TlsVersions::kAny;
  ClientAuth client_auth = ClientAuth::kNone;
  std::string client_ca_file;  // trust anchors for client certificates (PEM)
  // Returns the response for a request. Default: 200 "ok".
  std::function<ServerResponse(const ServerRequest&)> handler;
  // Bind address; "127.0.0.1" by default. Port 0 = ephemeral.
  std::string bind_address = "127.0.0.1";
  uint16_t port = 0;
};

class TlsServer {
 public:
  explicit TlsServer(TlsServerConfig config);
  ~TlsServer();
  TlsServer(const TlsServer&) = delete;
  TlsServer& operator=(const TlsServer&) = delete;

  // Loads the material, binds and starts the acceptor. False (see start_error()) if the
  // material does not load or the bind fails.
  bool Start();
  const std::string& start_error() const { return start_error_; }
  // Closes the listener and every connection, joins every thread. Idempotent.
  void Stop();

  uint16_t port() const { return port_; }
  // "https://localhost:PORT" (or http://) — handy for building URLs.
  std::string BaseUrl(const std::string& host = "localhost") const;

  // Snapshots, safe to call while the server runs.
  std::vector<RequestRecord> requests() const;
  std::vector<ConnectionRecord> connections() const;
  size_t request_count() const;
  size_t connection_count() const;
  // Connections open right now (accepted and not yet closed by either side).
  size_t open_connection_count() const;
  // Waits (on the server's own events, no polling) until at least `n` requests were
  // answered or at least `n` connections were recorded (handshakes done or failed), or
  // until at most `n` connections are open. False after `bound`, a safety net only. A
  // request counts once its handler returned: a stalled or reset response counts when the
  // stall or reset begins, a request held in its handler (a gate) only when released.
  bool WaitForRequests(size_t n, std::chrono::milliseconds bound = std::chrono::seconds(30)) const;
  bool WaitForConnections(size_t n, std::chrono::milliseconds bound = std::chrono::seconds(30)) const;
  bool WaitForOpenConnectionsAtMost(size_t n,
                                    std::chrono::milliseconds bound = std::chrono::seconds(30)) const;
  void Clear();  // forgets recorded requests and connections
  // Bytes of huge bodies (ServerResponse::huge_body_bytes) written to clients so far, all
  // responses together: how far a client that stopped reading let the server get.
  uint64_t huge_body_bytes_sent() const { return huge_sent_.load(); }

  // Replaces the handler while running.
  void SetHandler(std::function<ServerResponse(const ServerRequest&)> handler);

 private:
  struct Connection;
  void AcceptLoop();
  void Serve(std::shared_ptr<Connection> conn);
  bool ServeOne(Connection& conn, int index);
  void Forget(const std::shared_ptr<Connection>& conn);

  TlsServerConfig config_;
  std::string start_error_;
  SSL_CTX* ctx_ = nullptr;
  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> huge_sent_{0};
  std::thread acceptor_;

  mutable std::mutex mu_;
  std::condition_variable stop_cv_;
  mutable std::condition_variable changed_;  // requests_, connections_ or live_ changed
  std::vector<std::shared_ptr<Connection>> live_;
  std::vector<std::thread> workers_;
  std::vector<RequestRecord> requests_;
  std::vector<ConnectionRecord> connections_;
  std::function<ServerResponse(const ServerRequest&)> handler_;
  int next_connection_id_ = 1;
};

}  // namespace wsstep::testing

#endif  // WSSTEP_TESTS_SUPPORT_TLS_SERVER_H_

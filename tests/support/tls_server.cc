#include "tests/support/tls_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <poll.h>
#include <signal.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/ossl.h"
#include "core/x509_info.h"

namespace wsstep::testing {

namespace {

constexpr size_t kMaxHeaderBytes = 64 * 1024;

bool EqualsIgnoreCase(const std::string& a, const std::string& b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::string Trim(std::string s) {
  size_t b = s.find_first_not_of(" \t");
  size_t e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// Like nginx's lingering close: stop sending, then read what the client still sends
// (its request, under TLS 1.3, after a rejected certificate) before closing. Closing with
// unread data would send a TCP reset that can destroy the alert in flight.
void LingeringClose(int fd) {
  ::shutdown(fd, SHUT_WR);
  char sink[4096];
  for (int i = 0; i < 20; ++i) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    if (::recv(fd, sink, sizeof(sink), 0) <= 0) return;
  }
}

std::string OpenSslReason() {
  std::string reason = ossl::DrainErrors();
  return reason.empty() ? "connection closed during the handshake" : reason;
}

}  // namespace

std::string ServerRequest::Header(const std::string& name) const {
  for (const auto& [n, v] : headers) {
    if (EqualsIgnoreCase(n, name)) return v;
  }
  return {};
}

bool ServerRequest::HasHeader(const std::string& name) const {
  return std::any_of(headers.begin(), headers.end(),
                     [&](const auto& h) { return EqualsIgnoreCase(h.first, name); });
}

ServerResponse ServerResponse::Redirect(int status, std::string location) {
  ServerResponse r;
  r.status = status;
  r.headers.emplace_back("Location", std::move(location));
  r.body.clear();
  return r;
}

// One accepted socket. Reads go through a small buffer so that pipelined or partial
// requests parse correctly.
struct TlsServer::Connection {
  int fd = -1;
  SSL* ssl = nullptr;
  int id = 0;
  std::string buffer;
  RequestRecord facts;  // TLS facts copied into every request record
  // Ends with a bare RST: no close_notify, no FIN (SO_LINGER 0 and close()).
  bool abort = false;

  ~Connection() {
    if (ssl != nullptr) SSL_free(ssl);
    if (fd >= 0) ::close(fd);
  }

  // Reads more bytes into buffer; false on EOF or error.
  bool Fill() {
    char chunk[16 * 1024];
    int n;
    if (ssl != nullptr) {
      n = SSL_read(ssl, chunk, sizeof(chunk));
      if (n <= 0) {
        ossl::ClearErrors();
        return false;
      }
    } else {
      do {
        n = static_cast<int>(::recv(fd, chunk, sizeof(chunk), 0));
      } while (n < 0 && errno == EINTR);
      if (n <= 0) return false;
    }
    buffer.append(chunk, static_cast<size_t>(n));
    return true;
  }

  bool Write(std::string_view data) {
    while (!data.empty()) {
      int n;
      if (ssl != nullptr) {
        n = SSL_write(ssl, data.data(), static_cast<int>(data.size()));
        if (n <= 0) {
          ossl::ClearErrors();
          return false;
        }
      } else {
        n = static_cast<int>(::send(fd, data.data(), data.size(), MSG_NOSIGNAL));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
};

TlsServer::TlsServer(TlsServerConfig config) : config_(std::move(config)) {
  handler_ = config_.handler;
}

TlsServer::~TlsServer() {
  Stop();
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

bool TlsServer::Start() {
  // Writes to a client that went away must fail with EPIPE, not kill the test.
  ::signal(SIGPIPE, SIG_IGN);
  if (!config_.plain_http) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    if (ctx_ == nullptr) {
      start_error_ = "SSL_CTX_new: " + ossl::DrainErrors();
      return false;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx_, config_.cert_file.c_str()) != 1) {
      start_error_ = config_.cert_file + ": " + ossl::DrainErrors();
      return false;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx_, config_.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      start_error_ = config_.key_file + ": " + ossl::DrainErrors();
      return false;
    }
    if (!config_.chain_file.empty()) {
      ossl::BioPtr bio(BIO_new_file(config_.chain_file.c_str(), "r"));
      X509* extra;
      while (bio && (extra = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr))) {
        SSL_CTX_add0_chain_cert(ctx_, extra);
      }
      ossl::ClearErrors();
    }
    switch (config_.versions) {
      case TlsVersions::kAny:
        SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
        break;
      case TlsVersions::kTls12Only:
        SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
        SSL_CTX_set_max_proto_version(ctx_, TLS1_2_VERSION);
        break;
      case TlsVersions::kTls13Only:
        SSL_CTX_set_min_proto_version(ctx_, TLS1_3_VERSION);
        break;
    }
    // Resumption with client authentication needs a session id context.
    static const unsigned char kSidCtx[] = "wsstep-test-server";
    SSL_CTX_set_session_id_context(ctx_, kSidCtx, sizeof(kSidCtx) - 1);
    if (config_.client_auth != ClientAuth::kNone) {
      if (!config_.client_ca_file.empty()) {
        if (SSL_CTX_load_verify_locations(ctx_, config_.client_ca_file.c_str(), nullptr) != 1) {
          start_error_ = config_.client_ca_file + ": " + ossl::DrainErrors();
          return false;
        }
        STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(config_.client_ca_file.c_str());
        if (names != nullptr) SSL_CTX_set_client_CA_list(ctx_, names);
      }
      int mode = SSL_VERIFY_PEER;
      if (config_.client_auth == ClientAuth::kRequired) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
      SSL_CTX_set_verify(ctx_, mode, nullptr);
    }
  }

  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(config_.port);
  if (inet_pton(AF_INET, config_.bind_address.c_str(), &addr.sin_addr) != 1) {
    start_error_ = "bad bind address " + config_.bind_address;
    return false;
  }
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listen_fd_, 128) != 0) {
    start_error_ = std::string("bind/listen: ") + std::strerror(errno);
    return false;
  }
  socklen_t len = sizeof(addr);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  if (::pipe2(wake_pipe_, O_CLOEXEC) != 0) {
    start_error_ = "pipe2 failed";
    return false;
  }
  acceptor_ = std::thread([this] { AcceptLoop(); });
  return true;
}

void TlsServer::Stop() {
  if (stopping_.exchange(true)) return;
  if (wake_pipe_[1] >= 0) {
    char c = 'x';
    [[maybe_unused]] ssize_t n = ::write(wake_pipe_[1], &c, 1);
  }
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& c : live_) ::shutdown(c->fd, SHUT_RDWR);
    workers.swap(workers_);
  }
  stop_cv_.notify_all();
  for (auto& t : workers) t.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    live_.clear();
  }
  changed_.notify_all();
  auto close_fd = [](int& fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  };
  close_fd(listen_fd_);
  close_fd(wake_pipe_[0]);
  close_fd(wake_pipe_[1]);
}

std::string TlsServer::BaseUrl(const std::string& host) const {
  return std::string(config_.plain_http ? "http://" : "https://") + host + ":" +
         std::to_string(port_);
}

std::vector<RequestRecord> TlsServer::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

std::vector<ConnectionRecord> TlsServer::connections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return connections_;
}

size_t TlsServer::request_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_.size();
}

size_t TlsServer::connection_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return connections_.size();
}

size_t TlsServer::open_connection_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return live_.size();
}

bool TlsServer::WaitForRequests(size_t n, std::chrono::milliseconds bound) const {
  std::unique_lock<std::mutex> lock(mu_);
  return changed_.wait_for(lock, bound, [&] { return requests_.size() >= n; });
}

bool TlsServer::WaitForConnections(size_t n, std::chrono::milliseconds bound) const {
  std::unique_lock<std::mutex> lock(mu_);
  return changed_.wait_for(lock, bound, [&] { return connections_.size() >= n; });
}

bool TlsServer::WaitForOpenConnectionsAtMost(size_t n, std::chrono::milliseconds bound) const {
  std::unique_lock<std::mutex> lock(mu_);
  return changed_.wait_for(lock, bound, [&] { return live_.size() <= n; });
}

void TlsServer::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  requests_.clear();
  connections_.clear();
}

void TlsServer::SetHandler(std::function<ServerResponse(const ServerRequest&)> handler) {
  std::lock_guard<std::mutex> lock(mu_);
  handler_ = std::move(handler);
}

void TlsServer::AcceptLoop() {
  while (!stopping_) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0 || stopping_) return;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto conn = std::make_shared<Connection>();
    conn->fd = fd;
    std::lock_guard<std::mutex> lock(mu_);
    conn->id = next_connection_id_++;
    live_.push_back(conn);
    workers_.emplace_back([this, conn] { Serve(conn); });
  }
}

void TlsServer::Serve(std::shared_ptr<Connection> conn) {
  ConnectionRecord record;
  record.connection_id = conn->id;
  if (ctx_ != nullptr) {
    conn->ssl = SSL_new(ctx_);
    SSL_set_fd(conn->ssl, conn->fd);
    if (SSL_accept(conn->ssl) != 1) {
      record.handshake_error = OpenSslReason();
      {
        std::lock_guard<std::mutex> lock(mu_);
        connections_.push_back(std::move(record));
      }
      changed_.notify_all();
      LingeringClose(conn->fd);
      Forget(conn);
      return;
    }
    record.tls_version = SSL_get_version(conn->ssl);
    record.session_resumed = SSL_session_reused(conn->ssl) == 1;
    if (X509* peer = SSL_get0_peer_certificate(conn->ssl)) {
      record.client_cert_fingerprint = ossl::Sha256Fingerprint(peer);
      conn->facts.client_cert_subject = core::NameOneLine(X509_get_subject_name(peer));
      // On a server the peer's chain leaves out the peer's own certificate.
      if (STACK_OF(X509)* sent = SSL_get_peer_cert_chain(conn->ssl)) {
        for (int i = 0; i < sk_X509_num(sent); ++i) {
          conn->facts.client_chain_subjects.push_back(
              core::NameOneLine(X509_get_subject_name(sk_X509_value(sent, i))));
        }
      }
    }
    conn->facts.tls = true;
  }
  record.handshake_ok = true;
  conn->facts.connection_id = conn->id;
  conn->facts.tls_version = record.tls_version;
  conn->facts.session_resumed = record.session_resumed;
  conn->facts.client_cert_fingerprint = record.client_cert_fingerprint;
  {
    std::lock_guard<std::mutex> lock(mu_);
    connections_.push_back(record);
  }
  changed_.notify_all();
  for (int index = 1; !stopping_ && ServeOne(*conn, index); ++index) {
  }
  if (conn->abort) {
    Forget(conn);  // the last owner's close() sends the RST
    return;
  }
  if (conn->ssl != nullptr && !stopping_) {
    SSL_shutdown(conn->ssl);
    ossl::ClearErrors();
  }
  ::shutdown(conn->fd, SHUT_RDWR);
  Forget(conn);
}

// Drops a finished connection from the live list; its socket closes with the last owner.
void TlsServer::Forget(const std::shared_ptr<Connection>& conn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    live_.erase(std::remove(live_.begin(), live_.end(), conn), live_.end());
  }
  changed_.notify_all();
}

// Reads and answers one request. False when the connection should end.
bool TlsServer::ServeOne(Connection& conn, int index) {
  size_t header_end;
  while ((header_end = conn.buffer.find("\r\n\r\n")) == std::string::npos) {
    if (conn.buffer.size() > kMaxHeaderBytes || !conn.Fill()) return false;
  }
  std::string head = conn.buffer.substr(0, header_end);
  conn.buffer.erase(0, header_end + 4);

  RequestRecord record = conn.facts;
  record.request_on_connection = index;
  ServerRequest& req = record.request;
  size_t line_end = head.find("\r\n");
  record.request_line = head.substr(0, line_end);
  {
    size_t s1 = record.request_line.find(' ');
    size_t s2 = record.request_line.rfind(' ');
    if (s1 == std::string::npos || s2 == s1) return false;
    req.method = record.request_line.substr(0, s1);
    req.target = record.request_line.substr(s1 + 1, s2 - s1 - 1);
    req.version = record.request_line.substr(s2 + 1);
  }
  size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    size_t end = head.find("\r\n", pos);
    if (end == std::string::npos) end = head.size();
    std::string line = head.substr(pos, end - pos);
    size_t colon = line.find(':');
    if (colon != std::string::npos) {
      req.headers.emplace_back(line.substr(0, colon), Trim(line.substr(colon + 1)));
    }
    pos = end + 2;
  }

  if (EqualsIgnoreCase(req.Header("Transfer-Encoding"), "chunked")) {
    for (;;) {
      size_t eol;
      while ((eol = conn.buffer.find("\r\n")) == std::string::npos) {
        if (!conn.Fill()) return false;
      }
      size_t size = std::stoul(conn.buffer.substr(0, eol), nullptr, 16);
      while (conn.buffer.size() < eol + 2 + size + 2) {
        if (!conn.Fill()) return false;
      }
      req.body.append(conn.buffer, eol + 2, size);
      conn.buffer.erase(0, eol + 2 + size + 2);
      if (size == 0) break;
    }
  } else if (std::string cl = req.Header("Content-Length"); !cl.empty()) {
    size_t length = std::stoul(cl);
    while (conn.buffer.size() < length) {
      if (!conn.Fill()) return false;
    }
    req.body = conn.buffer.substr(0, length);
    conn.buffer.erase(0, length);
  }

  std::function<ServerResponse(const ServerRequest&)> handler;
  {
    std::lock_guard<std::mutex> lock(mu_);
    handler = handler_;
  }
  ServerResponse resp = handler ? handler(req) : ServerResponse{};
  {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(record);
  }
  changed_.notify_all();

  const bool partial = resp.mode != ServerResponse::Mode::kNormal && resp.partial_body_bytes > 0;
  if (resp.mode == ServerResponse::Mode::kReset && !partial) {
    linger lg{1, 0};
    ::setsockopt(conn.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    ::shutdown(conn.fd, SHUT_RDWR);
    return false;
  }

  bool client_closes = EqualsIgnoreCase(req.Header("Connection"), "close");
  bool close = resp.close_connection || client_closes;
  std::string out = "HTTP/1.1 " + std::to_string(resp.status) + " Status\r\n";
  bool has_length = false;
  for (const auto& [n, v] : resp.headers) {
    out += n + ": " + v + "\r\n";
    has_length = has_length || EqualsIgnoreCase(n, "Content-Length");
  }
  bool chunked = resp.huge_body_bytes > 0 && resp.chunked;
  size_t body_size = resp.huge_body_bytes > 0 ? resp.huge_body_bytes : resp.body.size();
  if (resp.mode == ServerResponse::Mode::kStall && body_size == 0) body_size = 1024;
  if (chunked) {
    out += "Transfer-Encoding: chunked\r\n";
  } else if (!has_length) {
    out += "Content-Length: " + std::to_string(body_size) + "\r\n";
  }
  if (close) out += "Connection: close\r\n";
  out += "\r\n";
  bool small_body = resp.mode == ServerResponse::Mode::kNormal && resp.huge_body_bytes == 0 &&
                    req.method != "HEAD";
  if (small_body) out += resp.body;  // one write, one TLS record
  if (partial) out += std::string(std::min(resp.partial_body_bytes, body_size), 'x');
  if (!conn.Write(out)) return false;
  if (small_body) return !close;

  if (resp.mode == ServerResponse::Mode::kReset) {
    // An abortive close (RST) after part of the body: SO_LINGER 0 discards what is unsent.
    linger lg{1, 0};
    ::setsockopt(conn.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    conn.abort = true;
    return false;
  }

  if (resp.mode == ServerResponse::Mode::kStall) {
    // Holds the connection open without sending the promised body, until the client
    // gives up or the server stops.
    while (!stopping_) {
      pollfd p{conn.fd, POLLIN | POLLRDHUP, 0};
      int r = ::poll(&p, 1, 50);
      if (r > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) break;
      if (r > 0 && (p.revents & POLLIN) != 0 && !conn.Fill()) break;
    }
    return false;
  }

  if (resp.huge_body_bytes > 0) {
    std::string block(64 * 1024, 'x');
    size_t left = resp.huge_body_bytes;
    while (left > 0 && !stopping_) {
      size_t n = std::min(left, block.size());
      std::string piece = block.substr(0, n);
      if (chunked) {
        char size_line[32];
        std::snprintf(size_line, sizeof(size_line), "%zx\r\n", n);
        piece = size_line + piece + "\r\n";
      }
      if (!conn.Write(piece)) return false;
      huge_sent_ += n;
      left -= n;
    }
    if (chunked && !conn.Write("0\r\n\r\n")) return false;
  } else if (req.method != "HEAD" && !conn.Write(resp.body)) {
    return false;
  }
  return !close;
}

}  // namespace wsstep::testing

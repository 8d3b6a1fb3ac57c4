#include "tests/support/faulty_origin.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/ossl.h"
#include "tests/support/pki.h"

namespace wsstep::testing {

namespace {

// Reads until the end of the request head ("\r\n\r\n") or the peer goes; false if it went.
bool ReadRequestHead(SSL* ssl) {
  std::string head;
  char buf[4096];
  while (head.find("\r\n\r\n") == std::string::npos && head.size() < 64 * 1024) {
    const int n = SSL_read(ssl, buf, sizeof buf);
    if (n <= 0) return false;
    head.append(buf, static_cast<size_t>(n));
  }
  return true;
}

bool WriteAll(SSL* ssl, const std::string& bytes) {
  return SSL_write(ssl, bytes.data(), static_cast<int>(bytes.size())) ==
         static_cast<int>(bytes.size());
}

}  // namespace

FaultyOrigin::FaultyOrigin(Fault fault, std::chrono::milliseconds delay)
    : fault_(fault), delay_(delay) {}

FaultyOrigin::~FaultyOrigin() {
  Stop();
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

std::string FaultyOrigin::Url(const std::string& path) const {
  return "https://localhost:" + std::to_string(port_) + path;
}

bool FaultyOrigin::Start() {
  // A client that gives up mid-trickle must not kill the test process with SIGPIPE.
  struct sigaction current {};
  if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
    ::signal(SIGPIPE, SIG_IGN);
  }
  if (fault_ == Fault::kTrickles || fault_ == Fault::kSlow) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    const std::string cert = PkiPath("server/localhost.chain.pem");
    const std::string key = PkiPath("server/localhost.key.pem");
    if (ctx_ == nullptr || SSL_CTX_use_certificate_chain_file(ctx_, cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx_, key.c_str(), SSL_FILETYPE_PEM) != 1) {
      start_error_ = "cannot load " + cert + ": " + ossl::DrainErrors();
      return false;
    }
  }
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::listen(listen_fd_, 1024) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    start_error_ = std::string("cannot listen on 127.0.0.1: ") + std::strerror(errno);
    return false;
  }
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
  return true;
}

void FaultyOrigin::Stop() {
  if (stopping_.exchange(true)) return;
  if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);  // wakes every blocked read
  }
  changed_.notify_all();
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    workers.swap(workers_);
  }
  for (auto& t : workers) t.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
}

size_t FaultyOrigin::connections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return accepted_;
}

bool FaultyOrigin::WaitForConnections(size_t n, std::chrono::milliseconds bound) const {
  std::unique_lock<std::mutex> lock(mu_);
  return changed_.wait_for(lock, bound, [&] { return accepted_ >= n; });
}

bool FaultyOrigin::Pause(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  return !changed_.wait_for(lock, d, [this] { return stopping_.load(); });
}

void FaultyOrigin::AcceptLoop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      ::close(fd);
      break;
    }
    ++accepted_;
    fds_.push_back(fd);
    workers_.emplace_back([this, fd] { Serve(fd); });
    changed_.notify_all();
  }
}

void FaultyOrigin::Serve(int fd) {
  if (fault_ == Fault::kResets) {
    // Once the client has spoken (its ClientHello), so that the reset always lands in the
    // same place: during the TLS handshake.
    while (!stopping_) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 100) > 0) break;
    }
    char hello[512];
    (void)::recv(fd, hello, sizeof hello, 0);
    linger hard{1, 0};  // close now, with a reset
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  } else if (fault_ == Fault::kNeverAnswers) {
    // Hold the connection until the peer gives up or the origin stops; read nothing.
    while (!stopping_) {
      pollfd p{fd, POLLRDHUP, 0};
      if (::poll(&p, 1, 100) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) break;
    }
  } else {
    SSL* ssl = SSL_new(ctx_);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) == 1 && ReadRequestHead(ssl)) {
      if (fault_ == Fault::kSlow) {
        if (Pause(delay_)) {
          WriteAll(ssl,
                   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n"
                   "Connection: close\r\n\r\nslow");
        }
      } else {  // kTrickles
        bool ok = WriteAll(ssl,
                           "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                           "Content-Length: 1000\r\nConnection: close\r\n\r\n");
        for (int i = 0; ok && i < 1000 && Pause(std::chrono::seconds(1)); ++i) {
          ok = WriteAll(ssl, "x");
        }
      }
      SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    ossl::ClearErrors();
  }
  std::lock_guard<std::mutex> lock(mu_);
  fds_.erase(std::remove(fds_.begin(), fds_.end(), fd), fds_.end());
  ::close(fd);
}

}  // namespace wsstep::testing

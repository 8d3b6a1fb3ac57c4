// FaultyOrigin: a misbehaving HTTPS origin on 127.0.0.1 with an ephemeral port, for
// tests that prove one bad origin costs only its own steps.
//
//   FaultyOrigin dead(FaultyOrigin::Fault::kNeverAnswers);
//   ASSERT_TRUE(dead.Start()) << dead.start_error();
//   ... "https://localhost:" + std::to_string(dead.port()) + "/" ...
//   ASSERT_TRUE(dead.WaitForConnections(16));   // every step reached it
//
// The faults:
//   kNeverAnswers  accepts the TCP connection, then reads nothing and sends nothing (no
//                  TLS handshake: a port that swallows connections)
//   kTrickles      completes TLS (server/localhost, no client certificate asked), reads
//                  the request, sends the status line and headers promising 1,000 bytes,
//                  then one body byte per second
//   kResets        accepts, reads the client's first bytes (its ClientHello), then
//                  closes with a TCP reset
//   kSlow          completes TLS, reads the request, answers 200 "slow" after `delay`
//
// One acceptor thread plus one thread per connection. Stop() (also the destructor)
// closes every socket and joins every thread: a held connection never outlives the test.
#ifndef WSSTEP_TESTS_SUPPORT_FAULTY_ORIGIN_H_
#define WSSTEP_TESTS_SUPPORT_FAULTY_ORIGIN_H_

#include <openssl/ssl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace wsstep::testing {

class FaultyOrigin {
 public:
  enum class Fault { kNeverAnswers, kTrickles, kResets, kSlow };

  explicit FaultyOrigin(Fault fault,
                        std::chrono::milliseconds delay = std::chrono::milliseconds(1500));
  ~FaultyOrigin();
  FaultyOrigin(const FaultyOrigin&) = delete;
  FaultyOrigin& operator=(const FaultyOrigin&) = delete;

  // Loads server/localhost from the test PKI (TLS faults), binds and starts accepting.
  // False (start_error()) when that fails.
  bool Start();
  const std::string& start_error() const { return start_error_; }
  void Stop();  // idempotent

  uint16_t port() const { return port_; }
  std::string Url(const std::string& path = "/") const;

  // Connections accepted so far.
  size_t connections() const;
  // Waits (on the origin's own events) until at least `n` connections were accepted;
  // false after `bound`, a safety net only.
  bool WaitForConnections(size_t n,
                          std::chrono::milliseconds bound = std::chrono::seconds(30)) const;

 private:
  void AcceptLoop();
  void Serve(int fd);
  // Sleeps up to `d`, less when stopping; false when stopping.
  bool Pause(std::chrono::milliseconds d);

  const Fault fault_;
  const std::chrono::milliseconds delay_;
  std::string start_error_;
  SSL_CTX* ctx_ = nullptr;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;

  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  std::vector<int> fds_;  // accepted, not yet closed
  std::vector<std::thread> workers_;
  size_t accepted_ = 0;
};

}  // namespace wsstep::testing

#endif  // WSSTEP_TESTS_SUPPORT_FAULTY_ORIGIN_H_

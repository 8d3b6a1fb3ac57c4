// SocketBudget: how many sockets the engine's connections may hold at once, so that the
// process never runs out of file descriptors because of them.
//
// Every socket libcurl opens for a transfer goes through Open (CURLOPT_OPENSOCKETFUNCTION)
// and every one it closes through Close (CURLOPT_CLOSESOCKETFUNCTION). Past the limit,
// Open refuses without calling socket(2): the step fails with DESCRIPTORS_EXHAUSTED
// instead of taking the descriptor the gRPC listener needs to accept the host's next
// channel, or the store needs to open its database. A socket(2) that fails with
// EMFILE/ENFILE anyway (descriptors taken by something else) is reported the same way.
//
// The default limit follows the process's RLIMIT_NOFILE (read again at every new socket,
// so `prlimit` on a running plugin counts): what was open when the engine started, and a
// reserve for the listener, accepted channels and the store, are left out.
#ifndef WSSTEP_REST_SOCKET_BUDGET_H_
#define WSSTEP_REST_SOCKET_BUDGET_H_

#include <curl/curl.h>

#include <atomic>
#include <cstddef>

namespace wsstep::rest {

class SocketBudget {
 public:
  // `limit` sockets at most; 0: follow RLIMIT_NOFILE (LimitFromProcess).
  explicit SocketBudget(size_t limit = 0);

  // RLIMIT_NOFILE's soft limit now, less `taken` (the descriptors open when the engine
  // started), less a reserve of kReserve + a sixteenth of the limit; never below kMinimum.
  static size_t LimitFromProcess(size_t taken);
  static constexpr size_t kReserve = 16;
  static constexpr size_t kMinimum = 4;

  // The limit as of the last socket opened.
  size_t limit() const { return limit_.load(std::memory_order_relaxed); }
  size_t open() const { return open_.load(std::memory_order_relaxed); }
  // Three quarters of the limit are in use: time to close idle connections.
  bool UnderPressure() const { return open() * 4 >= limit() * 3; }

  // Tells the transfer whose socket could not be opened. `exhausted` is the transfer's
  // flag, set when the budget or the process ran out of descriptors.
  struct OpenContext {
    SocketBudget* budget = nullptr;
    bool exhausted = false;
  };
  // libcurl's callbacks: OPENSOCKETDATA is an OpenContext*, CLOSESOCKETDATA the budget.
  static curl_socket_t Open(void* context, curlsocktype purpose, curl_sockaddr* address);
  static int Close(void* budget, curl_socket_t socket);

 private:
  const bool fixed_;
  const size_t taken_at_start_;
  std::atomic<size_t> limit_;
  std::atomic<size_t> open_{0};
};

}  // namespace wsstep::rest

#endif  // WSSTEP_REST_SOCKET_BUDGET_H_

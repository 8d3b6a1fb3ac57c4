// EventLoop: one thread and one curl multi handle that drive any number of transfers at
// once. A transfer waiting for its server holds no thread: a hung origin costs only its
// own transfers' sockets, never another step's turn.
//
// The thread waits in epoll_wait on the sockets libcurl asks it to watch
// (CURLMOPT_SOCKETFUNCTION) and acts on each ready one with curl_multi_socket_action,
// rather than curl_multi_perform over every transfer: perform polls the socket of each
// running transfer once more (a zero-timeout poll(2) per transfer per wake-up), which on
// a loop with 8 transfers running was ~5 polls per step. Post wakes the thread (an
// eventfd in the same epoll set) only when it sleeps or is about to.
//
//   EventLoop loop(/*max_cached_connections=*/256);
//   loop.Post([&] { ... });                    // runs on the loop's thread
//   loop.Start(std::move(transfer), [](Result<HttpResponse> r) { ... });  // `done` on it too
//
// The loop looks at every running transfer's cancel token and deadline at least every
// kPollInterval; libcurl's own timeouts (CURLOPT_TIMEOUT_MS) end most transfers earlier.
// Callbacks run on the loop's thread and must not block: they may Start further transfers
// (redirect hops, token calls, retries after an After timer) and answer the step.
#ifndef WSSTEP_REST_EVENT_LOOP_H_
#define WSSTEP_REST_EVENT_LOOP_H_

#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/mutex.h"
#include "rest/curl_handles.h"
#include "rest/transfer.h"

namespace wsstep::rest {

using TransferDone = std::function<void(Result<HttpResponse>)>;

class EventLoop {
 public:
  static constexpr std::chrono::milliseconds kPollInterval{50};

  // `on_tick` (optional) runs on the loop's thread after each wake-up, at most
  // kPollInterval apart while transfers run or while it last returned true (the engine
  // has steps waiting for a place, whose deadlines need watching); otherwise the loop
  // sleeps until it is given work.
  explicit EventLoop(size_t max_cached_connections, std::function<bool()> on_tick = {});
  // Stop(), then joins the thread.
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Runs `fn` on the loop's thread, soon. Thread-safe.
  void Post(std::function<void()> fn);
  // Makes the loop tick now (and so look again whether it should keep ticking).
  void Wake() { Signal(); }
  // Drives `transfer` on the loop; `done` runs there, exactly once. Thread-safe; on the
  // loop's own thread (a redirect hop) the transfer is added at once.
  void Start(std::unique_ptr<Transfer> transfer, TransferDone done);
  // Runs `fn` on the loop's thread once `due` has come, or earlier (within
  // kPollInterval) when `cancel` fires; `fn` looks at the token itself. No thread waits
  // meanwhile: a step's retry backoff is a timer here. Thread-safe. The loop does not stop
  // while timers are pending.
  void After(std::chrono::steady_clock::time_point due, std::function<void()> fn,
             const CancelToken* cancel = nullptr);
  // Transfers started and not yet done (for choosing the least busy loop).
  size_t load() const { return load_.load(std::memory_order_relaxed); }
  // Lets running transfers finish (each bounded by its deadline), then ends the thread.
  void Stop();

 private:
  struct Running {
    CURL* easy;
    std::unique_ptr<Transfer> transfer;
    TransferDone done;
  };
  // Owns a descriptor (the epoll set, the wake-up eventfd); closes it when destroyed.
  class OwnedFd {
   public:
    explicit OwnedFd(int fd) : fd_(fd) {}
    ~OwnedFd();
    OwnedFd(const OwnedFd&) = delete;
    OwnedFd& operator=(const OwnedFd&) = delete;
    int get() const { return fd_; }

   private:
    int fd_;
  };

  void Loop();
  void Add(std::unique_ptr<Transfer> transfer, TransferDone done);
  void Finish(CURL* easy, Transfer::Stop stop, CURLcode result);
  // Wakes the loop's thread from epoll_wait (a write to the eventfd).
  void Signal();
  // Hands the sockets epoll found ready, then a due libcurl timeout, to libcurl; false
  // when libcurl could not drive its transfers (`failed` says how).
  bool Drive(const std::vector<std::pair<curl_socket_t, int>>& ready, CURLMcode* failed);
  // libcurl's CURLMOPT_SOCKETFUNCTION and CURLMOPT_TIMERFUNCTION: which sockets to watch
  // and when to act on a timeout. Called on the loop's thread (inside libcurl calls).
  static int OnSocket(CURL* easy, curl_socket_t socket, int what, void* self, void* socketp);
  static int OnTimer(CURLM* multi, long timeout_ms, void* self);

  curl::MultiPtr multi_;
  OwnedFd epoll_;
  OwnedFd wake_;
  std::function<bool()> on_tick_;
  std::thread::id loop_id_;  // the loop's thread, to add transfers it starts directly
  std::atomic<size_t> load_{0};
  Mutex mu_;
  std::vector<std::function<void()>> posted_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The thread waits (or is about to) without a time-out of its own soon: Post must wake
  // it. False while it runs, so that a burst of posts costs no wake-ups.
  bool sleeping_ ABSL_GUARDED_BY(mu_) = false;
  // When libcurl wants curl_multi_socket_action(CURL_SOCKET_TIMEOUT); nullopt: never.
  std::optional<std::chrono::steady_clock::time_point> curl_due_;  // the loop's thread only
  // The loop's thread only. A vector: a few dozen at most, and a step's entry costs no
  // allocation once the loop has run that many.
  std::vector<Running> running_;
  // Transfers whose socket OnSocket could not add to the epoll set; the loop's thread only.
  std::vector<CURL*> unwatched_;
  struct Timer {
    std::function<void()> fn;
    const CancelToken* cancel;
  };
  std::multimap<std::chrono::steady_clock::time_point, Timer> timers_;  // the loop's thread only
  // Runs the timers that are due or cancelled; returns the earliest due time left.
  std::chrono::steady_clock::time_point RunTimers(std::chrono::steady_clock::time_point wake);
  std::thread thread_;
};

}  // namespace wsstep::rest

#endif  // WSSTEP_REST_EVENT_LOOP_H_

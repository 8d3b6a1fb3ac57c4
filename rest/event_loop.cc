#include "rest/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace wsstep::rest {

namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

using curl::CheckMulti;

// The mark of a socket in the loop's epoll set (curl_multi_assign): its address only.
char kWatched = 0;

// A descriptor the loop cannot have (no epoll set, no eventfd) leaves it unable to wait
// at all: loud, at construction, like a failed curl_multi_init.
int CheckFd(int fd, const char* what) {
  if (fd < 0) {
    std::fprintf(stderr, "wsstep: %s failed: %s\n", what, std::strerror(errno));
    std::abort();
  }
  return fd;
}

// Events epoll_wait hands back at most per wake-up; more wait for the next one.
constexpr int kMaxEvents = 64;

}  // namespace

EventLoop::OwnedFd::~OwnedFd() {
  if (fd_ >= 0) ::close(fd_);
}

EventLoop::EventLoop(size_t max_cached_connections, std::function<bool()> on_tick)
    : multi_(curl_multi_init()),
      epoll_(CheckFd(::epoll_create1(EPOLL_CLOEXEC), "epoll_create1")),
      wake_(CheckFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "eventfd")),
      on_tick_(std::move(on_tick)) {
  if (!multi_) {
    std::fprintf(stderr, "wsstep: curl_multi_init failed\n");
    std::abort();
  }
  epoll_event wake{};
  wake.events = EPOLLIN;
  wake.data.fd = wake_.get();
  CheckFd(::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &wake), "epoll_ctl(eventfd)");
  CheckMulti(curl_multi_setopt(multi_.get(), CURLMOPT_SOCKETFUNCTION, &EventLoop::OnSocket),
             "curl_multi_setopt(SOCKETFUNCTION)");
  CheckMulti(curl_multi_setopt(multi_.get(), CURLMOPT_SOCKETDATA, this),
             "curl_multi_setopt(SOCKETDATA)");
  CheckMulti(curl_multi_setopt(multi_.get(), CURLMOPT_TIMERFUNCTION, &EventLoop::OnTimer),
             "curl_multi_setopt(TIMERFUNCTION)");
  CheckMulti(curl_multi_setopt(multi_.get(), CURLMOPT_TIMERDATA, this),
             "curl_multi_setopt(TIMERDATA)");
  // Connections live in each partition's share, but libcurl bounds that cache by the
  // multi handle that finishes a transfer (by default 4 per easy handle added to it).
  CheckMulti(curl_multi_setopt(multi_.get(), CURLMOPT_MAXCONNECTS,
                               static_cast<long>(std::max<size_t>(max_cached_connections, 1))),
             "curl_multi_setopt(MAXCONNECTS)");
  thread_ = std::thread([this] { Loop(); });
  loop_id_ = thread_.get_id();
}

EventLoop::~EventLoop() {
  Stop();
  // While the epoll set and everything OnSocket and OnTimer touch still exist: the
  // cleanup tells them of the sockets it lets go.
  multi_.reset();
}

void EventLoop::Post(std::function<void()> fn) {
  bool wake = false;
  {
    MutexLock lock(mu_);
    posted_.push_back(std::move(fn));
    wake = sleeping_;
    sleeping_ = false;  // one wake-up is enough until it sleeps again
  }
  if (wake) Signal();
}

void EventLoop::Signal() {
  const uint64_t one = 1;
  // EAGAIN: the counter is full, so the thread has a wake-up waiting already. Anything
  // else is a defect, and an idle loop would never see its work: loud.
  if (::write(wake_.get(), &one, sizeof one) < 0 && errno != EAGAIN) {
    std::fprintf(stderr, "wsstep: waking an event loop failed: %s\n", std::strerror(errno));
    std::abort();
  }
}

int EventLoop::OnSocket(CURL* easy, curl_socket_t socket, int what, void* self, void* socketp) {
  auto* loop = static_cast<EventLoop*>(self);
  if (what == CURL_POLL_REMOVE) {
    // The socket may be closed already (then epoll dropped it by itself). libcurl forgets
    // the socket's mark (below) with it.
    (void)::epoll_ctl(loop->epoll_.get(), EPOLL_CTL_DEL, socket, nullptr);
    return 0;
  }
  epoll_event ev{};
  ev.events =
      ((what & CURL_POLL_IN) != 0 ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) != 0 ? EPOLLOUT : 0u);
  ev.data.fd = socket;
  // A socket libcurl hands over again (a kept-alive connection's next transfer) was
  // removed when the last one ended: added, then marked watched (curl_multi_assign) so
  // that its changes of direction are one EPOLL_CTL_MOD each, never a failed MOD first.
  if (socketp != nullptr && ::epoll_ctl(loop->epoll_.get(), EPOLL_CTL_MOD, socket, &ev) == 0) {
    return 0;
  }
  if (::epoll_ctl(loop->epoll_.get(), EPOLL_CTL_ADD, socket, &ev) == 0 ||
      (errno == EEXIST && ::epoll_ctl(loop->epoll_.get(), EPOLL_CTL_MOD, socket, &ev) == 0)) {
    if (socketp == nullptr) (void)curl_multi_assign(loop->multi_.get(), socket, &kWatched);
    return 0;
  }
  // Not watched (the kernel refused: out of memory, or max_user_watches), the transfer
  // would hang until its deadline. Returning -1 would make libcurl abort every transfer
  // of the loop; the loop ends this one alone once libcurl has returned.
  loop->unwatched_.push_back(easy);
  return 0;
}

int EventLoop::OnTimer(CURLM* /*multi*/, long timeout_ms, void* self) {
  auto* loop = static_cast<EventLoop*>(self);
  if (timeout_ms < 0) {
    loop->curl_due_.reset();
  } else {
    loop->curl_due_ = steady_clock::now() + milliseconds(timeout_ms);
  }
  return 0;
}

void EventLoop::Start(std::unique_ptr<Transfer> transfer, TransferDone done) {
  load_.fetch_add(1, std::memory_order_relaxed);
  if (std::this_thread::get_id() == loop_id_) return Add(std::move(transfer), std::move(done));
  // std::function needs a copyable callable: the transfer travels in a shared_ptr.
  auto moved = std::make_shared<std::unique_ptr<Transfer>>(std::move(transfer));
  Post(
      [this, moved, done = std::move(done)]() mutable { Add(std::move(*moved), std::move(done)); });
}

void EventLoop::After(steady_clock::time_point due, std::function<void()> fn,
                      const CancelToken* cancel) {
  Post([this, due, fn = std::move(fn), cancel]() mutable {
    timers_.emplace(due, Timer{std::move(fn), cancel});
  });
}

steady_clock::time_point EventLoop::RunTimers(steady_clock::time_point wake) {
  const auto now = steady_clock::now();
  std::vector<std::function<void()>> ready;
  for (auto it = timers_.begin(); it != timers_.end();) {
    const bool cancelled = it->second.cancel != nullptr && it->second.cancel->cancelled();
    if (it->first <= now || cancelled) {
      ready.push_back(std::move(it->second.fn));
      it = timers_.erase(it);
    } else {
      ++it;
    }
  }
  // Outside the iteration: a timer's work may set another timer.
  for (auto& fn : ready) fn();
  if (!timers_.empty()) wake = std::min(wake, timers_.begin()->first);
  return wake;
}

void EventLoop::Stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  Signal();
  if (thread_.joinable()) thread_.join();
}

void EventLoop::Add(std::unique_ptr<Transfer> transfer, TransferDone done) {
  CURL* easy = transfer->easy();
  // A streamed body's resume (rest/body_stream.h): un-pauses on this thread, and only while
  // this very transfer runs (its easy handle may serve another transfer afterwards). Only
  // such a transfer needs one: the others cost no allocation for it.
  if (transfer->streams_body()) {
    transfer->SetResume([this, easy, alive = transfer->alive()] {
      Post([easy, alive] {
        if (!alive.expired()) curl_easy_pause(easy, CURLPAUSE_CONT);
      });
    });
  }
  const CURLMcode rc = curl_multi_add_handle(multi_.get(), easy);
  if (rc != CURLM_OK) {
    // Out of memory in libcurl: the step's answer, not a crash.
    Result<HttpResponse> failed = Error(
        Code::kInternal, std::string("curl_multi_add_handle failed: ") + curl_multi_strerror(rc));
    (void)transfer->End(Transfer::Stop::kFinished, CURLE_OUT_OF_MEMORY);
    load_.fetch_sub(1, std::memory_order_relaxed);
    done(std::move(failed));
    return;
  }
  running_.push_back(Running{easy, std::move(transfer), std::move(done)});
}

void EventLoop::Finish(CURL* easy, Transfer::Stop stop, CURLcode result) {
  auto it = std::find_if(running_.begin(), running_.end(),
                         [easy](const Running& r) { return r.easy == easy; });
  if (it == running_.end()) return;
  Running run = std::move(*it);
  if (it != running_.end() - 1) *it = std::move(running_.back());
  running_.pop_back();
  curl_multi_remove_handle(multi_.get(), easy);
  Result<HttpResponse> response = run.transfer->End(stop, result);
  run.transfer.reset();
  load_.fetch_sub(1, std::memory_order_relaxed);
  run.done(std::move(response));
}

bool EventLoop::Drive(const std::vector<std::pair<curl_socket_t, int>>& ready, CURLMcode* failed) {
  int still_running = 0;
  for (const auto& [socket, events] : ready) {
    const CURLMcode rc = curl_multi_socket_action(multi_.get(), socket, events, &still_running);
    if (rc != CURLM_OK) {
      *failed = rc;
      return false;
    }
  }
  if (curl_due_ && *curl_due_ <= steady_clock::now()) {
    curl_due_.reset();  // libcurl sets the next one through OnTimer
    const CURLMcode rc =
        curl_multi_socket_action(multi_.get(), CURL_SOCKET_TIMEOUT, 0, &still_running);
    if (rc != CURLM_OK) {
      *failed = rc;
      return false;
    }
  }
  return true;
}

void EventLoop::Loop() {
  std::vector<std::function<void()>> posted;
  std::vector<std::pair<CURL*, Transfer::Stop>> stopped;
  std::vector<std::pair<curl_socket_t, int>> ready;  // sockets epoll found ready
  epoll_event events[kMaxEvents];
  for (;;) {
    bool stopping = false;
    {
      MutexLock lock(mu_);
      posted.swap(posted_);
      stopping = stopping_;
      sleeping_ = false;
    }
    for (auto& fn : posted) fn();
    posted.clear();
    bool keep_ticking = false;
    if (running_.empty()) {
      if (on_tick_) keep_ticking = on_tick_();
      MutexLock lock(mu_);
      if (stopping_ && posted_.empty() && timers_.empty()) return;
    }

    CURLMcode failed = CURLM_OK;
    if (!Drive(ready, &failed)) {
      // libcurl could not drive its transfers (out of memory, or a defect): each running
      // one ends as failed, named, rather than hanging until its deadline.
      for (const Running& run : running_) stopped.emplace_back(run.easy, Transfer::Stop::kFinished);
      for (const auto& [easy, stop] : stopped) {
        Finish(easy, stop, failed == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT);
      }
      stopped.clear();
    }
    ready.clear();
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_.get(), &queued)) {
      if (msg->msg == CURLMSG_DONE)
        Finish(msg->easy_handle, Transfer::Stop::kFinished, msg->data.result);
    }
    // Transfers whose socket epoll would not watch: failed, as libcurl fails a transfer
    // it cannot allocate for (Finish ignores one that ended meanwhile).
    for (CURL* easy : unwatched_) Finish(easy, Transfer::Stop::kFinished, CURLE_OUT_OF_MEMORY);
    unwatched_.clear();

    // Cancelled or past their deadline; the earliest deadline left bounds the wait.
    const auto now = steady_clock::now();
    auto wake = now + kPollInterval;
    for (const Running& run : running_) {
      const TransferLimits& limits = run.transfer->limits();
      if (limits.cancel != nullptr && limits.cancel->cancelled()) {
        stopped.emplace_back(run.easy, Transfer::Stop::kCancelled);
      } else if (now >= limits.deadline) {
        stopped.emplace_back(run.easy, Transfer::Stop::kDeadline);
      } else {
        wake = std::min(wake, limits.deadline);
      }
    }
    for (const auto& [easy, stop] : stopped) Finish(easy, stop, CURLE_OK);
    stopped.clear();
    if (on_tick_ && !running_.empty()) on_tick_();
    if (!timers_.empty()) wake = RunTimers(wake);
    if (curl_due_) wake = std::min(wake, *curl_due_);

    const auto left = wake - steady_clock::now();
    // Rounded up: waking a little early would only wait again.
    int wait_ms = left <= steady_clock::duration::zero()
                      ? 0
                      : static_cast<int>(std::chrono::ceil<milliseconds>(left).count());
    // Nothing to watch: sleep until Post or Wake.
    if (running_.empty() && timers_.empty() && !curl_due_ && !stopping && !keep_ticking) {
      wait_ms = -1;
    }
    {
      MutexLock lock(mu_);
      // Posted meanwhile: run it first. Otherwise a Post from now on wakes the thread.
      if (!posted_.empty() || stopping_ != stopping) {
        wait_ms = 0;
      } else {
        sleeping_ = true;
      }
    }
    const int n = ::epoll_wait(epoll_.get(), events, kMaxEvents, wait_ms);
    if (n < 0 && errno != EINTR) {
      // The wait failed (a defect): wait a little without it, so the loop neither spins
      // nor stops; deadlines and cancels are still looked at.
      std::this_thread::sleep_for(std::min(milliseconds(std::max(wait_ms, 0)), milliseconds(5)));
    }
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;  // a copy: epoll_event is packed
      if (fd == wake_.get()) {
        uint64_t count = 0;
        (void)::read(wake_.get(), &count, sizeof count);  // resets the eventfd
        continue;
      }
      int what = 0;
      if ((events[i].events & EPOLLIN) != 0) what |= CURL_CSELECT_IN;
      if ((events[i].events & EPOLLOUT) != 0) what |= CURL_CSELECT_OUT;
      if ((events[i].events & (EPOLLERR | EPOLLHUP)) != 0) what |= CURL_CSELECT_ERR;
      ready.emplace_back(fd, what);
    }
  }
}

}  // namespace wsstep::rest

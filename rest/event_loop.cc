#include "rest/event_loop.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace wsstep::rest {

namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

using curl::CheckMulti;

}  // namespace

EventLoop::EventLoop(size_t max_cached_connections, std::function<bool()> on_tick)
    : multi_(curl_multi_init()), on_tick_(std::move(on_tick)) {
  if (!multi_) {
    std::fprintf(stderr, "wsstep: curl_multi_init failed\n");
    std::abort();
  }
  // Connections live in each partition's share, but libcurl bounds that cache by the
  // multi handle that finishes a transfer (by default 4 per easy handle added to it).
  CheckMulti(curl_multi_setopt(multi_.get(), CURLMOPT_MAXCONNECTS,
                               static_cast<long>(std::max<size_t>(max_cached_connections, 1))),
             "curl_multi_setopt(MAXCONNECTS)");
  thread_ = std::thread([this] { Loop(); });
  loop_id_ = thread_.get_id();
}

EventLoop::~EventLoop() { Stop(); }

void EventLoop::Post(std::function<void()> fn) {
  {
    MutexLock lock(mu_);
    posted_.push_back(std::move(fn));
  }
  CheckMulti(curl_multi_wakeup(multi_.get()), "curl_multi_wakeup");
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
  // With constant arguments the wake-up fails only on a defect, and an idle loop would
  // then never see stopping_: loud, like every other such call (curl_handles.h).
  CheckMulti(curl_multi_wakeup(multi_.get()), "curl_multi_wakeup");
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

void EventLoop::Loop() {
  std::vector<std::function<void()>> posted;
  std::vector<std::pair<CURL*, Transfer::Stop>> stopped;
  for (;;) {
    bool stopping = false;
    {
      MutexLock lock(mu_);
      posted.swap(posted_);
      stopping = stopping_;
    }
    for (auto& fn : posted) fn();
    posted.clear();
    bool keep_ticking = false;
    if (running_.empty()) {
      if (on_tick_) keep_ticking = on_tick_();
      MutexLock lock(mu_);
      if (stopping_ && posted_.empty() && timers_.empty()) return;
    }

    int still_running = 0;
    const CURLMcode performed = curl_multi_perform(multi_.get(), &still_running);
    if (performed != CURLM_OK) {
      // libcurl could not drive its transfers (out of memory, or a defect): each running
      // one ends as failed, named, rather than hanging until its deadline.
      for (const Running& run : running_) stopped.emplace_back(run.easy, Transfer::Stop::kFinished);
      for (const auto& [easy, stop] : stopped) {
        Finish(easy, stop,
               performed == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT);
      }
      stopped.clear();
    }
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_.get(), &queued)) {
      if (msg->msg == CURLMSG_DONE)
        Finish(msg->easy_handle, Transfer::Stop::kFinished, msg->data.result);
    }

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

    int wait_ms = static_cast<int>(
        std::chrono::duration_cast<milliseconds>(wake - steady_clock::now()).count() + 1);
    // Nothing to watch: sleep until Post or Wake.
    if (running_.empty() && timers_.empty() && !stopping && !keep_ticking) {
      wait_ms = 24 * 3600 * 1000;
    }
    const CURLMcode polled =
        curl_multi_poll(multi_.get(), nullptr, 0, std::max(wait_ms, 0), nullptr);
    if (polled != CURLM_OK) {
      // The wait failed (out of memory, or the wake-up pipe): wait a little without it,
      // so the loop neither spins nor stops; deadlines and cancels are still looked at.
      std::this_thread::sleep_for(std::min(milliseconds(std::max(wait_ms, 0)), milliseconds(5)));
    }
  }
}

}  // namespace wsstep::rest

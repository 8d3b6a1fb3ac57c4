#include "plugin/process/lifecycle.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "plugin/process/log.h"

namespace wsstep::plugin {
namespace {

sigset_t StopSet() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

bool StdinIsPipeOrSocket() {
  struct stat st{};
  if (::fstat(STDIN_FILENO, &st) != 0) return false;
  return S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode);
}

}  // namespace

void StopSignal::Request(std::string reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (requested_) return;
    requested_ = true;
    reason_ = std::move(reason);
  }
  cv_.notify_all();
}

std::string StopSignal::Wait() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return requested_; });
  return reason_;
}

bool StopSignal::requested() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requested_;
}

Status BlockStopSignals() {
  const sigset_t set = StopSet();
  if (pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0) {
    return Error(Code::kInternal, "cannot block SIGTERM/SIGINT", "", Side::kNone);
  }
  ::signal(SIGPIPE, SIG_IGN);
  return {};
}

Result<std::unique_ptr<ProcessWatcher>> ProcessWatcher::Start(StopSignal* stop,
                                                              WatchOptions options) {
  std::unique_ptr<ProcessWatcher> w(new ProcessWatcher());
  w->stop_ = stop;
  w->options_ = options;
  const sigset_t set = StopSet();
  w->signal_fd_ = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  w->wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (w->signal_fd_ < 0 || w->wake_fd_ < 0) {
    return Error(Code::kInternal, std::string("cannot watch signals: ") + std::strerror(errno),
                 "", Side::kNone);
  }
  w->watching_stdin_ = options.watch_stdin && StdinIsPipeOrSocket();
  if (options.watch_parent) {
    // A pidfd of the parent becomes readable when the parent *process* exits, however it
    // ends. (PR_SET_PDEATHSIG fires when the parent *thread* that forked us exits, which
    // a host spawning plugins from a pool thread would trip over; it is the fallback for
    // kernels without pidfd_open, before 5.3.) A parent that died before we looked has
    // already made us the child of another process (init or a subreaper): getppid()
    // differs from the parent at exec time.
    const pid_t parent = options.parent_at_start > 0 ? options.parent_at_start : ::getppid();
    w->parent_ = parent;
    // (glibc 2.36's <sys/pidfd.h> lacks extern "C": the system call itself.)
    w->parent_fd_ = static_cast<int>(::syscall(SYS_pidfd_open, parent, 0));
    if (w->parent_fd_ < 0 && ::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) {
      return Error(Code::kInternal,
                   std::string("cannot watch the parent process: ") + std::strerror(errno), "",
                   Side::kNone);
    }
    if (::getppid() != parent) stop->Request("parent exited");
  }
  w->thread_ = std::thread([raw = w.get()] { raw->Run(); });
  return w;
}

ProcessWatcher::~ProcessWatcher() {
  if (wake_fd_ >= 0) {
    const uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }
  if (thread_.joinable()) thread_.join();
  for (int fd : {signal_fd_, wake_fd_, parent_fd_}) {
    if (fd >= 0) ::close(fd);
  }
}

void ProcessWatcher::Run() {
  bool stdin_open = watching_stdin_;
  bool parent_alive = parent_fd_ >= 0;
  for (;;) {
    // signals, destructor, the parent's pidfd (or -1: ignored), stdin (last: optional)
    pollfd fds[4] = {{signal_fd_, POLLIN, 0},
                     {wake_fd_, POLLIN, 0},
                     {parent_alive ? parent_fd_ : -1, POLLIN, 0},
                     {STDIN_FILENO, POLLIN, 0}};
    const nfds_t n = stdin_open ? 4 : 3;
    const int r = ::poll(fds, n, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;  // destructor
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info{};
      while (::read(signal_fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
        if (info.ssi_signo == SIGINT && options_.ignore_sigint) {
          Log().Info("ignoring SIGINT: the host stops its plugins (SIGTERM, stdin or "
                     "GRPCController.Shutdown)");
          continue;
        }
        if (info.ssi_signo == SIGTERM && parent_ > 0 && ::getppid() != parent_) {
          stop_->Request("parent exited");
        } else {
          stop_->Request(info.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
        }
      }
    }
    if (parent_alive && fds[2].revents != 0) {
      parent_alive = false;
      stop_->Request("parent exited");
    }
    if (stdin_open && (fds[3].revents & (POLLIN | POLLHUP | POLLERR))) {
      char buf[4096];
      const ssize_t got = ::read(STDIN_FILENO, buf, sizeof buf);
      if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) {
        // The host closed our stdin (or it died): nobody is left to call us.
        stdin_open = false;
        stop_->Request("stdin closed");
      }
      // Data on stdin means nothing to the plugin; it is read and dropped so the host
      // never blocks writing to it.
    }
  }
}

}  // namespace wsstep::plugin

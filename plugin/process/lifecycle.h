// When the plugin process stops: SIGTERM, SIGINT (standalone only), the parent process
// dying (plugin mode), the host closing our stdin (when asked to watch it), or a
// GRPCController.Shutdown call all end up in one StopSignal, which the serve loop waits
// on before draining.
//
//   BlockStopSignals();                     // first thing, before any thread exists
//   StopSignal stop;
//   auto watcher = ProcessWatcher::Start(&stop, {.watch_stdin = true, .ignore_sigint = true});
//   std::string why = stop.Wait();          // "SIGTERM", "parent exited", ...
#ifndef WSSTEP_PLUGIN_PROCESS_LIFECYCLE_H_
#define WSSTEP_PLUGIN_PROCESS_LIFECYCLE_H_

#include <sys/types.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/error.h"

namespace wsstep::plugin {

// A one-shot "please stop" with the first reason given.
class StopSignal {
 public:
  void Request(std::string reason);
  std::string Wait();
  bool requested() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool requested_ = false;
  std::string reason_;
};

// Blocks SIGTERM and SIGINT in the calling thread, so that every thread created later
// inherits the mask and the ProcessWatcher can take them synchronously (signalfd). Also
// ignores SIGPIPE (a host that closed our stderr must not kill us mid-drain). Call before
// gRPC starts any thread.
Status BlockStopSignals();

struct WatchOptions {
  // Treat end-of-file on stdin as "stop". Only honoured when stdin is a pipe or a socket:
  // a host that launches the plugin with /dev/null or a terminal as stdin (go-plugin
  // passes its own stdin through) must not make it stop at once.
  bool watch_stdin = false;
  // Stop when the parent process ends, however (a pidfd of it; PR_SET_PDEATHSIG on
  // kernels without pidfd_open), and at once when it is gone before the watcher starts.
  // go-plugin's host killed with SIGKILL must not leave its plugin serving.
  bool watch_parent = false;
  // The parent as the process saw it when it started (getppid() first thing in main); 0:
  // the parent when the watcher starts.
  pid_t parent_at_start = 0;
  // Log and ignore SIGINT. go-plugin plugins share the host's terminal process group:
  // a Ctrl-C meant for the host reaches the plugin too, and the host stops its plugins
  // itself (SIGTERM, stdin, or GRPCController.Shutdown) once it has drained its own work.
  bool ignore_sigint = false;
};

class ProcessWatcher {
 public:
  static Result<std::unique_ptr<ProcessWatcher>> Start(StopSignal* stop, WatchOptions options);
  ~ProcessWatcher();  // stops and joins the watcher thread
  ProcessWatcher(const ProcessWatcher&) = delete;
  ProcessWatcher& operator=(const ProcessWatcher&) = delete;

  bool watching_stdin() const { return watching_stdin_; }
  bool watching_parent() const { return parent_ > 0; }
  // How: "pidfd", "signal" (PR_SET_PDEATHSIG), "" when not watching.
  const char* parent_watch() const {
    return parent_fd_ >= 0 ? "pidfd" : parent_ > 0 ? "signal" : "";
  }

 private:
  ProcessWatcher() = default;
  void Run();
  StopSignal* stop_ = nullptr;
  WatchOptions options_;
  int signal_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: ends Run()
  bool watching_stdin_ = false;
  pid_t parent_ = 0;    // the parent watched, 0: none
  int parent_fd_ = -1;  // its pidfd, -1: none (not watched, or the signal fallback)
  std::thread thread_;
};

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_PROCESS_LIFECYCLE_H_

// Child processes for tests: run a command to completion and capture its output, or keep
// a long-lived server (nginx, a Python SOAP service) running and stop it reliably.
//
//   CommandResult r = RunCommand({"openssl", "version"});
//   ASSERT_EQ(r.exit_code, 0) << r.output;
//
//   ChildProcess server;
//   ASSERT_TRUE(server.Start({"/usr/sbin/nginx", "-p", dir, "-c", conf}, dir + "/out.log"))
//       << server.error();
//   ...
//   server.Stop(SIGQUIT, std::chrono::seconds(5));  // the destructor also stops it
//
// Children run in their own process group, so stopping or timing one out also reaches
// the processes it started (a shell script's openssl, nginx's workers).
#ifndef WSSTEP_TESTS_SUPPORT_PROCESS_H_
#define WSSTEP_TESTS_SUPPORT_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace wsstep::testing {

using EnvList = std::vector<std::pair<std::string, std::string>>;

struct CommandResult {
  // The exit status; 128 + signal number if it was killed by a signal; -1 if it could
  // not be started (see output) or timed out.
  int exit_code = -1;
  bool timed_out = false;
  std::string output;  // stdout and stderr, interleaved
};

// Runs argv[0] (looked up in PATH) with the current environment plus `env` (overriding),
// waits at most `timeout` (then kills its process group), and returns its output.
CommandResult RunCommand(const std::vector<std::string>& argv, const EnvList& env = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(60));

class ChildProcess;

// Starts `argv` + {"--port-file", port_file}: a test service (soap/testdata/*.py) that
// writes the port it listens on to that file once it listens. Waits until it has (or the
// service exited) and returns the port; 0 with `error` saying why (its log included).
uint16_t StartWithPortFile(ChildProcess& process, std::vector<std::string> argv,
                           const std::string& port_file, const std::string& log_file,
                           std::string* error);

class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();  // Stop(SIGTERM, 5 s) if still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Starts argv with stdout and stderr appended to `output_file` ("" = /dev/null) and
  // stdin from /dev/null. False (see error()) if it cannot be started.
  bool Start(const std::vector<std::string>& argv, const std::string& output_file = "",
             const EnvList& env = {});
  const std::string& error() const { return error_; }

  pid_t pid() const { return pid_; }
  // True while the child has not been reaped. Reaps it if it has exited.
  bool Running();
  // The child's exit code once it has exited (as CommandResult::exit_code).
  std::optional<int> exit_code() const { return exit_code_; }

  // Sends `signal` to the child, waits up to `grace` for it to exit, then SIGKILLs its
  // process group and reaps it. Returns the exit code. Idempotent.
  int Stop(int signal = 15, std::chrono::milliseconds grace = std::chrono::seconds(5));

 private:
  bool Reap(bool block);
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::string error_;
};

}  // namespace wsstep::testing

#endif  // WSSTEP_TESTS_SUPPORT_PROCESS_H_

#include "tests/support/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>

#include "tests/support/pki.h"
#include "tests/support/wait.h"

extern char** environ;

namespace wsstep::testing {
namespace {

using Clock = std::chrono::steady_clock;

// A NULL-terminated char* array over owned strings, as exec wants argv and envp.
class CStringArray {
 public:
  explicit CStringArray(std::vector<std::string> strings) : strings_(std::move(strings)) {
    for (auto& s : strings_) pointers_.push_back(s.data());
    pointers_.push_back(nullptr);
  }
  char** get() { return pointers_.data(); }

 private:
  std::vector<std::string> strings_;
  std::vector<char*> pointers_;
};

// environ with `extra` overriding, as "NAME=value" strings.
std::vector<std::string> MergedEnvironment(const EnvList& extra) {
  std::map<std::string, std::string> vars;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    size_t eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    vars[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
  }
  for (const auto& [k, v] : extra) vars[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : vars) out.push_back(k + "=" + v);
  return out;
}

// posix_spawn attributes and file actions, destroyed on every path.
class SpawnSetup {
 public:
  SpawnSetup() {
    posix_spawnattr_init(&attr_);
    posix_spawn_file_actions_init(&actions_);
    // Own process group (so the whole tree can be signalled), default signal handling and
    // an empty mask: the test process may block or ignore signals the child needs.
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setpgroup(&attr_, 0);
    posix_spawnattr_setsigdefault(&attr_, &all);
    posix_spawnattr_setsigmask(&attr_, &none);
    posix_spawnattr_setflags(
        &attr_, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    posix_spawn_file_actions_addopen(&actions_, 0, "/dev/null", O_RDONLY, 0);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions_);
    posix_spawnattr_destroy(&attr_);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;

  posix_spawn_file_actions_t* actions() { return &actions_; }
  // Returns 0 or an errno value.
  int Spawn(pid_t* pid, const std::vector<std::string>& argv, const EnvList& env) {
    CStringArray args(argv);
    CStringArray environment(MergedEnvironment(env));
    return posix_spawnp(pid, args.get()[0], &actions_, &attr_, args.get(), environment.get());
  }

 private:
  posix_spawnattr_t attr_;
  posix_spawn_file_actions_t actions_;
};

int ExitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

int WaitBlocking(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return ExitCodeOf(status);
}

std::string Join(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    out += a;
  }
  return out;
}

}  // namespace

CommandResult RunCommand(const std::vector<std::string>& argv, const EnvList& env,
                         std::chrono::milliseconds timeout) {
  CommandResult result;
  if (argv.empty()) {
    result.output = "RunCommand: empty argv";
    return result;
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    result.output = std::string("RunCommand: pipe: ") + std::strerror(errno);
    return result;
  }
  pid_t pid = -1;
  int rc;
  {
    SpawnSetup setup;
    posix_spawn_file_actions_adddup2(setup.actions(), fds[1], 1);
    posix_spawn_file_actions_adddup2(setup.actions(), fds[1], 2);
    rc = setup.Spawn(&pid, argv, env);
  }
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    result.output = "RunCommand: cannot start " + Join(argv) + ": " + std::strerror(rc);
    return result;
  }

  const auto deadline = Clock::now() + timeout;
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;  // timeout is handled at the top of the loop
    ssize_t got = read(fds[0], buf, sizeof(buf));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // EOF: the child (and everything sharing the pipe) is done
    result.output.append(buf, static_cast<size_t>(got));
  }
  close(fds[0]);
  if (result.timed_out) {
    kill(-pid, SIGKILL);
    WaitBlocking(pid);
    result.exit_code = -1;
    result.output += "\n[RunCommand: " + Join(argv) + " timed out after " +
                     std::to_string(timeout.count()) + " ms and was killed]";
    return result;
  }
  result.exit_code = WaitBlocking(pid);
  return result;
}

ChildProcess::~ChildProcess() { Stop(SIGTERM, std::chrono::seconds(5)); }

bool ChildProcess::Start(const std::vector<std::string>& argv, const std::string& output_file,
                         const EnvList& env) {
  if (pid_ > 0) {
    error_ = "ChildProcess: already running (pid " + std::to_string(pid_) + ")";
    return false;
  }
  if (argv.empty()) {
    error_ = "ChildProcess: empty argv";
    return false;
  }
  exit_code_.reset();
  error_.clear();
  const char* out = output_file.empty() ? "/dev/null" : output_file.c_str();
  SpawnSetup setup;
  posix_spawn_file_actions_addopen(setup.actions(), 1, out, O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(setup.actions(), 1, 2);
  pid_t pid = -1;
  int rc = setup.Spawn(&pid, argv, env);
  if (rc != 0) {
    error_ = "cannot start " + Join(argv) + ": " + std::strerror(rc);
    return false;
  }
  pid_ = pid;
  return true;
}

// Once the child has exited (block: wait for it), kills whatever is left in its process
// group while the unreaped child still reserves the group id, then reaps it.
bool ChildProcess::Reap(bool block) {
  if (pid_ <= 0) return true;
  siginfo_t info{};
  int flags = WEXITED | WNOWAIT | (block ? 0 : WNOHANG);
  while (waitid(P_PID, static_cast<id_t>(pid_), &info, flags) != 0) {
    if (errno != EINTR) {  // not our child any more: nothing to reap
      pid_ = -1;
      return true;
    }
  }
  if (info.si_pid == 0) return false;  // still running
  kill(-pid_, SIGKILL);
  exit_code_ = WaitBlocking(pid_);
  pid_ = -1;
  return true;
}

bool ChildProcess::Running() { return !Reap(/*block=*/false); }

int ChildProcess::Stop(int signal, std::chrono::milliseconds grace) {
  if (pid_ <= 0) return exit_code_.value_or(-1);
  if (!Reap(false)) {
    kill(pid_, signal);
    // A child's exit cannot be waited for with a timeout: poll it for the grace period.
    (void)WaitUntil(
        "the child exits after its signal", [&] { return Reap(false); }, grace);
    if (pid_ > 0) {
      kill(-pid_, SIGKILL);
      Reap(true);
    }
  }
  return exit_code_.value_or(-1);
}

uint16_t StartWithPortFile(ChildProcess& process, std::vector<std::string> argv,
                           const std::string& port_file, const std::string& log_file,
                           std::string* error) {
  argv.push_back("--port-file");
  argv.push_back(port_file);
  if (!process.Start(argv, log_file)) {
    *error = "cannot start " + argv.front() + ": " + process.error();
    return 0;
  }
  // Python services take a moment to import their libraries.
  uint16_t port = 0;
  (void)WaitUntil("the service writes its port file", [&] {
    if (std::filesystem::exists(port_file)) {
      const std::string text = ReadFile(port_file);
      if (!text.empty()) port = static_cast<uint16_t>(std::stoi(text));
    }
    return port != 0 || !process.Running();
  });
  if (port == 0) *error = "the service did not come up: " + ReadFile(log_file);
  return port;
}

}  // namespace wsstep::testing

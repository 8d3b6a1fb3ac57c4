#include "plugin/cli/host_launcher.h"

#include <fcntl.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <thread>

extern char** environ;

namespace wsstep::plugin {
namespace {

Error LaunchError(std::string message) {
  return Error(Code::kFailedPrecondition, std::move(message),
               "check the plugin binary and its stderr", Side::kServer);
}

int ExitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

Result<std::unique_ptr<PluginProcess>> PluginProcess::Spawn(const LaunchOptions& options) {
  std::unique_ptr<PluginProcess> p(new PluginProcess());

  // The environment: ours, then the handshake variables, then the caller's overrides.
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string kv(*e);
    const size_t eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  env.erase(std::string(kMagicCookieKey));
  env.erase("PLUGIN_CLIENT_CERT");
  if (options.set_magic_cookie) {
    env[std::string(kMagicCookieKey)] = std::string(kMagicCookieValue);
    env["PLUGIN_PROTOCOL_VERSIONS"] = std::to_string(kAppProtocolVersion);
  }
  if (options.automtls) {
    auto cert = GenerateSelfSignedCertificate("wsstep-host", kAutoMtlsValidity);
    if (!cert.ok()) return cert.error();
    p->client_cert_ = std::make_unique<SelfSignedCertificate>(std::move(cert).value());
    env["PLUGIN_CLIENT_CERT"] = p->client_cert_->cert_pem;
  }
  if (options.tcp) env["WSSTEP_PLUGIN_NETWORK"] = "tcp";
  // stdin is a pipe of our own (CloseStdin), unlike go-plugin's, which passes the host's:
  // the plugin may take its end-of-file as "stop".
  env["WSSTEP_PLUGIN_WATCH_STDIN"] = "true";
  for (const auto& [k, v] : options.env) env[k] = v;

  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = {options.binary};
  args.insert(args.end(), options.args.begin(), options.args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int in_pipe[2], out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) return LaunchError(std::string("pipe: ") + std::strerror(errno));
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    ::close(in_pipe[0]);
    ::close(in_pipe[1]);
    return LaunchError(std::string("pipe: ") + std::strerror(errno));
  }
  int err_fd = -1;
  if (!options.stderr_path.empty()) {
    err_fd = ::open(options.stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (err_fd < 0) {
      for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1]}) ::close(fd);
      return LaunchError(options.stderr_path + ": " + std::strerror(errno));
    }
  }

  const pid_t pid = ::fork();
  if (pid < 0) {
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1], err_fd}) {
      if (fd >= 0) ::close(fd);
    }
    return LaunchError(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls from here to exec.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    ::dup2(in_pipe[0], STDIN_FILENO);
    ::dup2(out_pipe[1], STDOUT_FILENO);
    if (err_fd >= 0) ::dup2(err_fd, STDERR_FILENO);
    ::execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  if (err_fd >= 0) ::close(err_fd);
  p->pid_ = pid;
  p->stdin_fd_ = in_pipe[1];
  p->stdout_fd_ = out_pipe[0];
  return p;
}

Result<std::unique_ptr<PluginProcess>> PluginProcess::Launch(const LaunchOptions& options) {
  WSSTEP_ASSIGN_OR_RETURN(std::unique_ptr<PluginProcess> p, Spawn(options));
  auto line = p->ReadHandshake(options.start_timeout);
  if (!line.ok()) {
    p->Signal(SIGKILL);
    p->Wait(std::chrono::seconds(5));
    return line.error();
  }
  return p;
}

Result<HandshakeLine> PluginProcess::ReadHandshake(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const size_t nl = stdout_buffer_.find('\n');
    if (nl != std::string::npos) {
      const std::string line = stdout_buffer_.substr(0, nl);
      stdout_buffer_.erase(0, nl + 1);
      WSSTEP_ASSIGN_OR_RETURN(handshake_, ParseHandshakeLine(line));
      if (handshake_.core_version != kCoreProtocolVersion) {
        return LaunchError("plugin speaks core protocol " +
                           std::to_string(handshake_.core_version) + ", we speak " +
                           std::to_string(kCoreProtocolVersion));
      }
      if (handshake_.protocol != "grpc") {
        return LaunchError("plugin offers protocol '" + handshake_.protocol + "', not grpc");
      }
      return handshake_;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return LaunchError("timed out waiting for the plugin's handshake line");
    pollfd pfd{stdout_fd_, POLLIN, 0};
    const int r = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(stdout_fd_, buf, sizeof buf);
    if (n > 0) {
      stdout_buffer_.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    // End of file before a line: the plugin exited (or closed stdout) without a handshake.
    const auto code = Wait(std::chrono::seconds(5));
    return LaunchError("the plugin closed its stdout before the handshake" +
                       (code ? " (exit code " + std::to_string(*code) + ")" : std::string()));
  }
}

std::string PluginProcess::target() const {
  if (handshake_.network == "unix") return "unix://" + handshake_.address;
  return handshake_.address;
}

std::shared_ptr<grpc::Channel> PluginProcess::channel() {
  if (!channel_) channel_ = NewChannel();
  return channel_;
}

std::shared_ptr<grpc::Channel> PluginProcess::NewChannel() const {
  grpc::ChannelArguments args;
  // A subchannel of its own: a new connection, not one shared with an earlier channel.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (!handshake_.server_cert_der.empty() && client_cert_) {
    auto pem = DerToPem(handshake_.server_cert_der);
    if (pem.ok()) {
      creds = AutoMtlsChannelCredentials(*client_cert_, *pem);
      args.SetSslTargetNameOverride(std::string(kAutoMtlsServerName));
    }
  }
  if (!creds) creds = grpc::InsecureChannelCredentials();
  return grpc::CreateCustomChannel(target(), creds, args);
}

void PluginProcess::Signal(int signal) {
  if (pid_ > 0 && !exit_code_) ::kill(pid_, signal);
}

void PluginProcess::CloseStdin() {
  if (stdin_fd_ >= 0) {
    ::close(stdin_fd_);
    stdin_fd_ = -1;
  }
}

std::optional<int> PluginProcess::Wait(std::chrono::milliseconds timeout) {
  if (exit_code_) return exit_code_;
  if (pid_ <= 0) return std::nullopt;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_code_ = ExitCodeOf(status);
      return exit_code_;
    }
    if (r < 0 && errno != EINTR) return std::nullopt;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string PluginProcess::ReadRestOfStdout(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string out = std::move(stdout_buffer_);
  stdout_buffer_.clear();
  while (stdout_fd_ >= 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd pfd{stdout_fd_, POLLIN, 0};
    const int r = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      break;
    }
    char buf[4096];
    const ssize_t n = ::read(stdout_fd_, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

PluginProcess::~PluginProcess() {
  channel_.reset();
  if (pid_ > 0 && !exit_code_) {
    ::kill(pid_, SIGKILL);
    Wait(std::chrono::seconds(5));
  }
  CloseStdin();
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
}

}  // namespace wsstep::plugin

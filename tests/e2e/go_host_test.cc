// The example Go host (docs/examples/go_host), a real HashiCorp go-plugin host, against
// the real binary: launched with AutoMTLS, health, GetPluginInfo, certificates imported
// over gRPC and a REST step against nginx with ssl_verify_client on; a plugin error
// line arriving at ERROR in the host's hclog logger; and a host killed with SIGKILL
// taking its plugin and socket with it.
//
// The host is built once per test process with its build.sh (offline, from Debian's Go
// packages) into <build>/go_host, whose Go build cache makes every build after the
// first take well under a second. golang-go missing is a failure, not a skip:
// scripts/deps.sh installs it.
#include <absl/cleanup/cleanup.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/nginx.h"
#include "tests/support/pki.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace wsstep::e2e {
namespace {

using ::testing::Contains;
using ::testing::StartsWith;
using Json = nlohmann::json;

// Builds the host (once per process); its path, or "" after a test failure saying why.
const std::string& GoHostBinary() {
  static const std::string binary = [] {
    const std::string out = WSSTEP_GO_HOST_BUILD_DIR;
    std::filesystem::create_directories(out);
    const auto started = std::chrono::steady_clock::now();
    // ctest may run this file's tests in parallel: one build at a time in `out`.
    const testing::CommandResult built = testing::RunCommand(
        {"flock", out + "/build.lock", "bash", std::string(WSSTEP_GO_HOST_DIR) + "/build.sh", out},
        {}, std::chrono::minutes(10));
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started);
    if (built.exit_code != 0) {
      ADD_FAILURE()
          << "building the Go example host failed (exit " << built.exit_code
          << "; scripts/deps.sh installs golang-go, golang-github-hashicorp-go-plugin-dev, "
             "golang-google-grpc-dev, golang-goprotobuf-dev):\n"
          << built.output;
      return std::string();
    }
    std::cout << "[ go host  ] built in " << ms.count() << " ms\n";
    return out + "/wsstep-go-host";
  }();
  return binary;
}

// Each line of `text` that is a JSON object (the host's log with -log-json).
std::vector<Json> JsonLines(const std::string& text) {
  std::vector<Json> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object()) lines.push_back(std::move(j));
  }
  return lines;
}

// The log lines of `module` with this message.
std::vector<Json> LogLines(const std::string& log, const std::string& module,
                           const std::string& message) {
  std::vector<Json> found;
  for (Json& j : JsonLines(log)) {
    if (j.value("@module", "") == module && j.value("@message", "") == message) {
      found.push_back(std::move(j));
    }
  }
  return found;
}

class GoHostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    host_ = GoHostBinary();
    ASSERT_FALSE(host_.empty());
    ASSERT_EQ(::mkdir(sockets_.c_str(), 0700), 0);
  }

  // The host's environment: the plugin's data and socket directories in work_, and
  // nothing of ours that would change how the plugin behaves.
  testing::EnvList Env(const std::string& data_dir) const {
    return {{"WSSTEP_DATA_DIR", data_dir},
            {"PLUGIN_UNIX_SOCKET_DIR", sockets_},
            {"WSSTEP_PLUGIN_WATCH_STDIN", ""},
            {"TMPDIR", work_.path()}};
  }

  // argv running the host with `args`: its report (stdout) goes where the caller sends
  // stdout, its JSON log (stderr) is appended to log_.
  std::vector<std::string> HostArgv(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {"/bin/sh", "-c", "log=$1; shift; exec \"$@\" 2>>\"$log\""};
    argv.push_back("sh");  // $0
    argv.push_back(log_);  // $1
    argv.insert(argv.end(), {host_, "-plugin", WSSTEP_BINARY, "-log-json"});
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  std::string Log() const {
    return std::filesystem::exists(log_) ? testing::ReadFile(log_) : std::string();
  }

  testing::TempDir work_{"wsstep-go-host-test-"};
  const std::string sockets_ = work_.Path("sockets");
  const std::string log_ = work_.Path("host.log");
  std::string host_;
};

TEST_F(GoHostTest, RunsARestStepAgainstNginxOverAutoMtlsAndStopsThePluginCleanly) {
  testing::NginxConfig config;
  config.verify_client = testing::NginxVerifyClient::kOn;
  testing::NginxServer nginx(config);
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();
  const std::string port = std::to_string(nginx.port());

  // The host imports the client key pair and the test CA over CertificateService, binds
  // them to localhost:PORT, then runs GET /echo, which answers with what nginx saw.
  const testing::CommandResult run = testing::RunCommand(
      HostArgv({"-bind", "localhost:" + port, "-client-cert", testing::PkiPath("client/rsa.pem"),
                "-client-key", testing::PkiPath("client/rsa.key.pem"), "-trust",
                testing::PkiPath("trust/bundle.pem"), "-step-url", nginx.base_url() + "/echo"}),
      Env(work_.Path("data")), std::chrono::seconds(120));
  const std::string log = Log();
  ASSERT_EQ(run.exit_code, 0) << "report:\n" << run.output << "\nlog:\n" << log;
  const Json report = Json::parse(run.output, nullptr, false);
  ASSERT_TRUE(report.is_object()) << run.output;

  // Launched through the handshake, on a unix socket in PLUGIN_UNIX_SOCKET_DIR.
  EXPECT_EQ(report["network"], "unix");
  EXPECT_THAT(report.value("address", ""), StartsWith(sockets_ + "/wsstep-"));
  EXPECT_EQ(report["ping"], "ok");
  EXPECT_EQ(report["health"], Json({{"", "SERVING"}, {"plugin", "SERVING"}}));
  const Json& info = report["plugin_info"];
  EXPECT_EQ(info["name"], "wsstep");
  EXPECT_EQ(info["api_version"], "wsstep.v1");
  EXPECT_EQ(info["step_kinds"], Json({"rest", "soap"}));
  const auto capabilities = info.value("capabilities", std::vector<std::string>());
  EXPECT_THAT(capabilities, Contains("automtls"));
  EXPECT_THAT(capabilities, Contains("go-plugin"));

  // Both imports succeeded.
  ASSERT_EQ(report["imported"].size(), 2u) << report.dump();
  const Json& client = report["imported"][0];
  EXPECT_EQ(client["name"], "client");
  EXPECT_FALSE(client.contains("rpc_error")) << client.dump();
  EXPECT_EQ(report["imported"][1]["name"], "trust");
  EXPECT_FALSE(report["imported"][1].contains("rpc_error")) << report["imported"][1].dump();
  const std::string client_id = client.value("id", "");
  EXPECT_FALSE(client_id.empty());

  // The step: 200 from nginx, which saw client/rsa; the outcome names the same entry.
  const std::string fingerprint =
      testing::Sha256FingerprintOfPemFile(testing::PkiPath("client/rsa.pem"));
  const Json& step = report["step"];
  ASSERT_EQ(step.value("http_status", 0), 200) << step.dump();
  EXPECT_EQ(testing::NginxEcho::Parse(step.value("body", "")).client_fingerprint, fingerprint);
  EXPECT_EQ(step["client_certificate"],
            Json({{"id", client_id}, {"name", "client"}, {"sha256_fingerprint", fingerprint}}));
  const auto access = nginx.AccessLog(1);
  ASSERT_EQ(access.size(), 1u);
  EXPECT_EQ(access[0].uri, "/echo");
  EXPECT_EQ(access[0].status, 200);
  EXPECT_EQ(access[0].client_verify, "SUCCESS");
  EXPECT_EQ(access[0].client_fingerprint, fingerprint);

  // go-plugin's Kill: Shutdown RPC, and the plugin exited 0 within its 2 s.
  EXPECT_EQ(report["exit_code"], 0);
  EXPECT_THAT(LogLines(log, "host", "plugin failed to exit gracefully"), ::testing::IsEmpty());
  EXPECT_TRUE(std::filesystem::is_empty(sockets_)) << "socket directory left behind";

  // The plugin's info lines reached the host's logger at info, with their fields: it
  // served with AutoMTLS, the step carried the host's ids, and it stopped on the RPC.
  const auto serving = LogLines(log, "host.wsstep", "serving");
  ASSERT_EQ(serving.size(), 1u) << log;
  EXPECT_EQ(serving[0]["@level"], "info");
  EXPECT_EQ(serving[0]["automtls"], true);
  EXPECT_EQ(serving[0]["mode"], "go-plugin");
  const auto finished = LogLines(log, "host.wsstep", "step finished");
  ASSERT_EQ(finished.size(), 1u) << log;
  EXPECT_EQ(finished[0]["@level"], "info");
  EXPECT_EQ(finished[0]["step_id"], "go-host-1");
  EXPECT_EQ(finished[0]["workflow_id"], "demo");
  EXPECT_EQ(finished[0]["http_status"], 200);
  const auto stopping = LogLines(log, "host.wsstep", "stopping");
  ASSERT_EQ(stopping.size(), 1u) << log;
  EXPECT_EQ(stopping[0]["reason"], "GRPCController.Shutdown");
}

TEST_F(GoHostTest, APluginErrorLineArrivesAtErrorInTheHostsLogger) {
  // A data directory the plugin cannot open (a regular file): it logs an error and
  // exits 1 before the handshake.
  const std::string not_a_dir = work_.Path("not-a-directory");
  testing::WriteFile(not_a_dir, "");
  const testing::CommandResult run =
      testing::RunCommand(HostArgv({}), Env(not_a_dir), std::chrono::seconds(120));
  const std::string log = Log();
  EXPECT_EQ(run.exit_code, 1) << run.output << "\nlog:\n" << log;
  const Json report = Json::parse(run.output, nullptr, false);
  ASSERT_TRUE(report.is_object()) << run.output;
  EXPECT_FALSE(report.value("start_error", "").empty()) << run.output;
  EXPECT_FALSE(report.contains("exit_code"));

  const auto lines = LogLines(log, "host.wsstep", "cannot open the plugin's components");
  ASSERT_EQ(lines.size(), 1u) << log;
  EXPECT_EQ(lines[0]["@level"], "error");
  EXPECT_EQ(lines[0]["code"], "STORAGE_ERROR");
  EXPECT_EQ(lines[0]["error"], not_a_dir + ": not a directory");
  // The host logged its own failure after the plugin's reason.
  const auto failed = LogLines(log, "host", "the plugin did not start");
  ASSERT_EQ(failed.size(), 1u) << log;
  EXPECT_EQ(failed[0]["@level"], "error");
  EXPECT_TRUE(std::filesystem::is_empty(sockets_)) << "socket directory left behind";
}

TEST_F(GoHostTest, AHostKilledWithSigkillTakesItsPluginAndSocketWithinTwoSeconds) {
  // The orphaned plugin becomes a child of this process, so its exit can be reaped.
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  absl::Cleanup no_subreaper = [] { ::prctl(PR_SET_CHILD_SUBREAPER, 0); };
  const std::string report_file = work_.Path("report.json");
  testing::ChildProcess host;
  ASSERT_TRUE(host.Start(HostArgv({"-hold"}), report_file, Env(work_.Path("data"))))
      << host.error();
  // With -hold the host prints its report once the plugin is serving, then waits.
  ASSERT_TRUE(testing::WaitUntil("the host reports a serving plugin", [&] {
    return std::filesystem::exists(report_file) &&
           testing::ReadFile(report_file).find('\n') != std::string::npos;
  })) << Log();
  const Json report = Json::parse(testing::ReadFile(report_file), nullptr, false);
  ASSERT_TRUE(report.is_object()) << testing::ReadFile(report_file);
  EXPECT_EQ(report["health"], Json({{"", "SERVING"}, {"plugin", "SERVING"}}));
  const pid_t plugin = report.value("plugin_pid", 0);
  const std::string socket = report.value("address", "");
  ASSERT_GT(plugin, 0) << report.dump();
  struct stat st {};
  ASSERT_EQ(::stat(socket.c_str(), &st), 0) << "no socket at " << socket;

  // Only the host. (ChildProcess kills the rest of the host's process group when it
  // reaps the host, which would take the plugin too: the host is reaped last.)
  const auto killed = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(host.pid(), SIGKILL), 0);
  int status = -1;
  const bool exited = testing::WaitUntil(
      "the orphaned plugin exits", [&] { return ::waitpid(plugin, &status, WNOHANG) == plugin; });
  const auto gone_after = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - killed);
  if (!exited) {  // never leave it running
    ::kill(plugin, SIGKILL);
    ::waitpid(plugin, &status, 0);
  }
  EXPECT_TRUE(testing::WaitUntil("the host is reaped", [&] { return !host.Running(); }));
  EXPECT_EQ(host.exit_code(), 128 + SIGKILL);
  ASSERT_TRUE(exited) << "the plugin outlived its host";
  std::cout << "[ go host  ] plugin gone " << gone_after.count()
            << " ms after the host's SIGKILL\n";
  EXPECT_LE(gone_after, std::chrono::seconds(2));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  EXPECT_NE(::stat(socket.c_str(), &st), 0) << "socket left behind";
  EXPECT_TRUE(std::filesystem::is_empty(sockets_)) << "socket directory left behind";
}

}  // namespace
}  // namespace wsstep::e2e

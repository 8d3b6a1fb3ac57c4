// The real `wsstep` binary, launched the way a workflow host launches it: go-plugin
// handshake on stdout, health, reflection, GetPluginInfo, AutoMTLS, and every way of
// stopping it. Also runs the Python example host against it.
#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "grpc/health/v1/health.grpc.pb.h"
#include "goplugin/grpc_controller.grpc.pb.h"
#include "goplugin/grpc_stdio.grpc.pb.h"
#include "plugin/process/automtls.h"
#include "plugin/process/handshake.h"
#include "plugin/cli/host_launcher.h"
#include "tests/support/pki.h"
#include "tests/support/wait.h"
#include "wsstep/v1/step_plugin_service.grpc.pb.h"

namespace wsstep::plugin {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr auto kExitTimeout = std::chrono::seconds(20);

// This test process's files: the plugin's log and data directory, the Python host's
// output. Removed with everything in it when the process exits.
const testing::TempDir& Work() {
  static const testing::TempDir dir("wsstep-plugin-test-");
  return dir;
}

LaunchOptions Options() {
  LaunchOptions o;
  o.binary = WSSTEP_BINARY;
  o.stderr_path = Work().Path("plugin.log");
  // A data directory of its own, so the test never touches the user's.
  o.env.push_back({"WSSTEP_DATA_DIR", Work().Path("data")});
  o.start_timeout = std::chrono::seconds(30);
  return o;
}

std::unique_ptr<PluginProcess> LaunchOrDie(const LaunchOptions& o) {
  auto p = PluginProcess::Launch(o);
  EXPECT_TRUE(p.ok()) << p.error().ToString();
  return p.ok() ? std::move(p).value() : nullptr;
}

grpc::Status Check(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
                   grpc::health::v1::HealthCheckResponse* response) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  return stub->Check(&ctx, req, response);
}

// Lists services through server reflection (grpc.reflection.v1alpha), decoding with the
// descriptors libgrpc++_reflection registers, as grpcurl would.
std::vector<std::string> ReflectedServices(const std::shared_ptr<grpc::Channel>& channel) {
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  const auto* req_desc =
      pool->FindMessageTypeByName("grpc.reflection.v1alpha.ServerReflectionRequest");
  const auto* resp_desc =
      pool->FindMessageTypeByName("grpc.reflection.v1alpha.ServerReflectionResponse");
  if (req_desc == nullptr || resp_desc == nullptr) return {"<reflection descriptors missing>"};
  google::protobuf::DynamicMessageFactory factory;
  std::unique_ptr<google::protobuf::Message> req(factory.GetPrototype(req_desc)->New());
  req->GetReflection()->SetString(req.get(), req_desc->FindFieldByName("list_services"), "");
  std::string req_bytes = req->SerializeAsString();

  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                               &cq);
  void* tag = nullptr;
  bool ok = false;
  call->StartCall(reinterpret_cast<void*>(1));
  cq.Next(&tag, &ok);
  grpc::Slice slice(req_bytes);
  grpc::ByteBuffer out(&slice, 1);
  call->Write(out, reinterpret_cast<void*>(2));
  cq.Next(&tag, &ok);
  call->WritesDone(reinterpret_cast<void*>(3));
  cq.Next(&tag, &ok);
  grpc::ByteBuffer in;
  call->Read(&in, reinterpret_cast<void*>(4));
  cq.Next(&tag, &ok);
  std::vector<std::string> names;
  if (ok) {
    std::vector<grpc::Slice> slices;
    (void)in.Dump(&slices);
    std::string bytes;
    for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    std::unique_ptr<google::protobuf::Message> resp(factory.GetPrototype(resp_desc)->New());
    resp->ParseFromString(bytes);
    const auto* list_field = resp_desc->FindFieldByName("list_services_response");
    const auto& list = resp->GetReflection()->GetMessage(*resp, list_field);
    const auto* service_field = list.GetDescriptor()->FindFieldByName("service");
    for (int i = 0; i < list.GetReflection()->FieldSize(list, service_field); ++i) {
      const auto& svc = list.GetReflection()->GetRepeatedMessage(list, service_field, i);
      names.push_back(svc.GetReflection()->GetString(svc, svc.GetDescriptor()->FindFieldByName("name")));
    }
  }
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return names;
}

TEST(PluginProcessTest, HandshakeOnUnixSocketHealthReflectionAndInfo) {
  auto p = LaunchOrDie(Options());
  ASSERT_TRUE(p);
  const HandshakeLine& h = p->handshake();
  EXPECT_EQ(h.core_version, 1);
  EXPECT_EQ(h.app_version, 1);
  EXPECT_EQ(h.network, "unix");
  EXPECT_EQ(h.protocol, "grpc");
  EXPECT_TRUE(h.server_cert_der.empty());
  // The socket is private: 0600 in a 0700 directory.
  struct stat st{};
  ASSERT_EQ(::stat(h.address.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string dir = h.address.substr(0, h.address.rfind('/'));
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  for (const std::string service : {"", "plugin"}) {
    grpc::health::v1::HealthCheckResponse resp;
    const grpc::Status s = Check(p->channel(), service, &resp);
    ASSERT_TRUE(s.ok()) << "'" << service << "': " << s.error_message();
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }

  const auto services = ReflectedServices(p->channel());
  EXPECT_THAT(services, Contains("wsstep.v1.StepPluginService"));
  EXPECT_THAT(services, Contains("wsstep.v1.CertificateService"));
  EXPECT_THAT(services, Contains("plugin.GRPCController"));
  EXPECT_THAT(services, Contains("plugin.GRPCStdio"));

  auto stub = v1::StepPluginService::NewStub(p->channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
  v1::GetPluginInfoResponse info;
  ASSERT_TRUE(stub->GetPluginInfo(&ctx, {}, &info).ok());
  EXPECT_EQ(info.name(), "wsstep");
  EXPECT_EQ(info.api_version(), "wsstep.v1");
  ASSERT_EQ(info.step_kinds_size(), 2);
  EXPECT_THAT(info.step_kinds(0).config_schema(), StartsWith("{\"$schema\""));
  EXPECT_THAT(info.capabilities(), Contains("go-plugin"));
  EXPECT_THAT(info.capabilities(), ::testing::Not(Contains("automtls")));
  EXPECT_THAT(info.protected_environments(), Contains("production"));

  // Stop through stdin, then check that the handshake line was all stdout ever had.
  p->CloseStdin();
  EXPECT_EQ(p->Wait(kExitTimeout), 0);
  EXPECT_EQ(p->ReadRestOfStdout(std::chrono::seconds(2)), "");
  EXPECT_NE(::stat(h.address.c_str(), &st), 0) << "socket left behind";
  EXPECT_NE(::stat(dir.c_str(), &st), 0) << "socket directory left behind";
}

TEST(PluginProcessTest, AutoMtlsAcceptsOnlyTheHostsCertificate) {
  LaunchOptions o = Options();
  o.automtls = true;
  o.tcp = true;
  auto p = LaunchOrDie(o);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->handshake().network, "tcp");
  EXPECT_THAT(p->handshake().address, StartsWith("127.0.0.1:"));
  ASSERT_FALSE(p->handshake().server_cert_der.empty());
  auto server_pem = DerToPem(p->handshake().server_cert_der);
  ASSERT_TRUE(server_pem.ok());

  // The host that launched it, presenting the certificate it passed: accepted.
  grpc::health::v1::HealthCheckResponse resp;
  const grpc::Status ok = Check(p->channel(), "plugin", &resp);
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  // Someone else, with a certificate of the same shape: refused.
  auto intruder = GenerateSelfSignedCertificate("wsstep-host", std::chrono::hours(1));
  ASSERT_TRUE(intruder.ok());
  auto bad = grpc::CreateCustomChannel(p->target(), AutoMtlsChannelCredentials(*intruder, *server_pem),
                                       args);
  EXPECT_FALSE(Check(bad, "plugin", &resp).ok());
  // No client certificate at all: refused.
  grpc::SslCredentialsOptions anon;
  anon.pem_root_certs = *server_pem;
  auto none = grpc::CreateCustomChannel(p->target(), grpc::SslCredentials(anon), args);
  EXPECT_FALSE(Check(none, "plugin", &resp).ok());
  // Plaintext: refused.
  auto plain = grpc::CreateChannel(p->target(), grpc::InsecureChannelCredentials());
  EXPECT_FALSE(Check(plain, "plugin", &resp).ok());

  auto stub = v1::StepPluginService::NewStub(p->channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
  v1::GetPluginInfoResponse info;
  ASSERT_TRUE(stub->GetPluginInfo(&ctx, {}, &info).ok());
  EXPECT_THAT(info.capabilities(), Contains("automtls"));

  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(kExitTimeout), 0);
  EXPECT_EQ(p->ReadRestOfStdout(std::chrono::seconds(2)), "");
}

TEST(PluginProcessTest, WithoutTheMagicCookieItExplainsAndExits1WithNothingOnStdout) {
  LaunchOptions o = Options();
  o.set_magic_cookie = false;
  auto p = PluginProcess::Spawn(o);
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  EXPECT_EQ((*p)->Wait(kExitTimeout), 1);
  EXPECT_EQ((*p)->ReadRestOfStdout(std::chrono::seconds(2)), "");
  std::ifstream err(o.stderr_path);
  std::stringstream text;
  text << err.rdbuf();
  EXPECT_THAT(text.str(), HasSubstr("wsstep serve"));
}

TEST(PluginProcessTest, WrongCookieValueIsRefusedToo) {
  LaunchOptions o = Options();
  o.set_magic_cookie = false;
  o.env.push_back({std::string(kMagicCookieKey), "not-the-value"});
  auto p = PluginProcess::Spawn(o);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->Wait(kExitTimeout), 1);
  EXPECT_EQ((*p)->ReadRestOfStdout(std::chrono::seconds(2)), "");
}

TEST(PluginProcessTest, SigtermExitsZero) {
  auto p = LaunchOrDie(Options());
  ASSERT_TRUE(p);
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(kExitTimeout), 0);
}

TEST(PluginProcessTest, SigintIsIgnoredInPluginModeLikeGoPlugin) {
  const LaunchOptions o = Options();
  auto p = LaunchOrDie(o);
  ASSERT_TRUE(p);
  p->Signal(SIGINT);
  // The plugin says when it has received SIGINT and let it pass; only then is "still
  // running" a fact rather than a race.
  EXPECT_TRUE(testing::WaitUntil("the plugin logs that it ignores SIGINT", [&] {
    std::ifstream err(o.stderr_path);
    std::stringstream text;
    text << err.rdbuf();
    return text.str().find("ignoring SIGINT") != std::string::npos;
  }));
  EXPECT_EQ(p->Wait(std::chrono::milliseconds(0)), std::nullopt) << "SIGINT stopped the plugin";
  grpc::health::v1::HealthCheckResponse resp;
  EXPECT_TRUE(Check(p->channel(), "", &resp).ok());
  p->CloseStdin();
  EXPECT_EQ(p->Wait(kExitTimeout), 0);
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// go-plugin passes the host's own stdin through; a host run as `: | host` gives the plugin
// a stdin already at end-of-file. Unless the host asks (WSSTEP_PLUGIN_WATCH_STDIN=true),
// that is not a reason to stop.
TEST(PluginProcessTest, StdinAtEndOfFileDoesNotStopAPluginLaunchedLikeGoPlugin) {
  LaunchOptions o = Options();
  o.stderr_path = Work().Path("stdin-eof.log");
  o.env.push_back({"WSSTEP_PLUGIN_WATCH_STDIN", ""});  // what go-plugin sets: nothing
  auto p = LaunchOrDie(o);
  ASSERT_TRUE(p);
  p->CloseStdin();
  ASSERT_TRUE(testing::WaitUntil("the plugin logs that it serves", [&] {
    return ReadText(o.stderr_path).find("\"serving\"") != std::string::npos;
  }));
  const std::string log = ReadText(o.stderr_path);
  EXPECT_THAT(log, HasSubstr("\"stops_on_stdin_eof\":false"));
  EXPECT_THAT(log, HasSubstr("\"stops_with_parent\":true"));
  // The process, not the thread that forked it (PR_SET_PDEATHSIG's catch): Debian 12's
  // kernel has pidfd_open.
  EXPECT_THAT(log, HasSubstr("\"parent_watch\":\"pidfd\""));
  grpc::health::v1::HealthCheckResponse resp;
  ASSERT_TRUE(Check(p->channel(), "", &resp).ok()) << "stdin EOF stopped the plugin";
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  p->Signal(SIGTERM);
  EXPECT_EQ(p->Wait(kExitTimeout), 0);
  EXPECT_THAT(ReadText(o.stderr_path), HasSubstr("\"reason\":\"SIGTERM\""));
}

// A host killed with SIGKILL (go-plugin's own host crashing, or `kill -9`): its plugin
// must not stay behind serving with parent 1. The host here is a shell that starts the
// plugin in the background, as go-plugin's exec does, and is then killed.
TEST(PluginProcessTest, AHostKilledWithSigkillTakesItsPluginWithItAndNoSocketStays) {
  // Orphans become children of this test process, so the plugin's exit can be reaped.
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  const std::string sockets = Work().Path("orphan-sockets");
  ASSERT_EQ(::mkdir(sockets.c_str(), 0700), 0);
  const std::string handshake = Work().Path("orphan-handshake.txt");
  const std::string pid_file = Work().Path("orphan-pid.txt");
  const std::string log = Work().Path("orphan.log");
  LaunchOptions host = Options();
  host.binary = "/bin/sh";
  host.args = {"-c", "\"$0\" >\"$1\" 2>>\"$2\" & echo $! >\"$3\"; wait", WSSTEP_BINARY,
               handshake, log, pid_file};
  host.env.push_back({"PLUGIN_UNIX_SOCKET_DIR", sockets});
  host.env.push_back({"WSSTEP_PLUGIN_WATCH_STDIN", ""});
  auto sh = PluginProcess::Spawn(host);
  ASSERT_TRUE(sh.ok()) << sh.error().ToString();
  ASSERT_TRUE(testing::WaitUntil("the plugin prints its handshake line", [&] {
    return ReadText(handshake).find('\n') != std::string::npos && !ReadText(pid_file).empty();
  }));
  const pid_t plugin = static_cast<pid_t>(std::stol(ReadText(pid_file)));
  auto line = ParseHandshakeLine(ReadText(handshake));
  ASSERT_TRUE(line.ok()) << line.error().ToString();
  struct stat st{};
  ASSERT_EQ(::stat(line->address.c_str(), &st), 0) << "no socket at " << line->address;

  (*sh)->Signal(SIGKILL);
  EXPECT_EQ((*sh)->Wait(kExitTimeout), 128 + SIGKILL);
  int status = -1;
  const bool exited = testing::WaitUntil("the orphaned plugin exits", [&] {
    return ::waitpid(plugin, &status, WNOHANG) == plugin;
  });
  if (!exited) {  // never leave it running
    ::kill(plugin, SIGKILL);
    ::waitpid(plugin, &status, 0);
  }
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
  ASSERT_TRUE(exited) << "the plugin outlived its host";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  EXPECT_THAT(ReadText(log), HasSubstr("\"reason\":\"parent exited\""));
  EXPECT_NE(::stat(line->address.c_str(), &st), 0) << "socket left behind";
  EXPECT_TRUE(std::filesystem::is_empty(sockets)) << "socket directory left behind";
}

// What a SIGKILLed plugin leaves (its socket directory) is removed by the next one.
TEST(PluginProcessTest, ASocketDirectoryLeftByAKilledPluginIsRemovedByTheNextOne) {
  const std::string sockets = Work().Path("sweep-sockets");
  ASSERT_EQ(::mkdir(sockets.c_str(), 0700), 0);
  LaunchOptions o = Options();
  o.env.push_back({"PLUGIN_UNIX_SOCKET_DIR", sockets});
  o.stderr_path = Work().Path("sweep.log");
  std::string left;
  {
    auto first = LaunchOrDie(o);
    ASSERT_TRUE(first);
    left = first->handshake().address;
    first->Signal(SIGKILL);
    EXPECT_EQ(first->Wait(kExitTimeout), 128 + SIGKILL);
  }
  const std::string left_dir = left.substr(0, left.rfind('/'));
  struct stat st{};
  ASSERT_EQ(::stat(left.c_str(), &st), 0) << "SIGKILL left nothing to sweep";
  // Killed a while ago: the sweep leaves directories changed in the last seconds alone.
  timespec old[2];
  ::clock_gettime(CLOCK_REALTIME, &old[0]);
  old[0].tv_sec -= 60;
  old[1] = old[0];
  ASSERT_EQ(::utimensat(AT_FDCWD, left.c_str(), old, AT_SYMLINK_NOFOLLOW), 0);
  ASSERT_EQ(::utimensat(AT_FDCWD, left_dir.c_str(), old, AT_SYMLINK_NOFOLLOW), 0);

  auto second = LaunchOrDie(o);
  ASSERT_TRUE(second);
  EXPECT_NE(::stat(left_dir.c_str(), &st), 0) << left_dir << " is still there";
  EXPECT_THAT(ReadText(o.stderr_path), HasSubstr(left_dir));
  second->Signal(SIGTERM);
  EXPECT_EQ(second->Wait(kExitTimeout), 0);
  EXPECT_TRUE(std::filesystem::is_empty(sockets));
}

// Newer go-plugin hosts open GRPCStdio.StreamStdio when they connect (and warn when it
// is UNIMPLEMENTED). The stream carries nothing (stdout holds only the handshake, the log
// is on stderr) and ends OK when the plugin stops, without holding up the stop.
TEST(PluginProcessTest, GoPluginStdioStreamStaysOpenAndEndsOkWhenThePluginStops) {
  auto p = LaunchOrDie(Options());
  ASSERT_TRUE(p);
  auto stdio = ::plugin::GRPCStdio::NewStub(p->channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  google::protobuf::Empty empty;
  auto reader = stdio->StreamStdio(&ctx, empty);
  reader->WaitForInitialMetadata();  // the plugin sends it when the stream is open
  p->Signal(SIGTERM);
  ::plugin::StdioData data;
  int messages = 0;
  while (reader->Read(&data)) ++messages;
  const grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  EXPECT_EQ(messages, 0);
  EXPECT_EQ(p->Wait(kExitTimeout), 0);
}

TEST(PluginProcessTest, GoPluginControllerShutdownExitsZero) {
  auto p = LaunchOrDie(Options());
  ASSERT_TRUE(p);
  auto controller = ::plugin::GRPCController::NewStub(p->channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
  ::plugin::Empty empty;
  EXPECT_TRUE(controller->Shutdown(&ctx, empty, &empty).ok());
  EXPECT_EQ(p->Wait(kExitTimeout), 0);
}

TEST(PluginProcessTest, ServeRefusesANonLoopbackAddress) {
  LaunchOptions o = Options();
  o.set_magic_cookie = false;
  o.args = {"serve", "--listen", "0.0.0.0:0"};
  auto p = PluginProcess::Spawn(o);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->Wait(kExitTimeout), 1);
}

// Runs docs/examples/python_host/host.py against the binary with `args`; its JSON report
// (stdout), or a test failure.
std::string RunPythonHost(const std::string& args) {
  const std::string out = Work().Path("python-host");
  const std::string cmd = std::string("/usr/bin/python3 ") + WSSTEP_PYTHON_HOST + " --plugin " +
                          WSSTEP_BINARY + " --proto-dir " + WSSTEP_PROTO_DIR + " --json " + args +
                          " > " + out + ".out 2> " + out + ".err";
  const int rc = std::system(cmd.c_str());
  std::ifstream o(out + ".out"), e(out + ".err");
  std::stringstream so, se;
  so << o.rdbuf();
  se << e.rdbuf();
  EXPECT_EQ(rc, 0) << "stdout:\n" << so.str() << "\nstderr:\n" << se.str();
  return so.str();
}

TEST(PluginProcessTest, PythonExampleHostRunsAgainstTheBinary) {
  if (::access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/python3";
  const std::string out = RunPythonHost("");
  EXPECT_THAT(out, HasSubstr("\"health\": {\"\": \"SERVING\", \"plugin\": \"SERVING\"}"));
  EXPECT_THAT(out, HasSubstr("\"name\": \"wsstep\""));
  EXPECT_THAT(out, HasSubstr("\"exit_code\": 0"));
}

TEST(PluginProcessTest, PythonExampleHostGetsTheSameOutcomeUnaryAndOnAStream) {
  if (::access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "no /usr/bin/python3";
  // Nothing is bound to localhost:9 in the host's fresh store: the outcome is
  // CERTIFICATE_NOT_FOUND, from ExecuteRestStep and for each of three stream calls.
  const std::string out = RunPythonHost("--step-url https://localhost:9/ping");
  EXPECT_THAT(out, HasSubstr("\"step\": {\"error\": \"CERTIFICATE_NOT_FOUND\""));
  EXPECT_THAT(out, HasSubstr("\"stream_steps\": [{\"call_id\": 1, \"error\": \"CERTIFICATE_NOT_FOUND\"}, "
                             "{\"call_id\": 2, \"error\": \"CERTIFICATE_NOT_FOUND\"}, "
                             "{\"call_id\": 3, \"error\": \"CERTIFICATE_NOT_FOUND\"}]"));
  EXPECT_THAT(out, HasSubstr("\"exit_code\": 0"));
}

}  // namespace
}  // namespace wsstep::plugin

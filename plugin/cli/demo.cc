#include "plugin/cli/demo.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "plugin/cli/client.h"
#include "plugin/cli/host_launcher.h"
#include "wsstep/v1/certificate_service.grpc.pb.h"
#include "wsstep/v1/step_plugin_service.grpc.pb.h"

namespace wsstep::plugin {
namespace {

namespace fs = std::filesystem;

// Runs a tool with its output appended to `log`; true if it exited 0.
bool Run(const std::vector<std::string>& argv, const std::string& log) {
  const pid_t pid = ::fork();
  if (pid < 0) return false;
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

uint16_t FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

bool Accepts(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// Everything the demo starts, stopped and removed on every way out.
struct Scene {
  std::string dir;
  pid_t nginx = -1;
  std::unique_ptr<PluginProcess> plugin;

  ~Scene() {
    if (plugin) {
      plugin->CloseStdin();
      plugin->Wait(std::chrono::seconds(10));
      plugin.reset();
    }
    if (nginx > 0) {
      ::kill(nginx, SIGQUIT);
      for (int i = 0; i < 50; ++i) {
        if (::waitpid(nginx, nullptr, WNOHANG) == nginx) {
          nginx = -1;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (nginx > 0) {
        ::kill(nginx, SIGKILL);
        ::waitpid(nginx, nullptr, 0);
      }
    }
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }
};

bool MakePki(const std::string& d, const std::string& log) {
  const std::string ec = "ec_paramgen_curve:P-256";
  auto leaf = [&](const std::string& name, const std::string& cn, const std::string& ext) {
    WriteText(d + "/" + name + ".ext", ext);
    return Run({"openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", ec, "-nodes", "-keyout",
                d + "/" + name + ".key", "-out", d + "/" + name + ".csr", "-subj", "/CN=" + cn},
               log) &&
           Run({"openssl", "x509", "-req", "-in", d + "/" + name + ".csr", "-CA", d + "/ca.pem",
                "-CAkey", d + "/ca.key", "-CAcreateserial", "-days", "2", "-out",
                d + "/" + name + ".pem", "-extfile", d + "/" + name + ".ext"},
               log);
  };
  return Run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", ec, "-nodes", "-keyout",
              d + "/ca.key", "-out", d + "/ca.pem", "-days", "2", "-subj",
              "/CN=wsstep demo CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
              "keyUsage=critical,keyCertSign,cRLSign"},
             log) &&
         leaf("server", "localhost",
              "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n") &&
         leaf("client", "wsstep demo client", "extendedKeyUsage=clientAuth\n") &&
         Run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", ec, "-nodes", "-keyout",
              d + "/self.key", "-out", d + "/self.pem", "-days", "2", "-subj", "/CN=localhost",
              "-addext", "subjectAltName=DNS:localhost"},
             log);
}

pid_t StartNginx(const std::string& d, uint16_t good, uint16_t bad, std::string* error) {
  std::ostringstream c;
  c << "daemon off;\nmaster_process on;\nworker_processes 1;\n";
  if (::geteuid() == 0) c << "user root root;\n";  // workers must read the 0700 temp dir
  c << "pid " << d << "/nginx.pid;\nerror_log " << d << "/error.log;\n"
    << "events { worker_connections 64; }\nhttp {\n  access_log off;\n";
  for (const char* t : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"}) {
    c << "  " << t << "_temp_path " << d << "/" << t << ";\n";
  }
  c << "  default_type text/plain;\n"
    << "  server {\n    listen 127.0.0.1:" << good << " ssl;\n"
    << "    ssl_certificate " << d << "/server.pem;\n    ssl_certificate_key " << d
    << "/server.key;\n    ssl_client_certificate " << d << "/ca.pem;\n"
    << "    ssl_verify_client on;\n"
    << "    location / { return 200 \"hello $ssl_client_s_dn, nginx verified your "
       "certificate: $ssl_client_verify\\n\"; }\n  }\n"
    << "  server {\n    listen 127.0.0.1:" << bad << " ssl;\n"
    << "    ssl_certificate " << d << "/self.pem;\n    ssl_certificate_key " << d
    << "/self.key;\n    location / { return 200 \"unreachable\\n\"; }\n  }\n}\n";
  WriteText(d + "/nginx.conf", c.str());
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open((d + "/nginx.out").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    const std::string prefix = d + "/", conf = d + "/nginx.conf", err = d + "/error.log";
    ::execl("/usr/sbin/nginx", "nginx", "-p", prefix.c_str(), "-c", conf.c_str(), "-e",
            err.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  for (int i = 0; i < 100; ++i) {
    if (Accepts(good) && Accepts(bad)) return pid;
    if (::waitpid(pid, nullptr, WNOHANG) == pid) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  *error = "nginx did not start: " + ReadText(d + "/error.log") + ReadText(d + "/nginx.out");
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return -1;
}

grpc::Status Import(v1::CertificateService::Stub& stub, const std::string& name,
                    v1::CertificateType type, const std::string& content, const std::string& key,
                    const std::vector<uint16_t>& ports, v1::Certificate* out) {
  v1::CreateCertificateRequest req;
  req.mutable_certificate()->set_name(name);
  req.mutable_certificate()->set_type(type);
  for (uint16_t p : ports) {
    auto* b = req.mutable_certificate()->add_bindings();
    b->set_host("localhost");
    b->set_port(p);
  }
  req.mutable_material()->set_content(content);
  req.mutable_material()->set_private_key(key);
  grpc::ClientContext ctx;
  ctx.AddMetadata("x-wsstep-actor", "wsstep-demo");
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  v1::CreateCertificateResponse resp;
  grpc::Status s = stub.CreateCertificate(&ctx, req, &resp);
  *out = resp.certificate();
  return s;
}

v1::StepOutcome Call(v1::StepPluginService::Stub& stub, const std::string& url,
                     const std::string& step_id, grpc::Status* status) {
  v1::ExecuteRestStepRequest req;
  req.mutable_step()->set_url(url);
  req.mutable_step()->mutable_tls()->set_ssl_verification(true);
  grpc::ClientContext ctx;
  ctx.AddMetadata("x-wsstep-step-id", step_id);
  ctx.AddMetadata("x-wsstep-workflow-id", "demo");
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  v1::ExecuteRestStepResponse resp;
  *status = stub.ExecuteRestStep(&ctx, req, &resp);
  return resp.outcome();
}

}  // namespace

int RunDemo(const std::string& self, bool json) {
  // With --json, the narrative goes to stderr and stdout holds one JSON document: the
  // two steps' outcomes and the verdict.
  std::ostream& say = json ? std::cerr : std::cout;
  Scene scene;
  char tmpl[] = "/tmp/wsstep-demo-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    std::cerr << "demo: cannot create a temporary directory\n";
    return 1;
  }
  scene.dir = tmpl;
  const std::string& d = scene.dir;
  const std::string log = d + "/tools.log";

  say << "1. Making a throwaway PKI in " << d << " (openssl): a CA, a server "
            << "certificate for localhost, a client certificate, a self-signed server\n";
  if (!MakePki(d, log)) {
    std::cerr << "demo: openssl failed:\n" << ReadText(log);
    return 1;
  }

  const uint16_t good = FreePort(), bad = FreePort();
  say << "2. Starting nginx: https://localhost:" << good
            << " requires a client certificate from the CA (ssl_verify_client on); "
            << "https://localhost:" << bad << " has a self-signed certificate\n";
  std::string error;
  scene.nginx = StartNginx(d, good, bad, &error);
  if (scene.nginx < 0) {
    std::cerr << "demo: " << error << "\n";
    return 1;
  }

  say << "3. Launching " << self << " as a workflow host would (go-plugin handshake, "
            << "AutoMTLS)\n";
  LaunchOptions launch;
  launch.binary = self;
  launch.automtls = true;
  launch.stderr_path = d + "/plugin.log";
  launch.env.push_back({"WSSTEP_DATA_DIR", d + "/data"});
  auto plugin = PluginProcess::Launch(launch);
  if (!plugin.ok()) {
    std::cerr << "demo: " << plugin.error().message << "\n" << ReadText(d + "/plugin.log");
    return 1;
  }
  scene.plugin = std::move(plugin).value();
  auto certs = v1::CertificateService::NewStub(scene.plugin->channel());
  auto steps = v1::StepPluginService::NewStub(scene.plugin->channel());

  say << "4. Importing over the API: the client certificate + key (KEY_PAIR) and the "
            << "CA (TRUST_STORE), bound to localhost:" << good << " and localhost:" << bad
            << "\n";
  v1::Certificate client, ca;
  grpc::Status s = Import(*certs, "demo-client", v1::CERTIFICATE_TYPE_KEY_PAIR,
                          ReadText(d + "/client.pem"), ReadText(d + "/client.key"), {good, bad},
                          &client);
  if (s.ok()) {
    s = Import(*certs, "demo-ca", v1::CERTIFICATE_TYPE_TRUST_STORE, ReadText(d + "/ca.pem"), "",
               {good, bad}, &ca);
  }
  if (!s.ok()) {
    std::cerr << "demo: import failed: " << s.error_message() << "\n";
    return 1;
  }
  say << "   imported '" << client.name() << "' (" << client.certificate().subject()
            << ", SHA-256 " << client.certificate().sha256_fingerprint().substr(0, 23)
            << "...) and '" << ca.name() << "'\n";

  int rc = 0;
  say << "5. REST step: GET https://localhost:" << good
            << "/ with SSL certificate verification on\n";
  v1::StepOutcome ok = Call(*steps, "https://localhost:" + std::to_string(good) + "/", "demo-ok", &s);
  if (!s.ok() || !ok.has_http() || ok.http().status() != 200) {
    say << "   FAILED: " << (s.ok() ? ok.error().code() + ": " + ok.error().message()
                                          : s.error_message())
              << "\n";
    rc = 1;
  } else {
    say << "   HTTP " << ok.http().status() << ", body: " << ok.http().body()
              << "   presented client certificate: '" << ok.tls().client_certificate().name()
              << "' (" << ok.tls().client_certificate().sha256_fingerprint().substr(0, 23)
              << "...)\n   protocol " << ok.tls().protocol() << ", cipher "
              << ok.tls().cipher() << ", server " << ok.tls().server_certificate().subject()
              << "\n";
  }

  say << "6. REST step: GET https://localhost:" << bad
            << "/ (self-signed server certificate)\n";
  v1::StepOutcome fail =
      Call(*steps, "https://localhost:" + std::to_string(bad) + "/", "demo-untrusted", &s);
  if (!s.ok() || !fail.has_error()) {
    say << "   UNEXPECTED: " << (s.ok() ? "the step succeeded" : s.error_message()) << "\n";
    rc = 1;
  } else {
    say << "   code:    " << fail.error().code() << "\n   message: "
              << fail.error().message() << "\n   hint:    " << fail.error().hint() << "\n";
    if (fail.error().code() != "SERVER_CERT_UNTRUSTED") rc = 1;
  }
  say << "7. Cleaning up (plugin, nginx, " << d << ")\n";
  say << (rc == 0 ? "demo: OK\n" : "demo: FAILED\n");
  if (json) {
    nlohmann::ordered_json j;
    j["result"] = rc == 0 ? "OK" : "FAILED";
    j["mtlsStep"] = nlohmann::ordered_json::parse(ToJson(ok), nullptr, false);
    j["untrustedStep"] = nlohmann::ordered_json::parse(ToJson(fail), nullptr, false);
    std::cout << j.dump(2) << std::endl;
  }
  return rc;
}

}  // namespace wsstep::plugin

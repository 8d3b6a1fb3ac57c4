#include "tests/support/tinyproxy.h"

#include <signal.h>

#include <chrono>
#include <fstream>
#include <iterator>

#include "tests/support/nginx.h"
#include "tests/support/pki.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace wsstep::testing {

namespace {

std::string ReadIfThere(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

TinyproxyServer::TinyproxyServer(TinyproxyConfig config) : config_(std::move(config)) {}

TinyproxyServer::~TinyproxyServer() { Stop(); }

std::string TinyproxyServer::url() const { return "http://127.0.0.1:" + std::to_string(port_); }

bool TinyproxyServer::Start() {
  for (int attempt = 0; attempt < 3; ++attempt) {
    Stop();
    dir_ = std::make_unique<TempDir>("wsstep-tinyproxy-");
    port_ = PickFreeLoopbackPort();
    if (port_ == 0) {
      start_error_ = "no free loopback port";
      return false;
    }
    std::string conf = "Port " + std::to_string(port_) +
                       "\nListen 127.0.0.1\nTimeout 30\nMaxClients 100\n"
                       "LogFile \"" +
                       dir_->Path("tinyproxy.log") +
                       "\"\nLogLevel Info\n"
                       "PidFile \"" +
                       dir_->Path("tinyproxy.pid") +
                       "\"\n"
                       "Allow 127.0.0.1\nDisableViaHeader Yes\n";
    for (const auto& [user, password] : config_.basic_auth) {
      conf += "BasicAuth " + user + " " + password + "\n";
    }
    for (uint16_t p : config_.connect_ports) conf += "ConnectPort " + std::to_string(p) + "\n";
    WriteFile(dir_->Path("tinyproxy.conf"), conf);
    process_ = std::make_unique<ChildProcess>();
    if (!process_->Start({config_.binary, "-d", "-c", dir_->Path("tinyproxy.conf")},
                         dir_->Path("tinyproxy.out"))) {
      start_error_ = process_->error();
      return false;
    }
    bool accepting = false;
    (void)WaitUntil("tinyproxy accepts connections", [&] {
      if (!process_->Running()) return true;
      accepting = LoopbackPortAccepts(port_);
      return accepting;
    });
    if (accepting) return true;
    start_error_ =
        "tinyproxy did not come up:\n" + Log() + ReadIfThere(dir_->Path("tinyproxy.out"));
    if (start_error_.find("Address already in use") == std::string::npos) return false;
  }
  return false;
}

void TinyproxyServer::Stop() {
  if (process_) process_->Stop(SIGTERM, std::chrono::seconds(5));
  process_.reset();
}

std::string TinyproxyServer::Log() const {
  return dir_ ? ReadIfThere(dir_->Path("tinyproxy.log")) : std::string();
}

int TinyproxyServer::ConnectRequests(const std::string& host, uint16_t port) const {
  const std::string needle = "CONNECT " + host + ":" + std::to_string(port) + " ";
  const std::string log = Log();
  int n = 0;
  for (size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace wsstep::testing

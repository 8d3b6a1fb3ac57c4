#include "tests/support/openssl_server.h"

#include <csignal>
#include <fstream>
#include <sstream>

#include "tests/support/pki.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace wsstep::testing {

OpenSslServer::OpenSslServer(std::vector<std::string> args) : args_(std::move(args)) {}

OpenSslServer::~OpenSslServer() { Stop(); }

std::string OpenSslServer::Output() const {
  if (!dir_) return "";
  std::ifstream in(dir_->Path("s_server.log"));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool OpenSslServer::Start() {
  dir_ = std::make_unique<TempDir>("wsstep-s_server-");
  process_ = std::make_unique<ChildProcess>();
  std::vector<std::string> argv = {"openssl", "s_server", "-accept", "127.0.0.1:0"};
  argv.insert(argv.end(), args_.begin(), args_.end());
  if (!process_->Start(argv, dir_->Path("s_server.log"))) {
    error_ = "openssl s_server: " + process_->error();
    return false;
  }
  constexpr std::string_view kAccept = "ACCEPT 127.0.0.1:";
  bool exited = false;
  auto listening = WaitUntil("openssl s_server prints its ACCEPT line", [&] {
    if (!process_->Running()) {
      exited = true;
      return true;
    }
    const std::string out = Output();
    const size_t at = out.find(kAccept);
    if (at == std::string::npos || out.find('\n', at) == std::string::npos) return false;
    port_ = static_cast<uint16_t>(std::stoi(out.substr(at + kAccept.size())));
    return true;
  });
  if (!listening || exited || port_ == 0) {
    error_ = "openssl s_server did not start listening: " + Output();
    Stop();
    return false;
  }
  return true;
}

void OpenSslServer::Stop() {
  if (process_) process_->Stop(SIGTERM, std::chrono::seconds(5));
  process_.reset();
  dir_.reset();
}

}  // namespace wsstep::testing

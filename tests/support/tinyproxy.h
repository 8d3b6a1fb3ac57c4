// TinyproxyServer: a real HTTP proxy (Debian's /usr/bin/tinyproxy) on a loopback
// ephemeral port, for tests of steps that go through an explicit proxy with CONNECT.
//
//   TinyproxyConfig config;
//   config.basic_auth = {{"alice", "s3cret"}};   // 407 without these credentials
//   config.connect_ports = {nginx.port()};      // CONNECT elsewhere: 403
//   TinyproxyServer proxy(config);
//   ASSERT_TRUE(proxy.Start()) << proxy.start_error();
//   ... a step with proxy.url = proxy.url() ...
//   EXPECT_EQ(proxy.ConnectRequests("localhost", nginx.port()), 1);
//
// Its configuration, pid file and log live in a private temporary directory removed on
// destruction; tinyproxy runs in the foreground as a child of the test and is stopped
// (SIGTERM, then SIGKILL) by Stop() or the destructor.
#ifndef WSSTEP_TESTS_SUPPORT_TINYPROXY_H_
#define WSSTEP_TESTS_SUPPORT_TINYPROXY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace wsstep::testing {

class ChildProcess;
class TempDir;

struct TinyproxyConfig {
  // BasicAuth user password lines: with any, a request without them gets 407.
  std::vector<std::pair<std::string, std::string>> basic_auth;
  // ConnectPort lines: CONNECT to another port is refused (403). Empty: any port.
  std::vector<uint16_t> connect_ports;
  std::string binary = "/usr/bin/tinyproxy";
};

class TinyproxyServer {
 public:
  explicit TinyproxyServer(TinyproxyConfig config = {});
  ~TinyproxyServer();  // Stop()
  TinyproxyServer(const TinyproxyServer&) = delete;
  TinyproxyServer& operator=(const TinyproxyServer&) = delete;

  // Writes the configuration, starts tinyproxy and waits until it accepts connections.
  // False (see start_error(), with its log) if it does not come up.
  bool Start();
  const std::string& start_error() const { return start_error_; }
  void Stop();  // idempotent

  uint16_t port() const { return port_; }
  std::string url() const;  // "http://127.0.0.1:PORT"

  // Its log so far (tinyproxy logs each CONNECT request line).
  std::string Log() const;
  // How many "CONNECT host:port" requests it has logged.
  int ConnectRequests(const std::string& host, uint16_t port) const;

 private:
  TinyproxyConfig config_;
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<ChildProcess> process_;
  uint16_t port_ = 0;
  std::string start_error_;
};

}  // namespace wsstep::testing

#endif  // WSSTEP_TESTS_SUPPORT_TINYPROXY_H_

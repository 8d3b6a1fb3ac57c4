// OpenSslServer: the real `openssl s_server` command on 127.0.0.1 with an ephemeral
// port, for tests that must meet a peer wsstep's own code did not write: its alerts, its
// TLS 1.3 ticket and rejection timing, its `-www` status page (answered to GET only).
//
//   OpenSslServer server({"-cert", PkiPath("server/localhost.pem"),
//                         "-cert_chain", PkiPath("ca/intermediate.pem"),
//                         "-key", PkiPath("server/localhost.key.pem"),
//                         "-Verify", "2", "-www"});
//   ASSERT_TRUE(server.Start()) << server.start_error();
//   ... connect to 127.0.0.1:server.port() ...
//
// s_server runs as a child of the test in its own process group, its output in a private
// temporary directory; Stop() (also run by the destructor) stops it and removes the
// directory.
#ifndef WSSTEP_TESTS_SUPPORT_OPENSSL_SERVER_H_
#define WSSTEP_TESTS_SUPPORT_OPENSSL_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace wsstep::testing {

class ChildProcess;
class TempDir;

class OpenSslServer {
 public:
  // `args`: s_server arguments after "-accept 127.0.0.1:0" (certificate, key, -Verify,
  // -www, -verify_return_error, -tls1_2 ...).
  explicit OpenSslServer(std::vector<std::string> args);
  ~OpenSslServer();
  OpenSslServer(const OpenSslServer&) = delete;
  OpenSslServer& operator=(const OpenSslServer&) = delete;

  // Starts s_server and waits for its "ACCEPT 127.0.0.1:PORT" line. False (see
  // start_error()) if it exits or never listens.
  bool Start();
  const std::string& start_error() const { return error_; }
  uint16_t port() const { return port_; }
  // Everything s_server printed so far (for failure messages).
  std::string Output() const;
  void Stop();

 private:
  std::vector<std::string> args_;
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<ChildProcess> process_;
  uint16_t port_ = 0;
  std::string error_;
};

}  // namespace wsstep::testing

#endif  // WSSTEP_TESTS_SUPPORT_OPENSSL_SERVER_H_

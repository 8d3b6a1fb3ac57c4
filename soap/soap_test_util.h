// Test helpers for soap/ suites: a Python service of soap/testdata behind a real nginx that
// requires a client certificate (ssl_verify_client on) and proxies plain HTTP to it, with
// a RestEngine to call it. Loopback only; stopped when destroyed.
//
//   static ServiceBehindNginx* env_ = new ServiceBehindNginx("signature_service.py", {"/signed"});
//   ASSERT_TRUE(env_->error.empty()) << env_->error;
//   env_->nginx->base_url() + "/signed"
#ifndef WSSTEP_SOAP_SOAP_TEST_UTIL_H_
#define WSSTEP_SOAP_SOAP_TEST_UTIL_H_

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "rest/engine.h"
#include "tests/support/nginx.h"
#include "tests/support/pki.h"
#include "tests/support/process.h"

namespace wsstep::soap::testutil {

inline std::string SourceDir() {
  const char* env = std::getenv("WSSTEP_SOURCE_DIR");
  return env != nullptr && *env != '\0' ? env : WSSTEP_SOURCE_DIR;
}

struct ServiceBehindNginx {
  ServiceBehindNginx(const std::string& script, const std::vector<std::string>& paths)
      : dir(std::make_unique<testing::TempDir>("soap-service-")),
        service(std::make_unique<testing::ChildProcess>()) {
    const uint16_t port = testing::StartWithPortFile(
        *service, {"/usr/bin/python3", SourceDir() + "/soap/testdata/" + script}, dir->Path("port"),
        dir->Path("service.log"), &error);
    if (port == 0) return;
    testing::NginxConfig config;
    config.verify_client = testing::NginxVerifyClient::kOn;
    for (const auto& path : paths) config.proxy_routes.emplace_back(path, port);
    nginx = std::make_unique<testing::NginxServer>(config);
    if (!nginx->Start()) {
      error = "nginx did not start: " + nginx->start_error();
      return;
    }
    engine = std::make_unique<rest::RestEngine>();
  }
  ~ServiceBehindNginx() {
    engine.reset();
    nginx.reset();  // stops nginx
    if (service) service->Stop();
  }

  std::unique_ptr<testing::TempDir> dir;
  std::unique_ptr<testing::ChildProcess> service;
  std::unique_ptr<testing::NginxServer> nginx;
  std::unique_ptr<rest::RestEngine> engine;
  std::string error;  // empty when everything is up
};

}  // namespace wsstep::soap::testutil

#endif  // WSSTEP_SOAP_SOAP_TEST_UTIL_H_

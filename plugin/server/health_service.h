// grpc.health.v1.Health on gRPC's synchronous API (gRPC's built-in service uses the
// callback API, whose threads also poll the plugin's sockets and cost every step extra
// thread switches: plugin/server/step_service.h).
//
//   HealthService health;
//   health.Set("", true);                      // what Check("") answers
//   builder.RegisterService(&health);
//   ...
//   health.Shutdown();                         // NOT_SERVING everywhere, for good
//
// Check answers SERVING / NOT_SERVING for a known service name and NOT_FOUND otherwise.
// Watch sends the current status (SERVICE_UNKNOWN for an unknown name) and every change,
// until the client cancels or the server shuts down.
#ifndef WSSTEP_PLUGIN_SERVER_HEALTH_SERVICE_H_
#define WSSTEP_PLUGIN_SERVER_HEALTH_SERVICE_H_

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>

#include "grpc/health/v1/health.grpc.pb.h"

namespace wsstep::plugin {

class HealthService final : public grpc::health::v1::Health::Service {
 public:
  // Ignored after Shutdown.
  void Set(const std::string& service, bool serving);
  // Every known service turns NOT_SERVING; open Watch streams send it and end.
  void Shutdown();

  grpc::Status Check(grpc::ServerContext* context,
                     const grpc::health::v1::HealthCheckRequest* request,
                     grpc::health::v1::HealthCheckResponse* response) override;
  grpc::Status Watch(grpc::ServerContext* context,
                     const grpc::health::v1::HealthCheckRequest* request,
                     grpc::ServerWriter<grpc::health::v1::HealthCheckResponse>* writer) override;

 private:
  using ServingStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;
  ServingStatus StatusLocked(const std::string& service) const;

  std::mutex mu_;
  std::condition_variable changed_;
  std::map<std::string, bool> serving_;
  uint64_t generation_ = 0;  // bumped on every change
  bool shut_down_ = false;
};

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_SERVER_HEALTH_SERVICE_H_

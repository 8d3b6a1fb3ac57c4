#include "plugin/server/health_service.h"

#include <chrono>

namespace wsstep::plugin {

using grpc::health::v1::HealthCheckResponse;

void HealthService::Set(const std::string& service, bool serving) {
  std::lock_guard<std::mutex> lock(mu_);
  if (shut_down_) return;
  serving_[service] = serving;
  ++generation_;
  changed_.notify_all();
}

void HealthService::Shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  if (shut_down_) return;
  shut_down_ = true;
  for (auto& [name, serving] : serving_) serving = false;
  ++generation_;
  changed_.notify_all();
}

HealthService::ServingStatus HealthService::StatusLocked(const std::string& service) const {
  auto it = serving_.find(service);
  if (it == serving_.end()) return HealthCheckResponse::SERVICE_UNKNOWN;
  return it->second ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
}

grpc::Status HealthService::Check(grpc::ServerContext* /*context*/,
                                  const grpc::health::v1::HealthCheckRequest* request,
                                  HealthCheckResponse* response) {
  std::lock_guard<std::mutex> lock(mu_);
  const ServingStatus status = StatusLocked(request->service());
  if (status == HealthCheckResponse::SERVICE_UNKNOWN) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        "unknown service \"" + request->service() + "\"");
  }
  response->set_status(status);
  return grpc::Status::OK;
}

grpc::Status HealthService::Watch(grpc::ServerContext* context,
                                  const grpc::health::v1::HealthCheckRequest* request,
                                  grpc::ServerWriter<HealthCheckResponse>* writer) {
  std::unique_lock<std::mutex> lock(mu_);
  uint64_t sent_generation = 0;
  ServingStatus sent = HealthCheckResponse::UNKNOWN;
  bool first = true;
  for (;;) {
    const ServingStatus now = StatusLocked(request->service());
    if (first || now != sent) {
      HealthCheckResponse response;
      response.set_status(now);
      lock.unlock();
      if (!writer->Write(response)) return grpc::Status::CANCELLED;
      lock.lock();
      sent = now;
      first = false;
    }
    // A change during the write (the shutdown's NOT_SERVING, say) is sent before ending.
    if (StatusLocked(request->service()) != sent) continue;
    if (shut_down_) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the plugin is shutting down");
    }
    sent_generation = generation_;
    // A cancelled client is noticed within this interval; changes wake the wait at once.
    changed_.wait_for(lock, std::chrono::milliseconds(200),
                      [&] { return generation_ != sent_generation; });
    if (context->IsCancelled()) return grpc::Status::CANCELLED;
  }
}

}  // namespace wsstep::plugin

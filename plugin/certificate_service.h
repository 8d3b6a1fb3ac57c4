// wsstep.v1.CertificateService over gRPC's callback API. Every unary call runs its
// backend method on the worker pool (store calls may block on SQLite or PBKDF2), maps
// contract errors through status_map.h and logs the call. WatchEvents streams events
// from the backend until the client cancels or the plugin stops.
//
// Without a CertificateBackend every method answers UNIMPLEMENTED.
#ifndef WSSTEP_PLUGIN_CERTIFICATE_SERVICE_H_
#define WSSTEP_PLUGIN_CERTIFICATE_SERVICE_H_

#include <atomic>
#include <memory>

#include "plugin/backends.h"
#include "plugin/worker_pool.h"
#include "wsstep/v1/certificate_service.grpc.pb.h"

namespace wsstep::plugin {

class CertificateServiceImpl final : public v1::CertificateService::CallbackService {
 public:
  // `pool` runs the blocking backend calls; it must outlive the server's shutdown.
  CertificateServiceImpl(std::shared_ptr<CertificateBackend> backend, WorkerPool* pool);

  grpc::ServerUnaryReactor* CreateCertificate(grpc::CallbackServerContext* context,
                                              const v1::CreateCertificateRequest* request,
                                              v1::CreateCertificateResponse* response) override;
  grpc::ServerUnaryReactor* GetCertificate(grpc::CallbackServerContext* context,
                                           const v1::GetCertificateRequest* request,
                                           v1::GetCertificateResponse* response) override;
  grpc::ServerUnaryReactor* ListCertificates(grpc::CallbackServerContext* context,
                                             const v1::ListCertificatesRequest* request,
                                             v1::ListCertificatesResponse* response) override;
  grpc::ServerUnaryReactor* UpdateCertificate(grpc::CallbackServerContext* context,
                                              const v1::UpdateCertificateRequest* request,
                                              v1::UpdateCertificateResponse* response) override;
  grpc::ServerUnaryReactor* DeleteCertificate(grpc::CallbackServerContext* context,
                                              const v1::DeleteCertificateRequest* request,
                                              v1::DeleteCertificateResponse* response) override;
  grpc::ServerUnaryReactor* ResolveCertificate(grpc::CallbackServerContext* context,
                                               const v1::ResolveCertificateRequest* request,
                                               v1::ResolveCertificateResponse* response) override;
  grpc::ServerUnaryReactor* TestConnection(grpc::CallbackServerContext* context,
                                           const v1::TestConnectionRequest* request,
                                           v1::TestConnectionResponse* response) override;
  grpc::ServerUnaryReactor* GenerateKeyAndCsr(grpc::CallbackServerContext* context,
                                              const v1::GenerateKeyAndCsrRequest* request,
                                              v1::GenerateKeyAndCsrResponse* response) override;
  grpc::ServerUnaryReactor* AttachCertificate(grpc::CallbackServerContext* context,
                                              const v1::AttachCertificateRequest* request,
                                              v1::AttachCertificateResponse* response) override;
  grpc::ServerUnaryReactor* ListAuditEvents(grpc::CallbackServerContext* context,
                                            const v1::ListAuditEventsRequest* request,
                                            v1::ListAuditEventsResponse* response) override;
  grpc::ServerWriteReactor<v1::WatchEventsResponse>* WatchEvents(
      grpc::CallbackServerContext* context, const v1::WatchEventsRequest* request) override;
  grpc::ServerUnaryReactor* ListPendingNotifications(
      grpc::CallbackServerContext* context, const v1::ListPendingNotificationsRequest* request,
      v1::ListPendingNotificationsResponse* response) override;
  grpc::ServerUnaryReactor* AcknowledgeNotification(
      grpc::CallbackServerContext* context, const v1::AcknowledgeNotificationRequest* request,
      v1::AcknowledgeNotificationResponse* response) override;

  // Shutdown: new calls get UNAVAILABLE; open WatchEvents streams end with UNAVAILABLE
  // within half a second.
  void StopAccepting() { stopping_->store(true); }
  // Unary calls accepted and not finished yet.
  int active_calls() const { return active_->load(); }

 private:
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* RunBlocking(
      grpc::CallbackServerContext* context, std::string_view method, const Request* request,
      Response* response,
      Status (CertificateBackend::*fn)(const CallContext&, const Request&, Response*));

  std::shared_ptr<CertificateBackend> backend_;
  WorkerPool* pool_;
  std::shared_ptr<std::atomic<bool>> stopping_ = std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<std::atomic<int>> active_ = std::make_shared<std::atomic<int>>(0);
};

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_CERTIFICATE_SERVICE_H_

// wsstep.v1.CertificateService on gRPC's synchronous API: each call runs its backend
// method on one of gRPC's server threads (store calls may block on SQLite or PBKDF2;
// gRPC adds threads as calls wait), maps contract errors through status_map.h and logs
// the call. WatchEvents streams events from the backend until the client cancels or the
// plugin stops. (Not the callback API: its threads poll every socket of the process and
// put extra thread switches into every step, plugin/server/step_service.h.)
//
// Without a CertificateBackend every method answers UNIMPLEMENTED.
#ifndef WSSTEP_PLUGIN_SERVER_CERTIFICATE_SERVICE_H_
#define WSSTEP_PLUGIN_SERVER_CERTIFICATE_SERVICE_H_

#include <atomic>
#include <memory>

#include "plugin/server/backends.h"
#include "wsstep/v1/certificate_service.grpc.pb.h"

namespace wsstep::plugin {

class CertificateServiceImpl final : public v1::CertificateService::Service {
 public:
  explicit CertificateServiceImpl(std::shared_ptr<CertificateBackend> backend);

  grpc::Status CreateCertificate(grpc::ServerContext* context, const v1::CreateCertificateRequest* request,
                      v1::CreateCertificateResponse* response) override;
  grpc::Status GetCertificate(grpc::ServerContext* context, const v1::GetCertificateRequest* request,
                      v1::GetCertificateResponse* response) override;
  grpc::Status ListCertificates(grpc::ServerContext* context, const v1::ListCertificatesRequest* request,
                      v1::ListCertificatesResponse* response) override;
  grpc::Status UpdateCertificate(grpc::ServerContext* context, const v1::UpdateCertificateRequest* request,
                      v1::UpdateCertificateResponse* response) override;
  grpc::Status DeleteCertificate(grpc::ServerContext* context, const v1::DeleteCertificateRequest* request,
                      v1::DeleteCertificateResponse* response) override;
  grpc::Status ResolveCertificate(grpc::ServerContext* context, const v1::ResolveCertificateRequest* request,
                      v1::ResolveCertificateResponse* response) override;
  grpc::Status TestConnection(grpc::ServerContext* context, const v1::TestConnectionRequest* request,
                      v1::TestConnectionResponse* response) override;
  grpc::Status GenerateKeyAndCsr(grpc::ServerContext* context, const v1::GenerateKeyAndCsrRequest* request,
                      v1::GenerateKeyAndCsrResponse* response) override;
  grpc::Status AttachCertificate(grpc::ServerContext* context, const v1::AttachCertificateRequest* request,
                      v1::AttachCertificateResponse* response) override;
  grpc::Status ListAuditEvents(grpc::ServerContext* context, const v1::ListAuditEventsRequest* request,
                      v1::ListAuditEventsResponse* response) override;
  grpc::Status WatchEvents(grpc::ServerContext* context, const v1::WatchEventsRequest* request,
                           grpc::ServerWriter<v1::WatchEventsResponse>* writer) override;
  grpc::Status ListPendingNotifications(grpc::ServerContext* context, const v1::ListPendingNotificationsRequest* request,
                      v1::ListPendingNotificationsResponse* response) override;
  grpc::Status AcknowledgeNotification(grpc::ServerContext* context, const v1::AcknowledgeNotificationRequest* request,
                      v1::AcknowledgeNotificationResponse* response) override;

  grpc::Status ExportCertificate(grpc::ServerContext* context,
                                 const v1::ExportCertificateRequest* request,
                                 v1::ExportCertificateResponse* response) override;
  grpc::Status GetCsr(grpc::ServerContext* context, const v1::GetCsrRequest* request,
                      v1::GetCsrResponse* response) override;
  grpc::Status GetCertificateUsage(grpc::ServerContext* context,
                                   const v1::GetCertificateUsageRequest* request,
                                   v1::GetCertificateUsageResponse* response) override;
  grpc::Status RotateMasterKey(grpc::ServerContext* context,
                               const v1::RotateMasterKeyRequest* request,
                               v1::RotateMasterKeyResponse* response) override;
  grpc::Status SetProxyCredential(grpc::ServerContext* context,
                                  const v1::SetProxyCredentialRequest* request,
                                  v1::SetProxyCredentialResponse* response) override;
  grpc::Status ListProxyCredentials(grpc::ServerContext* context,
                                    const v1::ListProxyCredentialsRequest* request,
                                    v1::ListProxyCredentialsResponse* response) override;
  grpc::Status DeleteProxyCredential(grpc::ServerContext* context,
                                     const v1::DeleteProxyCredentialRequest* request,
                                     v1::DeleteProxyCredentialResponse* response) override;

  // Shutdown: new calls get UNAVAILABLE; open WatchEvents streams end with UNAVAILABLE
  // within half a second.
  void StopAccepting() { stopping_->store(true); }
  // Unary calls accepted and not finished yet.
  int active_calls() const { return active_->load(); }

 private:
  template <typename Request, typename Response>
  grpc::Status Run(grpc::ServerContext* context, std::string_view method, const Request* request,
                   Response* response,
                   Status (CertificateBackend::*fn)(const CallContext&, const Request&, Response*));

  std::shared_ptr<CertificateBackend> backend_;
  std::shared_ptr<std::atomic<bool>> stopping_ = std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<std::atomic<int>> active_ = std::make_shared<std::atomic<int>>(0);
};

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_SERVER_CERTIFICATE_SERVICE_H_

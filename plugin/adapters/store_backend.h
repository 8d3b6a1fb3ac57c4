// CertificateBackend (plugin/server/backends.h) over the certificate store (core/store/store.h): the
// CertificateService's requests converted to store calls and back. Connection tests go
// through a ConnectionTester (plugin/adapters/rest_runner.h) when the build has a transfer engine.
//
//   auto store = std::shared_ptr<core::CertificateStore>(std::move(opened).value());
//   auto backend = std::make_shared<StoreBackend>(store, tester /* may be null */);
#ifndef WSSTEP_PLUGIN_ADAPTERS_STORE_BACKEND_H_
#define WSSTEP_PLUGIN_ADAPTERS_STORE_BACKEND_H_

#include <functional>
#include <memory>

#include "core/store/store.h"
#include "plugin/server/backends.h"

namespace wsstep::plugin {

// Runs TestConnection (it needs the REST engine, which the store backend does not own).
using ConnectionTester = std::function<void(const CallContext& call,
                                            const v1::TestConnectionRequest& request,
                                            v1::TestConnectionResponse* response, Done done)>;

// Fills a ResolveCertificateResponse for (host, port, environment, certificate): the
// chosen entry, the rejected candidates with reasons, trust, and — when a call would
// fail — the StepError it would get. Contract errors (bad host/port) as Status.
Status ExplainResolution(const core::CertificateStore& store, const core::ResolveRequest& request,
                         v1::ResolveCertificateResponse* out);

class StoreBackend final : public CertificateBackend {
 public:
  StoreBackend(std::shared_ptr<core::CertificateStore> store, ConnectionTester tester);

  Status Create(const CallContext& call, const v1::CreateCertificateRequest& request,
                v1::CreateCertificateResponse* response) override;
  Status Get(const CallContext& call, const v1::GetCertificateRequest& request,
             v1::GetCertificateResponse* response) override;
  Status List(const CallContext& call, const v1::ListCertificatesRequest& request,
              v1::ListCertificatesResponse* response) override;
  Status Update(const CallContext& call, const v1::UpdateCertificateRequest& request,
                v1::UpdateCertificateResponse* response) override;
  Status Delete(const CallContext& call, const v1::DeleteCertificateRequest& request,
                v1::DeleteCertificateResponse* response) override;
  Status Resolve(const CallContext& call, const v1::ResolveCertificateRequest& request,
                 v1::ResolveCertificateResponse* response) override;
  Status GenerateKeyAndCsr(const CallContext& call, const v1::GenerateKeyAndCsrRequest& request,
                           v1::GenerateKeyAndCsrResponse* response) override;
  Status Attach(const CallContext& call, const v1::AttachCertificateRequest& request,
                v1::AttachCertificateResponse* response) override;
  Status ListAuditEvents(const CallContext& call, const v1::ListAuditEventsRequest& request,
                         v1::ListAuditEventsResponse* response) override;
  Status ListPendingNotifications(const CallContext& call,
                                  const v1::ListPendingNotificationsRequest& request,
                                  v1::ListPendingNotificationsResponse* response) override;
  Status AcknowledgeNotification(const CallContext& call,
                                 const v1::AcknowledgeNotificationRequest& request,
                                 v1::AcknowledgeNotificationResponse* response) override;
  Status Export(const CallContext& call, const v1::ExportCertificateRequest& request,
                v1::ExportCertificateResponse* response) override;
  Status GetCsr(const CallContext& call, const v1::GetCsrRequest& request,
                v1::GetCsrResponse* response) override;
  Status Usage(const CallContext& call, const v1::GetCertificateUsageRequest& request,
               v1::GetCertificateUsageResponse* response) override;
  Status RotateMasterKey(const CallContext& call, const v1::RotateMasterKeyRequest& request,
                         v1::RotateMasterKeyResponse* response) override;
  Status SetProxyCredential(const CallContext& call, const v1::SetProxyCredentialRequest& request,
                            v1::SetProxyCredentialResponse* response) override;
  Status ListProxyCredentials(const CallContext& call,
                              const v1::ListProxyCredentialsRequest& request,
                              v1::ListProxyCredentialsResponse* response) override;
  Status DeleteProxyCredential(const CallContext& call,
                               const v1::DeleteProxyCredentialRequest& request,
                               v1::DeleteProxyCredentialResponse* response) override;
  Result<std::unique_ptr<EventWatch>> Watch(const CallContext& call,
                                            const v1::WatchEventsRequest& request) override;
  bool SupportsTestConnection() const override { return static_cast<bool>(tester_); }
  void TestConnection(const CallContext& call, const v1::TestConnectionRequest& request,
                      v1::TestConnectionResponse* response, Done done) override;

 private:
  std::shared_ptr<core::CertificateStore> store_;
  ConnectionTester tester_;
};

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_ADAPTERS_STORE_BACKEND_H_

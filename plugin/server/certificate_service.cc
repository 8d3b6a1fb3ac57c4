#include "plugin/server/certificate_service.h"

#include <condition_variable>
#include <mutex>
#include <optional>

#include "plugin/process/log.h"
#include "plugin/server/status_map.h"

namespace wsstep::plugin {
namespace {

constexpr std::string_view kService = "wsstep.v1.CertificateService/";
constexpr std::string_view kMissing = "the certificate store";

std::string Method(std::string_view name) { return std::string(kService) + std::string(name); }

grpc::Status ShuttingDown() {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the plugin is shutting down");
}

void LogCall(const CallContext& call, const Status& status) {
  LogFields f = call.Fields();
  f["duration_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - call.started)
                         .count();
  if (status.ok()) {
    Log().Debug("call finished", f);
  } else {
    f["code"] = CodeName(status.error().code);
    f["message"] = status.error().message;
    Log().Info("call refused", f);
  }
}

}  // namespace

CertificateServiceImpl::CertificateServiceImpl(std::shared_ptr<CertificateBackend> backend)
    : backend_(std::move(backend)) {}

template <typename Request, typename Response>
grpc::Status CertificateServiceImpl::Run(
    grpc::ServerContext* context, std::string_view method, const Request* request,
    Response* response,
    Status (CertificateBackend::*fn)(const CallContext&, const Request&, Response*)) {
  if (!backend_) return NotAvailable(method, kMissing);
  if (stopping_->load()) return ShuttingDown();
  const CallContext call = ReadCallContext(*context, Method(method));
  if (context->IsCancelled()) return grpc::Status::CANCELLED;
  if (call.HasDeadline() && call.TimeLeft().count() == 0) {
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                        "the deadline passed before the call could run");
  }
  active_->fetch_add(1);
  const Status status = ((*backend_).*fn)(call, *request, response);
  LogCall(call, status);
  active_->fetch_sub(1);
  return ToGrpcStatus(status);
}

grpc::Status CertificateServiceImpl::CreateCertificate(grpc::ServerContext* c,
                                          const v1::CreateCertificateRequest* req,
                                          v1::CreateCertificateResponse* resp) {
  return Run(c, "CreateCertificate", req, resp, &CertificateBackend::Create);
}

grpc::Status CertificateServiceImpl::GetCertificate(grpc::ServerContext* c,
                                          const v1::GetCertificateRequest* req,
                                          v1::GetCertificateResponse* resp) {
  return Run(c, "GetCertificate", req, resp, &CertificateBackend::Get);
}

grpc::Status CertificateServiceImpl::ListCertificates(grpc::ServerContext* c,
                                          const v1::ListCertificatesRequest* req,
                                          v1::ListCertificatesResponse* resp) {
  return Run(c, "ListCertificates", req, resp, &CertificateBackend::List);
}

grpc::Status CertificateServiceImpl::UpdateCertificate(grpc::ServerContext* c,
                                          const v1::UpdateCertificateRequest* req,
                                          v1::UpdateCertificateResponse* resp) {
  return Run(c, "UpdateCertificate", req, resp, &CertificateBackend::Update);
}

grpc::Status CertificateServiceImpl::DeleteCertificate(grpc::ServerContext* c,
                                          const v1::DeleteCertificateRequest* req,
                                          v1::DeleteCertificateResponse* resp) {
  return Run(c, "DeleteCertificate", req, resp, &CertificateBackend::Delete);
}

grpc::Status CertificateServiceImpl::ResolveCertificate(grpc::ServerContext* c,
                                          const v1::ResolveCertificateRequest* req,
                                          v1::ResolveCertificateResponse* resp) {
  return Run(c, "ResolveCertificate", req, resp, &CertificateBackend::Resolve);
}

grpc::Status CertificateServiceImpl::GenerateKeyAndCsr(grpc::ServerContext* c,
                                          const v1::GenerateKeyAndCsrRequest* req,
                                          v1::GenerateKeyAndCsrResponse* resp) {
  return Run(c, "GenerateKeyAndCsr", req, resp, &CertificateBackend::GenerateKeyAndCsr);
}

grpc::Status CertificateServiceImpl::AttachCertificate(grpc::ServerContext* c,
                                          const v1::AttachCertificateRequest* req,
                                          v1::AttachCertificateResponse* resp) {
  return Run(c, "AttachCertificate", req, resp, &CertificateBackend::Attach);
}

grpc::Status CertificateServiceImpl::ListAuditEvents(grpc::ServerContext* c,
                                          const v1::ListAuditEventsRequest* req,
                                          v1::ListAuditEventsResponse* resp) {
  return Run(c, "ListAuditEvents", req, resp, &CertificateBackend::ListAuditEvents);
}

grpc::Status CertificateServiceImpl::ListPendingNotifications(grpc::ServerContext* c,
                                          const v1::ListPendingNotificationsRequest* req,
                                          v1::ListPendingNotificationsResponse* resp) {
  return Run(c, "ListPendingNotifications", req, resp,
                     &CertificateBackend::ListPendingNotifications);
}

grpc::Status CertificateServiceImpl::AcknowledgeNotification(grpc::ServerContext* c,
                                          const v1::AcknowledgeNotificationRequest* req,
                                          v1::AcknowledgeNotificationResponse* resp) {
  return Run(c, "AcknowledgeNotification", req, resp,
                     &CertificateBackend::AcknowledgeNotification);
}

grpc::Status CertificateServiceImpl::ExportCertificate(grpc::ServerContext* c,
                                                      const v1::ExportCertificateRequest* req,
                                                      v1::ExportCertificateResponse* resp) {
  return Run(c, "ExportCertificate", req, resp, &CertificateBackend::Export);
}

grpc::Status CertificateServiceImpl::GetCsr(grpc::ServerContext* c, const v1::GetCsrRequest* req,
                                           v1::GetCsrResponse* resp) {
  return Run(c, "GetCsr", req, resp, &CertificateBackend::GetCsr);
}

grpc::Status CertificateServiceImpl::GetCertificateUsage(
    grpc::ServerContext* c, const v1::GetCertificateUsageRequest* req,
    v1::GetCertificateUsageResponse* resp) {
  return Run(c, "GetCertificateUsage", req, resp, &CertificateBackend::Usage);
}

grpc::Status CertificateServiceImpl::RotateMasterKey(grpc::ServerContext* c,
                                                    const v1::RotateMasterKeyRequest* req,
                                                    v1::RotateMasterKeyResponse* resp) {
  return Run(c, "RotateMasterKey", req, resp, &CertificateBackend::RotateMasterKey);
}

grpc::Status CertificateServiceImpl::SetProxyCredential(grpc::ServerContext* c,
                                                       const v1::SetProxyCredentialRequest* req,
                                                       v1::SetProxyCredentialResponse* resp) {
  return Run(c, "SetProxyCredential", req, resp, &CertificateBackend::SetProxyCredential);
}

grpc::Status CertificateServiceImpl::ListProxyCredentials(
    grpc::ServerContext* c, const v1::ListProxyCredentialsRequest* req,
    v1::ListProxyCredentialsResponse* resp) {
  return Run(c, "ListProxyCredentials", req, resp, &CertificateBackend::ListProxyCredentials);
}

grpc::Status CertificateServiceImpl::DeleteProxyCredential(
    grpc::ServerContext* c, const v1::DeleteProxyCredentialRequest* req,
    v1::DeleteProxyCredentialResponse* resp) {
  return Run(c, "DeleteProxyCredential", req, resp, &CertificateBackend::DeleteProxyCredential);
}

grpc::Status CertificateServiceImpl::TestConnection(grpc::ServerContext* context,
                                                   const v1::TestConnectionRequest* request,
                                                   v1::TestConnectionResponse* response) {
  if (!backend_ || !backend_->SupportsTestConnection()) {
    return NotAvailable("TestConnection", backend_ ? "the REST engine" : kMissing);
  }
  if (stopping_->load()) return ShuttingDown();
  const CallContext call = ReadCallContext(*context, Method("TestConnection"));
  active_->fetch_add(1);
  // The probe runs on the REST engine's workers; this thread waits for it, and forwards
  // a client's cancellation to it.
  std::mutex mu;
  std::condition_variable cv;
  std::optional<Status> result;
  backend_->TestConnection(call, *request, response, [&](Status status) {
    std::lock_guard<std::mutex> lock(mu);
    result = std::move(status);
    cv.notify_all();
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    while (!cv.wait_for(lock, std::chrono::milliseconds(50), [&] { return result.has_value(); })) {
      if (context->IsCancelled()) call.cancelled->store(true);
    }
  }
  LogCall(call, *result);
  active_->fetch_sub(1);
  return ToGrpcStatus(*result);
}

grpc::Status CertificateServiceImpl::WatchEvents(grpc::ServerContext* context,
                                                const v1::WatchEventsRequest* request,
                                                grpc::ServerWriter<v1::WatchEventsResponse>* writer) {
  if (!backend_) return NotAvailable("WatchEvents", kMissing);
  if (stopping_->load()) return ShuttingDown();
  const CallContext call = ReadCallContext(*context, Method("WatchEvents"));
  auto watch = backend_->Watch(call, *request);
  if (!watch.ok()) return ToGrpcStatus(watch.error());
  Log().Debug("event stream opened", call.Fields());
  grpc::Status final_status;
  v1::WatchEventsResponse event;
  for (;;) {
    if (context->IsCancelled()) {
      final_status = grpc::Status::CANCELLED;
      break;
    }
    if (stopping_->load()) {
      final_status = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                  "the plugin is shutting down; reconnect and catch up "
                                  "with ListPendingNotifications");
      break;
    }
    if (!(*watch)->Next(&event, std::chrono::milliseconds(500))) continue;
    if (!writer->Write(event)) {  // the client is gone
      final_status = grpc::Status::CANCELLED;
      break;
    }
  }
  Log().Debug("event stream closed", call.Fields());
  return final_status;
}

}  // namespace wsstep::plugin

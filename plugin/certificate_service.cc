#include "plugin/certificate_service.h"

#include <condition_variable>
#include <mutex>
#include <thread>

#include "plugin/log.h"
#include "plugin/status_map.h"

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

// Streams a backend EventWatch. One thread per stream waits for events (the backend's
// Next blocks) and writes them one at a time; the stream ends when the client cancels,
// a write fails, or the plugin stops.
class WatchReactor final : public grpc::ServerWriteReactor<v1::WatchEventsResponse> {
 public:
  WatchReactor(std::unique_ptr<EventWatch> watch, std::shared_ptr<std::atomic<bool>> stopping,
               CallContext call)
      : watch_(std::move(watch)), stopping_(std::move(stopping)), call_(std::move(call)) {
    thread_ = std::thread([this] { Run(); });
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    write_failed_ = !ok;
    cv_.notify_all();
  }
  void OnCancel() override {
    call_.cancelled->store(true);
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_all();
  }
  void OnDone() override {
    if (thread_.joinable()) thread_.join();
    delete this;
  }

 private:
  void Run() {
    Log().Debug("event stream opened", call_.Fields());
    grpc::Status final_status = grpc::Status::OK;
    while (true) {
      if (call_.Cancelled()) {
        final_status = grpc::Status::CANCELLED;
        break;
      }
      if (stopping_->load()) {
        final_status = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                    "the plugin is shutting down; reconnect and catch up "
                                    "with ListPendingNotifications");
        break;
      }
      if (!watch_->Next(&event_, std::chrono::milliseconds(500))) continue;
      std::unique_lock<std::mutex> lock(mu_);
      writing_ = true;
      lock.unlock();
      StartWrite(&event_);
      lock.lock();
      cv_.wait(lock, [this] { return !writing_ || call_.Cancelled(); });
      if (writing_ || write_failed_) {
        // Cancelled mid-write, or the client is gone: wait for the write to complete
        // before finishing, as the API requires.
        cv_.wait(lock, [this] { return !writing_; });
        final_status = grpc::Status::CANCELLED;
        break;
      }
    }
    Log().Debug("event stream closed", call_.Fields());
    Finish(final_status);
  }

  std::unique_ptr<EventWatch> watch_;
  std::shared_ptr<std::atomic<bool>> stopping_;
  CallContext call_;
  v1::WatchEventsResponse event_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool writing_ = false;
  bool write_failed_ = false;
  std::thread thread_;
};

}  // namespace

CertificateServiceImpl::CertificateServiceImpl(std::shared_ptr<CertificateBackend> backend,
                                               WorkerPool* pool)
    : backend_(std::move(backend)), pool_(pool) {}

template <typename Request, typename Response>
grpc::ServerUnaryReactor* CertificateServiceImpl::RunBlocking(
    grpc::CallbackServerContext* context, std::string_view method, const Request* request,
    Response* response,
    Status (CertificateBackend::*fn)(const CallContext&, const Request&, Response*)) {
  auto* reactor = context->DefaultReactor();
  if (!backend_) {
    reactor->Finish(NotAvailable(method, kMissing));
    return reactor;
  }
  if (stopping_->load()) {
    reactor->Finish(ShuttingDown());
    return reactor;
  }
  CallContext call = ReadCallContext(*context, Method(method));
  auto backend = backend_;
  auto active = active_;
  active->fetch_add(1);
  const bool posted = pool_->Post([reactor, request, response, backend, fn, context, active,
                                   call = std::move(call)] {
    grpc::Status result;
    if (context->IsCancelled()) {
      result = grpc::Status::CANCELLED;
    } else if (call.HasDeadline() && call.TimeLeft().count() == 0) {
      result = grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                            "the deadline passed before the call could run");
    } else {
      const Status status = ((*backend).*fn)(call, *request, response);
      LogCall(call, status);
      result = ToGrpcStatus(status);
    }
    reactor->Finish(result);
    active->fetch_sub(1);
  });
  if (!posted) {
    active->fetch_sub(1);
    reactor->Finish(ShuttingDown());
  }
  return reactor;
}

grpc::ServerUnaryReactor* CertificateServiceImpl::CreateCertificate(
    grpc::CallbackServerContext* c, const v1::CreateCertificateRequest* req,
    v1::CreateCertificateResponse* resp) {
  return RunBlocking(c, "CreateCertificate", req, resp, &CertificateBackend::Create);
}

grpc::ServerUnaryReactor* CertificateServiceImpl::GetCertificate(
    grpc::CallbackServerContext* c, const v1::GetCertificateRequest* req,
    v1::GetCertificateResponse* resp) {
  return RunBlocking(c, "GetCertificate", req, resp, &CertificateBackend::Get);
}

grpc::ServerUnaryReactor* CertificateServiceImpl::ListCertificates(
    grpc::CallbackServerContext* c, const v1::ListCertificatesRequest* req,
    v1::ListCertificatesResponse* resp) {
  return RunBlocking(c, "ListCertificates", req, resp, &CertificateBackend::List);
}

grpc::ServerUnaryReactor* CertificateServiceImpl::UpdateCertificate(
    grpc::CallbackServerContext* c, const v1::UpdateCertificateRequest* req,
    v1::UpdateCertificateResponse* resp) {
  return RunBlocking(c, "UpdateCertificate", req, resp, &CertificateBackend::Update);
}

grpc::ServerUnaryReactor* CertificateServiceImpl::DeleteCertificate(
    grpc::CallbackServerContext* c, const v1::DeleteCertificateRequest* req,
    v1::DeleteCertificateResponse* resp) {
  return RunBlocking(c, "DeleteCertificate", req, resp, &CertificateBackend::Delete);
}

grpc::ServerUnaryReactor* CertificateServiceImpl::ResolveCertificate(
    grpc::CallbackServerContext* c, const v1::ResolveCertificateRequest* req,
    v1::ResolveCertificateResponse* resp) {
  return RunBlocking(c, "ResolveCertificate", req, resp, &CertificateBackend::Resolve);
}

grpc::ServerUnaryReactor* CertificateServiceImpl::GenerateKeyAndCsr(
    grpc::CallbackServerContext* c, const v1::GenerateKeyAndCsrRequest* req,
    v1::GenerateKeyAndCsrResponse* resp) {
  return RunBlocking(c, "GenerateKeyAndCsr", req, resp, &CertificateBackend::GenerateKeyAndCsr);
}

grpc::ServerUnaryReactor* CertificateServiceImpl::AttachCertificate(
    grpc::CallbackServerContext* c, const v1::AttachCertificateRequest* req,
    v1::AttachCertificateResponse* resp) {
  return RunBlocking(c, "AttachCertificate", req, resp, &CertificateBackend::Attach);
}

grpc::ServerUnaryReactor* CertificateServiceImpl::ListAuditEvents(
    grpc::CallbackServerContext* c, const v1::ListAuditEventsRequest* req,
    v1::ListAuditEventsResponse* resp) {
  return RunBlocking(c, "ListAuditEvents", req, resp, &CertificateBackend::ListAuditEvents);
}

grpc::ServerUnaryReactor* CertificateServiceImpl::ListPendingNotifications(
    grpc::CallbackServerContext* c, const v1::ListPendingNotificationsRequest* req,
    v1::ListPendingNotificationsResponse* resp) {
  return RunBlocking(c, "ListPendingNotifications", req, resp,
                     &CertificateBackend::ListPendingNotifications);
}

grpc::ServerUnaryReactor* CertificateServiceImpl::AcknowledgeNotification(
    grpc::CallbackServerContext* c, const v1::AcknowledgeNotificationRequest* req,
    v1::AcknowledgeNotificationResponse* resp) {
  return RunBlocking(c, "AcknowledgeNotification", req, resp,
                     &CertificateBackend::AcknowledgeNotification);
}

grpc::ServerUnaryReactor* CertificateServiceImpl::TestConnection(
    grpc::CallbackServerContext* context, const v1::TestConnectionRequest* request,
    v1::TestConnectionResponse* response) {
  auto* reactor = context->DefaultReactor();
  if (!backend_ || !backend_->SupportsTestConnection()) {
    reactor->Finish(NotAvailable("TestConnection", backend_ ? "the REST engine" : kMissing));
    return reactor;
  }
  if (stopping_->load()) {
    reactor->Finish(ShuttingDown());
    return reactor;
  }
  CallContext call = ReadCallContext(*context, Method("TestConnection"));
  const CallContext for_log = call;
  auto active = active_;
  active->fetch_add(1);
  backend_->TestConnection(call, *request, response, [reactor, for_log, active](Status status) {
    LogCall(for_log, status);
    reactor->Finish(ToGrpcStatus(status));
    active->fetch_sub(1);
  });
  return reactor;
}

grpc::ServerWriteReactor<v1::WatchEventsResponse>* CertificateServiceImpl::WatchEvents(
    grpc::CallbackServerContext* context, const v1::WatchEventsRequest* request) {
  // Refusals finish a trivial reactor.
  class Refused final : public grpc::ServerWriteReactor<v1::WatchEventsResponse> {
   public:
    explicit Refused(const grpc::Status& status) { Finish(status); }
    void OnDone() override { delete this; }
  };
  if (!backend_) return new Refused(NotAvailable("WatchEvents", kMissing));
  if (stopping_->load()) return new Refused(ShuttingDown());
  CallContext call = ReadCallContext(*context, Method("WatchEvents"));
  auto watch = backend_->Watch(call, *request);
  if (!watch.ok()) return new Refused(ToGrpcStatus(watch.error()));
  return new WatchReactor(std::move(watch).value(), stopping_, std::move(call));
}

}  // namespace wsstep::plugin

#include "tests/mock_engine/mock_engine.h"

#include <openssl/pem.h>

#include "core/ossl.h"

#include <grpcpp/generic/generic_stub.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "grpc/health/v1/health.grpc.pb.h"
#include "plugin/process/handshake.h"

namespace wsstep::mock_engine {

namespace {

std::string ReadWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

v1::Binding ToBinding(const Bind& b) {
  v1::Binding out;
  out.set_host(b.host);
  out.set_port(b.port);
  out.set_environment(b.environment);
  return out;
}

}  // namespace

MockEngine::MockEngine() = default;

MockEngine::~MockEngine() {
  if (process_) (void)Stop(std::chrono::seconds(10));
}

bool MockEngine::Start(std::vector<std::pair<std::string, std::string>> extra_env) {
  plugin::LaunchOptions o;
  o.binary = std::string(getenv("WSSTEP_BINARY_DIR") ? getenv("WSSTEP_BINARY_DIR") : ".") +
             "/plugin/wsstep";
  o.automtls = true;
  stderr_path_ = work_dir_.Path("plugin.stderr");
  o.stderr_path = stderr_path_;
  o.env.push_back({"WSSTEP_DATA_DIR", data_dir_.path()});
  // The plugin's socket directory inside ours: removed with it even when a test kills
  // the plugin (which then cannot remove the directory itself).
  o.env.push_back({"PLUGIN_UNIX_SOCKET_DIR", work_dir_.path()});
  o.env.push_back({"WSSTEP_LOG_LEVEL", "debug"});  // the most verbose logs must be clean too
  for (auto& e : extra_env) o.env.push_back(std::move(e));
  o.start_timeout = std::chrono::seconds(30);
  auto launched = plugin::PluginProcess::Launch(o);
  if (!launched.ok()) {
    start_error_ = launched.error().ToString() + "\nstderr:\n" + StderrText();
    return false;
  }
  process_ = std::move(launched).value();
  channel_ = process_->channel();
  steps_ = v1::StepPluginService::NewStub(channel_);
  certs_ = v1::CertificateService::NewStub(channel_);
  return true;
}

void MockEngine::ConfigureContext(grpc::ClientContext* ctx, const CallOptions& options) const {
  ctx->set_deadline(std::chrono::system_clock::now() + options.deadline);
  if (!options.step_id.empty()) ctx->AddMetadata("x-wsstep-step-id", options.step_id);
  if (!options.workflow_id.empty()) ctx->AddMetadata("x-wsstep-workflow-id", options.workflow_id);
  if (!options.actor.empty()) ctx->AddMetadata("x-wsstep-actor", options.actor);
  if (!options.traceparent.empty()) ctx->AddMetadata("traceparent", options.traceparent);
  if (!options.tracestate.empty()) ctx->AddMetadata("tracestate", options.tracestate);
}

template <typename Response>
void MockEngine::Record(const Reply<Response>& reply) {
  std::lock_guard<std::mutex> lock(mu_);
  transcript_ += reply.response.SerializeAsString();
  transcript_ += reply.response.DebugString();
  transcript_ += reply.status.error_message();
  transcript_ += reply.status.error_details();
  transcript_ += '\n';
}

template <typename Stub, typename Request, typename Response>
Reply<Response> MockEngine::Call(Stub* stub,
                                 grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                                 const Request& request, const CallOptions& options) {
  Reply<Response> r;
  grpc::ClientContext ctx;
  ConfigureContext(&ctx, options);
  r.status = (stub->*method)(&ctx, request, &r.response);
  r.details = plugin::DecodeStatusDetails(r.status);
  Record(r);
  return r;
}

std::vector<std::string> MockEngine::Capabilities() {
  if (!capabilities_) {
    auto info = Info();
    if (!info.ok()) return {};
    capabilities_.emplace(info.response.capabilities().begin(), info.response.capabilities().end());
  }
  return *capabilities_;
}

bool MockEngine::Has(const std::string& capability) {
  const auto caps = Capabilities();
  return std::find(caps.begin(), caps.end(), capability) != caps.end();
}

Reply<v1::GetPluginInfoResponse> MockEngine::Info() {
  return Call(steps_.get(), &v1::StepPluginService::Stub::GetPluginInfo, v1::GetPluginInfoRequest(), {});
}

Reply<v1::ExecuteRestStepResponse> MockEngine::Rest(const v1::RestStep& step,
                                                    const std::string& environment,
                                                    const CallOptions& options) {
  v1::ExecuteRestStepRequest request;
  *request.mutable_step() = step;
  request.set_environment(environment);
  return RestRequest(request, options);
}

Reply<v1::ExecuteRestStepResponse> MockEngine::RestRequest(const v1::ExecuteRestStepRequest& request,
                                                           const CallOptions& options) {
  return Call(steps_.get(), &v1::StepPluginService::Stub::ExecuteRestStep, request, options);
}

Reply<v1::ExecuteSoapStepResponse> MockEngine::Soap(const v1::ExecuteSoapStepRequest& request,
                                                    const CallOptions& options) {
  return Call(steps_.get(), &v1::StepPluginService::Stub::ExecuteSoapStep, request, options);
}

Reply<v1::DescribeWsdlResponse> MockEngine::DescribeWsdl(const v1::DescribeWsdlRequest& request,
                                                         const CallOptions& options) {
  return Call(steps_.get(), &v1::StepPluginService::Stub::DescribeWsdl, request, options);
}

Reply<v1::ValidateStepResponse> MockEngine::Validate(const v1::ValidateStepRequest& request) {
  return Call(steps_.get(), &v1::StepPluginService::Stub::ValidateStep, request, {});
}

Reply<v1::CreateCertificateResponse> MockEngine::Create(const v1::CreateCertificateRequest& request) {
  return Call(certs_.get(), &v1::CertificateService::Stub::CreateCertificate, request, {});
}

Reply<v1::ListCertificatesResponse> MockEngine::List(const v1::ListCertificatesRequest& request) {
  return Call(certs_.get(), &v1::CertificateService::Stub::ListCertificates, request, {});
}

Reply<v1::GetCertificateResponse> MockEngine::Get(const v1::GetCertificateRequest& request) {
  return Call(certs_.get(), &v1::CertificateService::Stub::GetCertificate, request, {});
}

Reply<v1::UpdateCertificateResponse> MockEngine::Update(const v1::UpdateCertificateRequest& request) {
  return Call(certs_.get(), &v1::CertificateService::Stub::UpdateCertificate, request, {});
}

Reply<v1::DeleteCertificateResponse> MockEngine::Delete(const v1::DeleteCertificateRequest& request) {
  return Call(certs_.get(), &v1::CertificateService::Stub::DeleteCertificate, request, {});
}

Reply<v1::ListAuditEventsResponse> MockEngine::Audit(const v1::ListAuditEventsRequest& request) {
  return Call(certs_.get(), &v1::CertificateService::Stub::ListAuditEvents, request, {});
}

Reply<v1::ResolveCertificateResponse> MockEngine::Resolve(
    const v1::ResolveCertificateRequest& request) {
  return Call(certs_.get(), &v1::CertificateService::Stub::ResolveCertificate, request, {});
}

Reply<v1::GenerateKeyAndCsrResponse> MockEngine::GenerateKeyAndCsr(
    const v1::GenerateKeyAndCsrRequest& request) {
  return Call(certs_.get(), &v1::CertificateService::Stub::GenerateKeyAndCsr, request, {});
}

Reply<v1::AttachCertificateResponse> MockEngine::Attach(const v1::AttachCertificateRequest& request) {
  return Call(certs_.get(), &v1::CertificateService::Stub::AttachCertificate, request, {});
}

Reply<v1::TestConnectionResponse> MockEngine::TestConnection(const v1::TestConnectionRequest& request,
                                                             const CallOptions& options) {
  return Call(certs_.get(), &v1::CertificateService::Stub::TestConnection, request, options);
}

Reply<v1::SetProxyCredentialResponse> MockEngine::SetProxyCredential(const std::string& name,
                                                                     const std::string& username,
                                                                     const std::string& password) {
  v1::SetProxyCredentialRequest request;
  request.set_name(name);
  request.set_username(username);
  request.set_password(password);
  return Call(certs_.get(), &v1::CertificateService::Stub::SetProxyCredential, request, {});
}

Reply<v1::ListProxyCredentialsResponse> MockEngine::ListProxyCredentials() {
  return Call(certs_.get(), &v1::CertificateService::Stub::ListProxyCredentials,
              v1::ListProxyCredentialsRequest(), {});
}

Reply<v1::DeleteProxyCredentialResponse> MockEngine::DeleteProxyCredential(const std::string& name) {
  v1::DeleteProxyCredentialRequest request;
  request.set_name(name);
  return Call(certs_.get(), &v1::CertificateService::Stub::DeleteProxyCredential, request, {});
}

Reply<v1::ListPendingNotificationsResponse> MockEngine::PendingNotifications() {
  return Call(certs_.get(), &v1::CertificateService::Stub::ListPendingNotifications,
              v1::ListPendingNotificationsRequest(), {});
}

Reply<v1::AcknowledgeNotificationResponse> MockEngine::Acknowledge(const std::string& notification_id) {
  v1::AcknowledgeNotificationRequest request;
  request.set_notification_id(notification_id);
  return Call(certs_.get(), &v1::CertificateService::Stub::AcknowledgeNotification, request, {});
}

MockEngine::Watch MockEngine::OpenWatch(const v1::WatchEventsRequest& request) {
  Watch w;
  w.context = std::make_unique<grpc::ClientContext>();
  CallOptions options;
  options.deadline = std::chrono::seconds(60);
  ConfigureContext(w.context.get(), options);
  w.reader = certs_->WatchEvents(w.context.get(), request);
  return w;
}

std::optional<v1::WatchEventsResponse> MockEngine::ReadEvent(Watch& watch) {
  v1::WatchEventsResponse event;
  if (!watch.reader->Read(&event)) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  transcript_ += event.SerializeAsString();
  transcript_ += event.DebugString();
  return event;
}

std::string MockEngine::Health(const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  auto r = Call(stub.get(), &grpc::health::v1::Health::Stub::Check, req, {});
  if (!r.ok()) return "error " + std::to_string(r.status.error_code()) + ": " + r.status.error_message();
  return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(r.response.status());
}

namespace {

// One message each way on a bidi method through the generic stub: writes `request`,
// half-closes, reads the first answer (if any), ends the call. `cancel_after_read` ends it
// from the client side (a server that would keep streaming).
std::pair<std::string, grpc::Status> RawBidiExchange(grpc::GenericStub& stub, grpc::ClientContext& ctx,
                                                     const std::string& method, const std::string& request,
                                                     bool cancel_after_read) {
  grpc::CompletionQueue cq;
  void* tag = nullptr;
  bool ok = false;
  auto call = stub.PrepareCall(&ctx, method, &cq);
  auto next = [&](intptr_t want) {
    return cq.Next(&tag, &ok) && reinterpret_cast<intptr_t>(tag) == want && ok;
  };
  std::string answer;
  call->StartCall(reinterpret_cast<void*>(1));
  if (next(1)) {
    grpc::Slice slice(request);
    grpc::ByteBuffer out(&slice, 1);
    call->Write(out, reinterpret_cast<void*>(2));
    if (next(2)) {
      call->WritesDone(reinterpret_cast<void*>(3));
      (void)next(3);
      grpc::ByteBuffer in;
      call->Read(&in, reinterpret_cast<void*>(4));
      if (next(4)) {
        std::vector<grpc::Slice> slices;
        (void)in.Dump(&slices);
        for (const auto& s : slices) answer.append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
    }
  }
  if (cancel_after_read) ctx.TryCancel();
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  (void)cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return {answer, status};
}

}  // namespace

std::string MockEngine::ReflectionListServices() {
  // ServerReflectionRequest{list_services: ""} by hand (field 7, length-delimited), the
  // way a host without the reflection descriptors would probe: the answer names every
  // service as plain strings.
  const std::string request("\x3a\x00", 2);
  grpc::GenericStub stub(channel_);
  grpc::ClientContext ctx;
  ConfigureContext(&ctx, {});
  std::string answer = RawBidiExchange(stub, ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                       request, /*cancel_after_read=*/true)
                           .first;
  std::lock_guard<std::mutex> lock(mu_);
  transcript_ += answer;
  return answer;
}

grpc::Status MockEngine::StepsWithRawMessage(const std::string& bytes) {
  grpc::GenericStub stub(channel_);
  grpc::ClientContext ctx;
  ConfigureContext(&ctx, {});
  auto [answer, status] = RawBidiExchange(stub, ctx, "/wsstep.v1.StepPluginService/ExecuteSteps", bytes,
                                          /*cancel_after_read=*/false);
  std::lock_guard<std::mutex> lock(mu_);
  transcript_ += answer;
  transcript_ += status.error_message();
  transcript_ += status.error_details();
  return status;
}

std::unique_ptr<StepStream> MockEngine::OpenSteps(const CallOptions& options) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ConfigureContext(ctx.get(), options);
  auto record = [this](const std::string& text) {
    std::lock_guard<std::mutex> lock(mu_);
    transcript_ += text;
    transcript_ += '\n';
  };
  v1::StepPluginService::Stub* stub = steps_.get();
  return std::make_unique<StepStream>(std::move(ctx), record, [stub](grpc::ClientContext* c) {
    return stub->ExecuteSteps(c);
  });
}

StepStream::StepStream(
    std::unique_ptr<grpc::ClientContext> context, std::function<void(const std::string&)> record,
    std::function<std::unique_ptr<grpc::ClientReaderWriter<v1::ExecuteStepsRequest, v1::ExecuteStepsResponse>>(
        grpc::ClientContext*)>
        open)
    : context_(std::move(context)), record_(std::move(record)), io_(open(context_.get())) {}

bool StepStream::Send(const v1::ExecuteStepsRequest& request) { return io_->Write(request); }

std::optional<v1::ExecuteStepsResponse> StepStream::Read() {
  v1::ExecuteStepsResponse response;
  if (!io_->Read(&response)) return std::nullopt;
  if (response.body_chunks_size() == 0) {
    record_(response.SerializeAsString() + response.DebugString());
    return response;
  }
  // Body chunks are the origin's bytes, up to gigabytes in all: recorded without them.
  v1::ExecuteStepsResponse recorded = response;
  for (auto& chunk : *recorded.mutable_body_chunks()) chunk.clear_data();
  record_(recorded.SerializeAsString() + recorded.DebugString());
  return response;
}

std::map<uint64_t, v1::StepCallResult> StepStream::ReadResults(size_t count) {
  std::map<uint64_t, v1::StepCallResult> out;
  while (out.size() < count) {
    auto message = Read();
    if (!message) break;
    for (const auto& r : message->results()) out[r.call_id()] = r;
  }
  return out;
}

void StepStream::CloseSend() { io_->WritesDone(); }

void StepStream::Cancel() { context_->TryCancel(); }

grpc::Status StepStream::Finish() {
  grpc::Status status = io_->Finish();
  record_(status.error_message() + status.error_details());
  return status;
}

std::optional<int> MockEngine::Stop(std::chrono::milliseconds timeout) {
  if (!process_) return std::nullopt;
  process_->CloseStdin();
  auto code = process_->Wait(timeout);
  const std::string rest = process_->ReadRestOfStdout(std::chrono::seconds(1));
  {
    std::lock_guard<std::mutex> lock(mu_);
    transcript_ += rest;
  }
  steps_.reset();
  certs_.reset();
  channel_.reset();
  process_.reset();
  return code;
}

std::string MockEngine::Transcript() const {
  std::lock_guard<std::mutex> lock(mu_);
  return transcript_;
}

std::string MockEngine::StderrText() const { return ReadWhole(stderr_path_); }

// --- Request builders -----------------------------------------------------------------

v1::CreateCertificateRequest KeyPairFromFiles(const std::string& name, const std::string& cert_rel,
                                              const std::string& key_rel,
                                              const std::vector<Bind>& bindings,
                                              std::optional<std::string> key_password) {
  v1::CreateCertificateRequest r;
  r.mutable_certificate()->set_name(name);
  r.mutable_certificate()->set_type(v1::CERTIFICATE_TYPE_KEY_PAIR);
  for (const auto& b : bindings) *r.mutable_certificate()->add_bindings() = ToBinding(b);
  auto* m = r.mutable_material();
  m->set_content(testing::ReadFile(testing::PkiPath(cert_rel)));
  m->set_content_name(cert_rel);
  m->set_private_key(testing::ReadFile(testing::PkiPath(key_rel)));
  m->set_private_key_name(key_rel);
  if (key_password) m->mutable_password()->set_value(*key_password);
  return r;
}

v1::CreateCertificateRequest Pkcs12FromFile(const std::string& name, const std::string& rel,
                                            const std::string& password,
                                            const std::vector<Bind>& bindings) {
  v1::CreateCertificateRequest r;
  r.mutable_certificate()->set_name(name);
  r.mutable_certificate()->set_type(v1::CERTIFICATE_TYPE_PKCS12);
  for (const auto& b : bindings) *r.mutable_certificate()->add_bindings() = ToBinding(b);
  auto* m = r.mutable_material();
  m->set_content(testing::ReadFile(testing::PkiPath(rel)));
  m->set_content_name(rel);
  m->mutable_password()->set_value(password);
  return r;
}

v1::CreateCertificateRequest TrustStoreFromFile(const std::string& name, const std::string& rel,
                                                const std::vector<Bind>& bindings) {
  v1::CreateCertificateRequest r;
  r.mutable_certificate()->set_name(name);
  r.mutable_certificate()->set_type(v1::CERTIFICATE_TYPE_TRUST_STORE);
  for (const auto& b : bindings) *r.mutable_certificate()->add_bindings() = ToBinding(b);
  r.mutable_material()->set_content(testing::ReadFile(testing::PkiPath(rel)));
  r.mutable_material()->set_content_name(rel);
  return r;
}

v1::RestStep GetStep(const std::string& url) {
  v1::RestStep step;
  step.set_method("GET");
  step.set_url(url);
  step.mutable_tls()->set_ssl_verification(true);
  return step;
}

// --- Secret scanning ------------------------------------------------------------------

Secret KeySecret(const std::string& pki_rel) {
  return KeySecretFromPem("private key " + pki_rel, testing::ReadFile(testing::PkiPath(pki_rel)));
}

Secret KeySecretFromPem(const std::string& label, const std::string& pem) {
  Secret s;
  s.label = label;
  std::istringstream lines(pem);
  std::string line, body;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("-----", 0) == 0 || line.find(':') != std::string::npos) continue;
    body += line;
    // Whole body lines (64 base64 characters) are long enough never to occur by chance.
    if (line.size() >= 40) s.needles.push_back(line);
  }
  body.erase(std::remove(body.begin(), body.end(), '='), body.end());
  const auto der = plugin::Base64RawStdDecode(body);
  if (der) {
    // The public half of a private key (an RSA modulus, an EC point) is also in the
    // certificate, which is public and stored in clear: windows that lie inside the public
    // key's encoding are not secrets and would match the stored certificate.
    std::string public_der;
    if (auto bio = ossl::MemoryBio(pem)) {
      ossl::EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
      unsigned char* out = nullptr;
      const int len = key ? i2d_PUBKEY(key.get(), &out) : 0;
      if (len > 0) public_der.assign(reinterpret_cast<char*>(out), static_cast<size_t>(len));
      OPENSSL_free(out);
    }
    // The DER in windows: a key leaked in pieces, or inside a larger blob, still matches.
    constexpr size_t kWindow = 24;
    for (size_t off = 0; off + kWindow <= der->size(); off += kWindow) {
      std::string window = der->substr(off, kWindow);
      if (public_der.find(window) == std::string::npos) s.needles.push_back(std::move(window));
    }
  }
  return s;
}

Secret TextSecret(const std::string& label, const std::string& value) {
  Secret s;
  s.label = label;
  s.needles.push_back(value);
  s.needles.push_back(plugin::Base64RawStdEncode(value));
  return s;
}

std::vector<std::string> ScanForSecrets(const std::string& where, const std::string& haystack,
                                        const std::vector<Secret>& secrets) {
  std::vector<std::string> found;
  for (const auto& secret : secrets) {
    for (const auto& needle : secret.needles) {
      if (!needle.empty() && haystack.find(needle) != std::string::npos) {
        found.push_back(where + ": " + secret.label);
        break;
      }
    }
  }
  return found;
}

std::vector<std::pair<std::string, std::string>> ReadTree(const std::string& dir) {
  std::vector<std::pair<std::string, std::string>> files;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) files.emplace_back(it->path().string(), ReadWhole(it->path().string()));
  }
  return files;
}

}  // namespace wsstep::mock_engine

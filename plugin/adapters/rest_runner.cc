#include "plugin/adapters/rest_runner.h"

#include <algorithm>
#include <future>

#include "plugin/adapters/proto_convert.h"
#include "plugin/adapters/step_convert.h"
#include "plugin/server/status_map.h"
#include "rest/http_text.h"

namespace wsstep::plugin {
namespace {

bool IsResolutionOutcome(Code c) {
  return c == Code::kCertificateNotFound || c == Code::kCertificateExpired ||
         c == Code::kCertificateNotYetValid;
}

// What the store resolved for one call.
struct Resolved {
  core::CallCredentials credentials;
  core::ResolveRequest request;
  std::string server_name;  // SNI / verification name
  uint64_t version = 0;     // of the client certificate's entry
  bool used_store = false;
};

// The store's view of a call to `url`: host (tls_server_name wins), port, environment,
// named certificate.
core::ResolveRequest TargetOf(const rest::UrlParts& url, const rest::TlsOptions& tls) {
  core::ResolveRequest r;
  r.host = tls.tls_server_name.empty() ? url.host : tls.tls_server_name;
  r.port = url.port;
  r.environment = tls.environment;
  r.certificate_name = tls.certificate_name;
  return r;
}

}  // namespace

StoreCredentialSource::StoreCredentialSource(std::shared_ptr<core::CertificateStore> store)
    : store_(std::move(store)) {}

Result<rest::ResolvedCredentials> StoreCredentialSource::Resolve(
    std::string_view host, uint16_t port, std::string_view environment,
    std::string_view certificate_name, const rest::CredentialContext& context) {
  core::ResolveRequest r;
  r.host = std::string(host);
  r.port = port;
  r.environment =
      environment.empty() ? std::string(core::kDefaultEnvironment) : std::string(environment);
  r.certificate_name = std::string(certificate_name);
  // Only the step's own host must have a client certificate; a redirect target or a token
  // endpoint without one bound gets its bound trust (or the system CAs).
  const bool require =
      context.purpose == rest::CredentialPurpose::kStep || !certificate_name.empty();
  WSSTEP_ASSIGN_OR_RETURN(core::ResolvedCall call, store_->ResolveForCall(r, require));
  rest::ResolvedCredentials out;
  out.credentials = call.credentials;
  out.explanation = call.resolution.explanation;
  return out;
}

class Transfers {
 public:
  Transfers(std::shared_ptr<core::CertificateStore> store, const TransferOptions& options)
      : store_(std::move(store)) {
    limits_.max_body_bytes = options.max_body_bytes;
    limits_.max_chunked_body_bytes = options.max_chunked_body_bytes;
    propagate_trace_ = options.propagate_trace_context;
    rest::EngineOptions eo;
    eo.workers = options.workers;
    eo.max_queue = options.max_queue;
    eo.max_in_flight_per_origin = options.max_in_flight_per_origin;
    eo.spin_wait = options.spin_wait;
    eo.protected_environments = options.protected_environments;
    eo.credentials = std::make_shared<StoreCredentialSource>(store_);
    eo.proxy.url = options.proxy_url;
    eo.proxy.username = options.proxy_username;
    eo.proxy.password = options.proxy_password;
    proxy_credential_ = options.proxy_credential;
    eo.proxy.no_proxy = options.no_proxy;
    eo.offer_http2 = options.offer_http2;
    engine_ = std::make_unique<rest::RestEngine>(std::move(eo));
    soap_ = std::make_unique<soap::SoapClient>(*engine_);
  }
  ~Transfers() {
    Shutdown();
    soap_.reset();
    engine_.reset();
  }
  void Shutdown() { engine_->Shutdown(); }

  const StepLimits& limits() const { return limits_; }

  // With propagation on (the step's propagate_trace_context, else the plugin's setting)
  // and a traceparent on the call: the step's requests carry a child traceparent (this
  // call's span) and the host's tracestate. A header of that name the designer set wins.
  template <typename StepProto>
  void AddTraceHeaders(const CallContext& call, const StepProto& step,
                       std::vector<rest::Header>& headers) const {
    const bool propagate = step.has_propagate_trace_context()
                               ? step.propagate_trace_context().value()
                               : propagate_trace_;
    if (!propagate || !call.trace.valid()) return;
    auto has = [&headers](std::string_view name) {
      return std::any_of(headers.begin(), headers.end(), [name](const rest::Header& h) {
        return rest::EqualsIgnoreCase(h.name, name);
      });
    };
    if (has("traceparent")) return;
    headers.push_back({"traceparent", call.trace.ChildTraceparent()});
    if (!call.trace.state.empty() && !has("tracestate")) {
      headers.push_back({"tracestate", call.trace.state});
    }
  }
  rest::RestEngine& engine() { return *engine_; }
  const rest::RestEngine& engine() const { return *engine_; }
  soap::SoapClient& soap() { return *soap_; }
  core::CertificateStore& store() { return *store_; }

  // RestStepFromProto, with the proxy credential from the store.
  Result<rest::RestStep> RestStepFor(const v1::RestStep& step,
                                     const std::string& environment) const {
    WSSTEP_ASSIGN_OR_RETURN(rest::RestStep s, RestStepFromProto(step, environment, limits_));
    WSSTEP_RETURN_IF_ERROR(ApplyProxyCredential(step.proxy(), &s.proxy));
    return s;
  }

  // A step's proxy credentials from the store: the credential `proxy` names, else the
  // plugin's (proxy.credential in its configuration) when the step keeps the plugin's
  // proxy and credentials. Looked up at each step, without I/O: a changed password counts
  // from the next step. INVALID_STEP_CONFIG naming proxy.credential for a name the store
  // does not hold; FAILED_PRECONDITION when the configuration's is missing.
  Status ApplyProxyCredential(const v1::ProxySettings& proxy, rest::ProxySettings* out) const {
    std::string_view name = proxy.credential();
    const bool from_config = name.empty();
    if (from_config) {
      const bool keeps_plugins = !proxy.direct() && proxy.url().empty() &&
                                 proxy.username().empty() && proxy.password().empty();
      if (proxy_credential_.empty() || !keeps_plugins) return Status();
      name = proxy_credential_;
    }
    auto login = store_->ProxyCredential(name);
    if (!login.ok()) {
      Error e = login.error();
      if (e.code != Code::kNotFound) return e;
      if (from_config) {
        return Error(Code::kFailedPrecondition,
                     "the plugin's proxy.credential names \"" + std::string(name) +
                         "\", which the store does not hold",
                     "create it (`wsstep proxy-credential set " + std::string(name) +
                         " --user USER --password-env VAR`) or fix proxy.credential in the "
                         "plugin's configuration",
                     Side::kConfiguration)
            .With("proxy_credential", std::string(name));
      }
      e.code = Code::kInvalidStepConfig;
      e.side = Side::kConfiguration;
      e.message = "proxy.credential: " + e.message;
      return std::move(e).With("field", "proxy.credential");
    }
    out->username = login->username;
    out->password = login->password;
    return Status();
  }

  // Credentials for a call to `url` with `tls`. With ssl_verification the store's
  // resolution: client certificate and bound trust (failures are outcomes). Without it a
  // plain HTTPS call (PRODUCT.md §2): the store is not consulted at all, so no client
  // certificate, no bound trust, and a bound private-trust-only store cannot take the
  // system CAs away.
  // `require_identity` false: a host without a client certificate bound gets its bound
  // trust only (the documents a WSDL imports from other hosts).
  Result<Resolved> ResolveFor(const rest::UrlParts& url, const rest::TlsOptions& tls,
                              bool require_identity = true) const {
    Resolved out;
    out.request = TargetOf(url, tls);
    out.request.explain = false;  // a step never shows a successful resolution's explanation
    out.server_name = out.request.host;
    if (url.scheme != "https" || !tls.ssl_verification) return out;
    out.used_store = true;
    WSSTEP_ASSIGN_OR_RETURN(core::ResolvedCall call,
                            store_->ResolveForCall(out.request, require_identity));
    out.credentials = call.credentials;
    if (out.credentials.identity) out.version = out.credentials.identity->version;
    return out;
  }

  // A resolution failure is the step's outcome (in `out`), and a use of the store.
  void ResolutionFailed(const Error& e, const rest::UrlParts& url, const rest::TlsOptions& tls,
                        const CallContext& call, v1::StepError* out) const {
    FillStepError(e, out);
    if (!IsResolutionOutcome(e.code)) return;
    Resolved r;
    r.used_store = true;
    r.request = TargetOf(url, tls);
    RecordUse(r, call, CodeName(e.code));
  }

  void RecordUse(const Resolved& r, const CallContext& call, std::string_view outcome) const {
    if (!r.used_store) return;
    const std::string id = r.credentials.identity ? r.credentials.identity->entry_id : "";
    store_->RecordUse(id, r.request,
                      core::AuditContext(call.ActorOrDefault(), call.step_id, call.workflow_id),
                      outcome);
  }

 private:
  std::shared_ptr<core::CertificateStore> store_;
  std::string proxy_credential_;  // the configuration's; "" for none
  StepLimits limits_;
  bool propagate_trace_ = false;
  std::unique_ptr<rest::RestEngine> engine_;
  std::unique_ptr<soap::SoapClient> soap_;
};

namespace {

// A refused submission (queue full, stopping) is the contract's UNAVAILABLE, not an
// outcome: the step never ran.
Error Unavailable(rest::Refusal refusal) {
  std::string message;
  switch (refusal) {
    case rest::Refusal::kEngineBusy:
      message = "the transfer engine's queue is full; the step was not started, retry later";
      break;
    case rest::Refusal::kShuttingDown:
      message = "the transfer engine is shutting down; the step was not started";
      break;
  }
  return Error(Code::kTransferFailed, std::move(message))
      .With("reason", std::string(rest::RefusalName(refusal)));
}

void AddDiagnostic(const Error& e, v1::Severity severity, v1::ValidateStepResponse* response) {
  ErrorToDiagnostic(e, severity, response->add_diagnostics());
}

// Checked even when another field is wrong, so the designer sees both at once.
void ValidateResolution(Transfers& t, const std::string& url, const rest::TlsOptions& tls,
                        v1::ValidateStepResponse* response) {
  if (!tls.ssl_verification) return;
  auto parts = rest::ParseHttpUrl(url);
  if (!parts.ok()) return;  // reported by the engine's validation
  auto explained = t.store().Explain(TargetOf(*parts, tls));
  if (explained.ok()) return;
  Error e = explained.error();
  e.message = "verification on, but " + e.message;
  e.With("field", tls.certificate_name.empty() ? "tls.ssl_verification" : "tls.certificate");
  AddDiagnostic(e, v1::SEVERITY_ERROR, response);
}

// The same warnings, and words, as the step's outcome will carry.
void AddTlsWarnings(const rest::TlsOptions& tls, v1::ValidateStepResponse* response) {
  FillWarnings(rest::TlsOptionWarnings(tls), response->mutable_diagnostics());
}

class RestRunner final : public RestStepRunner {
 public:
  explicit RestRunner(std::shared_ptr<Transfers> t) : t_(std::move(t)) {}

  Status Validate(const CallContext& /*call*/, const v1::RestStep& step,
                  const std::string& environment, v1::ValidateStepResponse* response) override {
    auto s = t_->RestStepFor(step, environment);
    if (!s.ok()) {
      AddDiagnostic(TranslateField(s.error(), RestFieldToProto), v1::SEVERITY_ERROR, response);
      return Status();
    }
    Status v = t_->engine().Validate(*s);
    if (!v.ok()) {
      AddDiagnostic(TranslateField(v.error(), RestFieldToProto), v1::SEVERITY_ERROR, response);
    }
    ValidateResolution(*t_, s->url, s->tls, response);
    AddTlsWarnings(s->tls, response);
    return Status();
  }

  void Execute(const CallContext& call, const v1::ExecuteRestStepRequest& request,
               v1::ExecuteRestStepResponse* response, Done done) override {
    v1::StepOutcome* outcome = response->mutable_outcome();
    auto step = t_->RestStepFor(request.step(), request.environment());
    if (!step.ok()) {
      FillStepError(TranslateField(step.error(), RestFieldToProto), outcome->mutable_error());
      done(Status());
      return;
    }
    step->step_id = call.step_id;
    step->workflow_id = call.workflow_id;
    t_->AddTraceHeaders(call, request.step(), step->headers);
    const StepLimits& limits = t_->limits();
    if (call.response_body) {
      // A body in chunks never sits whole in a message: the chunked limit bounds it.
      const int64_t asked = request.step().max_response_bytes();
      step->max_response_bytes =
          asked == 0 ? limits.max_chunked_body_bytes
                     : std::min(static_cast<size_t>(asked), limits.max_chunked_body_bytes);
      step->response_body = call.response_body;
    }
    step->body_source = call.request_body;
    // Whole in the answer, the plugin's body limit stopped it: chunks would not.
    const bool suggest_chunks =
        !call.response_body && step->max_response_bytes == limits.max_body_bytes;
    // Checked and parsed once: resolution and the engine read the same parts.
    auto prepared = t_->engine().Prepare(std::move(step).value());
    if (!prepared.ok()) {
      FillStepError(TranslateField(prepared.error(), RestFieldToProto), outcome->mutable_error());
      done(Status());
      return;
    }
    const rest::TlsOptions& tls = prepared->step().tls;
    auto resolved = t_->ResolveFor(prepared->url(), tls);
    if (!resolved.ok()) {
      t_->ResolutionFailed(TranslateField(resolved.error(), RestFieldToProto), prepared->url(), tls,
                           call, outcome->mutable_error());
      done(Status());
      return;
    }
    // The engine watches the call's own cancelled flag (set by gRPC's OnCancel).
    rest::CancelToken token(call.cancelled);
    core::CallCredentials credentials = resolved->credentials;
    std::shared_ptr<rest::AttemptLog> attempts = prepared->step().attempts;
    // `call` stays valid until `done` (backends.h): read where it is, not copied. `done`
    // is moved along; the service calls it once.
    auto refusal = t_->engine().TrySubmit(
        std::move(prepared).value(), std::move(credentials), call.StepDeadline(), token,
        [t = t_, res = std::move(resolved).value(), call = &call, outcome, done, attempts,
         suggest_chunks](Result<rest::RestResult> r) {
          if (attempts) FillAttempts(*attempts, outcome);
          if (!r.ok()) {
            Error e = TranslateField(r.error(), RestFieldToProto);
            if (suggest_chunks && e.code == Code::kResponseTooLarge) {
              e.message +=
                  "; a body this large can be received in chunks on ExecuteSteps "
                  "(StepCall.response_body_chunks)";
              e.hint =
                  "Ask for the body in chunks on an ExecuteSteps stream "
                  "(StepCall.response_body_chunks: up to limits.max_chunked_body_bytes), "
                  "or ask for less data (paging, filters).";
            }
            FillStepError(e, outcome->mutable_error());
            t->RecordUse(res, *call, CodeName(r.error().code));
          } else {
            FillHttpOutcome(std::move(r).value(), res.version, res.server_name, outcome);
            t->RecordUse(res, *call, "OK");
          }
          done(Status());
        });
    if (refusal) done(Unavailable(*refusal));
  }

 private:
  std::shared_ptr<Transfers> t_;
};

Result<rest::RestStep> SoapTransport(const v1::SoapStep& step, const std::string& environment,
                                     const Transfers& t) {
  WSSTEP_ASSIGN_OR_RETURN(
      rest::RestStep s,
      TransportFromProto(step.auth(), step.tls(), step.timeouts(), step.redirects(),
                         step.max_response_bytes(), environment, t.limits()));
  WSSTEP_RETURN_IF_ERROR(NetworkFromProto(step.proxy(), step.retry(), &s));
  WSSTEP_RETURN_IF_ERROR(t.ApplyProxyCredential(step.proxy(), &s.proxy));
  WSSTEP_RETURN_IF_ERROR(HttpVersionFromProto(step.http_version(), &s));
  s.url.clear();
  s.method = "POST";  // what SoapClient sends; anything else is refused
  for (const auto& h : step.http_headers()) s.headers.push_back({h.name(), h.value()});
  return s;
}

// The transport a WSDL fetch uses: the request's (or a step's) TLS options and timeouts,
// no auth, no redirects, at most one document's size.
Result<rest::RestStep> WsdlTransport(const v1::TlsOptions& tls, const v1::Timeouts& timeouts,
                                     const std::string& environment, const StepLimits& limits) {
  return TransportFromProto(v1::HttpAuth(), tls, timeouts, v1::RedirectPolicy(),
                            static_cast<int64_t>(soap::WsdlLimits().max_document_bytes),
                            environment, limits);
}

// The documents of a WSDL fetched over the transfer engine: each a GET with the step's
// TLS options, the client certificate the store binds to its host (required for the
// WSDL's own host when ssl_verification is on, as for a step; optional for the hosts of
// imported documents), each use audited.
class FetchedDocuments final : public soap::WsdlDocumentSource {
 public:
  FetchedDocuments(std::shared_ptr<Transfers> t, const CallContext& call, const v1::TlsOptions& tls,
                   const v1::Timeouts& timeouts, std::string environment, std::string root_url)
      : t_(std::move(t)),
        call_(call),
        tls_(tls),
        timeouts_(timeouts),
        environment_(std::move(environment)),
        root_url_(std::move(root_url)) {}

  Result<std::string> Load(const std::string& location) override {
    // A RestStep is move-only (it may hold secrets): one made for each fetch.
    WSSTEP_ASSIGN_OR_RETURN(rest::RestStep get,
                            WsdlTransport(tls_, timeouts_, environment_, t_->limits()));
    // Through the plugin's proxy, with its credential from the store if it names one.
    WSSTEP_RETURN_IF_ERROR(t_->ApplyProxyCredential(v1::ProxySettings(), &get.proxy));
    get.method = "GET";
    get.url = location;
    get.step_id = call_.step_id;
    get.workflow_id = call_.workflow_id;
    auto prepared = t_->engine().Prepare(std::move(get));
    if (!prepared.ok()) {
      if (location == root_url_) return prepared.error();
      return Error(Code::kInvalidWsdl, location + " cannot be fetched: " + prepared.error().message,
                   "Imports must resolve to http(s) URLs.", Side::kConfiguration)
          .With("missing_document", location);
    }
    const rest::TlsOptions& tls = prepared->step().tls;
    const bool own_host = location == root_url_;
    auto resolved = t_->ResolveFor(prepared->url(), tls, own_host);
    if (!resolved.ok()) {
      if (IsResolutionOutcome(resolved.error().code)) {
        Resolved r;
        r.used_store = true;
        r.request = TargetOf(prepared->url(), tls);
        t_->RecordUse(r, call_, CodeName(resolved.error().code));
      }
      return resolved.error();
    }
    std::promise<Result<rest::RestResult>> fetched;
    auto future = fetched.get_future();
    t_->engine().Submit(std::move(prepared).value(), resolved->credentials, call_.SteadyDeadline(),
                        rest::CancelToken(call_.cancelled), [&fetched](Result<rest::RestResult> r) {
                          fetched.set_value(std::move(r));
                        });
    Result<rest::RestResult> r = future.get();
    t_->RecordUse(*resolved, call_, r.ok() ? "OK" : CodeName(r.error().code));
    if (!r.ok()) return r.error();
    if (r->status != 200) {
      return Error(Code::kInvalidWsdl,
                   location + " answered HTTP " + std::to_string(r->status) + ", not the document",
                   r->application_refused ? "TLS succeeded; the service refused the request."
                                          : "Check the URL.",
                   Side::kServer)
          .With("missing_document", location);
    }
    return std::move(r->body);
  }

 private:
  std::shared_ptr<Transfers> t_;
  const CallContext& call_;
  const v1::TlsOptions& tls_;
  const v1::Timeouts& timeouts_;
  std::string environment_;
  std::string root_url_;
};

Result<soap::WsdlDescription> ReadWsdlFromUrl(const std::shared_ptr<Transfers>& t,
                                              const CallContext& call, const std::string& url,
                                              const v1::TlsOptions& tls,
                                              const v1::Timeouts& timeouts,
                                              const std::string& environment) {
  // The options are checked once, before anything is fetched.
  WSSTEP_RETURN_IF_ERROR(WsdlTransport(tls, timeouts, environment, t->limits()).status());
  FetchedDocuments source(t, call, tls, timeouts, environment, url);
  return soap::ReadWsdl(url, source);
}

class WsdlRunner final : public WsdlDescriber {
 public:
  explicit WsdlRunner(std::shared_ptr<Transfers> t) : t_(std::move(t)) {}

  Status Describe(const CallContext& call, const v1::DescribeWsdlRequest& request,
                  v1::DescribeWsdlResponse* response) override {
    Result<soap::WsdlDescription> d = Error(Code::kInternal, "unread");
    if (!request.url().empty()) {
      d = ReadWsdlFromUrl(t_, call, request.url(), request.tls(), request.timeouts(),
                          request.environment());
    } else {
      std::vector<std::pair<std::string, std::string>> docs;
      size_t total = 0;
      for (const auto& doc : request.documents()) {
        total += doc.content().size();
        if (total > soap::WsdlLimits().max_total_bytes) {
          return Error(Code::kInvalidWsdl,
                       doc.location() + ": the uploaded documents exceed " +
                           std::to_string(soap::WsdlLimits().max_total_bytes) + " bytes together",
                       "", Side::kConfiguration)
              .With("document", doc.location());
        }
        docs.emplace_back(doc.location(), doc.content());
      }
      const std::string root = request.documents(0).location();
      soap::UploadedDocuments source(std::move(docs));
      d = soap::ReadWsdl(root, source);
    }
    if (!d.ok()) return d.error();
    FillWsdlDescription(*d, response);
    if (!request.operation().empty()) {
      const soap::WsdlPort* port = nullptr;
      const soap::WsdlOperation* op =
          soap::FindOperation(*d, request.operation(), request.port(), &port);
      if (op == nullptr) {
        return Error(Code::kInvalidArgument,
                     "the WSDL has no operation \"" + request.operation() + "\"" +
                         (request.port().empty() ? "" : " in port \"" + request.port() + "\""),
                     "", Side::kConfiguration)
            .With("field", "operation");
      }
      SoapStepToProto(soap::StepForOperation(*port, *op), response->mutable_step());
    }
    return Status();
  }

 private:
  std::shared_ptr<Transfers> t_;
};

// ValidateStep for a step that names its WSDL: the operation and its parameters checked
// against it; a WSDL that cannot be read is a diagnostic on "wsdl.url".
void ValidateAgainstWsdl(const std::shared_ptr<Transfers>& t, const CallContext& call,
                         const v1::SoapStep& step, const soap::SoapStep& s,
                         const std::string& environment, v1::ValidateStepResponse* response) {
  const v1::WsdlReference& ref = step.wsdl();
  auto d = ReadWsdlFromUrl(t, call, ref.url(), step.tls(), step.timeouts(), environment);
  if (!d.ok()) {
    Error e = d.error();
    e.With("field", "wsdl.url");
    AddDiagnostic(e, v1::SEVERITY_ERROR, response);
    return;
  }
  const soap::WsdlOperation* op = soap::FindOperation(*d, ref.operation(), ref.port(), nullptr);
  if (op == nullptr) {
    AddDiagnostic(Error(Code::kInvalidStepConfig,
                        "wsdl.operation: the WSDL has no operation \"" + ref.operation() + "\"", "",
                        Side::kConfiguration)
                      .With("field", "wsdl.operation"),
                  v1::SEVERITY_ERROR, response);
    return;
  }
  Status checked = soap::CheckStepAgainstOperation(s, *op);
  if (!checked.ok()) {
    AddDiagnostic(TranslateField(checked.error(), SoapFieldToProto), v1::SEVERITY_ERROR, response);
  }
}

class SoapRunner final : public SoapStepRunner {
 public:
  explicit SoapRunner(std::shared_ptr<Transfers> t) : t_(std::move(t)) {}

  Status Validate(const CallContext& call, const v1::SoapStep& step, const std::string& environment,
                  v1::ValidateStepResponse* response) override {
    auto transport = SoapTransport(step, environment, *t_);
    auto s = SoapStepFromProto(step, t_->limits());
    if (!transport.ok() || !s.ok()) {
      const Error& e = !transport.ok() ? transport.error() : s.error();
      AddDiagnostic(TranslateField(e, SoapFieldToProto), v1::SEVERITY_ERROR, response);
      return Status();
    }
    Status v = t_->soap().Validate(*s, *transport);
    if (!v.ok()) {
      AddDiagnostic(TranslateField(v.error(), SoapFieldToProto), v1::SEVERITY_ERROR, response);
    }
    ValidateResolution(*t_, step.endpoint(), transport->tls, response);
    AddTlsWarnings(transport->tls, response);
    if (step.has_wsdl() && !step.wsdl().url().empty()) {
      ValidateAgainstWsdl(t_, call, step, *s, environment, response);
    }
    return Status();
  }

  void Execute(const CallContext& call, const v1::ExecuteSoapStepRequest& request,
               v1::ExecuteSoapStepResponse* response, Done done) override {
    v1::StepOutcome* outcome = response->mutable_outcome();
    auto transport = SoapTransport(request.step(), request.environment(), *t_);
    auto s = transport.ok() ? SoapStepFromProto(request.step(), t_->limits())
                            : Result<soap::SoapStep>(transport.error());
    if (!s.ok()) {
      FillStepError(TranslateField(s.error(), SoapFieldToProto), outcome->mutable_error());
      done(Status());
      return;
    }
    transport->step_id = call.step_id;
    transport->workflow_id = call.workflow_id;
    t_->AddTraceHeaders(call, request.step(), transport->headers);
    // The envelope is built and the endpoint parsed once, before the store is asked.
    auto prepared = t_->soap().Prepare(*s, std::move(transport).value());
    if (!prepared.ok()) {
      FillStepError(TranslateField(prepared.error(), SoapFieldToProto), outcome->mutable_error());
      done(Status());
      return;
    }
    const rest::UrlParts& endpoint = prepared->request().url();
    const rest::TlsOptions& tls = prepared->request().step().tls;
    auto resolved = t_->ResolveFor(endpoint, tls);
    if (!resolved.ok()) {
      t_->ResolutionFailed(TranslateField(resolved.error(), SoapFieldToProto), endpoint, tls, call,
                           outcome->mutable_error());
      done(Status());
      return;
    }
    // The engine watches the call's own cancelled flag (set by gRPC's OnCancel).
    rest::CancelToken token(call.cancelled);
    core::CallCredentials credentials = resolved->credentials;
    std::shared_ptr<rest::AttemptLog> attempts = prepared->request().step().attempts;
    // `call` stays valid until `done` (backends.h): read where it is, not copied.
    auto refusal = t_->soap().TrySubmit(
        std::move(prepared).value(), std::move(credentials), call.StepDeadline(), token,
        [t = t_, res = std::move(resolved).value(), call = &call, outcome, done,
         attempts](Result<soap::SoapResult> r) {
          if (attempts) FillAttempts(*attempts, outcome);
          if (!r.ok()) {
            FillStepError(TranslateField(r.error(), SoapFieldToProto), outcome->mutable_error());
            t->RecordUse(res, *call, CodeName(r.error().code));
          } else {
            FillSoapResult(*r, outcome->mutable_soap());
            FillTimings(r->http.timings, outcome->mutable_timings());
            FillTlsFacts(r->http.tls, res.version, res.server_name, outcome->mutable_tls());
            FillWarnings(r->http.warnings, outcome->mutable_warnings());
            t->RecordUse(res, *call, r->response.fault ? "SOAP_FAULT" : "OK");
          }
          done(Status());
        });
    if (refusal) done(Unavailable(*refusal));
  }

 private:
  std::shared_ptr<Transfers> t_;
};

std::chrono::milliseconds DurationMillis(const google::protobuf::Duration& d) {
  return std::chrono::milliseconds(d.seconds() * 1000 + d.nanos() / 1'000'000);
}

v1::ProbeTimeout ToProtoProbeTimeout(rest::TimeLimit limit) {
  switch (limit) {
    case rest::TimeLimit::kHandshakeTimeout:
      return v1::PROBE_TIMEOUT_HANDSHAKE;
    case rest::TimeLimit::kCallerDeadline:
      return v1::PROBE_TIMEOUT_CALLER_DEADLINE;
    case rest::TimeLimit::kStepTimeout:
      break;  // a probe has no step timeout
  }
  return v1::PROBE_TIMEOUT_UNSPECIFIED;
}

void SetMillis(std::chrono::milliseconds ms, google::protobuf::Duration* out) {
  out->set_seconds(ms.count() / 1000);
  out->set_nanos(static_cast<int32_t>(ms.count() % 1000) * 1'000'000);
}

// A probe's verdict and what the server showed, failed or not.
void FillProbeResponse(const rest::RestResult& r, const Resolved& res,
                       v1::TestConnectionResponse* response) {
  const rest::ProbeReport& probe = *r.probe;
  response->set_ok(!probe.failure);
  if (probe.failure) FillStepError(*probe.failure, response->mutable_error());
  FillTlsFacts(r.tls, res.version, res.server_name, response->mutable_tls());
  response->mutable_tls()->clear_server_chain_subjects();
  for (const auto& cert : probe.server_chain) {
    FillPeerCertificate(cert, response->add_server_chain());
    response->mutable_tls()->add_server_chain_subjects(
        response->server_chain().rbegin()->subject());
  }
  FillTimings(r.timings, response->mutable_timings());
  FillWarnings(r.warnings, response->mutable_warnings());
  response->set_http_status(probe.http_status);
  if (probe.timed_out) {
    response->set_timed_out(ToProtoProbeTimeout(*probe.timed_out));
    SetMillis(probe.time_limit, response->mutable_timeout_limit());
  } else if (probe.answer_wait_expired) {
    response->set_timed_out(v1::PROBE_TIMEOUT_ANSWER_WAIT);
    SetMillis(probe.time_limit, response->mutable_timeout_limit());
  }
}

void TestConnectionImpl(const std::shared_ptr<Transfers>& t, const CallContext& call,
                        const v1::TestConnectionRequest& request,
                        v1::TestConnectionResponse* response, const Done& done) {
  if (request.host().empty()) {
    done(Error(Code::kInvalidArgument, "host: required").With("field", "host"));
    return;
  }
  if (request.port() > 65535) {
    done(Error(Code::kInvalidArgument, "port: not a TCP port").With("field", "port"));
    return;
  }
  v1::TlsOptions tls_proto;
  if (request.has_tls()) {
    tls_proto = request.tls();
  } else {
    tls_proto.set_ssl_verification(true);
  }
  auto step = TransportFromProto(v1::HttpAuth(), tls_proto, v1::Timeouts(), v1::RedirectPolicy(), 0,
                                 request.environment(), t->limits());
  if (!step.ok()) {
    Error e = step.error();
    e.code = Code::kInvalidArgument;
    e.With("field", "tls." + (e.detail.count("field") ? e.detail.at("field") : std::string()));
    done(TranslateField(e, RestFieldToProto));
    return;
  }
  // The probe's route is a step's: its own proxy, the plugin's, or direct.
  Status network = NetworkFromProto(request.proxy(), v1::RetryPolicy(), &*step);
  if (network.ok()) network = t->ApplyProxyCredential(request.proxy(), &step->proxy);
  if (!network.ok()) {
    Error e = network.error();
    if (e.code == Code::kInvalidStepConfig) e.code = Code::kInvalidArgument;
    done(e);
    return;
  }
  const uint16_t port = request.port() == 0 ? 443 : static_cast<uint16_t>(request.port());
  const bool ipv6 = request.host().find(':') != std::string::npos;
  step->url = "https://" + (ipv6 ? "[" + request.host() + "]" : request.host()) + ":" +
              std::to_string(port) + "/";
  // The probe has its own limits (and the call's deadline); the step's do not apply.
  rest::HandshakeProbe& probe = step->probe.emplace();
  if (request.has_timeout()) probe.handshake_timeout = DurationMillis(request.timeout());
  if (request.has_answer_wait()) probe.answer_wait = DurationMillis(request.answer_wait());
  step->timeouts.connect = step->timeouts.total = std::chrono::milliseconds(0);
  step->step_id = call.step_id;
  step->workflow_id = call.workflow_id;

  auto parts = rest::ParseHttpUrl(step->url, "host");
  if (!parts.ok()) {
    done(parts.error());
    return;
  }
  if (step->tls.ssl_verification) {
    Status explained =
        ExplainResolution(t->store(), TargetOf(*parts, step->tls), response->mutable_resolution());
    if (!explained.ok()) {
      done(explained);
      return;
    }
  }
  auto resolved = t->ResolveFor(*parts, step->tls);
  if (!resolved.ok()) {
    response->set_ok(false);
    FillStepError(resolved.error(), response->mutable_error());
    done(Status());
    return;
  }
  auto prepared = t->engine().Prepare(std::move(step).value());
  if (!prepared.ok()) {
    response->set_ok(false);
    FillStepError(prepared.error(), response->mutable_error());
    done(Status());
    return;
  }
  rest::CancelToken token(call.cancelled);
  auto res = std::make_shared<Resolved>(std::move(resolved).value());
  auto refusal = t->engine().TrySubmit(
      std::move(prepared).value(), res->credentials, call.StepDeadline(), token,
      [t, res, call, response, done](Result<rest::RestResult> r) {
        if (!r.ok()) {
          response->set_ok(false);
          FillStepError(r.error(), response->mutable_error());
          t->RecordUse(*res, call, CodeName(r.error().code));
          done(Status());
          return;
        }
        FillProbeResponse(*r, *res, response);
        t->RecordUse(*res, call, r->probe->failure ? CodeName(r->probe->failure->code) : "OK");
        done(Status());
      });
  if (refusal) done(Unavailable(*refusal));
}

}  // namespace

std::shared_ptr<Transfers> MakeTransfers(std::shared_ptr<core::CertificateStore> store,
                                         const TransferOptions& options) {
  return std::make_shared<Transfers>(std::move(store), options);
}

void ShutdownTransfers(Transfers& transfers) { transfers.Shutdown(); }

std::vector<rest::PartitionStats> ConnectionTotals(const Transfers& transfers) {
  return transfers.engine().TotalsByEntry();
}

std::unique_ptr<StepThreadLease> LendThreadToEngine(Transfers& transfers,
                                                    std::function<void()> on_slow) {
  class EngineLease final : public StepThreadLease {
   public:
    explicit EngineLease(std::unique_ptr<rest::RestEngine::ThreadLease> lease)
        : lease_(std::move(lease)) {}
    void AllowInline(bool allow) override { lease_->AllowRunHere(allow); }

   private:
    std::unique_ptr<rest::RestEngine::ThreadLease> lease_;
  };
  return std::make_unique<EngineLease>(transfers.engine().LendThisThread(std::move(on_slow)));
}

std::shared_ptr<RestStepRunner> MakeRestRunner(std::shared_ptr<Transfers> transfers) {
  return std::make_shared<RestRunner>(std::move(transfers));
}

std::shared_ptr<WsdlDescriber> MakeWsdlDescriber(std::shared_ptr<Transfers> transfers) {
  return std::make_shared<WsdlRunner>(std::move(transfers));
}

std::shared_ptr<SoapStepRunner> MakeSoapRunner(std::shared_ptr<Transfers> transfers) {
  return std::make_shared<SoapRunner>(std::move(transfers));
}

ConnectionTester MakeConnectionTester(std::shared_ptr<Transfers> transfers) {
  return [transfers](const CallContext& call, const v1::TestConnectionRequest& request,
                     v1::TestConnectionResponse* response,
                     Done done) { TestConnectionImpl(transfers, call, request, response, done); };
}

}  // namespace wsstep::plugin

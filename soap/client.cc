#include "soap/client.h"

#include <future>
#include <utility>

#include "soap/xml_util.h"

namespace wsstep::soap {
namespace {

bool EqualsNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && xml::FindNoCase(a, b) == 0;
}

// What the transport may not decide for a SOAP call.
Status CheckTransport(const SoapStep& step, const rest::RestStep& t) {
  if (step.endpoint.empty()) {
    return xml::ConfigError("endpoint", "is empty", "Set the SOAP service's URL.");
  }
  if (!t.url.empty() && t.url != step.endpoint) {
    return xml::ConfigError("transport.url", "differs from the SOAP endpoint",
                            "Leave it empty: a SOAP call goes to its endpoint.");
  }
  if (t.method != "GET" && t.method != "POST") {  // "GET" is RestStep's default
    return xml::ConfigError("transport.method", "SOAP calls are POST requests",
                            "Leave the method unset.");
  }
  if (!t.body.empty()) {
    return xml::ConfigError("transport.body", "is set by the SOAP envelope",
                            "Put the payload in the SOAP body instead.");
  }
  if (!t.content_type.empty()) {
    return xml::ConfigError("transport.content_type", "is set by the SOAP version",
                            "Leave it empty.");
  }
  if (step.security.signature &&
      (!t.tls.ssl_verification || xml::FindNoCase(step.endpoint, "https://") != 0)) {
    return xml::ConfigError(
        "security.signature",
        "signing needs the certificate bound to the endpoint, but this call presents none (" +
            std::string(t.tls.ssl_verification ? "the endpoint is not https"
                                               : "ssl_verification is off") +
            ")",
        "Use an https endpoint with ssl_verification on, and bind a certificate with its "
        "private key to the endpoint's host and port.");
  }
  for (size_t i = 0; i < t.headers.size(); ++i) {
    const std::string& name = t.headers[i].name;
    if (EqualsNoCase(name, "Content-Type") || EqualsNoCase(name, "SOAPAction")) {
      return xml::ConfigError("transport.headers[" + std::to_string(i) + "]",
                              name + " is set from the SOAP version and action",
                              "Set the step's SOAP action instead.");
    }
  }
  return Status();
}

// The REST engine names the URL "url"; in a SOAP step it is the endpoint.
Error RenameUrlField(Error e) {
  auto it = e.detail.find("field");
  if (e.code == Code::kInvalidStepConfig && it != e.detail.end() && it->second == "url") {
    it->second = "endpoint";
    if (e.message.starts_with("url: ")) e.message = "endpoint: " + e.message.substr(5);
  }
  return e;
}

// The envelope POST: the transport with the SOAP parts merged in.
rest::RestStep MergeEnvelope(const SoapStep& step, BuiltEnvelope built, rest::RestStep transport) {
  transport.method = "POST";
  transport.url = step.endpoint;
  transport.body = std::move(built.body);
  transport.content_type = built.content_type;
  for (auto& [name, value] : built.headers) {
    transport.headers.push_back(rest::Header{name, value});
  }
  return transport;
}

}  // namespace

Result<SoapResult> InterpretHttpResult(rest::RestResult http, SoapVersion version,
                                       std::string_view url, size_t max_response_bytes) {
  Result<SoapResponse> parsed =
      ParseResponse(http.status, http.content_type, http.body, version, max_response_bytes);
  if (!parsed.ok()) {
    Error e = parsed.error();
    e.message = std::string(url) + ": " + e.message;
    if (http.application_refused) {
      e.message = http.application_refused_message + "; " + e.message;
      e.hint =
          "Check the step's credentials (auth) or the identity's permissions at the "
          "service; the TLS setup worked.";
      e.With("application_refused", "true");
    }
    e.With("url", std::string(url));
    return e;
  }
  SoapResult result;
  result.http = std::move(http);
  result.response = std::move(parsed).value();
  return result;
}

SoapClient::SoapClient(rest::RestEngine& engine, core::Clock clock, RandomSource& random)
    : engine_(engine), clock_(std::move(clock)), random_(random) {}

Result<rest::RestStep> SoapClient::PrepareRequest(const SoapStep& step,
                                                  rest::RestStep transport) const {
  WSSTEP_RETURN_IF_ERROR(CheckTransport(step, transport));
  WSSTEP_ASSIGN_OR_RETURN(BuiltEnvelope built, BuildEnvelope(step, clock_, random_));
  return MergeEnvelope(step, std::move(built), std::move(transport));
}

Status SoapClient::Validate(const SoapStep& step, const rest::RestStep& transport) const {
  WSSTEP_RETURN_IF_ERROR(CheckTransport(step, transport));
  WSSTEP_RETURN_IF_ERROR(ValidateSoapStep(step));
  // The engine checks URL, headers and TLS options; a copy without secrets suffices.
  rest::RestStep probe;
  probe.method = "POST";
  probe.url = step.endpoint;
  probe.query = transport.query;
  probe.headers = transport.headers;
  probe.tls = transport.tls;
  probe.timeouts = transport.timeouts;
  probe.follow_redirects = transport.follow_redirects;
  probe.max_redirects = transport.max_redirects;
  probe.max_response_bytes = transport.max_response_bytes;
  probe.proxy = transport.proxy;
  probe.retry = transport.retry;
  Status st = engine_.Validate(probe);
  if (!st.ok()) return RenameUrlField(st.error());
  return Status();
}

Result<SoapClient::PreparedCall> SoapClient::Prepare(const SoapStep& step,
                                                     rest::RestStep transport) const {
  WSSTEP_RETURN_IF_ERROR(CheckTransport(step, transport));
  WSSTEP_ASSIGN_OR_RETURN(BuiltEnvelope built, BuildEnvelope(step, clock_, random_));
  std::vector<std::string> signed_ids = std::move(built.signed_ids);
  rest::RestStep request = MergeEnvelope(step, std::move(built), std::move(transport));
  Result<rest::PreparedStep> prepared = engine_.Prepare(std::move(request));
  if (!prepared.ok()) return RenameUrlField(prepared.error());
  PreparedCall call(std::move(prepared).value(), step.version, step.endpoint);
  call.signature_ = step.security.signature;
  call.signed_ids_ = std::move(signed_ids);
  return call;
}

Result<std::shared_ptr<const SignatureFacts>> SoapClient::SignCall(
    PreparedCall& call, const core::CallCredentials& credentials) {
  if (!call.signature_) return std::shared_ptr<const SignatureFacts>();
  if (!credentials.identity) {
    return Error(
        Code::kSigningFailed,
        "WS-Security signature: no certificate is bound to " + call.endpoint_ + " to sign with",
        "Bind a certificate with its private key to the endpoint's host and port.", Side::kClient);
  }
  WSSTEP_ASSIGN_OR_RETURN(SignedEnvelope signed_envelope,
                          SignEnvelope(call.request_.step().body, call.signed_ids_,
                                       *credentials.identity, *call.signature_));
  call.request_.ReplaceBody(std::move(signed_envelope.body));
  return std::make_shared<const SignatureFacts>(std::move(signed_envelope.facts));
}

Result<SoapResult> SoapClient::Execute(const SoapStep& step, rest::RestStep transport,
                                       core::CallCredentials credentials, rest::Deadline deadline,
                                       rest::CancelToken cancel) {
  std::promise<Result<SoapResult>> promise;
  auto future = promise.get_future();
  Submit(step, std::move(transport), std::move(credentials), deadline, std::move(cancel),
         [&promise](Result<SoapResult> r) { promise.set_value(std::move(r)); });
  return future.get();
}

void SoapClient::Submit(const SoapStep& step, rest::RestStep transport,
                        core::CallCredentials credentials, rest::Deadline deadline,
                        rest::CancelToken cancel, SoapCallback done) {
  Result<PreparedCall> call = Prepare(step, std::move(transport));
  if (!call.ok()) return done(call.error());
  auto signature = SignCall(*call, credentials);
  if (!signature.ok()) return done(signature.error());
  const size_t max_bytes = call->request().step().max_response_bytes;
  engine_.Submit(std::move(call->request_), std::move(credentials), deadline, std::move(cancel),
                 Interpreting(std::move(done), call->version_, std::move(call->endpoint_),
                              max_bytes, std::move(signature).value()));
}

std::optional<rest::Refusal> SoapClient::TrySubmit(PreparedCall call,
                                                   core::CallCredentials credentials,
                                                   rest::Deadline deadline,
                                                   rest::CancelToken cancel, SoapCallback done) {
  auto signature = SignCall(call, credentials);
  if (!signature.ok()) {
    done(signature.error());
    return std::nullopt;
  }
  const size_t max_bytes = call.request().step().max_response_bytes;
  return engine_.TrySubmit(std::move(call.request_), std::move(credentials), deadline,
                           std::move(cancel),
                           Interpreting(std::move(done), call.version_, std::move(call.endpoint_),
                                        max_bytes, std::move(signature).value()));
}

rest::StepCallback SoapClient::Interpreting(SoapCallback done, SoapVersion version, std::string url,
                                            size_t max_bytes,
                                            std::shared_ptr<const SignatureFacts> signature) {
  if (signature) {
    done = [done = std::move(done), signature = std::move(signature)](Result<SoapResult> r) {
      if (r.ok()) r->signature = signature;
      done(std::move(r));
    };
  }
  // By reference: GCC 12 warns maybe-uninitialized about moving a Result<RestResult>
  // into a by-value parameter here.
  return [done = std::move(done), version, url = std::move(url),
          max_bytes](Result<rest::RestResult>&& http) {
    if (!http.ok()) return done(RenameUrlField(http.error()));
    done(InterpretHttpResult(std::move(http).value(), version, url, max_bytes));
  };
}

}  // namespace wsstep::soap

// SoapClient: one SOAP call = one envelope POST through the REST engine's single transfer
// path (rest/engine.h), so SOAP steps get exactly the REST steps' mTLS, trust, identity
// partitioning, timeouts, redirects, auth and error classification.
//
//   rest::RestEngine engine(options);
//   soap::SoapClient client(engine);
//   rest::RestStep transport;                  // TLS, auth, timeouts, limits, extra headers
//   transport.tls.ssl_verification = true;
//   Result<soap::SoapResult> r =
//       client.Execute(step, std::move(transport), credentials, deadline);
//   if (!r.ok()) route_on(r.error().code);     // transport catalog, INVALID_RESPONSE, ...
//   else if (r->response.fault) route_on(soap::FaultError(*r->response.fault));  // SOAP_FAULT
//   else use(r->response);
//
// The transport is a rest::RestStep used for everything except what SOAP decides: the
// client sets method POST, url = SoapStep::endpoint, body, Content-Type and (1.1)
// SOAPAction. A transport that sets a body, a content type, another URL, or a
// Content-Type / SOAPAction header is INVALID_STEP_CONFIG (field "transport.*").
#ifndef WSSTEP_SOAP_CLIENT_H_
#define WSSTEP_SOAP_CLIENT_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/identity.h"
#include "core/model.h"
#include "rest/engine.h"
#include "rest/step.h"
#include "soap/envelope.h"
#include "soap/response.h"
#include "soap/signature.h"
#include "soap/wssecurity.h"

namespace wsstep::soap {

struct SoapResult {
  // The HTTP exchange as the REST engine reports it: status, headers, the raw body,
  // timings, TLS facts (protocol, cipher, server certificate, the client certificate
  // presented, reuse), warnings.
  rest::RestResult http;
  // The parsed envelope; response.fault is set for a SOAP Fault (any HTTP status).
  SoapResponse response;
  // Set when the request was signed (WsSecurity::signature): how, and with which
  // certificate. (Held by pointer, like RestResult::probe: an inline optional makes GCC 12
  // warn maybe-uninitialized about every Result of this.)
  std::shared_ptr<const SignatureFacts> signature;
};

using SoapCallback = std::function<void(Result<SoapResult>)>;

class SoapClient {
 public:
  // `engine` and `random` must outlive the client. Thread-safe if they are.
  explicit SoapClient(rest::RestEngine& engine, core::Clock clock = core::SystemClock(),
                      RandomSource& random = SystemRandom());

  // Builds the HTTP request for a SOAP step: the envelope, POST to the endpoint, the
  // SOAP headers, merged into `transport`. INVALID_STEP_CONFIG naming the field.
  // Note: with a PasswordText token the returned body holds the password in clear.
  Result<rest::RestStep> PrepareRequest(const SoapStep& step, rest::RestStep transport) const;

  // Design-time check of a step and its transport, without sending anything.
  Status Validate(const SoapStep& step, const rest::RestStep& transport) const;

  // Sends the step and parses the answer. Errors: INVALID_STEP_CONFIG, the REST engine's
  // catalog as it classifies it (TLS, CLIENT_CERT_REJECTED / _REQUIRED — also for nginx's
  // HTTP 400 certificate pages —, connection, timeout, RESPONSE_TOO_LARGE, ...), and
  // INVALID_RESPONSE / RESPONSE_TOO_LARGE from ParseResponse, prefixed with the endpoint.
  // A SOAP Fault is a result.
  Result<SoapResult> Execute(const SoapStep& step, rest::RestStep transport,
                             core::CallCredentials credentials, rest::Deadline deadline,
                             rest::CancelToken cancel = {});

  // A SOAP call built and checked, ready for the engine: the envelope POST with its
  // endpoint parsed once (request().url() is what a caller resolves credentials for).
  class PreparedCall {
   public:
    const rest::PreparedStep& request() const { return request_; }

   private:
    friend class SoapClient;
    PreparedCall(rest::PreparedStep request, SoapVersion version, std::string endpoint)
        : request_(std::move(request)), version_(version), endpoint_(std::move(endpoint)) {}
    rest::PreparedStep request_;
    SoapVersion version_;
    std::string endpoint_;
    // A signed step: how to sign, and the wsu:Id of each part (BuiltEnvelope::signed_ids).
    std::optional<SignatureOptions> signature_;
    std::vector<std::string> signed_ids_;
  };
  // PrepareRequest and the engine's checks: INVALID_STEP_CONFIG naming the field.
  Result<PreparedCall> Prepare(const SoapStep& step, rest::RestStep transport) const;

  // Asynchronous Execute: `done` runs exactly once, on an engine worker thread, or on the
  // calling thread when the request is refused before it is queued.
  void Submit(const SoapStep& step, rest::RestStep transport, core::CallCredentials credentials,
              rest::Deadline deadline, rest::CancelToken cancel, SoapCallback done);
  // A signed step is signed in Submit / TrySubmit, on the calling thread, with the key of
  // `credentials.identity` (the certificate the store bound to the endpoint):
  // SIGNING_FAILED (the step's outcome, `done` called) when that key cannot sign.
  //
  // Submit of a prepared call with the engine's refusal typed (rest::RestEngine::TrySubmit):
  // when the engine does not take the call, `done` is never called and the refusal is
  // returned.
  [[nodiscard]] std::optional<rest::Refusal> TrySubmit(PreparedCall call,
                                                       core::CallCredentials credentials,
                                                       rest::Deadline deadline,
                                                       rest::CancelToken cancel, SoapCallback done);

 private:
  // The engine callback that reads a finished exchange as a SOAP answer for `done`.
  static rest::StepCallback Interpreting(SoapCallback done, SoapVersion version, std::string url,
                                         size_t max_bytes,
                                         std::shared_ptr<const SignatureFacts> signature);
  // Signs a prepared call's envelope with the identity's key (no-op for an unsigned step).
  static Result<std::shared_ptr<const SignatureFacts>> SignCall(
      PreparedCall& call, const core::CallCredentials& credentials);

  rest::RestEngine& engine_;
  core::Clock clock_;
  RandomSource& random_;
};

// Maps a finished HTTP exchange to a SOAP result by parsing its body with ParseResponse;
// errors name `url`, and after a 401/403 say that the application refused. Exposed for
// tests.
Result<SoapResult> InterpretHttpResult(rest::RestResult http, SoapVersion version,
                                       std::string_view url, size_t max_response_bytes);

}  // namespace wsstep::soap

#endif  // WSSTEP_SOAP_CLIENT_H_

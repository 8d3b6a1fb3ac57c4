// Conversions between the step messages of wsstep.v1 (step.proto) and the engines'
// request/result types (rest/step.h, soap/envelope.h, soap/response.h), and the
// translation of the engines' field names into proto field paths (the host shows a
// finding next to the field it configured).
#ifndef WSSTEP_PLUGIN_ADAPTERS_STEP_CONVERT_H_
#define WSSTEP_PLUGIN_ADAPTERS_STEP_CONVERT_H_

#include <string>
#include <string_view>

#include "core/error.h"
#include "plugin/process/config.h"
#include "rest/step.h"
#include "rest/warning.h"
#include "soap/client.h"
#include "soap/envelope.h"
#include "soap/wsdl.h"
#include "wsstep/v1/step.pb.h"
#include "wsstep/v1/step_plugin_service.pb.h"

namespace wsstep::plugin {

struct StepLimits {
  // Caps max_response_bytes (0 in the step means this) and request bodies (REST body,
  // SOAP raw_body plus header_blocks).
  size_t max_body_bytes = kDefaultMaxBodyBytes;
  // Caps max_response_bytes (and means 0 there) for a body sent in chunks on
  // ExecuteSteps (StepCall.response_body_chunks), and a request body sent so.
  size_t max_chunked_body_bytes = kDefaultMaxChunkedBodyBytes;
};

// Proto field path of a REST engine field name ("max_redirects" ->
// "redirects.max_redirects", "auth.oauth2.client_id" ->
// "auth.oauth2_client_credentials.client_id", "tls.certificate_name" -> "tls.certificate").
std::string RestFieldToProto(std::string_view field);
// Same for SOAP ("body" -> "raw_body", "security.*" -> "ws_security.*", "parameters.x"
// -> "operation.parameters.x", "transport.headers[i]" -> "http_headers[i]", ...).
std::string SoapFieldToProto(std::string_view field);
// Rewrites detail "field" (and the message's leading "field: ") with `translate`.
Error TranslateField(Error e, std::string (*translate)(std::string_view));

// The shared transport part of a REST or SOAP step. `environment` is the request's;
// tls.environment wins. Pins are normalized (bare base64, "sha256//" and hex all work).
Result<rest::RestStep> TransportFromProto(const v1::HttpAuth& auth, const v1::TlsOptions& tls,
                                          const v1::Timeouts& timeouts,
                                          const v1::RedirectPolicy& redirects,
                                          int64_t max_response_bytes,
                                          const std::string& environment,
                                          const StepLimits& limits);
// A step's proxy and retry policy (both step kinds carry them as fields 60 and 61) into
// `out`. INVALID_STEP_CONFIG naming the proto field. A retry policy with more than one
// attempt gets an attempt log (out->attempts) for FillAttempts.
Status NetworkFromProto(const v1::ProxySettings& proxy, const v1::RetryPolicy& retry,
                        rest::RestStep* out);
// RestStep/SoapStep.http_version into `out`; INVALID_STEP_CONFIG for an unknown value.
Status HttpVersionFromProto(v1::HttpVersion version, rest::RestStep* out);
// The attempts of a step with a retry policy, as StepOutcome.attempts.
void FillAttempts(const rest::AttemptLog& attempts, v1::StepOutcome* out);
// A whole REST step. INVALID_STEP_CONFIG naming the proto field.
Result<rest::RestStep> RestStepFromProto(const v1::RestStep& step, const std::string& environment,
                                         const StepLimits& limits);
// A SOAP step (the transport comes from TransportFromProto). raw_body and header_blocks
// together are bounded by limits.max_body_bytes: INVALID_STEP_CONFIG on "raw_body" or on
// the "header_blocks[i]" that crosses the limit.
Result<soap::SoapStep> SoapStepFromProto(const v1::SoapStep& step, const StepLimits& limits);

// The outcome parts of a finished exchange. `server_name` is the SNI name used.
void FillHttpOutcome(rest::RestResult&& r, uint64_t client_version,
                     const std::string& server_name, v1::StepOutcome* out);
// Takes `tls` by value: a caller done with its facts moves them, and their strings move
// into `out` without a copy.
void FillTlsFacts(rest::TlsFacts tls, uint64_t client_version, const std::string& server_name,
                  v1::TlsFacts* out);
void FillTimings(const rest::Timings& t, v1::Timings* out);
// A certificate the server sent: subject, issuer, validity, SANs.
void FillPeerCertificate(const rest::PeerCertificateFacts& cert, v1::CertificateInfo* out);
// The engine's warnings as Diagnostics (SEVERITY_WARNING, warning_code and its name,
// field path).
void FillWarnings(const std::vector<rest::Warning>& warnings,
                  google::protobuf::RepeatedPtrField<v1::Diagnostic>* out);
// The proto value of an engine warning (each has its own).
v1::WarningCode ToProtoWarningCode(rest::WarningCode code);
void FillSoapResult(const soap::SoapResult& r, v1::SoapResult* out);

// A step made from a WSDL (soap::StepForOperation) as the proto a designer edits:
// endpoint, version, action and the operation with its parameters (an element in no
// namespace is `unqualified`).
void SoapStepToProto(const soap::SoapStep& step, v1::SoapStep* out);
// DescribeWsdl's answer from a WSDL as read.
void FillWsdlDescription(const soap::WsdlDescription& d, v1::DescribeWsdlResponse* out);

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_ADAPTERS_STEP_CONVERT_H_

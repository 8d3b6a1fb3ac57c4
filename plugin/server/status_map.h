// The one place where wsstep errors become wire errors (PRODUCT.md §4 "Errors").
//
// Step outcomes: a wsstep::Error from a step (TLS failure, missing certificate, timeout)
// goes back *in the response* as a StepError, because the workflow routes on it:
//   FillStepError(error, outcome.mutable_error());
//
// Contract errors: everything else becomes a grpc::Status whose details
// ("grpc-status-details-bin") carry a google.rpc.Status with
//   - google.rpc.ErrorInfo{reason: catalog name, domain: "wsstep.dev",
//     metadata: the error's detail map plus "hint" and "side"}, always;
//   - google.rpc.BadRequest field violations when the error names request fields
//     (detail "field", or `violations` given).
//   return ToGrpcStatus(Error(Code::kNotFound, "certificate 'bank' not found"));
//   return InvalidArgument("step is required", {{"step", "required"}});
#ifndef WSSTEP_PLUGIN_SERVER_STATUS_MAP_H_
#define WSSTEP_PLUGIN_SERVER_STATUS_MAP_H_

#include <grpcpp/support/status.h>

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "wsstep/v1/step.pb.h"

namespace wsstep::plugin {

// google.rpc.ErrorInfo.domain of every wsstep error.
inline constexpr std::string_view kErrorDomain = "wsstep.dev";

// Catalog code <-> proto enum. The proto value is "ERROR_CODE_" + CodeName(code); kOk and
// codes without a proto value map to ERROR_CODE_UNSPECIFIED / kInternal.
v1::ErrorCode ToProtoErrorCode(Code code);
Code FromProtoErrorCode(v1::ErrorCode code);
v1::ErrorSide ToProtoSide(Side side);
Side FromProtoSide(v1::ErrorSide side);

// Fills a StepError from an error (code name and enum, message, hint, side, detail).
void FillStepError(const Error& error, v1::StepError* out);
// The reverse, for clients (the CLI) that want an Error to print.
Error FromStepError(const v1::StepError& error);

struct FieldViolation {
  std::string field;        // dotted proto field path, e.g. "material.password"
  std::string description;  // why it is invalid
  bool operator==(const FieldViolation&) const = default;
};

// The gRPC status code a contract error gets: INVALID_ARGUMENT for bad input and refused
// uploads, NOT_FOUND, ALREADY_EXISTS (also DUPLICATE_NAME), FAILED_PRECONDITION (also
// MASTER_KEY_ERROR), DEADLINE_EXCEEDED (TIMEOUT), CANCELLED, UNAVAILABLE (STORAGE_ERROR
// and transport failures), INTERNAL otherwise.
grpc::StatusCode GrpcCodeFor(Code code);

// A contract error as a grpc::Status with rich details. The error's detail "field" (a
// proto field path) becomes a field violation besides any in `violations`.
grpc::Status ToGrpcStatus(const Error& error, const std::vector<FieldViolation>& violations = {});
inline grpc::Status ToGrpcStatus(const Status& status) {
  return status.ok() ? grpc::Status::OK : ToGrpcStatus(status.error());
}
// INVALID_ARGUMENT (reason INVALID_ARGUMENT) with field violations.
grpc::Status InvalidArgument(std::string message, std::vector<FieldViolation> violations);
// UNIMPLEMENTED for a method whose backend this build does not have: says which part is
// missing, so a host can tell "not wired yet" from "unknown method".
grpc::Status NotAvailable(std::string_view method, std::string_view missing_part);
// What a host gets for a unary call whose request protobuf cannot parse (invalid UTF-8 in
// a string field, nesting deeper than 100): INVALID_ARGUMENT, reason INVALID_ARGUMENT,
// detail "method", instead of gRPC's own UNIMPLEMENTED with an empty message. The server
// sends it (an interceptor for callback methods, the step queue for the raw ones);
// nothing of the request runs.
grpc::Status UnparseableRequestStatus(std::string_view method);

// Client side: the rich details of a status received from the plugin.
struct StatusDetails {
  std::string reason;  // ErrorInfo.reason, e.g. "WRONG_PASSWORD"; "" if none
  std::string domain;
  std::map<std::string, std::string> metadata;
  std::vector<FieldViolation> violations;
};
StatusDetails DecodeStatusDetails(const grpc::Status& status);

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_SERVER_STATUS_MAP_H_

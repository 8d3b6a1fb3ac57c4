#include "plugin/server/status_map.h"

#include <algorithm>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "plugin/process/utf8.h"

namespace wsstep::plugin {
namespace {

constexpr std::string_view kProtoPrefix = "ERROR_CODE_";

// A contract error travels in response metadata (grpc-message, percent-encoded, and
// grpc-status-details-bin, base64), and gRPC clients refuse metadata over 8 KiB by
// default: an error quoting a huge input (a 100 kB name) reached the host as
// RESOURCE_EXHAUSTED "metadata size exceeds limit" instead of itself. Every quoted piece
// is bounded so that the whole stays well under that limit.
constexpr size_t kMaxMessageBytes = 600;
constexpr size_t kMaxValueBytes = 160;
constexpr size_t kMaxFieldBytes = 200;
constexpr size_t kMaxMetadataEntries = 16;

// `text` cut to at most `max` bytes on a UTF-8 character boundary, saying how much was cut.
std::string Bounded(std::string_view text, size_t max) {
  if (text.size() <= max) return std::string(text);
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return std::string(text.substr(0, cut)) + "... (" + std::to_string(text.size() - cut) +
         " more bytes)";
}

}  // namespace

v1::ErrorCode ToProtoErrorCode(Code code) {
  if (code == Code::kOk) return v1::ERROR_CODE_UNSPECIFIED;
  v1::ErrorCode out = v1::ERROR_CODE_UNSPECIFIED;
  if (!v1::ErrorCode_Parse(std::string(kProtoPrefix) + std::string(CodeName(code)), &out)) {
    return v1::ERROR_CODE_INTERNAL;
  }
  return out;
}

Code FromProtoErrorCode(v1::ErrorCode code) {
  const std::string& name = v1::ErrorCode_Name(code);
  if (code == v1::ERROR_CODE_UNSPECIFIED || !std::string_view(name).starts_with(kProtoPrefix)) {
    return Code::kInternal;
  }
  return CodeFromName(std::string_view(name).substr(kProtoPrefix.size()));
}

v1::ErrorSide ToProtoSide(Side side) {
  switch (side) {
    case Side::kNone: return v1::ERROR_SIDE_UNSPECIFIED;
    case Side::kConfiguration: return v1::ERROR_SIDE_CONFIGURATION;
    case Side::kClient: return v1::ERROR_SIDE_CLIENT;
    case Side::kServer: return v1::ERROR_SIDE_SERVER;
    case Side::kNetwork: return v1::ERROR_SIDE_NETWORK;
    case Side::kStore: return v1::ERROR_SIDE_STORE;
    case Side::kPlugin: return v1::ERROR_SIDE_PLUGIN;
    case Side::kProxy: return v1::ERROR_SIDE_PROXY;
  }
  return v1::ERROR_SIDE_UNSPECIFIED;
}

Side FromProtoSide(v1::ErrorSide side) {
  switch (side) {
    case v1::ERROR_SIDE_CONFIGURATION: return Side::kConfiguration;
    case v1::ERROR_SIDE_CLIENT: return Side::kClient;
    case v1::ERROR_SIDE_SERVER: return Side::kServer;
    case v1::ERROR_SIDE_NETWORK: return Side::kNetwork;
    case v1::ERROR_SIDE_STORE: return Side::kStore;
    case v1::ERROR_SIDE_PLUGIN: return Side::kPlugin;
    case v1::ERROR_SIDE_PROXY: return Side::kProxy;
    default: return Side::kNone;
  }
}

void FillStepError(const Error& error, v1::StepError* out) {
  out->Clear();
  out->set_code(std::string(CodeName(error.code)));
  out->set_error_code(ToProtoErrorCode(error.code));
  out->set_message(ValidUtf8(error.message));
  out->set_hint(ValidUtf8(error.hint));
  out->set_side(ToProtoSide(error.side));
  for (const auto& [k, v] : error.detail) (*out->mutable_detail())[ValidUtf8(k)] = ValidUtf8(v);
}

Error FromStepError(const v1::StepError& error) {
  Error e(error.code().empty() ? FromProtoErrorCode(error.error_code())
                               : CodeFromName(error.code()),
          error.message(), error.hint(), FromProtoSide(error.side()));
  for (const auto& [k, v] : error.detail()) e.detail[k] = v;
  return e;
}

grpc::StatusCode GrpcCodeFor(Code code) {
  switch (code) {
    case Code::kOk:
      return grpc::StatusCode::OK;
    case Code::kInvalidArgument:
    case Code::kInvalidStepConfig:
    case Code::kInvalidWsdl:
    case Code::kInvalidCertificateFormat:
    case Code::kPasswordRequired:
    case Code::kWrongPassword:
    case Code::kPrivateKeyMissing:
    case Code::kKeyCertMismatch:
    case Code::kCertificateExpired:  // an expired upload
    case Code::kUnsupportedAlgorithm:
    case Code::kChainIncomplete:
      return grpc::StatusCode::INVALID_ARGUMENT;
    case Code::kNotFound:
    case Code::kCertificateNotFound:
      return grpc::StatusCode::NOT_FOUND;
    case Code::kAlreadyExists:
    case Code::kDuplicateName:
      return grpc::StatusCode::ALREADY_EXISTS;
    case Code::kFailedPrecondition:
    case Code::kMasterKeyError:
    case Code::kCertificateNotYetValid:
      return grpc::StatusCode::FAILED_PRECONDITION;
    case Code::kTimeout:
      return grpc::StatusCode::DEADLINE_EXCEEDED;
    case Code::kCancelled:
      return grpc::StatusCode::CANCELLED;
    case Code::kDescriptorsExhausted:
    case Code::kOriginBusy:
      return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case Code::kStorageError:
    case Code::kStorageUnavailable:
    case Code::kConnectionRefused:
    case Code::kDnsFailure:
    case Code::kTransferFailed:
    case Code::kProxyUnreachable:
      return grpc::StatusCode::UNAVAILABLE;
    case Code::kClientCertRejected:
    case Code::kClientCertRequired:
    case Code::kServerCertUntrusted:
    case Code::kServerCertExpired:
    case Code::kHostnameMismatch:
    case Code::kPinMismatch:
    case Code::kTlsHandshakeFailed:
    case Code::kResponseTooLarge:
    case Code::kSoapFault:
    case Code::kInvalidResponse:
    case Code::kSigningFailed:
    case Code::kProxyAuthRequired:
    case Code::kProxyRefused:
      // Outcomes of a call; they belong in a StepOutcome. Reaching here is a wiring
      // defect, but the client still gets the catalog name in ErrorInfo.
      return grpc::StatusCode::FAILED_PRECONDITION;
    case Code::kInternal:
      return grpc::StatusCode::INTERNAL;
  }
  return grpc::StatusCode::INTERNAL;
}

grpc::Status ToGrpcStatus(const Error& error, const std::vector<FieldViolation>& violations) {
  const grpc::StatusCode code = GrpcCodeFor(error.code);
  if (code == grpc::StatusCode::OK) return grpc::Status::OK;

  const std::string bounded_message = Bounded(error.message, kMaxMessageBytes);
  google::rpc::Status rich;
  rich.set_code(static_cast<int>(code));
  rich.set_message(bounded_message);

  google::rpc::ErrorInfo info;
  info.set_reason(std::string(CodeName(error.code)));
  info.set_domain(std::string(kErrorDomain));
  auto& md = *info.mutable_metadata();
  for (const auto& [k, v] : error.detail) {
    if (md.size() >= kMaxMetadataEntries) break;
    md[Bounded(k, kMaxFieldBytes)] = Bounded(v, k == "field" ? kMaxFieldBytes : kMaxValueBytes);
  }
  if (!error.hint.empty()) md["hint"] = Bounded(error.hint, kMaxMessageBytes);
  if (error.side != Side::kNone) md["side"] = std::string(SideName(error.side));
  rich.add_details()->PackFrom(info);

  google::rpc::BadRequest bad;
  for (const auto& v : violations) {
    if (bad.field_violations_size() >= static_cast<int>(kMaxMetadataEntries)) break;
    auto* fv = bad.add_field_violations();
    fv->set_field(Bounded(v.field, kMaxFieldBytes));
    fv->set_description(Bounded(v.description, kMaxValueBytes));
  }
  if (auto it = error.detail.find("field"); it != error.detail.end()) {
    const bool listed = std::any_of(violations.begin(), violations.end(),
                                    [&](const FieldViolation& v) { return v.field == it->second; });
    if (!listed) {
      auto* fv = bad.add_field_violations();
      fv->set_field(Bounded(it->second, kMaxFieldBytes));
      fv->set_description(Bounded(error.message, kMaxValueBytes));
    }
  }
  if (bad.field_violations_size() > 0) rich.add_details()->PackFrom(bad);

  // The plain message keeps the hint too, for clients that ignore the details.
  std::string message = bounded_message;
  if (!error.hint.empty()) message += " (" + Bounded(error.hint, kMaxValueBytes) + ")";
  return grpc::Status(code, message, rich.SerializeAsString());
}

grpc::Status InvalidArgument(std::string message, std::vector<FieldViolation> violations) {
  return ToGrpcStatus(Error(Code::kInvalidArgument, std::move(message), "", Side::kConfiguration),
                      violations);
}

grpc::Status NotAvailable(std::string_view method, std::string_view missing_part) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      std::string(method) + " is not available in this build: " +
                          std::string(missing_part) + " is not wired into the plugin yet");
}

StatusDetails DecodeStatusDetails(const grpc::Status& status) {
  StatusDetails out;
  google::rpc::Status rich;
  if (status.error_details().empty() || !rich.ParseFromString(status.error_details())) {
    return out;
  }
  for (const auto& any : rich.details()) {
    google::rpc::ErrorInfo info;
    google::rpc::BadRequest bad;
    if (any.Is<google::rpc::ErrorInfo>() && any.UnpackTo(&info)) {
      out.reason = info.reason();
      out.domain = info.domain();
      for (const auto& [k, v] : info.metadata()) out.metadata[k] = v;
    } else if (any.Is<google::rpc::BadRequest>() && any.UnpackTo(&bad)) {
      for (const auto& fv : bad.field_violations()) {
        out.violations.push_back({fv.field(), fv.description()});
      }
    }
  }
  return out;
}

grpc::Status UnparseableRequestStatus(std::string_view method) {
  std::string name = method.empty() ? std::string("the call") : std::string(method);
  return ToGrpcStatus(
      Error(Code::kInvalidArgument,
            "the request to " + name +
                " could not be parsed: a string field is not valid UTF-8, messages are nested "
                "deeper than 100 levels, or the bytes are not the method's request message",
            "Send valid UTF-8 in every string field (binary data belongs in bytes fields) "
            "and keep SOAP parameter trees shallower than 64 levels; nothing was run.",
            Side::kClient)
          .With("method", name));
}

}  // namespace wsstep::plugin

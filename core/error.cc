#include "core/error.h"

#include <array>
#include <cstdio>
#include <cstdlib>

namespace wsstep {
namespace {

struct CodeEntry {
  Code code;
  std::string_view name;
};

constexpr std::array kCodes = {
    CodeEntry{Code::kOk, "OK"},
    CodeEntry{Code::kInvalidCertificateFormat, "INVALID_CERTIFICATE_FORMAT"},
    CodeEntry{Code::kPasswordRequired, "PASSWORD_REQUIRED"},
    CodeEntry{Code::kWrongPassword, "WRONG_PASSWORD"},
    CodeEntry{Code::kPrivateKeyMissing, "PRIVATE_KEY_MISSING"},
    CodeEntry{Code::kKeyCertMismatch, "KEY_CERT_MISMATCH"},
    CodeEntry{Code::kCertificateExpired, "CERTIFICATE_EXPIRED"},
    CodeEntry{Code::kUnsupportedAlgorithm, "UNSUPPORTED_ALGORITHM"},
    CodeEntry{Code::kDuplicateName, "DUPLICATE_NAME"},
    CodeEntry{Code::kChainIncomplete, "CHAIN_INCOMPLETE"},
    CodeEntry{Code::kCertificateNotFound, "CERTIFICATE_NOT_FOUND"},
    CodeEntry{Code::kCertificateNotYetValid, "CERTIFICATE_NOT_YET_VALID"},
    CodeEntry{Code::kClientCertRejected, "CLIENT_CERT_REJECTED"},
    CodeEntry{Code::kClientCertRequired, "CLIENT_CERT_REQUIRED"},
    CodeEntry{Code::kServerCertUntrusted, "SERVER_CERT_UNTRUSTED"},
    CodeEntry{Code::kServerCertExpired, "SERVER_CERT_EXPIRED"},
    CodeEntry{Code::kHostnameMismatch, "HOSTNAME_MISMATCH"},
    CodeEntry{Code::kPinMismatch, "PIN_MISMATCH"},
    CodeEntry{Code::kTlsHandshakeFailed, "TLS_HANDSHAKE_FAILED"},
    CodeEntry{Code::kConnectionRefused, "CONNECTION_REFUSED"},
    CodeEntry{Code::kDnsFailure, "DNS_FAILURE"},
    CodeEntry{Code::kTimeout, "TIMEOUT"},
    CodeEntry{Code::kResponseTooLarge, "RESPONSE_TOO_LARGE"},
    CodeEntry{Code::kInvalidStepConfig, "INVALID_STEP_CONFIG"},
    CodeEntry{Code::kSoapFault, "SOAP_FAULT"},
    CodeEntry{Code::kInvalidResponse, "INVALID_RESPONSE"},
    CodeEntry{Code::kSigningFailed, "SIGNING_FAILED"},
    CodeEntry{Code::kInvalidWsdl, "INVALID_WSDL"},
    CodeEntry{Code::kInvalidArgument, "INVALID_ARGUMENT"},
    CodeEntry{Code::kNotFound, "NOT_FOUND"},
    CodeEntry{Code::kAlreadyExists, "ALREADY_EXISTS"},
    CodeEntry{Code::kFailedPrecondition, "FAILED_PRECONDITION"},
    CodeEntry{Code::kCancelled, "CANCELLED"},
    CodeEntry{Code::kStorageError, "STORAGE_ERROR"},
    CodeEntry{Code::kStorageUnavailable, "STORAGE_UNAVAILABLE"},
    CodeEntry{Code::kMasterKeyError, "MASTER_KEY_ERROR"},
    CodeEntry{Code::kTransferFailed, "TRANSFER_FAILED"},
    CodeEntry{Code::kInternal, "INTERNAL"},
    CodeEntry{Code::kDescriptorsExhausted, "DESCRIPTORS_EXHAUSTED"},
    CodeEntry{Code::kOriginBusy, "ORIGIN_BUSY"},
    CodeEntry{Code::kProxyUnreachable, "PROXY_UNREACHABLE"},
    CodeEntry{Code::kProxyAuthRequired, "PROXY_AUTH_REQUIRED"},
    CodeEntry{Code::kProxyRefused, "PROXY_REFUSED"},
};

}  // namespace

std::string_view CodeName(Code code) {
  for (const auto& e : kCodes) {
    if (e.code == code) return e.name;
  }
  return "INTERNAL";
}

Code CodeFromName(std::string_view name) {
  for (const auto& e : kCodes) {
    if (e.name == name) return e.code;
  }
  return Code::kInternal;
}

std::string_view SideName(Side side) {
  switch (side) {
    case Side::kNone: return "NONE";
    case Side::kConfiguration: return "CONFIGURATION";
    case Side::kClient: return "CLIENT";
    case Side::kServer: return "SERVER";
    case Side::kNetwork: return "NETWORK";
    case Side::kStore: return "STORE";
    case Side::kPlugin: return "PLUGIN";
    case Side::kProxy: return "PROXY";
  }
  return "NONE";
}

std::string Error::ToString() const {
  std::string out(CodeName(code));
  out += ": ";
  out += message;
  return out;
}

namespace internal {

void DieOnValueOfError(const Error& error) {
  std::fprintf(stderr, "wsstep: Result::value() called on an error: %s\n",
               error.ToString().c_str());
  std::abort();
}

}  // namespace internal

}  // namespace wsstep

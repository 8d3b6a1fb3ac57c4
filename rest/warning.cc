#include "rest/warning.h"

#include "rest/step.h"

namespace wsstep::rest {

std::string_view WarningName(WarningCode code) {
  switch (code) {
    case WarningCode::kVerifyPeerDisabled:
      return "VERIFY_PEER_DISABLED";
    case WarningCode::kVerifyHostDisabled:
      return "VERIFY_HOST_DISABLED";
    case WarningCode::kClientCertRequestedNoneSent:
      return "CLIENT_CERT_REQUESTED_NONE_SENT";
  }
  return "UNKNOWN_WARNING";  // unreachable: -Wswitch names a missing value
}

std::string_view WarningField(WarningCode code) {
  switch (code) {
    case WarningCode::kVerifyPeerDisabled:
      return "tls.verify_peer";
    case WarningCode::kVerifyHostDisabled:
      return "tls.verify_host";
    case WarningCode::kClientCertRequestedNoneSent:
      return "";
  }
  return "";
}

std::vector<Warning> TlsOptionWarnings(const TlsOptions& tls) {
  std::vector<Warning> out;
  if (!tls.verify_peer) {
    out.push_back({WarningCode::kVerifyPeerDisabled,
                   "verify_peer is off: the server's certificate is not checked, anyone on the "
                   "path can impersonate it"});
  }
  if (!tls.verify_host) {
    out.push_back({WarningCode::kVerifyHostDisabled,
                   "verify_host is off: a certificate for any host name is accepted"});
  }
  return out;
}

Warning ClientCertificateNotSent(std::string_view host, uint16_t port, bool ssl_verification) {
  return {WarningCode::kClientCertRequestedNoneSent,
          "the server asked for a client certificate and none was presented: bind one to " +
              std::string(host) + ":" + std::to_string(port) +
              (ssl_verification ? "" : " and switch on SSL certificate verification")};
}

}  // namespace wsstep::rest

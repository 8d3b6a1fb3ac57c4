// Warnings of a REST step (PRODUCT.md §2 "Step result"): the step ran, or will run, but
// less safely or not as the designer probably meant. A warning is a value: its code says
// which one it is, and its message is built here, once, for every place that shows it
// (the result of a step, a test connection, ValidateStep). Nobody reads the text back:
// the plugin maps each WarningCode to wsstep.v1.WarningCode.
//
//   for (const rest::Warning& w : result.warnings) {
//     if (w.code == rest::WarningCode::kVerifyPeerDisabled) ...
//     show(rest::WarningName(w.code), w.message, rest::WarningField(w.code));
//   }
#ifndef WSSTEP_REST_WARNING_H_
#define WSSTEP_REST_WARNING_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wsstep::rest {

struct TlsOptions;

enum class WarningCode {
  // tls.verify_peer is off: the server's certificate chain is not checked.
  kVerifyPeerDisabled,
  // tls.verify_host is off: the server's certificate may name any host.
  kVerifyHostDisabled,
  // The server sent a TLS CertificateRequest and no client certificate was presented
  // (servers such as nginx then answer HTTP 400 rather than fail the handshake).
  kClientCertRequestedNoneSent,
};

// Every WarningCode, for tests and tables that must cover them all.
inline constexpr WarningCode kAllWarningCodes[] = {
    WarningCode::kVerifyPeerDisabled,
    WarningCode::kVerifyHostDisabled,
    WarningCode::kClientCertRequestedNoneSent,
};

// The stable name, e.g. "VERIFY_PEER_DISABLED" (the proto value without its prefix).
std::string_view WarningName(WarningCode code);
// The step option the warning is about, as a RestStep field path ("tls.verify_peer"), or
// "" when it concerns the call as a whole.
std::string_view WarningField(WarningCode code);

struct Warning {
  WarningCode code;
  std::string message;  // one line for the designer; never a secret
  bool operator==(const Warning&) const = default;
};

// The warnings a step's TLS options give before anything is sent: verify_peer and
// verify_host turned off, in that order. ValidateStep and the step's result show the same.
std::vector<Warning> TlsOptionWarnings(const TlsOptions& tls);

// The server at host:port asked for a client certificate and none was presented.
// `ssl_verification` is the step's toggle: when it is off, the message says to switch it on.
Warning ClientCertificateNotSent(std::string_view host, uint16_t port, bool ssl_verification);

}  // namespace wsstep::rest

#endif  // WSSTEP_REST_WARNING_H_

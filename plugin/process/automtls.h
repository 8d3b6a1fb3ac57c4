// go-plugin AutoMTLS: the host generates a throw-away certificate, passes it to the plugin
// in PLUGIN_CLIENT_CERT, and the plugin answers with its own throw-away certificate in
// the handshake line. Each side then trusts exactly the other's certificate: only the
// host that launched the plugin can call it, even over TCP.
//
//   auto cert = GenerateSelfSignedCertificate("localhost", kAutoMtlsValidity);
//   auto creds = AutoMtlsServerCredentials(*cert, host_cert_pem);   // plugin side
//   auto chan = AutoMtlsChannelCredentials(client_cert, server_der); // host side
//
// Keys are ECDSA P-256, generated in memory at start-up and never written anywhere.
#ifndef WSSTEP_PLUGIN_PROCESS_AUTOMTLS_H_
#define WSSTEP_PLUGIN_PROCESS_AUTOMTLS_H_

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/secret.h"

namespace grpc {
class ServerCredentials;
class ChannelCredentials;
}  // namespace grpc

namespace wsstep::plugin {

// One year: far beyond any plugin process's life (the certificate dies with the process),
// much shorter than go-plugin's 30 years, and no renewal is needed because a new process
// makes a new certificate.
inline constexpr std::chrono::hours kAutoMtlsValidity{24 * 365};
// The name both sides use for TLS verification, whatever the socket address.
inline constexpr std::string_view kAutoMtlsServerName = "localhost";

struct SelfSignedCertificate {
  std::string cert_pem;
  std::string cert_der;
  SecretBytes key_pem;  // PKCS#8 PEM
};

// A self-signed ECDSA P-256 certificate: subject CN=<common_name>, O=wsstep; SANs
// DNS:localhost, IP:127.0.0.1, IP:::1; valid from 30 s ago (clock skew between host and
// plugin) for `validity`; basicConstraints CA:TRUE and keyCertSign (it is its own trust
// anchor, as go-plugin's are), digitalSignature, extKeyUsage serverAuth + clientAuth;
// a random 128-bit serial.
Result<SelfSignedCertificate> GenerateSelfSignedCertificate(std::string_view common_name,
                                                            std::chrono::seconds validity);

// Checks that `pem` holds at least one parseable certificate. INVALID_ARGUMENT naming
// `what` (e.g. "PLUGIN_CLIENT_CERT") otherwise.
Status CheckPemCertificates(std::string_view pem, std::string_view what);

// PEM of a DER certificate.
Result<std::string> DerToPem(std::string_view der);

// Plugin side: TLS with `server` as our certificate, requiring a client certificate that
// verifies against exactly `client_ca_pem` (the host's certificate).
std::shared_ptr<grpc::ServerCredentials> AutoMtlsServerCredentials(
    const SelfSignedCertificate& server, const std::string& client_ca_pem);

// Host side: TLS presenting `client`, trusting exactly the server certificate from the
// handshake line. Use with ChannelArguments::SetSslTargetNameOverride(kAutoMtlsServerName).
std::shared_ptr<grpc::ChannelCredentials> AutoMtlsChannelCredentials(
    const SelfSignedCertificate& client, const std::string& server_cert_pem);

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_PROCESS_AUTOMTLS_H_

// `wsstep demo`: shows the plugin working end to end in under a minute, with nothing
// but openssl and nginx installed. It makes a throwaway PKI (openssl CLI), starts an
// nginx that requires client certificates and a second one with a self-signed
// certificate, launches this binary as a host would (go-plugin handshake, AutoMTLS),
// imports the client certificate and the CA over the API, runs a REST step that succeeds
// and one that fails with SERVER_CERT_UNTRUSTED, prints both, and removes everything.
#ifndef WSSTEP_PLUGIN_CLI_DEMO_H_
#define WSSTEP_PLUGIN_CLI_DEMO_H_

#include <string>

namespace wsstep::plugin {

// Returns the process exit code: 0 when both steps behaved as shown.
int RunDemo(const std::string& self_binary, bool json);

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_CLI_DEMO_H_

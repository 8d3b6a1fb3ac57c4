// CredentialSource: how the engine gets credentials for a host it was not handed
// credentials for — a redirect to another origin, or an OAuth2 token endpoint. The
// plugin implements it over the certificate store (CertificateStore::ResolveForCall);
// tests implement it with a map. rest/ never sees the store itself.
#ifndef WSSTEP_REST_CREDENTIAL_SOURCE_H_
#define WSSTEP_REST_CREDENTIAL_SOURCE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/identity.h"

namespace wsstep::rest {

// Why the engine asks.
enum class CredentialPurpose {
  kStep,         // the step's own URL (when a caller lets the engine resolve it)
  kRedirect,     // a redirect hop to another host/port
  kOAuth2Token,  // the OAuth2 token endpoint
};

struct CredentialContext {
  CredentialPurpose purpose = CredentialPurpose::kStep;
  std::string step_id;
  std::string workflow_id;
};

struct ResolvedCredentials {
  core::CallCredentials credentials;
  std::string explanation;  // human-readable, for logs and diagnostics; no secrets
};

class CredentialSource {
 public:
  virtual ~CredentialSource() = default;
  // Credentials for a call to host:port in `environment`. certificate_name is the step's
  // explicit certificate (empty: by binding). Fails like the resolver
  // (CERTIFICATE_NOT_FOUND, CERTIFICATE_EXPIRED, ...); the engine returns that error as
  // the step's outcome. Must be thread-safe: workers call it concurrently.
  virtual Result<ResolvedCredentials> Resolve(std::string_view host, uint16_t port,
                                              std::string_view environment,
                                              std::string_view certificate_name,
                                              const CredentialContext& context) = 0;
};

}  // namespace wsstep::rest

#endif  // WSSTEP_REST_CREDENTIAL_SOURCE_H_

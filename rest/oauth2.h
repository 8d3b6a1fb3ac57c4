// OAuth2 client-credentials helpers: the token request form, the token response, and
// the token cache. The engine sends the request through the ordinary transfer path.
#ifndef WSSTEP_REST_OAUTH2_H_
#define WSSTEP_REST_OAUTH2_H_

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/identity.h"
#include "core/mutex.h"
#include "core/secret.h"
#include "rest/step.h"

namespace wsstep::rest {

// The method actually used: kUnspecified resolves to kClientSecretBasic when a
// client_secret is given, kTlsClientAuth otherwise (step.proto).
OAuth2ClientAuth EffectiveClientAuth(const OAuth2ClientCredentials& oauth);

// Cache key: token URL, client id, scope, audience, client authentication, a digest of the client secret and the
// client certificate presented to the token endpoint (RFC 8705 binds tokens to it).
std::string TokenCacheKey(const OAuth2ClientCredentials& oauth,
                          const core::CallCredentials& token_credentials);

// application/x-www-form-urlencoded body of the token request: grant_type, client_id
// (except with client_secret_basic), scope, audience, and client_secret with
// client_secret_post only.
SecretBytes TokenRequestBody(const OAuth2ClientCredentials& oauth);

// For client_secret_basic: the Basic credentials "urlencode(client_id):urlencode(secret)"
// (RFC 6749 §2.3.1), not yet base64-encoded; nullopt for the other methods. A secret.
std::optional<SecretBytes> TokenRequestBasicCredentials(const OAuth2ClientCredentials& oauth);

struct AccessToken {
  SecretBytes value;
  std::chrono::seconds expires_in{0};  // 0: the server did not say
};

// Parses the token endpoint's answer. A non-2xx status or a body without access_token
// is an error naming the endpoint (with OAuth's "error"/"error_description" when given;
// never the body's secrets).
Result<AccessToken> ParseTokenResponse(int status, std::string_view body,
                                       std::string_view token_url);

class TokenCache {
 public:
  using Clock = std::chrono::steady_clock;
  // A copy of the cached token if it is still valid at `now`.
  std::optional<SecretBytes> Find(const std::string& key, Clock::time_point now);
  void Store(const std::string& key, const SecretBytes& token, Clock::time_point expires_at);
  void Invalidate(const std::string& key);

 private:
  struct Entry {
    SecretBytes token;
    Clock::time_point expires_at;
  };
  Mutex mu_;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace wsstep::rest

#endif  // WSSTEP_REST_OAUTH2_H_

#include "rest/oauth2.h"

#include <openssl/sha.h>

#include <nlohmann/json.hpp>

#include "core/ossl.h"
#include "rest/http_text.h"

namespace wsstep::rest {

OAuth2ClientAuth EffectiveClientAuth(const OAuth2ClientCredentials& oauth) {
  if (oauth.client_authentication != OAuth2ClientAuth::kUnspecified) {
    return oauth.client_authentication;
  }
  return oauth.client_secret.empty() ? OAuth2ClientAuth::kTlsClientAuth
                                     : OAuth2ClientAuth::kClientSecretBasic;
}

std::string TokenCacheKey(const OAuth2ClientCredentials& oauth,
                          const core::CallCredentials& token_credentials) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(oauth.client_secret.data(), oauth.client_secret.size(), md);
  std::string key = oauth.token_url + '\n' + oauth.client_id + '\n' + oauth.scope + '\n' +
                    oauth.audience + '\n' +
                    std::to_string(static_cast<int>(EffectiveClientAuth(oauth))) + '\n' +
                    ossl::HexColon(md, sizeof(md)) + '\n';
  if (token_credentials.identity) {
    key += token_credentials.identity->fingerprint + "@" +
           std::to_string(token_credentials.identity->version);
  }
  return key;
}

SecretBytes TokenRequestBody(const OAuth2ClientCredentials& oauth) {
  OAuth2ClientAuth method = EffectiveClientAuth(oauth);
  std::string form = "grant_type=client_credentials";
  // With client_secret_basic the header carries client_id; RFC 6749 §2.3 allows one
  // authentication method per request, and some servers refuse a duplicate client_id.
  if (method != OAuth2ClientAuth::kClientSecretBasic) {
    form += "&client_id=" + PercentEncode(oauth.client_id);
  }
  if (!oauth.scope.empty()) form += "&scope=" + PercentEncode(oauth.scope);
  if (!oauth.audience.empty()) form += "&audience=" + PercentEncode(oauth.audience);
  SecretBytes body(form);
  if (method == OAuth2ClientAuth::kClientSecretPost) {
    std::string secret = "&client_secret=" + PercentEncode(oauth.client_secret.view());
    body.Append(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(secret.data()),
                                         secret.size()));
    OPENSSL_cleanse(secret.data(), secret.size());
  }
  return body;
}

std::optional<SecretBytes> TokenRequestBasicCredentials(const OAuth2ClientCredentials& oauth) {
  if (EffectiveClientAuth(oauth) != OAuth2ClientAuth::kClientSecretBasic) return std::nullopt;
  // RFC 6749 §2.3.1: each part form-urlencoded before the Basic scheme joins them, so a
  // ':' in the client id cannot shift the split.
  std::string secret = PercentEncode(oauth.client_secret.view());
  std::string joined = PercentEncode(oauth.client_id) + ":" + secret;
  SecretBytes credentials(joined);
  OPENSSL_cleanse(secret.data(), secret.size());
  OPENSSL_cleanse(joined.data(), joined.size());
  return credentials;
}

Result<AccessToken> ParseTokenResponse(int status, std::string_view body,
                                       std::string_view token_url) {
  std::string endpoint(token_url);
  nlohmann::json json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  auto text = [&](const char* field) -> std::string {
    if (json.is_object() && json.contains(field) && json[field].is_string()) {
      return json[field].get<std::string>();
    }
    return {};
  };
  if (status < 200 || status > 299) {
    std::string oauth_error = text("error");
    std::string description = text("error_description");
    Error e(Code::kTransferFailed,
            "OAuth2 token endpoint " + endpoint + " refused the token request with HTTP " +
                std::to_string(status) + (oauth_error.empty() ? "" : " (" + oauth_error +
                                          (description.empty() ? "" : ": " + description) + ")"),
            "Check the step's client_id, client_secret and scope, and that the client "
            "certificate bound to the token host is registered for this client.",
            Side::kServer);
    e.With("token_endpoint", endpoint).With("status", std::to_string(status));
    if (!oauth_error.empty()) e.With("oauth_error", oauth_error);
    return e;
  }
  std::string access_token = text("access_token");
  if (access_token.empty()) {
    return Error(Code::kInvalidResponse,
                 "OAuth2 token endpoint " + endpoint +
                     " answered without an access_token (not an OAuth2 token response)",
                 "Check token_url: it must be the authorization server's token endpoint.",
                 Side::kServer)
        .With("token_endpoint", endpoint);
  }
  std::string type = text("token_type");
  if (!type.empty() && !EqualsIgnoreCase(type, "bearer")) {
    OPENSSL_cleanse(access_token.data(), access_token.size());
    return Error(Code::kInvalidResponse,
                 "OAuth2 token endpoint " + endpoint + " issued a \"" + type +
                     "\" token; only Bearer tokens are supported",
                 "Configure the authorization server to issue Bearer tokens for this client.",
                 Side::kServer)
        .With("token_endpoint", endpoint);
  }
  AccessToken token;
  token.value = SecretBytes(access_token);
  OPENSSL_cleanse(access_token.data(), access_token.size());
  if (json.contains("expires_in") && json["expires_in"].is_number()) {
    token.expires_in = std::chrono::seconds(json["expires_in"].get<int64_t>());
  } else if (json.contains("expires_in") && json["expires_in"].is_string()) {
    token.expires_in = std::chrono::seconds(std::atoll(json["expires_in"].get<std::string>().c_str()));
  }
  return token;
}

std::optional<SecretBytes> TokenCache::Find(const std::string& key, Clock::time_point now) {
  MutexLock lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  if (now >= it->second.expires_at) {
    entries_.erase(it);
    return std::nullopt;
  }
  return it->second.token.Clone();
}

void TokenCache::Store(const std::string& key, const SecretBytes& token,
                       Clock::time_point expires_at) {
  MutexLock lock(mu_);
  entries_[key] = Entry{token.Clone(), expires_at};
}

void TokenCache::Invalidate(const std::string& key) {
  MutexLock lock(mu_);
  entries_.erase(key);
}

}  // namespace wsstep::rest

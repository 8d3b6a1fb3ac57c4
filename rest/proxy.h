// Explicit HTTP proxies (PRODUCT.md §2 "Networks"): which proxy, if any, a request goes
// through. The engine decides it per request from the step's settings over the engine's,
// and the no-proxy lists; libcurl is then told exactly that (CURLOPT_PROXY, or "" for
// direct, and an empty CURLOPT_NOPROXY), so the plugin's environment variables
// (https_proxy, no_proxy, ALL_PROXY...) never change a step's route behind its back.
//
//   Result<ProxyRoute> route = ChooseProxy(step.proxy, step_password, engine_proxy, target);
//   if (route->url.empty()) ... direct ...
#ifndef WSSTEP_REST_PROXY_H_
#define WSSTEP_REST_PROXY_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/secret.h"
#include "rest/http_text.h"
#include "rest/step.h"

namespace wsstep::rest {

// "http://host:port" or "host:port" (port 80 when absent) as a route without credentials.
// INVALID_STEP_CONFIG naming `field` for another scheme, credentials in the URL, or no host.
Result<ProxyRoute> ParseProxyUrl(std::string_view url, std::string_view field);

// INVALID_STEP_CONFIG naming `field`[i] for an empty entry or one with spaces, '/', or ':'
// other than in an IPv6 address.
Status ValidateNoProxy(const std::vector<std::string>& entries, std::string_view field);

// Whether `host` (lower case, as UrlParts has it) is reached directly under this list:
// "*" matches every host; "example.com" and ".example.com" match example.com and every
// name under it; an IP address matches itself.
bool NoProxyMatches(const std::vector<std::string>& entries, std::string_view host);

// A proxy with its credentials, parsed once (EngineOptions::proxy at engine start, a
// step's settings at admission).
struct ProxyConfig {
  ProxyRoute route;  // url empty: no proxy of its own
  std::vector<std::string> no_proxy;
  bool direct = false;
};
// INVALID_STEP_CONFIG naming `field`.url / .username / .no_proxy[i].
Result<ProxyConfig> ParseProxySettings(const ProxySettings& settings, std::string_view field);

// The route of a request to `target`: direct when the step says so or the host is on a
// no-proxy list (the step's or the engine's); else the step's proxy, or the engine's
// (with the step's credentials when it gives some, else the engine's).
ProxyRoute ChooseProxy(const ProxyConfig& step, const ProxyConfig& engine, const UrlParts& target);

// What identifies a route in a partition key, without its secret: url, user, and a keyed
// digest of the password (the key is random per process, so the digest reveals nothing).
std::string ProxyPartitionKey(const ProxyRoute& route);

}  // namespace wsstep::rest

#endif  // WSSTEP_REST_PROXY_H_

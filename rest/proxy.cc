#include "rest/proxy.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <cstdlib>

namespace wsstep::rest {

namespace {

Error Invalid(std::string field, std::string message, std::string hint) {
  return Error(Code::kInvalidStepConfig, field + ": " + message, std::move(hint),
               Side::kConfiguration)
      .With("field", std::move(field));
}

std::string Lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

Result<ProxyRoute> ParseProxyUrl(std::string_view url, std::string_view field) {
  const std::string name(field);
  std::string text(url);
  if (text.find("://") == std::string::npos) text = "http://" + text;
  if (!Lower(text).starts_with("http://")) {
    return Invalid(name, "\"" + std::string(url) + "\" is not an http proxy",
                   "Give the proxy as http://host:port (the tunnel to the origin carries TLS "
                   "end to end; https and SOCKS proxies are not supported).");
  }
  auto parts = ParseHttpUrl(text, field);
  if (!parts.ok()) {
    Error e = parts.error();
    e.hint =
        "Give the proxy as http://host:port, without user:password (those go in the "
        "proxy's username and password).";
    return e;
  }
  ProxyRoute route;
  route.host = parts->host;
  route.port = parts->port;
  route.url = "http://" + (parts->host_is_ipv6 ? "[" + parts->host + "]" : parts->host) + ":" +
              std::to_string(parts->port);
  return route;
}

Status ValidateNoProxy(const std::vector<std::string>& entries, std::string_view field) {
  for (size_t i = 0; i < entries.size(); ++i) {
    const std::string& e = entries[i];
    const bool ipv6 = std::count(e.begin(), e.end(), ':') >= 2;
    const bool bad =
        e.empty() || std::any_of(e.begin(), e.end(), [ipv6](unsigned char c) {
          return std::isspace(c) != 0 || c == '/' || c == ',' || (c == ':' && !ipv6) || c < 0x20;
        });
    if (bad) {
      return Invalid(std::string(field) + "[" + std::to_string(i) + "]",
                     "\"" + e + "\" is not a host name, a domain or an IP address",
                     "List hosts (api.example.com), domains (.example.com), addresses "
                     "(10.0.0.5), or * for every host; no ports, no CIDR ranges.");
    }
  }
  return Status();
}

bool NoProxyMatches(const std::vector<std::string>& entries, std::string_view host) {
  for (const auto& raw : entries) {
    std::string entry = Lower(raw);
    if (entry == "*") return true;
    if (entry.starts_with('[') && entry.ends_with(']')) entry = entry.substr(1, entry.size() - 2);
    while (entry.starts_with('.')) entry.erase(0, 1);
    if (entry.ends_with('.')) entry.pop_back();
    if (entry.empty()) continue;
    if (host == entry) return true;
    if (host.size() > entry.size() && host.ends_with(entry) &&
        host[host.size() - entry.size() - 1] == '.') {
      return true;
    }
  }
  return false;
}

Result<ProxyConfig> ParseProxySettings(const ProxySettings& settings, std::string_view field) {
  const std::string f(field);
  ProxyConfig config;
  config.direct = settings.direct;
  if (!settings.url.empty()) {
    WSSTEP_ASSIGN_OR_RETURN(config.route, ParseProxyUrl(settings.url, f + ".url"));
  }
  if (settings.username.find(':') != std::string::npos || !IsSafeHeaderValue(settings.username)) {
    return Invalid(f + ".username", "must not contain ':', CR, LF or NUL",
                   "Basic proxy authentication cannot carry a colon in the user name.");
  }
  if (settings.password != nullptr && !IsSafeHeaderValue(settings.password->view())) {
    return Invalid(f + ".password", "contains CR, LF or NUL", "Give the password on one line.");
  }
  if (!settings.username.empty() || settings.password != nullptr) {
    config.route.username = settings.username;
    config.route.password = settings.password;
  }
  WSSTEP_RETURN_IF_ERROR(ValidateNoProxy(settings.no_proxy, f + ".no_proxy"));
  config.no_proxy = settings.no_proxy;
  return config;
}

ProxyRoute ChooseProxy(const ProxyConfig& step, const ProxyConfig& engine, const UrlParts& target) {
  if (step.direct) return {};
  if (NoProxyMatches(step.no_proxy, target.host)) return {};
  if (!step.route.url.empty()) return step.route;
  if (engine.route.url.empty() || NoProxyMatches(engine.no_proxy, target.host)) return {};
  ProxyRoute route = engine.route;
  if (step.route.has_credentials()) {
    route.username = step.route.username;
    route.password = step.route.password;
  }
  return route;
}

std::string ProxyPartitionKey(const ProxyRoute& route) {
  if (route.url.empty()) return "";
  std::string key = route.url + "|" + route.username;
  if (route.password == nullptr) return key;
  static const std::array<unsigned char, 32> secret = [] {
    std::array<unsigned char, 32> k{};
    if (RAND_bytes(k.data(), static_cast<int>(k.size())) != 1) {
      std::fprintf(stderr, "wsstep: RAND_bytes failed\n");
      std::abort();
    }
    return k;
  }();
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), route.password->data(),
       route.password->size(), mac, &n);
  static constexpr char kHex[] = "0123456789abcdef";
  key += "|";
  for (unsigned int i = 0; i < 8 && i < n; ++i) {
    key += kHex[mac[i] >> 4];
    key += kHex[mac[i] & 0xf];
  }
  return key;
}

}  // namespace wsstep::rest

// URL and header syntax for steps: parsing http(s) URLs, percent-encoding query
// parameters, and refusing header names and values that could split a request.
#ifndef WSSTEP_REST_HTTP_TEXT_H_
#define WSSTEP_REST_HTTP_TEXT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "rest/step.h"

namespace wsstep::rest {

struct UrlParts {
  std::string scheme;  // "http" or "https"
  std::string host;    // lower case; IPv6 without brackets
  uint16_t port = 0;   // explicit or the scheme's default
  bool host_is_ip = false;
  bool host_is_ipv6 = false;
  // scheme://host:port, the unit credentials and auth headers are bound to.
  std::string Origin() const;
};

// DNS names are at most this long (RFC 1035 §2.3.4, without the trailing dot).
inline constexpr size_t kMaxHostNameChars = 253;

// Parses an absolute http:// or https:// URL. INVALID_STEP_CONFIG naming `field` for
// anything else: another scheme, no host, a host name over kMaxHostNameChars, white
// space or control characters, user credentials in the URL.
Result<UrlParts> ParseHttpUrl(std::string_view url, std::string_view field = "url");

// RFC 3986 percent-encoding: unreserved characters kept, every other byte %XX.
std::string PercentEncode(std::string_view text);

// Appends name=value pairs (percent-encoded, in order) to the URL's query.
Result<std::string> AppendQuery(std::string_view url, const std::vector<QueryParam>& params);

// The URL with its host replaced (for tls_server_name).
Result<std::string> ReplaceHost(std::string_view url, std::string_view host);

// RFC 9110 token (header names, methods).
bool IsToken(std::string_view text);
// A header value must not carry CR, LF or NUL.
bool IsSafeHeaderValue(std::string_view value);
// INVALID_STEP_CONFIG naming the header (never its value) when the name is not a token
// or the value carries CR, LF or NUL. `field` is the header's path, e.g. "headers[2]";
// the error's field is "headers[2].name" or "headers[2].value", whichever is wrong.
Status ValidateHeader(std::string_view name, std::string_view value, std::string_view field);

bool EqualsIgnoreCase(std::string_view a, std::string_view b);

}  // namespace wsstep::rest

#endif  // WSSTEP_REST_HTTP_TEXT_H_

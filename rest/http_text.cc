#include "rest/http_text.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <memory>

namespace wsstep::rest {

namespace {

struct UrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
using UrlPtr = std::unique_ptr<CURLU, UrlDeleter>;

struct CurlFree {
  void operator()(char* p) const { curl_free(p); }
};
using CurlString = std::unique_ptr<char, CurlFree>;

Error Invalid(std::string_view field, std::string message, std::string hint) {
  return Error(Code::kInvalidStepConfig, std::string(field) + ": " + message, std::move(hint),
               Side::kConfiguration)
      .With("field", std::string(field));
}

std::string Part(CURLU* u, CURLUPart part, unsigned flags = 0) {
  char* out = nullptr;
  if (curl_url_get(u, part, &out, flags) != CURLUE_OK) return {};
  CurlString owned(out);
  return out != nullptr ? std::string(out) : std::string();
}

Result<UrlPtr> Parse(std::string_view url, std::string_view field) {
  for (char c : url) {
    auto uc = static_cast<unsigned char>(c);
    if (uc <= 0x20 || uc == 0x7f) {
      return Invalid(field, "the URL contains white space or a control character",
                     "Percent-encode spaces (%20) and remove line breaks from the URL.");
    }
  }
  UrlPtr u(curl_url());
  CURLUcode rc = curl_url_set(u.get(), CURLUPART_URL, std::string(url).c_str(), 0);
  if (rc != CURLUE_OK) {
    return Invalid(field, std::string("not a valid absolute URL (") + curl_url_strerror(rc) + ")",
                   "Give an absolute URL such as https://api.example.com/path.");
  }
  return u;
}

}  // namespace

std::string UrlParts::Origin() const {
  std::string h = host_is_ipv6 ? "[" + host + "]" : host;
  return scheme + "://" + h + ":" + std::to_string(port);
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

Result<UrlParts> ParseHttpUrl(std::string_view url, std::string_view field) {
  WSSTEP_ASSIGN_OR_RETURN(UrlPtr u, Parse(url, field));
  UrlParts parts;
  parts.scheme = Part(u.get(), CURLUPART_SCHEME);
  std::transform(parts.scheme.begin(), parts.scheme.end(), parts.scheme.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (parts.scheme != "http" && parts.scheme != "https") {
    return Invalid(field, "scheme \"" + parts.scheme + "\" is not supported",
                   "Use an http:// or https:// URL.");
  }
  if (!Part(u.get(), CURLUPART_USER).empty() || !Part(u.get(), CURLUPART_PASSWORD).empty()) {
    return Invalid(field, "the URL carries user credentials",
                   "Remove user:password@ from the URL and configure the step's auth instead.");
  }
  std::string host = Part(u.get(), CURLUPART_HOST);
  if (host.empty()) return Invalid(field, "the URL has no host", "Give the server's host name.");
  if (host.front() == '[' && host.back() == ']') {
    parts.host_is_ipv6 = parts.host_is_ip = true;
    host = host.substr(1, host.size() - 2);
    if (size_t zone = host.find('%'); zone != std::string::npos) host.resize(zone);
  } else {
    parts.host_is_ip = !host.empty() &&
                       std::all_of(host.begin(), host.end(), [](unsigned char c) {
                         return std::isdigit(c) || c == '.';
                       });
  }
  std::transform(host.begin(), host.end(), host.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (!host.empty() && host.back() == '.') host.pop_back();
  // RFC 1035 caps a DNS name at 253 characters; a longer one can only fail in the
  // resolver later, with a less useful message (token URLs and redirects included).
  if (!parts.host_is_ip && host.size() > kMaxHostNameChars) {
    return Invalid(field,
                   "the host name is " + std::to_string(host.size()) +
                       " characters; DNS names have at most " +
                       std::to_string(kMaxHostNameChars),
                   "Check the URL's host name.");
  }
  parts.host = host;
  std::string port = Part(u.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT);
  parts.port = static_cast<uint16_t>(port.empty() ? 0 : std::stoi(port));
  return parts;
}

std::string PercentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    auto uc = static_cast<unsigned char>(c);
    if (std::isalnum(uc) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[uc >> 4];
      out += kHex[uc & 0xf];
    }
  }
  return out;
}

Result<std::string> AppendQuery(std::string_view url, const std::vector<QueryParam>& params) {
  if (params.empty()) return std::string(url);
  WSSTEP_RETURN_IF_ERROR(Parse(url, "url").status());
  // Appended as text, so the encoding reaches the wire exactly as PercentEncode made it.
  size_t hash = url.find('#');
  std::string out(url.substr(0, hash));
  char sep = out.find('?') == std::string::npos ? '?' : '&';
  if (!out.empty() && (out.back() == '?' || out.back() == '&')) sep = '\0';
  for (const auto& p : params) {
    if (sep != '\0') out += sep;
    out += PercentEncode(p.name) + "=" + PercentEncode(p.value);
    sep = '&';
  }
  return out;
}

Result<std::string> ReplaceHost(std::string_view url, std::string_view host) {
  WSSTEP_ASSIGN_OR_RETURN(UrlPtr u, Parse(url, "url"));
  if (curl_url_set(u.get(), CURLUPART_HOST, std::string(host).c_str(), 0) != CURLUE_OK) {
    return Invalid("tls.tls_server_name", "\"" + std::string(host) + "\" is not a valid host name",
                   "Give a DNS name such as api.example.com.");
  }
  return Part(u.get(), CURLUPART_URL);
}

bool IsToken(std::string_view text) {
  if (text.empty()) return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    auto uc = static_cast<unsigned char>(c);
    return std::isalnum(uc) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

bool IsSafeHeaderValue(std::string_view value) {
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

Status ValidateHeader(std::string_view name, std::string_view value, std::string_view field) {
  std::string shown;
  for (char c : name) {
    auto uc = static_cast<unsigned char>(c);
    if (uc == '\r') shown += "\\r";
    else if (uc == '\n') shown += "\\n";
    else if (uc < 0x20 || uc == 0x7f) shown += "\\x" + std::to_string(uc);
    else shown += c;
  }
  // The host shows a finding next to the exact part that is wrong (name or value).
  if (!IsToken(name)) {
    std::string name_field = std::string(field) + ".name";
    return Error(Code::kInvalidStepConfig,
                 name_field + ": header name \"" + shown + "\" is not a valid token",
                 "Header names are letters, digits and !#$%&'*+-.^_`|~ only; nothing was sent.",
                 Side::kConfiguration)
        .With("field", name_field)
        .With("header", shown);
  }
  if (!IsSafeHeaderValue(value)) {
    std::string value_field = std::string(field) + ".value";
    return Error(Code::kInvalidStepConfig,
                 value_field + ": the value of header \"" + shown + "\" contains CR, LF or NUL",
                 "Remove line breaks from header values (they would split the request); "
                 "nothing was sent.",
                 Side::kConfiguration)
        .With("field", value_field)
        .With("header", shown);
  }
  return {};
}

}  // namespace wsstep::rest

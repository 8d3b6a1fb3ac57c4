#include "plugin/process/handshake.h"

#include <array>
#include <charconv>

namespace wsstep::plugin {
namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::optional<int> ParseSmallInt(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::vector<std::string_view> Split(std::string_view s, char sep, size_t max_parts) {
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < max_parts) {
    const size_t at = s.find(sep);
    if (at == std::string_view::npos) break;
    parts.push_back(s.substr(0, at));
    s.remove_prefix(at + 1);
  }
  parts.push_back(s);
  return parts;
}

Error BadLine(std::string_view why) {
  return Error(Code::kInvalidArgument, "plugin handshake line: " + std::string(why),
               "the plugin must print exactly one line "
               "'CORE|APP|NETWORK|ADDRESS|grpc[|CERT]' on stdout and log only to stderr",
               Side::kServer);
}

}  // namespace

HandshakeEnv ReadHandshakeEnv(const EnvLookup& env) {
  HandshakeEnv h;
  if (auto cookie = env(std::string(kMagicCookieKey))) {
    h.cookie = *cookie == kMagicCookieValue ? CookieState::kMatches : CookieState::kWrong;
  }
  if (auto versions = env("PLUGIN_PROTOCOL_VERSIONS")) {
    for (std::string_view item : Split(*versions, ',', SIZE_MAX)) {
      if (auto v = ParseSmallInt(item)) h.protocol_versions.push_back(*v);
    }
  }
  h.client_cert_pem = env("PLUGIN_CLIENT_CERT").value_or("");
  h.unix_socket_dir = env("PLUGIN_UNIX_SOCKET_DIR").value_or("");
  if (auto v = env("PLUGIN_MIN_PORT")) h.min_port = ParseSmallInt(*v);
  if (auto v = env("PLUGIN_MAX_PORT")) h.max_port = ParseSmallInt(*v);
  h.use_tcp = env("WSSTEP_PLUGIN_NETWORK").value_or("") == "tcp";
  const std::string watch = env("WSSTEP_PLUGIN_WATCH_STDIN").value_or("");
  h.watch_stdin = watch == "1" || watch == "true" || watch == "yes" || watch == "on";
  return h;
}

int NegotiateAppProtocol(const std::vector<int>& host_versions, bool* compatible) {
  bool ok = host_versions.empty();
  for (int v : host_versions) ok = ok || v == kAppProtocolVersion;
  if (compatible != nullptr) *compatible = ok;
  return kAppProtocolVersion;
}

std::string FormatHandshakeLine(const HandshakeLine& line) {
  std::string out = std::to_string(line.core_version) + "|" + std::to_string(line.app_version) +
                    "|" + line.network + "|" + line.address + "|" + line.protocol;
  if (!line.server_cert_der.empty()) out += "|" + Base64RawStdEncode(line.server_cert_der);
  return out;
}

Result<HandshakeLine> ParseHandshakeLine(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.remove_suffix(1);
  }
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  const std::vector<std::string_view> parts = Split(text, '|', 6);
  if (parts.size() < 4) {
    return BadLine("expected at least 4 '|'-separated fields, got '" +
                   std::string(text.substr(0, 120)) + "'");
  }
  HandshakeLine line;
  auto core = ParseSmallInt(parts[0]);
  auto app = ParseSmallInt(parts[1]);
  if (!core) return BadLine("core protocol version '" + std::string(parts[0]) + "' is not a number");
  if (!app) return BadLine("app protocol version '" + std::string(parts[1]) + "' is not a number");
  line.core_version = *core;
  line.app_version = *app;
  line.network = std::string(parts[2]);
  line.address = std::string(parts[3]);
  if (line.network != "unix" && line.network != "tcp") {
    return BadLine("unknown network '" + line.network + "'");
  }
  if (line.address.empty()) return BadLine("empty address");
  // go-plugin defaults a missing protocol field to net/rpc, which wsstep never speaks.
  line.protocol = parts.size() >= 5 ? std::string(parts[4]) : "netrpc";
  if (parts.size() >= 6 && !parts[5].empty()) {
    auto der = Base64RawStdDecode(parts[5]);
    if (!der) return BadLine("the server certificate field is not base64");
    line.server_cert_der = std::move(*der);
  }
  return line;
}

std::string Base64RawStdEncode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t n = (static_cast<uint8_t>(bytes[i]) << 16) |
                       (static_cast<uint8_t>(bytes[i + 1]) << 8) |
                       static_cast<uint8_t>(bytes[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t n = static_cast<uint8_t>(bytes[i]) << 16;
    if (rest == 2) n |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    if (rest == 2) out += kAlphabet[(n >> 6) & 63];
  }
  return out;
}

std::optional<std::string> Base64RawStdDecode(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  std::array<int, 256> value{};
  value.fill(-1);
  for (size_t k = 0; k < kAlphabet.size(); ++k) value[static_cast<uint8_t>(kAlphabet[k])] = static_cast<int>(k);
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    const int v = value[static_cast<uint8_t>(c)];
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

}  // namespace wsstep::plugin

#include "plugin/cli/command.h"

#include <idn2.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <sstream>

#include "plugin/server/status_map.h"

namespace wsstep::plugin {

namespace {
bool json_output = false;
}  // namespace

void SetJsonOutput(bool json) { json_output = json; }

int UsageError(const std::string& message, const std::string& hint) {
  CliFailure failure;
  failure.error = Error(Code::kInvalidArgument, message, hint, Side::kConfiguration);
  return ReportFailure(json_output, failure, kExitUsage);
}

Result<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Error(Code::kInvalidArgument, path + ": cannot read the file", "", Side::kConfiguration);
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

Result<std::optional<SecretBytes>> ReadSecret(const std::string& file, const std::string& env,
                                              bool from_stdin, std::string_view what) {
  const int sources = !file.empty() + !env.empty() + (from_stdin ? 1 : 0);
  if (sources > 1) {
    return Error(Code::kInvalidArgument, std::string(what) + ": give one source only", "",
                 Side::kConfiguration);
  }
  if (!file.empty()) {
    WSSTEP_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(file));
    if (!text.empty() && text.back() == '\n') text.pop_back();
    if (!text.empty() && text.back() == '\r') text.pop_back();
    SecretBytes s(text);
    std::fill(text.begin(), text.end(), '\0');
    return std::optional<SecretBytes>(std::move(s));
  }
  if (!env.empty()) {
    const char* v = std::getenv(env.c_str());
    if (v == nullptr) {
      return Error(Code::kInvalidArgument,
                   std::string(what) + ": environment variable " + env + " is not set", "",
                   Side::kConfiguration);
    }
    return std::optional<SecretBytes>(SecretBytes(std::string_view(v)));
  }
  if (from_stdin) {
    termios saved{};
    const bool tty = ::isatty(STDIN_FILENO) && ::tcgetattr(STDIN_FILENO, &saved) == 0;
    if (tty) {
      std::cerr << what << ": ";
      termios quiet = saved;
      quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    }
    std::string line;
    std::getline(std::cin, line);
    if (tty) {
      ::tcsetattr(STDIN_FILENO, TCSANOW, &saved);
      std::cerr << "\n";
    }
    SecretBytes s(line);
    std::fill(line.begin(), line.end(), '\0');
    return std::optional<SecretBytes>(std::move(s));
  }
  return std::optional<SecretBytes>();
}

std::string FormatTime(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  const std::time_t s = static_cast<std::time_t>(t.seconds());
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string EnumName(const std::string& full, std::string_view prefix) {
  return std::string_view(full).starts_with(prefix) ? full.substr(prefix.size()) : full;
}

// Prints a StepError and returns kExitStepFailed.
int ReportStepError(const ClientOptions& o, const v1::StepError& e,
                    const google::protobuf::Message& result) {
  CliFailure failure;
  failure.error = FromStepError(e);
  if (CodeName(failure.error.code) != e.code()) failure.error.With("code", e.code());
  return ReportFailure(o.json, failure, kExitStepFailed, &result);
}

void PrintWarnings(const google::protobuf::RepeatedPtrField<v1::Diagnostic>& warnings) {
  for (const auto& w : warnings) {
    // "warning: CHAIN_INCOMPLETE: ...": the code once, never the severity again.
    std::cerr << "warning: ";
    if (!w.code().empty() && w.code() != "WARNING") std::cerr << w.code() << ": ";
    std::cerr << w.summary() << "\n";
    if (!w.detail().empty()) std::cerr << "  hint: " << w.detail() << "\n";
  }
}

// "host", "host:port", "host@env", "host:port@env", "[v6]:port".
Result<v1::Binding> ParseBinding(const std::string& text) {
  v1::Binding b;
  if (text.find("://") != std::string::npos || text.find('/') != std::string::npos) {
    return Error(Code::kInvalidArgument, "binding '" + text + "' is a URL; give host:port",
                 "e.g. api.bank.example:443@production (no scheme, no path)", Side::kConfiguration);
  }
  std::string rest = text;
  if (const size_t at = rest.rfind('@'); at != std::string::npos) {
    b.set_environment(rest.substr(at + 1));
    rest = rest.substr(0, at);
  }
  std::string host = rest;
  std::string port;
  const bool bare_ipv6 = !rest.starts_with("[") && std::count(rest.begin(), rest.end(), ':') > 1;
  if (bare_ipv6) {
    // "::1", "fe80::1": an IPv6 address without a port; "[::1]:8443" has one.
    host = rest;
  } else if (rest.starts_with("[")) {
    const size_t close = rest.find(']');
    if (close == std::string::npos) {
      return Error(Code::kInvalidArgument, "binding '" + text + "': missing ']'", "",
                   Side::kConfiguration);
    }
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size() && rest[close + 1] == ':') port = rest.substr(close + 2);
  } else if (const size_t colon = rest.rfind(':'); colon != std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty()) {
    return Error(Code::kInvalidArgument, "binding '" + text + "': no host", "",
                 Side::kConfiguration);
  }
  if (std::any_of(host.begin(), host.end(), [](char c) { return (c & 0x80) != 0; })) {
    // An internationalized name: bindings hold the ASCII (punycode) form that TLS and
    // DNS use.
    char* ascii = nullptr;
    const int rc = idn2_to_ascii_8z(host.c_str(), &ascii, IDN2_NONTRANSITIONAL);
    if (rc != IDN2_OK) {
      return Error(Code::kInvalidArgument,
                   "binding '" + text + "': '" + host + "' is not a valid host name (" +
                       idn2_strerror(rc) + ")",
                   "write an internationalized name in its xn-- (punycode) form",
                   Side::kConfiguration);
    }
    host = ascii;
    idn2_free(ascii);
  }
  b.set_host(host);
  if (!port.empty()) {
    char* end = nullptr;
    const long p = std::strtol(port.c_str(), &end, 10);
    if (end == port.c_str() || *end != '\0' || p < 1 || p > 65535) {
      return Error(Code::kInvalidArgument,
                   "binding '" + text + "': port '" + port + "' is not 1-65535", "",
                   Side::kConfiguration);
    }
    b.set_port(static_cast<uint32_t>(p));
  }
  return b;
}

bool SplitHostPort(const std::string& text, std::string* host, uint32_t* port) {
  auto b = ParseBinding(text);
  if (!b.ok() || !b->environment().empty()) return false;
  *host = b->host();
  *port = b->port();
  return true;
}

}  // namespace wsstep::plugin

#include "tests/support/nginx.h"

#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/ossl.h"
#include "tests/support/pki.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace wsstep::testing {
namespace {

// Bodies longer than this are served from a file: nginx refuses configuration
// parameters longer than its 4 KiB read buffer.
constexpr size_t kMaxInlineBody = 2048;

// A file-descriptor owner for the port probes.
class Socket {
 public:
  Socket() : fd_(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {}
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// A quoted nginx string whose value is exactly `text`: nginx has escapes for quotes,
// backslash, \t \r \n, but none for '$', which goes through a variable set to "$".
std::string QuoteValue(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '$': out += "${wsstep_dollar}"; break;
      default: out += c;
    }
  }
  return out + "\"";
}

// A quoted path. A '$' would make nginx treat the path as a template: not supported.
std::string QuotePath(const std::string& path) {
  std::string out = "\"";
  for (char c : path) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string VerifyClientValue(NginxVerifyClient v) {
  switch (v) {
    case NginxVerifyClient::kOn: return "on";
    case NginxVerifyClient::kOptional: return "optional";
    case NginxVerifyClient::kOptionalNoCa: return "optional_no_ca";
    case NginxVerifyClient::kOff: break;
  }
  return "off";
}

bool IsRedirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// Undoes log_format escape=default (\xXX) and URL encoding (%XX).
std::string Unescape(std::string_view in, char marker) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    size_t hex_at = marker == '%' ? i + 1 : i + 2;
    bool escape = marker == '%' ? in[i] == '%'
                                : (in[i] == '\\' && i + 1 < in.size() && in[i + 1] == 'x');
    if (escape && hex_at + 2 <= in.size()) {
      std::string hex(in.substr(hex_at, 2));
      char* end = nullptr;
      long v = std::strtol(hex.c_str(), &end, 16);
      if (end == hex.c_str() + 2) {
        out += static_cast<char>(v);
        i = hex_at + 1;
        continue;
      }
    }
    out += in[i];
  }
  return out;
}

// SHA-256 fingerprint of a URL-encoded PEM certificate ($ssl_client_escaped_cert).
std::string FingerprintOfEscapedPem(std::string_view escaped) {
  if (escaped.empty() || escaped == "-") return "";
  std::string pem = Unescape(escaped, '%');
  ossl::BioPtr bio = ossl::MemoryBio(pem);
  ossl::X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    ossl::ClearErrors();
    return "";
  }
  return ossl::Sha256Fingerprint(cert.get());
}

uint64_t ToU64(std::string_view s) {
  std::string str(s);
  return str.empty() || str == "-" ? 0 : std::strtoull(str.c_str(), nullptr, 10);
}

std::vector<std::string> SplitTabs(const std::string& line) {
  std::vector<std::string> out;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, '\t')) out.push_back(field == "-" ? "" : field);
  return out;
}

// The access-log format: tab-separated so that no value can split a line wrongly
// (escape=default writes a tab inside a value as \x09). Order matters to ParseLine.
constexpr const char* kLogFormat =
    "$server_port\\t$request_method\\t$request_uri\\t$status\\t$ssl_protocol\\t"
    "$ssl_session_reused\\t$connection\\t$connection_requests\\t$ssl_client_verify\\t"
    "$ssl_client_fingerprint\\t$ssl_client_s_dn\\t$upstream_addr\\t$request_time\\t"
    "$ssl_client_escaped_cert\\t$server_protocol";

NginxAccessLogEntry ParseLine(const std::string& line) {
  NginxAccessLogEntry e;
  e.raw = line;
  std::vector<std::string> f = SplitTabs(line);
  f.resize(15);
  e.server_port = static_cast<uint16_t>(ToU64(f[0]));
  e.method = f[1];
  e.uri = Unescape(f[2], 'x');
  e.status = static_cast<int>(ToU64(f[3]));
  e.ssl_protocol = f[4];
  e.session_reused = f[5] == "r";
  e.connection = ToU64(f[6]);
  e.connection_requests = ToU64(f[7]);
  e.client_verify = Unescape(f[8], 'x');
  e.client_fingerprint_sha1 = f[9];
  e.client_subject = Unescape(f[10], 'x');
  e.upstream_addr = f[11];
  e.client_fingerprint = FingerprintOfEscapedPem(f[13]);
  e.protocol = f[14];
  return e;
}

// The echo body: "key=value" lines, values straight from nginx variables.
constexpr const char* kEchoBody =
    "client_verify=$ssl_client_verify\\n"
    "client_subject=$ssl_client_s_dn\\n"
    "client_fingerprint_sha1=$ssl_client_fingerprint\\n"
    "session_reused=$ssl_session_reused\\n"
    "connection=$connection\\n"
    "connection_requests=$connection_requests\\n"
    "ssl_protocol=$ssl_protocol\\n"
    "client_cert=$ssl_client_escaped_cert\\n";

std::string CurrentUserDirective() {
  // nginx switches its workers to `user` only when started as root (and warns
  // otherwise). Stay the same user so workers can write the private temp directory.
  if (geteuid() != 0) return "";
  const passwd* pw = getpwuid(geteuid());
  const group* gr = getgrgid(getegid());
  if (pw == nullptr || gr == nullptr) return "";
  return std::string("user ") + pw->pw_name + " " + gr->gr_name + ";\n";
}

std::string ReadOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

uint16_t PickFreeLoopbackPort() {
  Socket s;
  if (s.fd() < 0) return 0;
  sockaddr_in addr = Loopback(0);
  if (bind(s.fd(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return 0;
  socklen_t len = sizeof(addr);
  if (getsockname(s.fd(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  return ntohs(addr.sin_port);
}

bool LoopbackPortAccepts(uint16_t port) {
  Socket s;
  if (s.fd() < 0) return false;
  sockaddr_in addr = Loopback(port);
  return connect(s.fd(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

NginxEcho NginxEcho::Parse(std::string_view body) {
  NginxEcho echo;
  std::istringstream in{std::string(body)};
  for (std::string line; std::getline(in, line);) {
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "client_verify") echo.client_verify = value;
    else if (key == "client_subject") echo.client_subject = value;
    else if (key == "client_fingerprint_sha1") echo.client_fingerprint_sha1 = value;
    else if (key == "session_reused") echo.session_reused = value == "r";
    else if (key == "connection") echo.connection = ToU64(value);
    else if (key == "connection_requests") echo.connection_requests = ToU64(value);
    else if (key == "ssl_protocol") echo.ssl_protocol = value;
    else if (key == "client_cert") echo.client_fingerprint = FingerprintOfEscapedPem(value);
  }
  return echo;
}

NginxServer::NginxServer(NginxConfig config) : config_(std::move(config)) {}

NginxServer::~NginxServer() {
  Stop();
  if (config_.keep_dir && dir_ != nullptr) dir_->Release();
}

const std::string& NginxServer::dir() const {
  static const std::string kNone;
  return dir_ != nullptr ? dir_->path() : kNone;
}

std::string NginxServer::base_url(std::string_view host) const {
  return "https://" + std::string(host) + ":" + std::to_string(tls_port_);
}

std::string NginxServer::gateway_url() const {
  return "http://127.0.0.1:" + std::to_string(gateway_port_);
}

bool NginxServer::running() const { return process_ != nullptr && process_->Running(); }

std::string NginxServer::RenderConfig() const {
  const std::string& d = dir_->path();
  std::ostringstream c;
  c << "# Generated by tests/support/nginx.cc for one test.\n"
    << "daemon off;\nmaster_process on;\n"
    << "worker_processes "
    << (config_.worker_processes > 0 ? std::to_string(config_.worker_processes) : "auto")
    << ";\n"
    << CurrentUserDirective() << "pid " << QuotePath(d + "/nginx.pid") << ";\n"
    << "lock_file " << QuotePath(d + "/nginx.lock") << ";\n"
    << "error_log " << QuotePath(d + "/error.log") << " info;\n"
    << "events { worker_connections 1024; }\n"
    << "http {\n"
    << "  log_format wsstep escape=default \"" << kLogFormat << "\";\n"
    << "  access_log " << QuotePath(d + "/access.log") << " wsstep;\n";
  for (const char* temp : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"}) {
    c << "  " << temp << "_temp_path " << QuotePath(d + "/tmp/" + temp) << ";\n";
  }
  c << "  default_type text/plain;\n  server_tokens off;\n"
    << "  keepalive_requests " << config_.keepalive_requests << ";\n"
    << "  keepalive_timeout " << config_.keepalive_timeout_seconds << "s;\n"
    << "  geo $wsstep_dollar { default \"$\"; }\n"
    << config_.extra_http_directives << "\n";

  if (config_.tls) {
    c << "  server {\n"
      << "    listen 127.0.0.1:" << tls_port_ << (config_.http2 ? " ssl http2;\n" : " ssl;\n")
      << "    server_name localhost;\n"
      << "    ssl_certificate " << QuotePath(config_.cert_file) << ";\n"
      << "    ssl_certificate_key " << QuotePath(config_.key_file) << ";\n"
      << "    ssl_protocols " << config_.protocols << ";\n"
      << "    ssl_session_cache "
      << (config_.session_cache ? "shared:wsstep:1m" : "off") << ";\n"
      << "    ssl_session_tickets " << (config_.session_tickets ? "on" : "off") << ";\n"
      << "    ssl_verify_client " << VerifyClientValue(config_.verify_client) << ";\n"
      << "    ssl_verify_depth " << config_.verify_depth << ";\n";
    if (!config_.client_ca_file.empty()) {
      c << "    ssl_client_certificate " << QuotePath(config_.client_ca_file) << ";\n";
    }
    bool has_root_route = false;
    int file_index = 0;
    for (const auto& r : config_.responses) {
      std::string headers;
      for (const auto& [name, value] : r.headers) {
        headers += "      add_header " + name + " " + QuoteValue(value) + " always;\n";
      }
      c << "    location = " << r.path << " {\n"
        << "      default_type " << QuoteValue(r.content_type) << ";\n"
        << headers;
      if (r.body.size() <= kMaxInlineBody || IsRedirect(r.status)) {
        c << "      return " << r.status << " " << QuoteValue(r.body) << ";\n    }\n";
        continue;
      }
      std::string file = d + "/static/" + std::to_string(file_index++);
      WriteFile(file, r.body);
      if (r.status == 200) {
        c << "      alias " << QuotePath(file) << ";\n    }\n";
        continue;
      }
      // error_page keeps the status while serving the body from the internal location.
      std::string internal = "/__wsstep_body_" + std::to_string(file_index);
      c << "      error_page " << r.status << " " << internal << ";\n"
        << "      return " << r.status << ";\n    }\n"
        << "    location = " << internal << " {\n      internal;\n"
        << "      default_type " << QuoteValue(r.content_type) << ";\n"
        << headers << "      alias " << QuotePath(file) << ";\n    }\n";
    }
    if (!config_.echo_path.empty()) {
      c << "    location = " << config_.echo_path << " {\n"
        << "      add_header X-SSL-Client-Verify $ssl_client_verify always;\n"
        << "      add_header X-SSL-Client-S-DN $ssl_client_s_dn always;\n"
        << "      add_header X-SSL-Client-Fingerprint $ssl_client_fingerprint always;\n"
        << "      add_header X-SSL-Session-Reused $ssl_session_reused always;\n"
        << "      add_header X-Connection $connection always;\n"
        << "      add_header X-Connection-Requests $connection_requests always;\n"
        << "      add_header X-SSL-Protocol $ssl_protocol always;\n"
        << "      return 200 \"" << kEchoBody << "\";\n    }\n";
    }
    for (const auto& p : config_.proxy_routes) {
      has_root_route = has_root_route || p.path == "/";
      c << "    location " << p.path << " {\n"
        << "      proxy_pass http://127.0.0.1:" << p.upstream_port << ";\n"
        << "      proxy_http_version 1.1;\n"
        << "      proxy_set_header Connection \"\";\n"
        << "      proxy_set_header Host $http_host;\n"
        << "      proxy_set_header X-SSL-Client-Verify $ssl_client_verify;\n"
        << "      proxy_set_header X-SSL-Client-S-DN $ssl_client_s_dn;\n"
        << "      proxy_set_header X-SSL-Client-Fingerprint $ssl_client_fingerprint;\n"
        << "      proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;\n"
        << "    }\n";
    }
    if (!has_root_route) c << "    location / { return 404 \"not found\\n\"; }\n";
    c << config_.extra_server_directives << "\n  }\n";
  }

  if (config_.egress) {
    const NginxEgressGateway& g = *config_.egress;
    uint16_t upstream = g.upstream_port != 0 ? g.upstream_port : tls_port_;
    c << "  upstream wsstep_egress {\n"
      << "    server 127.0.0.1:" << upstream << ";\n"
      << "    keepalive " << g.keepalive_connections << ";\n  }\n"
      << "  server {\n"
      << "    listen 127.0.0.1:" << gateway_port_ << ";\n"
      << "    location / {\n"
      << "      proxy_pass https://wsstep_egress;\n"
      << "      proxy_http_version 1.1;\n"
      << "      proxy_set_header Connection \"\";\n"
      << "      proxy_set_header Host " << QuoteValue(g.upstream_name) << ";\n"
      << "      proxy_ssl_server_name on;\n"
      << "      proxy_ssl_name " << QuoteValue(g.upstream_name) << ";\n"
      << "      proxy_ssl_certificate " << QuotePath(g.client_cert_file) << ";\n"
      << "      proxy_ssl_certificate_key " << QuotePath(g.client_key_file) << ";\n"
      << "      proxy_ssl_trusted_certificate " << QuotePath(g.trusted_ca_file) << ";\n"
      << "      proxy_ssl_verify on;\n      proxy_ssl_verify_depth 3;\n"
      << "      proxy_ssl_session_reuse " << (g.session_reuse ? "on" : "off") << ";\n"
      << "    }\n  }\n";
  }
  c << "}\n";
  return c.str();
}

bool NginxServer::Start() {
  if (process_ != nullptr && process_->Running()) {
    start_error_ = "nginx is already running";
    return false;
  }
  if (config_.tls) {
    if (config_.cert_file.empty()) config_.cert_file = PkiPath("server/localhost.chain.pem");
    if (config_.key_file.empty()) config_.key_file = PkiPath("server/localhost.key.pem");
    if (config_.client_ca_file.empty() && config_.verify_client != NginxVerifyClient::kOff) {
      config_.client_ca_file = PkiPath("trust/bundle.pem");
    }
  }
  if (!config_.tls && !config_.egress) {
    start_error_ = "NginxConfig has neither a TLS listener nor an egress gateway";
    return false;
  }
  if (config_.egress && config_.egress->upstream_port == 0 && !config_.tls) {
    start_error_ = "the egress gateway's upstream is this instance, which has no TLS listener";
    return false;
  }
  for (int attempt = 0; attempt < 3; ++attempt) {
    bool retry = false;
    if (StartOnce(&retry)) return true;
    if (!retry) return false;
  }
  return false;
}

bool NginxServer::StartOnce(bool* retry_with_new_ports) {
  *retry_with_new_ports = false;
  process_.reset();
  dir_ = std::make_unique<TempDir>("wsstep-nginx-");
  std::filesystem::create_directories(dir_->Path("tmp"));
  std::filesystem::create_directories(dir_->Path("static"));
  tls_port_ = config_.tls ? PickFreeLoopbackPort() : 0;
  gateway_port_ = config_.egress ? PickFreeLoopbackPort() : 0;
  if ((config_.tls && tls_port_ == 0) || (config_.egress && gateway_port_ == 0)) {
    start_error_ = "no free loopback port";
    return false;
  }
  std::string conf = dir_->Path("nginx.conf");
  config_text_ = RenderConfig();
  WriteFile(conf, config_text_);

  process_ = std::make_unique<ChildProcess>();
  if (!process_->Start({config_.nginx_binary, "-p", dir_->path() + "/", "-c", conf, "-e",
                        dir_->Path("error.log")},
                       dir_->Path("nginx.out"))) {
    start_error_ = process_->error();
    return false;
  }
  std::vector<uint16_t> ports;
  if (tls_port_ != 0) ports.push_back(tls_port_);
  if (gateway_port_ != 0) ports.push_back(gateway_port_);

  // nginx tells nothing when it is ready: poll its ports (or notice that it exited).
  bool accepting = false;
  (void)WaitUntil("nginx accepts connections on every port", [&] {
    if (!process_->Running()) return true;
    accepting = true;
    for (uint16_t p : ports) accepting = accepting && LoopbackPortAccepts(p);
    return accepting;
  });
  if (accepting) return true;
  bool exited = !process_->Running();
  process_->Stop(SIGKILL, std::chrono::seconds(1));
  std::string log = ErrorLog() + ReadOrEmpty(dir_->Path("nginx.out"));
  *retry_with_new_ports = log.find("Address already in use") != std::string::npos;
  start_error_ = std::string(exited ? "nginx exited during start-up"
                                    : "nginx did not accept connections within " +
                                          std::to_string(kWaitBound.count()) + " ms") +
                 " (config " + conf + "):\n" + log;
  return false;
}

void NginxServer::Stop() {
  if (process_ == nullptr) return;
  // SIGTERM is nginx's fast shutdown: no waiting for idle keep-alive clients.
  process_->Stop(SIGTERM, std::chrono::seconds(5));
}

std::vector<NginxAccessLogEntry> NginxServer::AccessLog(size_t wait_for_lines,
                                                        std::chrono::milliseconds timeout) const {
  std::vector<NginxAccessLogEntry> out;
  if (dir_ == nullptr) return out;
  // nginx writes the line after the response, in its own process: poll the file.
  (void)WaitUntil("nginx logged " + std::to_string(wait_for_lines) + " requests", [&] {
    out.clear();
    std::istringstream in(ReadOrEmpty(dir_->Path("access.log")));
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) out.push_back(ParseLine(line));
    }
    return out.size() >= wait_for_lines;
  }, timeout);
  return out;
}

void NginxServer::ClearAccessLog() const {
  if (dir_ == nullptr) return;
  std::error_code ec;  // no log yet: nothing to clear
  std::filesystem::resize_file(dir_->Path("access.log"), 0, ec);
}

std::string NginxServer::ErrorLog() const {
  return dir_ == nullptr ? "" : ReadOrEmpty(dir_->Path("error.log"));
}

}  // namespace wsstep::testing

// NginxServer: a real nginx (Debian's /usr/sbin/nginx) on loopback ephemeral ports, for
// end-to-end tests and benchmarks that need a production TLS stack on the other side:
// an mTLS origin with fixed responses, an endpoint that echoes what nginx saw of the
// client certificate, reverse-proxy routes to plain-HTTP backends (SOAP services), and
// an egress-gateway mode (plain HTTP in, mTLS with keep-alive and session reuse out).
//
//   NginxConfig config;                                   // defaults: server/localhost
//   config.verify_client = NginxVerifyClient::kOn;        // chain + ssl_client_certificate
//   config.responses.emplace_back("/hello", "hi");         // path, body[, status, type]
//   NginxServer nginx(config);
//   ASSERT_TRUE(nginx.Start()) << nginx.start_error();
//   ... GET nginx.base_url() + "/hello" with client/rsa.pem ...
//   std::vector<NginxAccessLogEntry> log = nginx.AccessLog(/*wait_for_lines=*/1);
//   EXPECT_EQ(log[0].client_fingerprint, Sha256FingerprintOfPemFile(PkiPath("client/rsa.pem")));
//
// Everything nginx writes (config, pid, logs, temp files) lives in a private temporary
// directory removed on destruction (kept when keep_dir is set, for debugging). nginx runs
// in the foreground (daemon off) with a master process, as a child of the test, and is
// stopped (SIGQUIT, then SIGKILL after a grace period) by Stop() or the destructor.
#ifndef WSSTEP_TESTS_SUPPORT_NGINX_H_
#define WSSTEP_TESTS_SUPPORT_NGINX_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wsstep::testing {

class ChildProcess;
class TempDir;

enum class NginxVerifyClient {
  kOff,           // no CertificateRequest
  kOn,            // a valid client certificate is required (else HTTP 400)
  kOptional,      // requested; verified if sent
  kOptionalNoCa,  // requested; not verified against ssl_client_certificate
};

// `location = path { return status "body"; }`. Any body is allowed (quotes, $, newlines,
// large): bodies over 2 KiB are served from a file, which needs status 200 or >= 300.
// For 301/302/303/307/308 nginx treats `body` as the Location URL.
struct NginxFixedResponse {
  NginxFixedResponse() = default;
  NginxFixedResponse(std::string path, std::string body, int status = 200,
                     std::string content_type = "text/plain")
      : path(std::move(path)),
        status(status),
        body(std::move(body)),
        content_type(std::move(content_type)) {}

  std::string path = "/";
  int status = 200;
  std::string body;
  std::string content_type = "text/plain";
  std::vector<std::pair<std::string, std::string>> headers;  // add_header ... always
};

// `location path { proxy_pass http://127.0.0.1:port; }` (prefix match, URI passed
// unchanged, HTTP/1.1 keep-alive to the backend). The backend also receives what nginx
// saw of the client certificate in X-SSL-Client-Verify, X-SSL-Client-S-DN,
// X-SSL-Client-Fingerprint (SHA-1) and X-SSL-Client-Cert (URL-encoded PEM).
struct NginxProxyRoute {
  NginxProxyRoute() = default;
  NginxProxyRoute(std::string path, uint16_t upstream_port)
      : path(std::move(path)), upstream_port(upstream_port) {}

  std::string path;
  uint16_t upstream_port = 0;
};

// Egress gateway: a plain-HTTP listener on 127.0.0.1 that forwards every request to an
// HTTPS upstream, presenting a client certificate, verifying the upstream, keeping
// upstream connections alive and reusing TLS sessions.
struct NginxEgressGateway {
  uint16_t upstream_port = 0;        // 0: this instance's own TLS listener
  std::string upstream_name = "localhost";  // Host header, SNI and verification name
  std::string client_cert_file;      // proxy_ssl_certificate (leaf, optionally + chain)
  std::string client_key_file;       // proxy_ssl_certificate_key (unencrypted)
  std::string trusted_ca_file;       // proxy_ssl_trusted_certificate
  int keepalive_connections = 32;    // upstream keepalive
  bool session_reuse = true;         // proxy_ssl_session_reuse
};

struct NginxConfig {
  // The TLS listener. Empty cert/key default to server/localhost.chain.pem and
  // server/localhost.key.pem of the test PKI. Set tls = false for a gateway-only nginx.
  bool tls = true;
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;  // ssl_client_certificate; defaults to trust/bundle.pem
  NginxVerifyClient verify_client = NginxVerifyClient::kOff;
  int verify_depth = 3;
  std::string protocols = "TLSv1.2 TLSv1.3";  // ssl_protocols
  bool session_cache = true;    // ssl_session_cache shared (session-ID resumption)
  bool session_tickets = true;  // ssl_session_tickets
  int keepalive_requests = 10000;
  // `listen ... ssl http2` (nginx 1.22 has no `http2 on`): h2 offered by ALPN.
  bool http2 = false;
  int keepalive_timeout_seconds = 60;

  std::vector<NginxFixedResponse> responses;
  // A location echoing the client-certificate facts (see NginxEcho); "" for none.
  std::string echo_path = "/echo";
  std::vector<NginxProxyRoute> proxy_routes;
  // Unmatched paths answer 404 "not found".

  std::optional<NginxEgressGateway> egress;  // see NginxEgressGateway

  int worker_processes = 1;  // 0 = auto
  // Raw directives appended inside the TLS server {} block and the http {} block.
  std::string extra_server_directives;
  std::string extra_http_directives;
  std::string nginx_binary = "/usr/sbin/nginx";
  bool keep_dir = false;  // leave the temporary directory behind (debugging)
};

// One access-log line. nginx writes it after the response, so read with
// AccessLog(wait_for_lines) rather than immediately after a request returns.
struct NginxAccessLogEntry {
  uint16_t server_port = 0;  // port() for the TLS listener, gateway_port() for the gateway
  std::string method;
  std::string uri;
  int status = 0;
  std::string ssl_protocol;       // "TLSv1.3"; "" on the plain listener
  bool session_reused = false;    // $ssl_session_reused == "r"
  uint64_t connection = 0;        // $connection: nginx's connection serial number
  uint64_t connection_requests = 0;  // 1 for the first request on a connection
  std::string client_verify;      // "SUCCESS", "NONE", "FAILED:reason"; "" on plain
  std::string client_subject;     // $ssl_client_s_dn (RFC 2253), "" if none
  std::string client_fingerprint_sha1;  // $ssl_client_fingerprint (hex, no colons)
  // SHA-256 of the presented client certificate, "ab:cd:..", as
  // Sha256FingerprintOfPemFile; "" if none was presented.
  std::string client_fingerprint;
  std::string upstream_addr;      // gateway/proxy lines: "127.0.0.1:PORT"; else ""
  std::string protocol;           // $server_protocol: "HTTP/1.1", "HTTP/2.0"
  std::string raw;                // the line as written
};

// The facts the echo location returns (in the body and as X-... response headers).
struct NginxEcho {
  std::string client_verify;
  std::string client_subject;
  std::string client_fingerprint_sha1;
  std::string client_fingerprint;  // SHA-256 "ab:cd:..", computed from the echoed PEM
  bool session_reused = false;
  uint64_t connection = 0;
  uint64_t connection_requests = 0;
  std::string ssl_protocol;
  // Parses an echo body ("key=value" lines). Unknown keys are ignored.
  static NginxEcho Parse(std::string_view body);
};

class NginxServer {
 public:
  explicit NginxServer(NginxConfig config = {});
  ~NginxServer();  // Stop()
  NginxServer(const NginxServer&) = delete;
  NginxServer& operator=(const NginxServer&) = delete;

  // Writes the configuration, starts nginx and waits (at most 10 s) until every listener
  // accepts connections. Retries with new ports if one was taken meanwhile. False (see
  // start_error(), which includes nginx's error log) if nginx does not come up.
  bool Start();
  const std::string& start_error() const { return start_error_; }
  // Graceful stop (SIGQUIT, SIGKILL after 5 s); the ports are closed when it returns.
  // Idempotent.
  void Stop();
  bool running() const;

  uint16_t port() const { return tls_port_; }               // TLS listener; 0 if none
  uint16_t gateway_port() const { return gateway_port_; }   // egress gateway; 0 if none
  // "https://localhost:PORT" (host overridable, e.g. "127.0.0.1").
  std::string base_url(std::string_view host = "localhost") const;
  // "http://127.0.0.1:GATEWAY_PORT".
  std::string gateway_url() const;

  // Parsed access-log lines, oldest first. Waits until there are at least
  // `wait_for_lines` lines (nginx logs after responding); `timeout` is a safety bound.
  std::vector<NginxAccessLogEntry> AccessLog(
      size_t wait_for_lines = 0,
      std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;
  // Empties the access log (nginx keeps appending to the same file).
  void ClearAccessLog() const;
  std::string ErrorLog() const;

  const std::string& dir() const;  // the private directory ("" before Start)
  const std::string& config_text() const { return config_text_; }

 private:
  bool StartOnce(bool* retry_with_new_ports);
  std::string RenderConfig() const;

  NginxConfig config_;
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<ChildProcess> process_;
  uint16_t tls_port_ = 0;
  uint16_t gateway_port_ = 0;
  std::string config_text_;
  std::string start_error_;
};

// A loopback TCP port that was free a moment ago (bind 127.0.0.1:0, read it, close).
uint16_t PickFreeLoopbackPort();
// True if something accepts TCP connections on 127.0.0.1:port.
bool LoopbackPortAccepts(uint16_t port);

}  // namespace wsstep::testing

#endif  // WSSTEP_TESTS_SUPPORT_NGINX_H_

// The plugin's configuration, from three layers: command-line flags win over environment
// variables (WSSTEP_*), which win over a JSON config file, which wins over defaults.
//
//   ConfigLayer flags;                        // filled by the CLI from its options
//   flags.listen = "unix:///run/wsstep/wsstep.sock";
//   Result<Config> config = LoadConfig(flags, ProcessEnvironment());
//
// Config file (--config FILE or WSSTEP_CONFIG), every key optional, unknown keys refused:
//   {
//     "data_dir": "/var/lib/wsstep",
//     "master_key_file": "/etc/wsstep/master.key",
//     "listen": "unix:///run/wsstep/wsstep.sock",
//     "allow_remote": false,
//     "protected_environments": ["production"],
//     "limits": {"max_in_flight_steps": 256, "max_in_flight_per_origin": 0, "max_message_bytes": 16777216,
//                "max_body_bytes": 8388608, "max_chunked_body_bytes": 4294967296},
//     "shutdown_grace": "10s",
//     "log_level": "info",
//     "spin_wait_us": 250,
//     "propagate_trace_context": false,
//     "metrics_listen": "127.0.0.1:9464",
//     "store": "postgresql://wsstep@db.internal/wsstep",
//     "proxy": {"url": "http://proxy.internal:3128", "username": "wsstep",
//               "password_file": "/etc/wsstep/proxy.password",
//               "no_proxy": ["internal.example", "10.0.0.5"], "from_environment": false}
//   }
// The master key itself is never read from the config file (it would sit beside the
// data it protects): give a key file, or WSSTEP_MASTER_KEY (base64 of 32 bytes).
//
// Environment: WSSTEP_CONFIG, WSSTEP_DATA_DIR, WSSTEP_MASTER_KEY_FILE, WSSTEP_MASTER_KEY,
// WSSTEP_LISTEN, WSSTEP_ALLOW_REMOTE (true/false), WSSTEP_PROTECTED_ENVIRONMENTS
// (comma-separated; empty protects none), WSSTEP_MAX_IN_FLIGHT_STEPS,
// WSSTEP_MAX_MESSAGE_BYTES, WSSTEP_MAX_BODY_BYTES, WSSTEP_MAX_CHUNKED_BODY_BYTES,
// WSSTEP_SHUTDOWN_GRACE ("10s", "500ms", or plain seconds), WSSTEP_LOG_LEVEL (debug, info,
// warn, error), WSSTEP_SPIN_WAIT_US, WSSTEP_PROPAGATE_TRACE_CONTEXT (true/false),
// WSSTEP_METRICS_LISTEN (host:port; empty: off), WSSTEP_STORE (a PostgreSQL connection
// string; empty: SQLite in the data directory),
// WSSTEP_PROXY (http://host:port; set but empty: no proxy), WSSTEP_PROXY_USERNAME,
// WSSTEP_PROXY_PASSWORD (env only) or WSSTEP_PROXY_PASSWORD_FILE, WSSTEP_NO_PROXY
// (comma-separated), WSSTEP_PROXY_FROM_ENVIRONMENT (true/false), WSSTEP_HTTP2 (true/false:
// offer h2 by ALPN; config key "http2").
//
// Proxies: the plugin never follows https_proxy, no_proxy, ALL_PROXY and the like by
// itself (libcurl would). With proxy.from_environment (and no proxy.url), LoadConfig takes
// the proxy from https_proxy / HTTPS_PROXY / all_proxy / ALL_PROXY (user:password@ in it
// become the proxy credentials) and adds no_proxy / NO_PROXY to the no-proxy list, once,
// at startup.
#ifndef WSSTEP_PLUGIN_PROCESS_CONFIG_H_
#define WSSTEP_PLUGIN_PROCESS_CONFIG_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/secret.h"
#include "core/vault.h"
#include "plugin/process/log.h"
#include "rest/engine.h"
#include "rest/spin_wait.h"

namespace wsstep::plugin {

// What a step's request or response body may hold unless configured otherwise; the
// step conversion and the transfer options start from it too.
inline constexpr size_t kDefaultMaxBodyBytes = size_t{8} << 20;
// What a body sent in chunks on ExecuteSteps may hold (StepCall.response_body_chunks,
// request_body_chunks): it never sits whole in memory, so it may be far larger.
inline constexpr int64_t kDefaultMaxChunkedBodyBytes = int64_t{4} << 30;

struct Limits {
  int max_in_flight_steps = 256;             // concurrent Execute calls; more: UNAVAILABLE
  // Steps to one origin (scheme://host:port) running at once; as many more wait for a
  // place; beyond those a step is answered ORIGIN_BUSY. 0: no cap.
  int max_in_flight_per_origin = 0;
  int64_t max_message_bytes = 16 << 20;      // gRPC send/receive limit
  int64_t max_body_bytes = kDefaultMaxBodyBytes;  // step request/response bodies
  int64_t max_chunked_body_bytes = kDefaultMaxChunkedBodyBytes;  // bodies sent in chunks
};

// The plugin's HTTP proxy (rest/proxy.h): every step that names none goes through it,
// except to hosts on no_proxy.
struct ProxyConfig {
  std::string url;  // "http://host:port"; "": direct
  std::string username;
  // From WSSTEP_PROXY_PASSWORD, password_file or the environment's proxy URL. Never
  // printed, never in Describe(). Null: no password.
  std::shared_ptr<const SecretBytes> password;
  std::string password_file;  // where it was read from, "" if not from a file
  // A proxy credential in the store (`wsstep proxy-credential set`) whose user and
  // password are used instead, looked up at each step. Excludes username and password.
  std::string credential;
  std::vector<std::string> no_proxy;
  bool from_environment = false;  // url and no_proxy came from https_proxy & co
  std::string source;             // "config", or the environment variable the url came from
};

struct Config {
  std::string config_file;      // the file that was read, "" if none
  std::string data_dir;         // store directory
  std::string master_key_file;  // "" = <data_dir>/master.key
  // WSSTEP_MASTER_KEY, decoded and checked (32 bytes). Never printed, never in Describe().
  std::optional<core::MasterKey> master_key;
  std::string listen;           // for `serve`: "unix:///path" or "host:port"
  bool allow_remote = false;    // permit a non-loopback TCP listen address
  std::vector<std::string> protected_environments = {
      std::string(rest::kDefaultProtectedEnvironment)};
  Limits limits;
  std::chrono::milliseconds shutdown_grace{10000};
  LogLevel log_level = LogLevel::kInfo;
  // How long a thread with nothing else to do looks at its socket before it sleeps
  // (rest/spin_wait.h); 0: never spins. At most kMaxSpinWait.
  std::chrono::microseconds spin_wait = rest::SpinAdvisor::kDefaultSpin;
  // Send a child W3C traceparent (and the host's tracestate) on every outbound request of
  // a step whose call carried a traceparent. Off by default: some APIs refuse unknown
  // headers, and a trace id tells the partner which calls belong together.
  bool propagate_trace_context = false;
  // Where `serve` offers Prometheus metrics (http://HOST:PORT/metrics): a loopback
  // host:port (a remote one needs allow_remote). "": no metrics (the default).
  std::string metrics_listen;
  // Where the certificate store lives: "" for SQLite in data_dir (the embedded default),
  // or a libpq connection string (core/store/pg_storage.h). It may hold a password:
  // Describe() and logs show only its location.
  std::string store;
  ProxyConfig proxy;
  // Offer HTTP/2 by ALPN to TLS origins; false: HTTP/1.1 for every step that does not ask
  // for HTTP/2 itself.
  bool offer_http2 = true;

  // Everything but the master key, as JSON (for `wsstep serve --print-config` and the
  // startup log line). Says where the key comes from: "master_key_source" is
  // "WSSTEP_MASTER_KEY" (then "master_key_file" is "") or "file", with "master_key_file"
  // the file the store reads (<data_dir>/master.key unless one is configured).
  LogFields Describe() const;
};

// One layer of settings: what is set here overrides the layers below it.
struct ConfigLayer {
  std::optional<std::string> config_file;  // flags/env only
  std::optional<std::string> data_dir;
  std::optional<std::string> master_key_file;
  std::optional<std::string> master_key_base64;  // env only; never from a file
  std::optional<std::string> listen;
  std::optional<bool> allow_remote;
  std::optional<std::vector<std::string>> protected_environments;
  std::optional<int> max_in_flight_steps;
  std::optional<int> max_in_flight_per_origin;
  std::optional<int64_t> max_message_bytes;
  std::optional<int64_t> max_body_bytes;
  std::optional<int64_t> max_chunked_body_bytes;
  std::optional<std::chrono::milliseconds> shutdown_grace;
  std::optional<std::string> log_level;
  std::optional<int64_t> spin_wait_us;
  std::optional<bool> propagate_trace_context;
  std::optional<std::string> metrics_listen;
  std::optional<std::string> store;
  std::optional<std::string> proxy_url;
  std::optional<std::string> proxy_username;
  std::optional<std::string> proxy_password;  // env only; never from a file
  std::optional<std::string> proxy_password_file;
  std::optional<std::string> proxy_credential;
  std::optional<std::vector<std::string>> no_proxy;
  std::optional<bool> proxy_from_environment;
  std::optional<bool> offer_http2;
};

// The largest spin_wait accepted: beyond it a spin would cost more than the sleep it saves.
inline constexpr std::chrono::microseconds kMaxSpinWait{10000};

// Reads environment variables; ProcessEnvironment() reads the real ones, tests pass
// FixedEnvironment({{"WSSTEP_LISTEN", "..."}}).
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup ProcessEnvironment();
EnvLookup FixedEnvironment(std::map<std::string, std::string> vars);

// The WSSTEP_* variables as a layer. INVALID_ARGUMENT naming the variable for a value
// that does not parse.
Result<ConfigLayer> LayerFromEnvironment(const EnvLookup& env);
// A JSON config file as a layer. INVALID_ARGUMENT naming the file and the key for
// unreadable files, bad JSON, unknown keys and wrongly typed values.
Result<ConfigLayer> LayerFromFile(const std::string& path);
// Same, from JSON text; `name` is used in messages.
Result<ConfigLayer> LayerFromJson(std::string_view json_text, const std::string& name);

// Defaults < file < environment < flags. The file is flags.config_file, else
// WSSTEP_CONFIG, else none. Validates the result: limits positive, log level known,
// master key 32 bytes of valid base64, listen address parseable (plugin/process/listen.h),
// metrics address a host:port.
Result<Config> LoadConfig(const ConfigLayer& flags, const EnvLookup& env);

// The default data directory: $WSSTEP_DATA_DIR is handled by the layers; this is the
// fallback, $XDG_DATA_HOME/wsstep, else $HOME/.local/share/wsstep, else ./wsstep-data.
std::string DefaultDataDir(const EnvLookup& env);
// The default `serve` listen address: unix://<data_dir>/wsstep.sock.
std::string DefaultListenAddress(const std::string& data_dir);

// Parses "10" (seconds), "10s", "1500ms", "2m" into milliseconds. INVALID_ARGUMENT
// naming `what` otherwise.
Result<std::chrono::milliseconds> ParseDuration(std::string_view text, std::string_view what);

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_PROCESS_CONFIG_H_

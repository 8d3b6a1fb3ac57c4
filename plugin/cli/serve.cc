#include "plugin/cli/serve.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "plugin/process/automtls.h"
#include "plugin/process/lifecycle.h"
#include "plugin/process/listen.h"
#include "plugin/process/log.h"
#include "plugin/server/server.h"
#include "plugin/adapters/wiring.h"
#include "plugin/cli/client.h"

namespace wsstep::plugin {
namespace {

// Prometheus metrics at config.metrics_listen (checked by LoadConfig).
Result<std::unique_ptr<MetricsEndpoint>> ServeMetrics(const Config& config,
                                                      std::shared_ptr<PluginMetrics> metrics) {
  WSSTEP_ASSIGN_OR_RETURN(ListenAddress address, ParseMetricsAddress(config.metrics_listen));
  return MetricsEndpoint::Start(address, config.allow_remote, std::move(metrics));
}

void LogError(std::string_view msg, const Error& e) {
  Log().Error(msg, {{"code", CodeName(e.code)}, {"error", e.message}, {"hint", e.hint}});
}

// Moves the real stdout aside and points fd 1 at stderr, so nothing printed by accident
// (by us or a library) can corrupt the handshake. Returns the private copy, or -1.
int DivertStdout() {
  const int saved = ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
  if (saved < 0) return -1;
  if (::dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
    ::close(saved);
    return -1;
  }
  return saved;
}

bool WriteLine(int fd, const std::string& line) {
  const std::string out = line + "\n";
  size_t off = 0;
  while (off < out.size()) {
    const ssize_t n = ::write(fd, out.data() + off, out.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Starts the server on 127.0.0.1, on a free port of [min, max] when the host gave a
// range (go-plugin's PLUGIN_MIN_PORT/PLUGIN_MAX_PORT), else on any free port.
Result<std::unique_ptr<PluginServer>> StartOnLoopbackTcp(const HandshakeEnv& h,
                                                         const ServerOptions& base) {
  int lo = 0, hi = 0;
  if (h.min_port && h.max_port && *h.min_port > 0 && *h.max_port >= *h.min_port) {
    lo = *h.min_port;
    hi = *h.max_port;
  }
  Error last(Code::kInvalidArgument, "no port available", "", Side::kConfiguration);
  for (int port = lo; port <= hi; ++port) {
    ServerOptions o = base;
    o.listen = ListenAddress::Tcp("127.0.0.1", port);
    auto server = PluginServer::Start(std::move(o));
    if (server.ok()) return server;
    last = server.error();
  }
  return last;
}

}  // namespace

std::string NotLaunchedByHostMessage(CookieState cookie) {
  std::string why = cookie == CookieState::kWrong
                        ? "its magic cookie (" + std::string(kMagicCookieKey) +
                              ") has an unexpected value, so the host is not a wsstep host"
                        : "it was not started by a workflow host";
  return "This binary is the wsstep plugin, and " + why +
         ".\n"
         "Hosts start it through the go-plugin handshake (see docs/host-integration.md).\n"
         "To run it yourself:\n"
         "  wsstep serve          run the plugin server on a unix socket\n"
         "  wsstep --help         list the commands (cert, call, test-connection, demo)\n";
}

int RunServe(const Config& config, const HandshakeEnv& handshake, bool plugin_mode) {
  // Before anything can print or start a thread.
  const int handshake_fd = plugin_mode ? DivertStdout() : -1;
  if (plugin_mode && handshake_fd < 0) {
    Log().Error("cannot set up stdout for the handshake");
    return 1;
  }
  if (auto st = BlockStopSignals(); !st.ok()) {
    LogError("cannot start", st.error());
    return 1;
  }
  // The host that started us; if it is gone by the time the watcher starts, we stop.
  const pid_t parent_at_start = ::getppid();
  ::umask(077);  // sockets, the store, key files: private to this user
  Log().SetLevel(config.log_level);
  RouteGrpcLogging();

  ServerOptions options;
  options.facts.protected_environments = config.protected_environments;
  options.facts.limits = config.limits;
  options.facts.go_plugin = plugin_mode;
  options.facts.spin_wait = config.spin_wait;

  std::string socket_dir;  // ours to remove at exit (plugin mode)
  std::unique_ptr<SelfSignedCertificate> server_cert;
  if (plugin_mode) {
    bool compatible = true;
    const int version = NegotiateAppProtocol(handshake.protocol_versions, &compatible);
    if (!compatible) {
      Log().Warn("the host does not list our app protocol version; it will refuse us",
                 {{"ours", version}, {"host", handshake.protocol_versions}});
    }
    if (!handshake.client_cert_pem.empty()) {
      if (auto st = CheckPemCertificates(handshake.client_cert_pem, "PLUGIN_CLIENT_CERT");
          !st.ok()) {
        LogError("cannot configure AutoMTLS", st.error());
        return 1;
      }
      auto cert = GenerateSelfSignedCertificate(kAutoMtlsServerName, kAutoMtlsValidity);
      if (!cert.ok()) {
        LogError("cannot configure AutoMTLS", cert.error());
        return 1;
      }
      server_cert = std::make_unique<SelfSignedCertificate>(std::move(cert).value());
      options.credentials = AutoMtlsServerCredentials(*server_cert, handshake.client_cert_pem);
      options.facts.automtls = true;
    }
    if (!handshake.use_tcp) {
      // Directories of plugins that were killed (SIGKILL leaves them) go first.
      const std::vector<std::string> swept = SweepStaleSocketDirs(handshake.unix_socket_dir);
      if (!swept.empty()) {
        Log().Info("removed socket directories of plugins that are gone", {{"paths", swept}});
      }
      auto dir = MakePrivateTempDir(handshake.unix_socket_dir);
      if (!dir.ok()) {
        LogError("cannot create the socket directory", dir.error());
        return 1;
      }
      socket_dir = *dir;
      options.listen = ListenAddress::Unix(socket_dir + "/plugin.sock");
    }
  } else {
    auto addr = ParseListenAddress(config.listen);
    if (!addr.ok()) {
      LogError("cannot start", addr.error());
      return 1;
    }
    if (auto st = CheckListenPolicy(*addr, config.allow_remote); !st.ok()) {
      LogError("cannot start", st.error());
      return 1;
    }
    if (addr->kind == ListenAddress::Kind::kUnix) {
      if (auto st = PrepareUnixSocketPath(addr->path); !st.ok()) {
        LogError("cannot start", st.error());
        return 1;
      }
    } else if (!IsLoopbackHost(addr->host)) {
      Log().Warn("listening on a non-loopback address without TLS: anyone who can reach it "
                 "can run steps and manage certificates",
                 {{"listen", addr->Display()}});
    }
    options.listen = *addr;
  }

  auto wiring = BuildBackends(config);
  if (!wiring.ok()) {
    LogError("cannot open the plugin's components", wiring.error());
    if (!socket_dir.empty()) ::rmdir(socket_dir.c_str());
    return 1;
  }
  options.backends = wiring->backends;

  std::unique_ptr<MetricsEndpoint> metrics;
  if (wiring->metrics) {
    auto endpoint = ServeMetrics(config, wiring->metrics);
    if (!endpoint.ok()) {
      LogError("cannot serve metrics", endpoint.error());
      wiring->close();
      if (!socket_dir.empty()) ::rmdir(socket_dir.c_str());
      return 1;
    }
    metrics = std::move(endpoint).value();
  }

  StopSignal stop;
  options.on_shutdown_rpc = [&stop](std::string why) { stop.Request(std::move(why)); };

  auto server = plugin_mode && handshake.use_tcp ? StartOnLoopbackTcp(handshake, options)
                                                 : PluginServer::Start(options);
  if (!server.ok()) {
    LogError("cannot start the server", server.error());
    wiring->close();
    if (!socket_dir.empty()) ::rmdir(socket_dir.c_str());
    return 1;
  }
  const ListenAddress bound = (*server)->address();

  if (plugin_mode) {
    HandshakeLine line;
    line.network = bound.kind == ListenAddress::Kind::kUnix ? "unix" : "tcp";
    line.address = bound.kind == ListenAddress::Kind::kUnix ? bound.path : bound.GrpcUri();
    if (server_cert) line.server_cert_der = server_cert->cert_der;
    const bool written = WriteLine(handshake_fd, FormatHandshakeLine(line));
    ::close(handshake_fd);
    if (!written) {
      Log().Error("cannot write the handshake line: the host closed our stdout");
      stop.Request("handshake failed");
    }
  }

  auto watcher = ProcessWatcher::Start(
      &stop, WatchOptions{.watch_stdin = plugin_mode && handshake.watch_stdin,
                          .watch_parent = plugin_mode,
                          .parent_at_start = parent_at_start,
                          .ignore_sigint = plugin_mode});
  if (!watcher.ok()) {
    LogError("cannot watch for stop signals", watcher.error());
    stop.Request("no watcher");
  }

  LogFields started = {{"address", bound.Display()},
                       {"version", PluginVersion()},
                       {"mode", plugin_mode ? "go-plugin" : "standalone"},
                       {"automtls", options.facts.automtls}};
  if (watcher.ok()) {
    started["stops_on_stdin_eof"] = (*watcher)->watching_stdin();
    started["stops_with_parent"] = (*watcher)->watching_parent();
    if ((*watcher)->watching_parent()) started["parent_watch"] = (*watcher)->parent_watch();
  }
  if (!wiring->missing.empty()) started["not_wired"] = wiring->missing;
  if (metrics) started["metrics"] = metrics->url();
  Log().Info("serving", started);

  const std::string reason = stop.Wait();
  Log().Info("stopping", {{"reason", reason}, {"grace_ms", config.shutdown_grace.count()}});
  (*server)->Shutdown(config.shutdown_grace);
  metrics.reset();  // a last scrape may still have seen the drained steps
  wiring->close();
  if (bound.kind == ListenAddress::Kind::kUnix) {
    RemoveUnixSocket(bound.path, /*remove_dir=*/!socket_dir.empty());
  }
  Log().Info("stopped");
  return 0;
}


std::function<int(bool explicit_serve)> AddServeCommand(CLI::App& app, const std::string& config_file,
                                                        const std::string& data_dir) {
  struct ServeFlags {
    std::string listen, master_key_file, log_level, shutdown_grace, metrics_listen, store, proxy;
    std::vector<std::string> protected_envs, no_proxy;
    bool allow_remote = false, print_config = false, propagate_trace = false,
         proxy_from_env = false, http1_only = false;
    int max_in_flight = 0, max_per_origin = 0;
    int64_t max_message = 0, max_body = 0;
    CLI::Option *listen_opt, *remote_opt, *key_file_opt, *envs_opt, *in_flight_opt, *origin_opt,
        *message_opt,
        *body_opt, *grace_opt, *level_opt, *trace_opt, *metrics_opt, *store_opt, *proxy_opt,
        *no_proxy_opt, *proxy_env_opt, *http1_opt;
  };
  auto f = std::make_shared<ServeFlags>();
  auto* serve = app.add_subcommand("serve", "run the plugin server (go-plugin aware)");
  f->listen_opt = serve->add_option("--listen", f->listen, "unix:///path.sock or HOST:PORT");
  f->remote_opt =
      serve->add_flag("--allow-remote", f->allow_remote, "allow a non-loopback TCP address");
  f->key_file_opt = serve->add_option("--master-key-file", f->master_key_file, "master key file");
  f->envs_opt = serve->add_option("--protected-environments", f->protected_envs,
                                  "environments where verification may not be turned off")
                    ->delimiter(',');
  f->in_flight_opt =
      serve->add_option("--max-in-flight-steps", f->max_in_flight, "concurrent steps");
  f->origin_opt = serve->add_option("--max-in-flight-per-origin", f->max_per_origin,
                                    "concurrent steps to one origin (0: no cap)");
  f->message_opt = serve->add_option("--max-message-bytes", f->max_message, "gRPC message limit");
  f->body_opt = serve->add_option("--max-body-bytes", f->max_body, "step body limit");
  f->grace_opt = serve->add_option("--shutdown-grace", f->shutdown_grace, "drain time, e.g. 10s");
  f->level_opt = serve->add_option("--log-level", f->log_level, "debug, info, warn, error");
  f->trace_opt = serve->add_flag("--propagate-trace-context", f->propagate_trace,
                                 "send a child W3C traceparent on outbound requests");
  f->metrics_opt = serve->add_option("--metrics-listen", f->metrics_listen,
                                     "serve Prometheus metrics at http://HOST:PORT/metrics");
  f->store_opt = serve->add_option(
      "--store", f->store,
      "PostgreSQL connection string for the store (default: SQLite in the data directory)");
  f->proxy_opt = serve->add_option("--proxy", f->proxy,
                                   "HTTP proxy for steps, http://HOST:PORT (\"\": none)");
  f->no_proxy_opt = serve->add_option("--no-proxy", f->no_proxy,
                                      "hosts reached without the proxy (comma-separated)")
                        ->delimiter(',');
  f->proxy_env_opt = serve->add_flag("--proxy-from-environment", f->proxy_from_env,
                                     "take the proxy from https_proxy / no_proxy");
  f->http1_opt = serve->add_flag("--http1.1", f->http1_only,
                                 "HTTP/1.1 only: do not offer h2 to origins");
  serve->add_flag("--print-config", f->print_config,
                  "print the effective configuration and exit");

  return [f, &config_file, &data_dir](bool explicit_serve) -> int {
    const EnvLookup env = ProcessEnvironment();
    const HandshakeEnv handshake = ReadHandshakeEnv(env);
    if (handshake.cookie == CookieState::kWrong ||
        (!explicit_serve && handshake.cookie != CookieState::kMatches)) {
      std::cerr << NotLaunchedByHostMessage(handshake.cookie);
      return 1;
    }
    ConfigLayer flags;
    if (!config_file.empty()) flags.config_file = config_file;
    if (!data_dir.empty()) flags.data_dir = data_dir;
    if (f->listen_opt->count()) flags.listen = f->listen;
    if (f->remote_opt->count()) flags.allow_remote = f->allow_remote;
    if (f->key_file_opt->count()) flags.master_key_file = f->master_key_file;
    if (f->envs_opt->count()) flags.protected_environments = f->protected_envs;
    if (f->in_flight_opt->count()) flags.max_in_flight_steps = f->max_in_flight;
    if (f->origin_opt->count()) flags.max_in_flight_per_origin = f->max_per_origin;
    if (f->message_opt->count()) flags.max_message_bytes = f->max_message;
    if (f->body_opt->count()) flags.max_body_bytes = f->max_body;
    if (f->level_opt->count()) flags.log_level = f->log_level;
    if (f->trace_opt->count()) flags.propagate_trace_context = f->propagate_trace;
    if (f->metrics_opt->count()) flags.metrics_listen = f->metrics_listen;
    if (f->store_opt->count()) flags.store = f->store;
    if (f->proxy_opt->count()) flags.proxy_url = f->proxy;
    if (f->no_proxy_opt->count()) flags.no_proxy = f->no_proxy;
    if (f->proxy_env_opt->count()) flags.proxy_from_environment = f->proxy_from_env;
    if (f->http1_opt->count()) flags.offer_http2 = !f->http1_only;
    if (f->grace_opt->count()) {
      auto grace = ParseDuration(f->shutdown_grace, "--shutdown-grace");
      if (!grace.ok()) {
        std::cerr << "wsstep: " << grace.error().message << "\n";
        return kExitUsage;
      }
      flags.shutdown_grace = *grace;
    }
    auto config = LoadConfig(flags, env);
    if (!config.ok()) {
      std::cerr << "wsstep: " << config.error().message << "\n";
      if (!config.error().hint.empty()) std::cerr << "  " << config.error().hint << "\n";
      return kExitUsage;
    }
    if (f->print_config) {
      std::cout << config->Describe().dump(2) << std::endl;
      return kExitOk;
    }
    return RunServe(*config, handshake, handshake.cookie == CookieState::kMatches);
  };
}

}  // namespace wsstep::plugin

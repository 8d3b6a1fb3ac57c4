// What every `wsstep` client command shares: the global flags, the TLS and transport
// flags of step-running commands, the connection to a running plugin, and the printing
// of results, step errors and warnings in text or `--json`.
//
//   Client client(global);
//   v1::GetCertificateResponse resp;
//   if (auto rc = client.Call("GetCertificate", &v1::CertificateService::Stub::GetCertificate,
//                             req, &resp)) return *rc;   // already reported
//   return PrintResult(client.options(), resp, [&] { PrintCertificate(resp.certificate()); });
//
// Each command group registers itself on the command line (cert_commands.h,
// call_commands.h, serve_command.h); cli.cc only assembles them.
#ifndef WSSTEP_PLUGIN_CLI_COMMAND_H_
#define WSSTEP_PLUGIN_CLI_COMMAND_H_

#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/secret.h"
#include "plugin/cli/client.h"
#include "plugin/process/config.h"
#include "wsstep/v1/certificate_service.grpc.pb.h"
#include "wsstep/v1/step_plugin_service.grpc.pb.h"

namespace wsstep::plugin {

// ------------------------------------------------------------------------------------
// Flags shared by client commands
// ------------------------------------------------------------------------------------

struct GlobalFlags {
  std::string config_file;
  std::string data_dir;
  std::string plugin;
  std::string address;
  bool json = false;
  double timeout_seconds = 30;
  std::string actor;
  std::string step_id;
  std::string workflow_id;
};

struct TlsFlags {
  bool no_ssl_verification = false;
  std::string certificate;
  std::string environment;
  bool insecure = false;
  std::string server_name;
  std::string min_tls;
  std::string pin;
  bool private_trust_only = false;

  void Add(CLI::App* cmd) {
    cmd->add_flag("--no-ssl-verification", no_ssl_verification,
                  "do not use the certificate store (no client certificate, system CAs only)");
    cmd->add_option("--certificate", certificate, "use this stored certificate (name or id)");
    cmd->add_option("--environment,-e", environment, "environment for certificate resolution");
    cmd->add_flag("--insecure,-k", insecure,
                  "turn off server verification (refused in protected environments)");
    cmd->add_option("--tls-server-name", server_name, "SNI and verification name");
    cmd->add_option("--min-tls", min_tls, "minimum TLS version")
        ->check(CLI::IsMember({"1.2", "1.3"}));
    cmd->add_option("--pin", pin, "sha256//BASE64 public key pin(s), ';'-separated");
    cmd->add_flag("--private-trust-only", private_trust_only,
                  "trust only bound trust stores, not the system CAs");
  }
  void Fill(v1::TlsOptions* tls) const {
    tls->set_ssl_verification(!no_ssl_verification);
    tls->set_certificate(certificate);
    tls->set_environment(environment);
    if (insecure) {
      tls->mutable_verify_peer()->set_value(false);
      tls->mutable_verify_host()->set_value(false);
    }
    tls->set_tls_server_name(server_name);
    if (min_tls == "1.2") tls->set_min_tls_version(v1::TLS_VERSION_1_2);
    if (min_tls == "1.3") tls->set_min_tls_version(v1::TLS_VERSION_1_3);
    tls->set_pinned_public_key(pin);
    tls->set_private_trust_only(private_trust_only);
  }
};

// A step's route (ProxySettings): `call rest`, `call soap` and `test-connection` take it.
struct ProxyFlags {
  std::string url, user, password_env, credential;
  std::vector<std::string> no_proxy;
  bool direct = false;

  void Add(CLI::App* cmd) {
    cmd->add_option("--proxy", url, "HTTP proxy, http://HOST:PORT (a CONNECT tunnel)");
    cmd->add_option("--proxy-user", user, "proxy user name (basic)");
    cmd->add_option("--proxy-password-env", password_env, "the proxy password, from this variable");
    cmd->add_option("--proxy-credential", credential,
                    "the proxy user and password from the store (proxy-credential set)");
    cmd->add_option("--no-proxy", no_proxy, "hosts reached without a proxy (comma-separated)")
        ->delimiter(',');
    cmd->add_flag("--direct", direct, "no proxy, whatever the plugin's configuration says");
  }

  Status Fill(v1::ProxySettings* out) const {
    out->set_url(url);
    out->set_username(user);
    out->set_credential(credential);
    if (!password_env.empty()) {
      const char* v = std::getenv(password_env.c_str());
      if (v == nullptr) {
        return Error(Code::kInvalidArgument,
                     "--proxy-password-env: environment variable " + password_env + " is not set",
                     "", Side::kConfiguration);
      }
      out->set_password(v);
    }
    for (const auto& host : no_proxy) out->add_no_proxy(host);
    out->set_direct(direct);
    return {};
  }
};

struct TransportFlags {
  double connect_timeout = 0;
  double total_timeout = 0;
  bool follow = false;
  int max_redirects = 0;
  int64_t max_response_bytes = 0;
  std::vector<std::string> headers;
  std::string bearer_env;
  std::string basic_user;
  std::string basic_password_env;
  std::string api_key_header;
  std::string api_key_env;
  ProxyFlags proxy;
  int retries = 0;
  bool retry_idempotent = false;
  bool http1 = false, http2 = false;

  void Add(CLI::App* cmd) {
    cmd->add_option("--connect-timeout", connect_timeout, "seconds to connect and handshake");
    cmd->add_option("--max-time", total_timeout, "seconds for the whole step");
    cmd->add_flag("--follow,-L", follow, "follow redirects");
    cmd->add_option("--max-redirects", max_redirects, "redirect hops at most");
    cmd->add_option("--max-response-bytes", max_response_bytes, "largest response accepted");
    cmd->add_option("--header,-H", headers, "request header 'Name: value' (repeatable)");
    cmd->add_option("--bearer-token-env", bearer_env, "bearer token from this variable");
    cmd->add_option("--basic-user", basic_user, "HTTP Basic user name");
    cmd->add_option("--basic-password-env", basic_password_env,
                    "HTTP Basic password from this variable");
    cmd->add_option("--api-key-header", api_key_header, "send an API key in this header");
    cmd->add_option("--api-key-env", api_key_env, "the API key, from this variable");
    proxy.Add(cmd);
    cmd->add_option("--retries", retries, "attempts in all on transient failures (1: none)");
    cmd->add_flag("--retry-idempotent", retry_idempotent,
                  "the request may be repeated whatever its method");
    cmd->add_flag("--http1.1", http1, "HTTP/1.1 only (no h2 in ALPN)");
    cmd->add_flag("--http2", http2, "offer h2 by ALPN, whatever the plugin's setting");
  }

  // The step's proxy settings and retry policy (RestStep and SoapStep fields 60, 61).
  Status FillNetwork(v1::ProxySettings* out_proxy, v1::RetryPolicy* retry) const {
    WSSTEP_RETURN_IF_ERROR(proxy.Fill(out_proxy));
    retry->set_max_attempts(retries);
    retry->set_idempotent(retry_idempotent);
    return {};
  }

  static void SetDuration(double seconds, google::protobuf::Duration* d) {
    d->set_seconds(static_cast<int64_t>(seconds));
    d->set_nanos(static_cast<int32_t>((seconds - static_cast<double>(d->seconds())) * 1e9));
  }

  Status Fill(google::protobuf::RepeatedPtrField<v1::Header>* out_headers, v1::HttpAuth* auth,
              v1::Timeouts* timeouts, v1::RedirectPolicy* redirects, int64_t* max_response) const {
    for (const auto& h : headers) {
      const size_t colon = h.find(':');
      if (colon == std::string::npos || colon == 0) {
        return Error(Code::kInvalidArgument, "--header '" + h + "': expected 'Name: value'", "",
                     Side::kConfiguration);
      }
      auto* hd = out_headers->Add();
      hd->set_name(h.substr(0, colon));
      std::string value = h.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      hd->set_value(value);
    }
    auto env = [](const std::string& name, std::string_view flag) -> Result<std::string> {
      const char* v = std::getenv(name.c_str());
      if (v == nullptr) {
        return Error(Code::kInvalidArgument,
                     std::string(flag) + ": environment variable " + name + " is not set", "",
                     Side::kConfiguration);
      }
      return std::string(v);
    };
    if (!bearer_env.empty()) {
      WSSTEP_ASSIGN_OR_RETURN(std::string token, env(bearer_env, "--bearer-token-env"));
      auth->mutable_bearer()->set_token(token);
    } else if (!basic_user.empty()) {
      auth->mutable_basic()->set_username(basic_user);
      if (!basic_password_env.empty()) {
        WSSTEP_ASSIGN_OR_RETURN(std::string pw, env(basic_password_env, "--basic-password-env"));
        auth->mutable_basic()->set_password(pw);
      }
    } else if (!api_key_header.empty()) {
      auth->mutable_api_key()->set_name(api_key_header);
      auth->mutable_api_key()->set_location(v1::ApiKeyAuth::LOCATION_HEADER);
      if (!api_key_env.empty()) {
        WSSTEP_ASSIGN_OR_RETURN(std::string key, env(api_key_env, "--api-key-env"));
        auth->mutable_api_key()->set_value(key);
      }
    }
    if (connect_timeout > 0) SetDuration(connect_timeout, timeouts->mutable_connect());
    if (total_timeout > 0) SetDuration(total_timeout, timeouts->mutable_total());
    redirects->set_follow(follow);
    redirects->set_max_redirects(max_redirects);
    *max_response = max_response_bytes;
    return {};
  }
};

// The transport and TLS options every step kind shares.
template <typename Step>
Status FillTransport(const TlsFlags& tls, const TransportFlags& transport, Step* step,
                     google::protobuf::RepeatedPtrField<v1::Header>* headers) {
  tls.Fill(step->mutable_tls());
  int64_t max_response = 0;
  WSSTEP_RETURN_IF_ERROR(transport.Fill(headers, step->mutable_auth(), step->mutable_timeouts(),
                                        step->mutable_redirects(), &max_response));
  step->set_max_response_bytes(max_response);
  if (transport.http1) step->set_http_version(v1::HTTP_VERSION_1_1);
  if (transport.http2) step->set_http_version(v1::HTTP_VERSION_2);
  return transport.FillNetwork(step->mutable_proxy(), step->mutable_retry());
}

// The command line being assembled: the global flags, and the command that was parsed.
// A group's callback sets `run`; RunCli calls it after parsing.
struct CommandLine {
  GlobalFlags global;
  std::function<int()> run;
};

// ------------------------------------------------------------------------------------
// Input and output helpers
// ------------------------------------------------------------------------------------

// Whether failures print as JSON (--json). RunCli sets it once the command line is
// parsed, so that usage errors found before any call take the same shape.
void SetJsonOutput(bool json);
// A usage error (code INVALID_ARGUMENT, side CONFIGURATION) in the one failure shape of
// client.h; returns kExitUsage.
int UsageError(const std::string& message, const std::string& hint = "");

// The bytes of a file; an error naming it when it cannot be read.
Result<std::string> ReadWholeFile(const std::string& path);

// A secret from exactly one of: a file (one trailing newline dropped), an environment
// variable, or stdin (without echo on a terminal). Never from the command line, where
// every user of the machine could read it in the process list. `what` names the input
// in errors; nullopt when no source was given.
Result<std::optional<SecretBytes>> ReadSecret(const std::string& file, const std::string& env,
                                              bool from_stdin, std::string_view what);

// A binding as the command line writes it: "host", "host:port", "host@env",
// "host:port@env", "[v6]:port".
Result<v1::Binding> ParseBinding(const std::string& text);
// "host[:port]" without an environment; false when it is not that.
bool SplitHostPort(const std::string& text, std::string* host, uint32_t* port);

std::string FormatTime(const google::protobuf::Timestamp& t);
// `full` without `prefix` ("CERTIFICATE_TYPE_PKCS12" -> "PKCS12").
std::string EnumName(const std::string& full, std::string_view prefix);

template <typename Printer>
int PrintResult(const ClientOptions& o, const google::protobuf::Message& m, Printer human) {
  if (o.json) {
    std::cout << ToJson(m) << std::endl;
  } else {
    human();
  }
  return kExitOk;
}

// Prints a failed step's StepError in the one failure shape (with --json: `result`, the
// step's response, with "error" beside its fields) and returns kExitStepFailed.
int ReportStepError(const ClientOptions& o, const v1::StepError& e,
                    const google::protobuf::Message& result);
// Prints each warning on stderr.
void PrintWarnings(const google::protobuf::RepeatedPtrField<v1::Diagnostic>& warnings);

// ------------------------------------------------------------------------------------
// Talking to the plugin
// ------------------------------------------------------------------------------------

class Client {
 public:
  Client(const GlobalFlags& g) : g_(g) {}

  // Resolves the target, connects; on failure prints and returns the exit code.
  std::optional<int> Connect() {
    if (channel_) return std::nullopt;
    ConfigLayer flags;
    if (!g_.config_file.empty()) flags.config_file = g_.config_file;
    if (!g_.data_dir.empty()) flags.data_dir = g_.data_dir;
    auto config = LoadConfig(flags, ProcessEnvironment());
    if (!config.ok()) return UsageError(config.error().message);
    options_.target = ResolveTarget(g_.plugin, g_.address, config->listen);
    options_.timeout = std::chrono::milliseconds(static_cast<int64_t>(g_.timeout_seconds * 1000));
    options_.actor = g_.actor;
    options_.step_id = g_.step_id;
    options_.workflow_id = g_.workflow_id;
    options_.json = g_.json;
    options_.max_message_bytes = config->limits.max_message_bytes;
    auto channel = ConnectToPlugin(options_);
    if (!channel.ok()) {
      CliFailure failure;
      failure.error = channel.error();
      failure.error.With("code", "UNAVAILABLE");
      return ReportFailure(g_.json, failure, kExitUnreachable);
    }
    channel_ = *channel;
    return std::nullopt;
  }

  const ClientOptions& options() const { return options_; }
  // The step service, for calls other than unary ones (ExecuteSteps). Connect() first.
  v1::StepPluginService::Stub& steps() { return StubFor<v1::StepPluginService::Stub>(); }

  // Connects (once), calls `method` with deadline and identity metadata, and on failure
  // reports it; returns the exit code to stop with, or nullopt on success.
  template <typename Stub, typename Request, typename Response>
  std::optional<int> Call(std::string_view name,
                          grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                                       Response*),
                          const Request& request, Response* response) {
    if (auto rc = Connect()) return rc;
    grpc::ClientContext ctx;
    PrepareContext(options_, &ctx);
    const grpc::Status s = (StubFor<Stub>().*method)(&ctx, request, response);
    if (!s.ok()) return ReportRpcError(options_, name, s);
    return std::nullopt;
  }
  // Call without reporting a failed status: the caller looks at it first (and reports it
  // with ReportRpcError when it does not handle it). A connection failure is reported and
  // its exit code returned in `rc`.
  template <typename Stub, typename Request, typename Response>
  grpc::Status CallQuietly(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                                        Response*),
                           const Request& request, Response* response, std::optional<int>* rc) {
    if ((*rc = Connect())) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "not connected");
    grpc::ClientContext ctx;
    PrepareContext(options_, &ctx);
    return (StubFor<Stub>().*method)(&ctx, request, response);
  }

 private:
  const GlobalFlags& g_;
  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::CertificateService::Stub> certs_;
  std::unique_ptr<v1::StepPluginService::Stub> steps_;

  template <typename Stub>
  Stub& StubFor() {
    if constexpr (std::is_same_v<Stub, v1::CertificateService::Stub>) {
      if (!certs_) certs_ = v1::CertificateService::NewStub(channel_);
      return *certs_;
    } else {
      if (!steps_) steps_ = v1::StepPluginService::NewStub(channel_);
      return *steps_;
    }
  }
};

// Makes `command`, when it is the one parsed, run `fn(client)` with a Client of the
// global flags: AddClientCommand(import, line, [f](Client& c) { return CertImport(c, *f); });
template <typename Fn>
void AddClientCommand(CLI::App* command, CommandLine& line, Fn fn) {
  command->callback([&line, fn] {
    line.run = [&line, fn] {
      Client client(line.global);
      return fn(client);
    };
  });
}

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_CLI_COMMAND_H_

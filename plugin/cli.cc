#include "plugin/cli.h"

#include <grpcpp/client_context.h>
#include <grpcpp/grpcpp.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>

#include "grpc/health/v1/health.grpc.pb.h"
#include "plugin/client.h"
#include "plugin/config.h"
#include "plugin/demo.h"
#include "plugin/handshake.h"
#include "plugin/host_launcher.h"
#include "plugin/serve.h"
#include "plugin/status_map.h"
#include "wsstep/v1/certificate_service.grpc.pb.h"
#include "wsstep/v1/step_plugin_service.grpc.pb.h"

namespace wsstep::plugin {
namespace {

// ------------------------------------------------------------------------------------
// Small helpers
// ------------------------------------------------------------------------------------

int UsageError(const std::string& message) {
  std::cerr << "wsstep: " << message << "\n";
  return kExitUsage;
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

// A secret from exactly one of: a file (one trailing newline dropped), an environment
// variable, or stdin (without echo on a terminal). Never from the command line, where
// every user of the machine could read it in the process list.
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

// "host", "host:port", "host@env", "host:port@env", "[v6]:port".
Result<v1::Binding> ParseBinding(const std::string& text) {
  v1::Binding b;
  std::string rest = text;
  if (const size_t at = rest.rfind('@'); at != std::string::npos) {
    b.set_environment(rest.substr(at + 1));
    rest = rest.substr(0, at);
  }
  std::string host = rest;
  std::string port;
  if (rest.starts_with("[")) {
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
  b.set_host(host);
  if (!port.empty()) {
    char* end = nullptr;
    const long p = std::strtol(port.c_str(), &end, 10);
    if (end == port.c_str() || *end != '\0' || p < 1 || p > 65535) {
      return Error(Code::kInvalidArgument, "binding '" + text + "': port '" + port + "' is not 1-65535",
                   "", Side::kConfiguration);
    }
    b.set_port(static_cast<uint32_t>(p));
  }
  return b;
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

std::string BindingText(const v1::Binding& b) {
  std::string s = b.host() + ":" + std::to_string(b.port() == 0 ? 443 : b.port());
  s += "@" + (b.environment().empty() ? std::string("default") : b.environment());
  return s;
}

void PrintCertificate(const v1::Certificate& c) {
  std::cout << "name:          " << c.name() << "\n"
            << "id:            " << c.id() << "\n"
            << "type:          " << EnumName(v1::CertificateType_Name(c.type()), "CERTIFICATE_TYPE_")
            << "\n"
            << "status:        "
            << EnumName(v1::CertificateStatus_Name(c.status()), "CERTIFICATE_STATUS_") << "\n";
  if (c.has_certificate()) {
    const auto& i = c.certificate();
    std::cout << "subject:       " << i.subject() << "\n"
              << "issuer:        " << i.issuer() << "\n"
              << "expires:       " << FormatTime(i.not_after()) << " (" << c.days_remaining()
              << " days)\n"
              << "key:           " << i.key_algorithm() << " " << i.key_bits()
              << (i.curve().empty() ? "" : " " + i.curve()) << "\n"
              << "fingerprint:   " << i.sha256_fingerprint() << "\n";
  }
  for (const auto& t : c.trusted()) std::cout << "trusts:        " << t.subject() << "\n";
  for (const auto& b : c.bindings()) std::cout << "bound to:      " << BindingText(b) << "\n";
  std::cout << "private key:   " << (c.has_private_key() ? "yes" : "no") << "\n"
            << "uses:          " << c.use_count() << "\n";
}

// The `--json` or human output of a successful call.
template <typename Printer>
int PrintResult(const ClientOptions& o, const google::protobuf::Message& m, Printer human) {
  if (o.json) {
    std::cout << ToJson(m) << std::endl;
  } else {
    human();
  }
  return kExitOk;
}

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
    cmd->add_option("--min-tls", min_tls, "minimum TLS version")->check(CLI::IsMember({"1.2", "1.3"}));
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
  }

  static void SetDuration(double seconds, google::protobuf::Duration* d) {
    d->set_seconds(static_cast<int64_t>(seconds));
    d->set_nanos(static_cast<int32_t>((seconds - static_cast<double>(d->seconds())) * 1e9));
  }

  Status Fill(google::protobuf::RepeatedPtrField<v1::Header>* out_headers, v1::HttpAuth* auth,
              v1::Timeouts* timeouts, v1::RedirectPolicy* redirects,
              int64_t* max_response) const {
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
  return {};
}

// ------------------------------------------------------------------------------------
// Client command runner
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
    auto channel = ConnectToPlugin(options_);
    if (!channel.ok()) {
      if (g_.json) {
        nlohmann::ordered_json j;
        j["error"] = {{"status", "UNAVAILABLE"}, {"message", channel.error().message}};
        std::cout << j.dump(2) << std::endl;
      } else {
        std::cerr << "wsstep: " << channel.error().message << "\n  " << channel.error().hint
                  << "\n";
      }
      return kExitUnreachable;
    }
    channel_ = *channel;
    return std::nullopt;
  }

  const ClientOptions& options() const { return options_; }

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

// Prints a StepError and returns kExitStepFailed.
int ReportStepError(const ClientOptions& o, const v1::StepError& e) {
  if (!o.json) {
    std::cerr << "wsstep: " << e.code() << ": " << e.message() << "\n";
    if (!e.hint().empty()) std::cerr << "  hint: " << e.hint() << "\n";
    for (const auto& [k, v] : e.detail()) std::cerr << "  " << k << ": " << v << "\n";
  }
  return kExitStepFailed;
}

void PrintWarnings(const google::protobuf::RepeatedPtrField<v1::Diagnostic>& warnings) {
  for (const auto& w : warnings) {
    std::cerr << "warning: " << w.code() << ": " << w.summary() << "\n";
  }
}

// ------------------------------------------------------------------------------------
// cert ...
// ------------------------------------------------------------------------------------

struct ImportFlags {
  std::string name, type, file, key_file, format, description, alias, alert_ref;
  std::string password_file, password_env, key_password_file, key_password_env;
  bool password_stdin = false, private_trust_only = false, disabled = false;
  bool no_notifications = false, weekly = false;
  int warning_days = 0;
  std::vector<std::string> bindings;
};

std::optional<v1::CertificateType> TypeFromFlag(const std::string& type, const std::string& file,
                                                bool has_key_file) {
  static const std::map<std::string, v1::CertificateType> kTypes = {
      {"key-pair", v1::CERTIFICATE_TYPE_KEY_PAIR},
      {"pkcs12", v1::CERTIFICATE_TYPE_PKCS12},
      {"trust-store", v1::CERTIFICATE_TYPE_TRUST_STORE},
      {"java-keystore", v1::CERTIFICATE_TYPE_JAVA_KEYSTORE},
      {"mobile-provisioning", v1::CERTIFICATE_TYPE_MOBILE_PROVISIONING}};
  if (!type.empty()) {
    auto it = kTypes.find(type);
    if (it == kTypes.end()) return std::nullopt;
    return it->second;
  }
  auto ends = [&](std::string_view s) { return file.ends_with(s); };
  if (ends(".p12") || ends(".pfx")) return v1::CERTIFICATE_TYPE_PKCS12;
  if (ends(".jks") || ends(".jceks")) return v1::CERTIFICATE_TYPE_JAVA_KEYSTORE;
  if (ends(".mobileprovision")) return v1::CERTIFICATE_TYPE_MOBILE_PROVISIONING;
  if (has_key_file) return v1::CERTIFICATE_TYPE_KEY_PAIR;
  return std::nullopt;
}

std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

int CertImport(Client& client, const ImportFlags& f) {
  auto type = TypeFromFlag(f.type, f.file, !f.key_file.empty());
  if (!type) {
    return UsageError("cert import: give --type (key-pair, pkcs12, trust-store, java-keystore, "
                      "mobile-provisioning); it cannot be guessed from '" + f.file + "'");
  }
  v1::CreateCertificateRequest req;
  auto* c = req.mutable_certificate();
  c->set_name(f.name);
  c->set_description(f.description);
  c->set_type(*type);
  c->set_private_trust_only(f.private_trust_only);
  c->set_disabled(f.disabled);
  for (const auto& b : f.bindings) {
    auto binding = ParseBinding(b);
    if (!binding.ok()) return UsageError(binding.error().message);
    *c->add_bindings() = *binding;
  }
  auto* n = c->mutable_notifications();
  n->set_enabled(!f.no_notifications);
  n->set_warning_days(f.warning_days);
  n->set_frequency(f.weekly ? v1::NOTIFICATION_FREQUENCY_WEEKLY : v1::NOTIFICATION_FREQUENCY_DAILY);
  n->set_alert_ref(f.alert_ref);

  auto* m = req.mutable_material();
  auto content = ReadWholeFile(f.file);
  if (!content.ok()) return UsageError(content.error().message);
  m->set_content(*content);
  m->set_content_name(BaseName(f.file));
  if (!f.key_file.empty()) {
    auto key = ReadWholeFile(f.key_file);
    if (!key.ok()) return UsageError(key.error().message);
    m->set_private_key(*key);
    m->set_private_key_name(BaseName(f.key_file));
  }
  if (!f.format.empty()) {
    v1::SourceFormat fmt;
    std::string upper = "SOURCE_FORMAT_";
    for (char ch : f.format) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    if (upper == "SOURCE_FORMAT_MOBILEPROVISION") upper = "SOURCE_FORMAT_MOBILE_PROVISION";
    if (!v1::SourceFormat_Parse(upper, &fmt)) return UsageError("--format '" + f.format + "' is unknown");
    m->set_format(fmt);
  }
  auto password = ReadSecret(f.password_file, f.password_env, f.password_stdin, "password");
  if (!password.ok()) return UsageError(password.error().message);
  if (*password) m->mutable_password()->set_value(std::string((*password)->view()));
  auto key_password = ReadSecret(f.key_password_file, f.key_password_env, false, "key password");
  if (!key_password.ok()) return UsageError(key_password.error().message);
  if (*key_password) m->mutable_key_password()->set_value(std::string((*key_password)->view()));
  m->set_alias(f.alias);

  v1::CreateCertificateResponse resp;
  const auto rc = client.Call("CreateCertificate", &v1::CertificateService::Stub::CreateCertificate,
                              req, &resp);
  // The request held the upload and passwords: clear them now.
  req.mutable_material()->Clear();
  if (rc) return *rc;
  return PrintResult(client.options(), resp, [&] {
    PrintWarnings(resp.warnings());
    std::cout << "imported:\n";
    PrintCertificate(resp.certificate());
  });
}

struct ListFlags {
  std::string host, environment, status, type, name_contains;
  uint32_t port = 0;
  int page_size = 0;
  bool all = false;
};

int CertList(Client& client, const ListFlags& f) {
  v1::ListCertificatesRequest req;
  req.set_host(f.host);
  req.set_port(f.port);
  req.set_environment(f.environment);
  req.set_name_contains(f.name_contains);
  req.set_page_size(f.page_size);
  if (!f.status.empty()) {
    v1::CertificateStatus st;
    if (!v1::CertificateStatus_Parse("CERTIFICATE_STATUS_" + f.status, &st)) {
      return UsageError("--status '" + f.status + "' is unknown (VALID, EXPIRING_SOON, EXPIRED, ...)");
    }
    req.set_status(st);
  }
  if (!f.type.empty()) {
    auto t = TypeFromFlag(f.type, "", false);
    if (!t) return UsageError("--type '" + f.type + "' is unknown");
    req.set_type(*t);
  }
  v1::ListCertificatesResponse all;
  for (;;) {
    v1::ListCertificatesResponse page;
    if (auto rc = client.Call("ListCertificates", &v1::CertificateService::Stub::ListCertificates,
                              req, &page)) {
      return *rc;
    }
    for (auto& c : *page.mutable_certificates()) *all.add_certificates() = std::move(c);
    all.set_total_size(page.total_size());
    all.set_next_page_token(page.next_page_token());
    if (!f.all || page.next_page_token().empty()) break;
    req.set_page_token(page.next_page_token());
  }
  return PrintResult(client.options(), all, [&] {
    std::printf("%-28s %-20s %-16s %-21s %s\n", "NAME", "TYPE", "STATUS", "EXPIRES", "BINDINGS");
    for (const auto& c : all.certificates()) {
      std::string bindings;
      for (const auto& b : c.bindings()) bindings += (bindings.empty() ? "" : ",") + BindingText(b);
      std::printf("%-28s %-20s %-16s %-21s %s\n", c.name().c_str(),
                  EnumName(v1::CertificateType_Name(c.type()), "CERTIFICATE_TYPE_").c_str(),
                  EnumName(v1::CertificateStatus_Name(c.status()), "CERTIFICATE_STATUS_").c_str(),
                  FormatTime(c.certificate().not_after()).c_str(), bindings.c_str());
    }
    if (!all.next_page_token().empty()) {
      std::printf("(%d in all; --all lists every page)\n", all.total_size());
    }
  });
}

int CertShow(Client& client, const std::string& which, bool by_id) {
  v1::GetCertificateRequest req;
  by_id ? req.set_id(which) : req.set_name(which);
  v1::GetCertificateResponse resp;
  if (auto rc = client.Call("GetCertificate", &v1::CertificateService::Stub::GetCertificate, req, &resp)) return *rc;
  return PrintResult(client.options(), resp, [&] { PrintCertificate(resp.certificate()); });
}

int CertDelete(Client& client, const std::string& which, bool by_id, bool yes) {
  if (!yes) {
    return UsageError("cert delete: deleting '" + which +
                      "' is irreversible (its key is destroyed); add --yes to confirm");
  }
  v1::DeleteCertificateRequest req;
  by_id ? req.set_id(which) : req.set_name(which);
  v1::DeleteCertificateResponse resp;
  if (auto rc = client.Call("DeleteCertificate", &v1::CertificateService::Stub::DeleteCertificate, req, &resp)) return *rc;
  return PrintResult(client.options(), resp,
                     [&] { std::cout << "deleted " << resp.certificate().name() << "\n"; });
}

// "host", "host:port".
bool SplitHostPort(const std::string& text, std::string* host, uint32_t* port) {
  auto b = ParseBinding(text);
  if (!b.ok() || !b->environment().empty()) return false;
  *host = b->host();
  *port = b->port();
  return true;
}

int CertResolve(Client& client, const std::string& target, const std::string& environment,
                const std::string& certificate) {
  v1::ResolveCertificateRequest req;
  std::string host;
  uint32_t port = 0;
  if (!SplitHostPort(target, &host, &port)) return UsageError("expected HOST[:PORT], got '" + target + "'");
  req.set_host(host);
  req.set_port(port);
  req.set_environment(environment);
  req.set_certificate(certificate);
  v1::ResolveCertificateResponse resp;
  if (auto rc = client.Call("ResolveCertificate", &v1::CertificateService::Stub::ResolveCertificate, req, &resp)) return *rc;
  PrintResult(client.options(), resp, [&] {
    if (resp.has_chosen()) std::cout << "chosen: " << resp.chosen().name() << "\n";
    for (const auto& r : resp.rejected()) {
      std::cout << "rejected: " << r.certificate().name() << ": " << r.reason() << "\n";
    }
    for (const auto& t : resp.trust()) std::cout << "trust: " << t.name() << "\n";
    if (!resp.explanation().empty()) std::cout << resp.explanation() << "\n";
  });
  return resp.has_error() ? ReportStepError(client.options(), resp.error()) : kExitOk;
}

// ------------------------------------------------------------------------------------
// call rest | call soap | test-connection
// ------------------------------------------------------------------------------------

struct RestFlags {
  std::string method = "GET", url, data, data_file, content_type, output;
  std::vector<std::string> query;
  bool fail = false;
  TlsFlags tls;
  TransportFlags transport;
};

int PrintOutcome(const ClientOptions& o, const google::protobuf::Message& response,
                 const v1::StepOutcome& outcome, bool fail, const std::string& output) {
  if (o.json) std::cout << ToJson(response) << std::endl;
  if (!o.json) PrintWarnings(outcome.warnings());
  switch (outcome.result_case()) {
    case v1::StepOutcome::kError:
      return ReportStepError(o, outcome.error());
    case v1::StepOutcome::kHttp: {
      const auto& h = outcome.http();
      if (!o.json) {
        std::cerr << "HTTP " << h.status() << (h.application_refused()
                                                   ? " (TLS succeeded; the application refused)"
                                                   : "")
                  << "\n";
        if (output.empty()) {
          std::cout << h.body();
          std::cout.flush();
        } else {
          std::ofstream(output, std::ios::binary) << h.body();
        }
      }
      return fail && h.status() >= 400 ? kExitStepFailed : kExitOk;
    }
    case v1::StepOutcome::kSoap: {
      const auto& s = outcome.soap();
      if (!o.json) {
        if (s.has_fault()) {
          std::cerr << "SOAP Fault " << s.fault().code() << ": " << s.fault().reason() << "\n";
          std::cout << s.fault().detail_xml() << "\n";
        } else {
          std::cout << s.body_xml() << "\n";
        }
      }
      return fail && s.has_fault() ? kExitStepFailed : kExitOk;
    }
    default:
      return kExitOk;
  }
}

int CallRest(Client& client, const RestFlags& f) {
  v1::ExecuteRestStepRequest req;
  auto* step = req.mutable_step();
  step->set_method(f.method);
  step->set_url(f.url);
  for (const auto& q : f.query) {
    const size_t eq = q.find('=');
    auto* p = step->add_query();
    p->set_name(q.substr(0, eq));
    if (eq != std::string::npos) p->set_value(q.substr(eq + 1));
  }
  if (!f.data_file.empty()) {
    auto body = ReadWholeFile(f.data_file);
    if (!body.ok()) return UsageError(body.error().message);
    step->set_body(*body);
  } else {
    step->set_body(f.data);
  }
  step->set_content_type(f.content_type);
  if (auto st = FillTransport(f.tls, f.transport, step, step->mutable_headers()); !st.ok()) {
    return UsageError(st.error().message);
  }
  v1::ExecuteRestStepResponse resp;
  if (auto rc = client.Call("ExecuteRestStep", &v1::StepPluginService::Stub::ExecuteRestStep, req, &resp)) return *rc;
  return PrintOutcome(client.options(), resp, resp.outcome(), f.fail, f.output);
}

struct SoapFlags {
  std::string endpoint, version = "1.1", action, body_file, operation, ns;
  std::vector<std::string> params, header_block_files;
  std::string ws_user, ws_password_env;
  bool ws_digest = false, must_understand = false, fail = false;
  int ws_timestamp_seconds = 0;
  TlsFlags tls;
  TransportFlags transport;
};

int CallSoap(Client& client, const SoapFlags& f) {
  v1::ExecuteSoapStepRequest req;
  auto* step = req.mutable_step();
  step->set_endpoint(f.endpoint);
  step->set_version(f.version == "1.2" ? v1::SOAP_VERSION_1_2 : v1::SOAP_VERSION_1_1);
  step->set_action(f.action);
  if (!f.body_file.empty()) {
    auto body = ReadWholeFile(f.body_file);
    if (!body.ok()) return UsageError(body.error().message);
    step->set_raw_body(*body);
  } else if (!f.operation.empty()) {
    auto* op = step->mutable_operation();
    op->set_name(f.operation);
    op->set_namespace_uri(f.ns);
    for (const auto& p : f.params) {
      const size_t eq = p.find('=');
      auto* e = op->add_parameters();
      e->set_name(p.substr(0, eq));
      if (eq != std::string::npos) e->set_text(p.substr(eq + 1));
    }
  } else {
    return UsageError("call soap: give --body-file or --operation");
  }
  for (const auto& file : f.header_block_files) {
    auto block = ReadWholeFile(file);
    if (!block.ok()) return UsageError(block.error().message);
    step->add_header_blocks(*block);
  }
  if (!f.ws_user.empty()) {
    auto* ut = step->mutable_ws_security()->mutable_username_token();
    ut->set_username(f.ws_user);
    if (!f.ws_password_env.empty()) {
      const char* v = std::getenv(f.ws_password_env.c_str());
      if (v == nullptr) return UsageError("--ws-password-env: " + f.ws_password_env + " is not set");
      ut->set_password(v);
    }
    ut->set_password_type(f.ws_digest ? v1::WsSecurity::UsernameToken::PASSWORD_TYPE_DIGEST
                                      : v1::WsSecurity::UsernameToken::PASSWORD_TYPE_TEXT);
  }
  if (f.ws_timestamp_seconds > 0) {
    step->mutable_ws_security()->mutable_timestamp_ttl()->set_seconds(f.ws_timestamp_seconds);
  }
  if (step->has_ws_security()) step->mutable_ws_security()->set_must_understand(f.must_understand);
  if (auto st = FillTransport(f.tls, f.transport, step, step->mutable_http_headers()); !st.ok()) {
    return UsageError(st.error().message);
  }
  v1::ExecuteSoapStepResponse resp;
  if (auto rc = client.Call("ExecuteSoapStep", &v1::StepPluginService::Stub::ExecuteSoapStep, req, &resp)) return *rc;
  return PrintOutcome(client.options(), resp, resp.outcome(), f.fail, "");
}

int TestConnection(Client& client, const std::string& target, const TlsFlags& tls,
                   double timeout_seconds) {
  v1::TestConnectionRequest req;
  std::string host;
  uint32_t port = 0;
  if (!SplitHostPort(target, &host, &port)) return UsageError("expected HOST:PORT, got '" + target + "'");
  req.set_host(host);
  req.set_port(port);
  req.set_environment(tls.environment);
  tls.Fill(req.mutable_tls());
  if (timeout_seconds > 0) TransportFlags::SetDuration(timeout_seconds, req.mutable_timeout());
  v1::TestConnectionResponse resp;
  if (auto rc = client.Call("TestConnection", &v1::CertificateService::Stub::TestConnection, req, &resp)) return *rc;
  PrintResult(client.options(), resp, [&] {
    PrintWarnings(resp.warnings());
    const auto& t = resp.tls();
    std::cout << (resp.ok() ? "handshake OK" : "handshake FAILED") << "\n";
    if (!t.protocol().empty()) std::cout << "protocol: " << t.protocol() << " " << t.cipher() << "\n";
    for (const auto& c : resp.server_chain()) std::cout << "server chain: " << c.subject() << "\n";
    std::cout << "client certificate offered: "
              << (t.has_client_certificate() ? t.client_certificate().name() : "(none)") << "\n";
  });
  return resp.ok() ? kExitOk : ReportStepError(client.options(), resp.error());
}

// ------------------------------------------------------------------------------------
// demo
// ------------------------------------------------------------------------------------

std::string SelfExecutable(const char* argv0) {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0) return std::string(buf, static_cast<size_t>(n));
  return argv0;
}

}  // namespace

int RunCli(int argc, char** argv) {
  CLI::App app{"wsstep: outbound REST and SOAP steps over mutual TLS, as a workflow plugin"};
  app.fallthrough();
  app.require_subcommand(0, 1);
  GlobalFlags g;
  app.add_option("--config", g.config_file, "JSON config file (also WSSTEP_CONFIG)");
  app.add_option("--data-dir", g.data_dir, "store directory (also WSSTEP_DATA_DIR)");
  app.add_option("--plugin", g.plugin, "plugin to talk to: unix:///path/to.sock or HOST:PORT");
  app.add_option("--address", g.address, "plugin TCP address HOST:PORT");
  app.add_flag("--json", g.json, "print results and errors as JSON on stdout");
  app.add_option("--timeout", g.timeout_seconds, "seconds per call (default 30)");
  app.add_option("--actor", g.actor, "who acts, for the audit log (default wsstep-cli:USER)");
  app.add_option("--step-id", g.step_id, "step id sent as x-wsstep-step-id");
  app.add_option("--workflow-id", g.workflow_id, "workflow id sent as x-wsstep-workflow-id");

  // serve
  auto* serve = app.add_subcommand("serve", "run the plugin server (go-plugin aware)");
  std::string listen, master_key_file, log_level, shutdown_grace;
  std::vector<std::string> protected_envs;
  bool allow_remote = false, print_config = false;
  int max_in_flight = 0;
  int64_t max_message = 0, max_body = 0;
  auto* o_listen = serve->add_option("--listen", listen, "unix:///path.sock or HOST:PORT");
  auto* o_remote = serve->add_flag("--allow-remote", allow_remote, "allow a non-loopback TCP address");
  auto* o_mkf = serve->add_option("--master-key-file", master_key_file, "master key file");
  auto* o_envs = serve->add_option("--protected-environments", protected_envs,
                                   "environments where verification may not be turned off")
                     ->delimiter(',');
  auto* o_inflight = serve->add_option("--max-in-flight-steps", max_in_flight, "concurrent steps");
  auto* o_msg = serve->add_option("--max-message-bytes", max_message, "gRPC message limit");
  auto* o_body = serve->add_option("--max-body-bytes", max_body, "step body limit");
  auto* o_grace = serve->add_option("--shutdown-grace", shutdown_grace, "drain time, e.g. 10s");
  auto* o_level = serve->add_option("--log-level", log_level, "debug, info, warn, error");
  serve->add_flag("--print-config", print_config, "print the effective configuration and exit");

  // cert
  auto* cert = app.add_subcommand("cert", "manage the certificate store");
  cert->require_subcommand(1);
  ImportFlags imp;
  auto* cert_import = cert->add_subcommand("import", "import a certificate, key pair or key store");
  cert_import->add_option("--name", imp.name, "unique name")->required();
  cert_import->add_option("--type", imp.type,
                          "key-pair, pkcs12, trust-store, java-keystore, mobile-provisioning");
  cert_import->add_option("--file", imp.file, "certificate / PKCS#12 / JKS / bundle file")
      ->required();
  cert_import->add_option("--key-file", imp.key_file, "private key file (key pairs)");
  cert_import->add_option("--format", imp.format, "declared format: pem, der, pkcs12, jks, jceks, mobileprovision");
  cert_import->add_option("--password-file", imp.password_file, "password from a file");
  cert_import->add_option("--password-env", imp.password_env, "password from a variable");
  cert_import->add_flag("--password-stdin", imp.password_stdin, "read the password from stdin");
  cert_import->add_option("--key-password-file", imp.key_password_file, "JKS key password file");
  cert_import->add_option("--key-password-env", imp.key_password_env, "JKS key password variable");
  cert_import->add_option("--alias", imp.alias, "key entry alias in a key store");
  cert_import->add_option("--bind", imp.bindings, "HOST[:PORT][@ENV] (repeatable)");
  cert_import->add_option("--description", imp.description, "free text");
  cert_import->add_flag("--private-trust-only", imp.private_trust_only, "trust stores: no system CAs");
  cert_import->add_flag("--disabled", imp.disabled, "import disabled");
  cert_import->add_flag("--no-notifications", imp.no_notifications, "no expiry notifications");
  cert_import->add_option("--warning-days", imp.warning_days, "days before expiry to warn (30)");
  cert_import->add_flag("--weekly", imp.weekly, "notify weekly instead of daily");
  cert_import->add_option("--alert-ref", imp.alert_ref, "the host's alert reference");

  ListFlags lf;
  auto* cert_list = cert->add_subcommand("list", "list certificates");
  cert_list->add_option("--host", lf.host, "bound to this host");
  cert_list->add_option("--port", lf.port, "bound to this port");
  cert_list->add_option("--environment,-e", lf.environment, "bound in this environment");
  cert_list->add_option("--status", lf.status, "VALID, EXPIRING_SOON, EXPIRED, ...");
  cert_list->add_option("--type", lf.type, "key-pair, pkcs12, ...");
  cert_list->add_option("--name-contains", lf.name_contains, "name filter");
  cert_list->add_option("--page-size", lf.page_size, "entries per page");
  cert_list->add_flag("--all", lf.all, "fetch every page");

  std::string which;
  bool by_id = false, yes = false;
  auto* cert_show = cert->add_subcommand("show", "show one certificate's metadata");
  cert_show->add_option("certificate", which, "name (or id with --id)")->required();
  cert_show->add_flag("--id", by_id, "the argument is an id");
  auto* cert_delete = cert->add_subcommand("delete", "delete a certificate (irreversible)");
  cert_delete->add_option("certificate", which, "name (or id with --id)")->required();
  cert_delete->add_flag("--id", by_id, "the argument is an id");
  cert_delete->add_flag("--yes,-y", yes, "confirm");
  std::string resolve_target, resolve_env, resolve_cert;
  auto* cert_resolve = cert->add_subcommand("resolve", "explain which certificate a call would use");
  cert_resolve->add_option("target", resolve_target, "HOST[:PORT]")->required();
  cert_resolve->add_option("--environment,-e", resolve_env, "environment");
  cert_resolve->add_option("--certificate", resolve_cert, "as a step naming this certificate");

  // call
  auto* call = app.add_subcommand("call", "execute a step through the plugin");
  call->require_subcommand(1);
  RestFlags rf;
  auto* call_rest = call->add_subcommand("rest", "execute a REST step");
  call_rest->add_option("--url", rf.url, "https URL")->required();
  call_rest->add_option("--method,-X", rf.method, "HTTP method");
  call_rest->add_option("--query", rf.query, "name=value (repeatable)");
  call_rest->add_option("--data,-d", rf.data, "request body");
  call_rest->add_option("--data-file", rf.data_file, "request body from a file");
  call_rest->add_option("--content-type", rf.content_type, "Content-Type of the body");
  call_rest->add_option("--output,-o", rf.output, "write the response body to a file");
  call_rest->add_flag("--fail,-f", rf.fail, "exit 1 on HTTP status >= 400");
  rf.tls.Add(call_rest);
  rf.transport.Add(call_rest);
  SoapFlags sf;
  auto* call_soap = call->add_subcommand("soap", "execute a SOAP step");
  call_soap->add_option("--endpoint", sf.endpoint, "https URL")->required();
  call_soap->add_option("--soap-version", sf.version, "1.1 or 1.2")->check(CLI::IsMember({"1.1", "1.2"}));
  call_soap->add_option("--action", sf.action, "SOAP action");
  call_soap->add_option("--body-file", sf.body_file, "raw XML body fragment");
  call_soap->add_option("--operation", sf.operation, "operation element name");
  call_soap->add_option("--namespace", sf.ns, "operation namespace URI");
  call_soap->add_option("--param", sf.params, "name=value parameter (repeatable)");
  call_soap->add_option("--header-block-file", sf.header_block_files, "SOAP header block (repeatable)");
  call_soap->add_option("--ws-username", sf.ws_user, "WS-Security UsernameToken user");
  call_soap->add_option("--ws-password-env", sf.ws_password_env, "its password, from a variable");
  call_soap->add_flag("--ws-digest", sf.ws_digest, "PasswordDigest instead of PasswordText");
  call_soap->add_option("--ws-timestamp", sf.ws_timestamp_seconds, "add a Timestamp valid N seconds");
  call_soap->add_flag("--must-understand", sf.must_understand, "mustUnderstand on Security");
  call_soap->add_flag("--fail,-f", sf.fail, "exit 1 on a SOAP Fault");
  sf.tls.Add(call_soap);
  sf.transport.Add(call_soap);

  // test-connection
  std::string tc_target;
  double tc_timeout = 0;
  TlsFlags tc_tls;
  auto* test = app.add_subcommand("test-connection", "diagnose a TLS handshake to HOST:PORT");
  test->add_option("target", tc_target, "HOST:PORT")->required();
  test->add_option("--handshake-timeout", tc_timeout, "seconds for connect + handshake");
  tc_tls.Add(test);

  // demo
  auto* demo = app.add_subcommand("demo", "make a throwaway PKI and nginx, launch the plugin as a host would, run an mTLS step that works and one that fails");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }

  const EnvLookup env = ProcessEnvironment();
  const HandshakeEnv handshake = ReadHandshakeEnv(env);

  // No subcommand: this is how hosts launch plugins.
  if (app.get_subcommands().empty() || serve->parsed()) {
    const bool explicit_serve = serve->parsed();
    if (handshake.cookie == CookieState::kWrong ||
        (!explicit_serve && handshake.cookie != CookieState::kMatches)) {
      std::cerr << NotLaunchedByHostMessage(handshake.cookie);
      return 1;
    }
    ConfigLayer flags;
    if (!g.config_file.empty()) flags.config_file = g.config_file;
    if (!g.data_dir.empty()) flags.data_dir = g.data_dir;
    if (o_listen->count()) flags.listen = listen;
    if (o_remote->count()) flags.allow_remote = allow_remote;
    if (o_mkf->count()) flags.master_key_file = master_key_file;
    if (o_envs->count()) flags.protected_environments = protected_envs;
    if (o_inflight->count()) flags.max_in_flight_steps = max_in_flight;
    if (o_msg->count()) flags.max_message_bytes = max_message;
    if (o_body->count()) flags.max_body_bytes = max_body;
    if (o_level->count()) flags.log_level = log_level;
    if (o_grace->count()) {
      auto grace = ParseDuration(shutdown_grace, "--shutdown-grace");
      if (!grace.ok()) return UsageError(grace.error().message);
      flags.shutdown_grace = *grace;
    }
    auto config = LoadConfig(flags, env);
    if (!config.ok()) {
      std::cerr << "wsstep: " << config.error().message << "\n";
      if (!config.error().hint.empty()) std::cerr << "  " << config.error().hint << "\n";
      return kExitUsage;
    }
    if (print_config) {
      std::cout << config->Describe().dump(2) << std::endl;
      return kExitOk;
    }
    return RunServe(*config, handshake, handshake.cookie == CookieState::kMatches);
  }

  Client client(g);
  if (cert_import->parsed()) return CertImport(client, imp);
  if (cert_list->parsed()) return CertList(client, lf);
  if (cert_show->parsed()) return CertShow(client, which, by_id);
  if (cert_delete->parsed()) return CertDelete(client, which, by_id, yes);
  if (cert_resolve->parsed()) return CertResolve(client, resolve_target, resolve_env, resolve_cert);
  if (call_rest->parsed()) return CallRest(client, rf);
  if (call_soap->parsed()) return CallSoap(client, sf);
  if (test->parsed()) return TestConnection(client, tc_target, tc_tls, tc_timeout);
  if (demo->parsed()) return RunDemo(SelfExecutable(argv[0]), g.json);
  std::cerr << app.help();
  return kExitUsage;
}

}  // namespace wsstep::plugin

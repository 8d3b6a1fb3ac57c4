#include "plugin/process/config.h"

#include <cctype>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/store/master_key.h"
#include "core/store/pg_storage.h"
#include "core/store/sqlite_storage.h"
#include "plugin/process/listen.h"
#include "rest/proxy.h"

namespace wsstep::plugin {
namespace {

Error Invalid(std::string message) {
  return Error(Code::kInvalidArgument, std::move(message),
               "fix the configuration and start again", Side::kConfiguration);
}

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

Result<int64_t> ParseInt(std::string_view text, std::string_view what) {
  const std::string t = Trim(text);
  int64_t v = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc() || p != t.data() + t.size()) {
    return Invalid(std::string(what) + ": '" + t + "' is not an integer");
  }
  return v;
}

Result<bool> ParseBool(std::string_view text, std::string_view what) {
  std::string t = Trim(text);
  for (char& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (t == "1" || t == "true" || t == "yes" || t == "on") return true;
  if (t == "0" || t == "false" || t == "no" || t == "off") return false;
  return Invalid(std::string(what) + ": '" + t + "' is not a boolean (true/false)");
}

std::vector<std::string> SplitList(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string item = Trim(text.substr(start, comma - start));
    if (!item.empty()) out.push_back(std::move(item));
    start = comma + 1;
  }
  return out;
}

// Applies `upper` over `lower`: set fields of upper win.
void Overlay(ConfigLayer& lower, const ConfigLayer& upper) {
  auto take = [](auto& dst, const auto& src) {
    if (src) dst = src;
  };
  take(lower.config_file, upper.config_file);
  take(lower.data_dir, upper.data_dir);
  take(lower.master_key_file, upper.master_key_file);
  take(lower.master_key_base64, upper.master_key_base64);
  take(lower.listen, upper.listen);
  take(lower.allow_remote, upper.allow_remote);
  take(lower.protected_environments, upper.protected_environments);
  take(lower.max_in_flight_steps, upper.max_in_flight_steps);
  take(lower.max_in_flight_per_origin, upper.max_in_flight_per_origin);
  take(lower.max_message_bytes, upper.max_message_bytes);
  take(lower.max_body_bytes, upper.max_body_bytes);
  take(lower.max_chunked_body_bytes, upper.max_chunked_body_bytes);
  take(lower.shutdown_grace, upper.shutdown_grace);
  take(lower.log_level, upper.log_level);
  take(lower.spin_wait_us, upper.spin_wait_us);
  take(lower.propagate_trace_context, upper.propagate_trace_context);
  take(lower.metrics_listen, upper.metrics_listen);
  take(lower.store, upper.store);
  take(lower.proxy_url, upper.proxy_url);
  take(lower.proxy_username, upper.proxy_username);
  take(lower.proxy_password, upper.proxy_password);
  take(lower.proxy_password_file, upper.proxy_password_file);
  take(lower.proxy_credential, upper.proxy_credential);
  take(lower.no_proxy, upper.no_proxy);
  take(lower.proxy_from_environment, upper.proxy_from_environment);
  take(lower.offer_http2, upper.offer_http2);
}

std::string PercentDecode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

// The proxy settings: url, credentials and no-proxy list from the layers, or from the
// process's proxy variables when from_environment asks for it (and no url is set).
Result<ProxyConfig> ProxyFrom(const ConfigLayer& merged, const EnvLookup& env) {
  ProxyConfig p;
  p.url = merged.proxy_url.value_or("");
  p.username = merged.proxy_username.value_or("");
  p.credential = merged.proxy_credential.value_or("");
  p.no_proxy = merged.no_proxy.value_or(std::vector<std::string>{});
  p.from_environment = merged.proxy_from_environment.value_or(false);
  p.source = p.url.empty() ? "" : "config";
  std::optional<std::string> password = merged.proxy_password;
  if (merged.proxy_password_file && !password) {
    std::ifstream in(*merged.proxy_password_file, std::ios::binary);
    if (!in) return Invalid("proxy.password_file: cannot read " + *merged.proxy_password_file);
    std::ostringstream text;
    text << in.rdbuf();
    std::string secret = text.str();
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
    password = std::move(secret);
    p.password_file = *merged.proxy_password_file;
  }
  if (p.from_environment) {
    if (p.url.empty()) {
      for (const char* name : {"https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"}) {
        auto v = env(name);
        if (!v || v->empty()) continue;
        std::string url = *v;
        // user:password@ in the variable: the proxy credentials (percent-decoded).
        const size_t scheme = url.find("://");
        const size_t start = scheme == std::string::npos ? 0 : scheme + 3;
        const size_t at = url.rfind('@');
        if (at != std::string::npos && at > start && url.find('/', start) > at) {
          const std::string userinfo = url.substr(start, at - start);
          const size_t colon = userinfo.find(':');
          if (p.username.empty() && !password) {
            p.username = PercentDecode(userinfo.substr(0, colon));
            if (colon != std::string::npos) password = PercentDecode(userinfo.substr(colon + 1));
          }
          url.erase(start, at + 1 - start);
        }
        p.url = url;
        p.source = name;
        break;
      }
    }
    for (const char* name : {"no_proxy", "NO_PROXY"}) {
      if (auto v = env(name); v && !v->empty()) {
        for (auto& host : SplitList(*v)) p.no_proxy.push_back(std::move(host));
        break;
      }
    }
  }
  if (password) p.password = std::make_shared<const SecretBytes>(SecretBytes(*password));
  if (!p.url.empty()) {
    auto route = rest::ParseProxyUrl(p.url, p.source == "config" ? "proxy.url" : p.source);
    if (!route.ok()) return Invalid(route.error().message);
    p.url = route->url;
  } else {
    // No proxy (WSSTEP_PROXY="" turns off the file's): its credentials have no use.
    p.username.clear();
    p.password.reset();
    p.password_file.clear();
    p.credential.clear();
  }
  if (!p.credential.empty() && (!p.username.empty() || p.password)) {
    return Invalid("proxy.credential: names the store's proxy credential, so proxy.username "
                   "and the proxy password must not be set too");
  }
  if (p.username.find(':') != std::string::npos) {
    return Invalid("proxy.username: must not contain ':'");
  }
  Status no_proxy = rest::ValidateNoProxy(p.no_proxy, "no_proxy");
  if (!no_proxy.ok()) return Invalid(no_proxy.error().message);
  return p;
}

}  // namespace

LogFields Config::Describe() const {
  LogFields j = LogFields::object();
  j["config_file"] = config_file;
  j["data_dir"] = data_dir;
  // Where the key the store will use comes from; never the key itself.
  j["master_key_source"] = master_key ? "WSSTEP_MASTER_KEY" : "file";
  j["master_key_file"] = master_key ? "" : core::MasterKeyFilePath(data_dir, master_key_file);
  j["master_key_from_environment"] = master_key.has_value();
  j["listen"] = listen;
  j["allow_remote"] = allow_remote;
  j["protected_environments"] = protected_environments;
  j["limits"] = {{"max_in_flight_steps", limits.max_in_flight_steps},
                 {"max_in_flight_per_origin", limits.max_in_flight_per_origin},
                 {"max_message_bytes", limits.max_message_bytes},
                 {"max_body_bytes", limits.max_body_bytes},
                 {"max_chunked_body_bytes", limits.max_chunked_body_bytes}};
  j["shutdown_grace_ms"] = shutdown_grace.count();
  j["log_level"] = LogLevelName(log_level);
  j["spin_wait_us"] = spin_wait.count();
  j["propagate_trace_context"] = propagate_trace_context;
  j["metrics_listen"] = metrics_listen;
  j["http2"] = offer_http2;
  // Where the proxy and its credentials come from; never the password.
  j["proxy"] = {{"url", proxy.url},
                {"username", proxy.username},
                {"password", proxy.password ? (proxy.password_file.empty() ? "set" : "from file")
                                            : ""},
                {"credential", proxy.credential},
                {"no_proxy", proxy.no_proxy},
                {"from_environment", proxy.from_environment},
                {"source", proxy.source}};
  j["store"] = store.empty() ? "sqlite:" + data_dir + "/" + std::string(core::kSqliteStoreFileName)
                             : core::PostgresLocation(store);
  return j;
}

EnvLookup ProcessEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

EnvLookup FixedEnvironment(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

Result<std::chrono::milliseconds> ParseDuration(std::string_view text, std::string_view what) {
  const std::string t = Trim(text);
  size_t digits = 0;
  while (digits < t.size() && std::isdigit(static_cast<unsigned char>(t[digits]))) ++digits;
  const std::string unit = t.substr(digits);
  if (digits == 0 || digits > 12) {
    return Invalid(std::string(what) + ": '" + t +
                   "' is not a duration (e.g. \"10s\", \"500ms\", \"2m\" or seconds)");
  }
  const int64_t n = std::stoll(t.substr(0, digits));
  if (unit.empty() || unit == "s") return std::chrono::milliseconds(n * 1000);
  if (unit == "ms") return std::chrono::milliseconds(n);
  if (unit == "m") return std::chrono::milliseconds(n * 60 * 1000);
  return Invalid(std::string(what) + ": unknown unit '" + unit + "' in '" + t +
                 "' (use ms, s or m)");
}

Result<ConfigLayer> LayerFromEnvironment(const EnvLookup& env) {
  ConfigLayer l;
  auto str = [&](const char* name, std::optional<std::string>& dst) {
    if (auto v = env(name); v && !v->empty()) dst = *v;
  };
  str("WSSTEP_CONFIG", l.config_file);
  str("WSSTEP_DATA_DIR", l.data_dir);
  str("WSSTEP_MASTER_KEY_FILE", l.master_key_file);
  str("WSSTEP_MASTER_KEY", l.master_key_base64);
  str("WSSTEP_LISTEN", l.listen);
  str("WSSTEP_LOG_LEVEL", l.log_level);
  // Set but empty is meaningful: no metrics, whatever the config file says.
  if (auto v = env("WSSTEP_METRICS_LISTEN")) l.metrics_listen = *v;
  // Set but empty: the embedded SQLite store, whatever the file says.
  if (auto v = env("WSSTEP_STORE")) l.store = *v;
  // Set but empty: no proxy, whatever the file says.
  if (auto v = env("WSSTEP_PROXY")) l.proxy_url = *v;
  str("WSSTEP_PROXY_USERNAME", l.proxy_username);
  str("WSSTEP_PROXY_PASSWORD", l.proxy_password);
  str("WSSTEP_PROXY_PASSWORD_FILE", l.proxy_password_file);
  str("WSSTEP_PROXY_CREDENTIAL", l.proxy_credential);
  if (auto v = env("WSSTEP_NO_PROXY")) l.no_proxy = SplitList(*v);
  if (auto v = env("WSSTEP_HTTP2"); v && !v->empty()) {
    WSSTEP_ASSIGN_OR_RETURN(l.offer_http2, ParseBool(*v, "WSSTEP_HTTP2"));
  }
  if (auto v = env("WSSTEP_PROXY_FROM_ENVIRONMENT"); v && !v->empty()) {
    WSSTEP_ASSIGN_OR_RETURN(l.proxy_from_environment,
                            ParseBool(*v, "WSSTEP_PROXY_FROM_ENVIRONMENT"));
  }
  if (auto v = env("WSSTEP_ALLOW_REMOTE"); v && !v->empty()) {
    WSSTEP_ASSIGN_OR_RETURN(l.allow_remote, ParseBool(*v, "WSSTEP_ALLOW_REMOTE"));
  }
  if (auto v = env("WSSTEP_PROPAGATE_TRACE_CONTEXT"); v && !v->empty()) {
    WSSTEP_ASSIGN_OR_RETURN(l.propagate_trace_context,
                            ParseBool(*v, "WSSTEP_PROPAGATE_TRACE_CONTEXT"));
  }
  // Set but empty is meaningful here: protect no environment.
  if (auto v = env("WSSTEP_PROTECTED_ENVIRONMENTS")) l.protected_environments = SplitList(*v);
  if (auto v = env("WSSTEP_MAX_IN_FLIGHT_STEPS"); v && !v->empty()) {
    WSSTEP_ASSIGN_OR_RETURN(int64_t n, ParseInt(*v, "WSSTEP_MAX_IN_FLIGHT_STEPS"));
    l.max_in_flight_steps = static_cast<int>(n);
  }
  if (auto v = env("WSSTEP_MAX_IN_FLIGHT_PER_ORIGIN"); v && !v->empty()) {
    WSSTEP_ASSIGN_OR_RETURN(int64_t n, ParseInt(*v, "WSSTEP_MAX_IN_FLIGHT_PER_ORIGIN"));
    l.max_in_flight_per_origin = static_cast<int>(n);
  }
  if (auto v = env("WSSTEP_MAX_MESSAGE_BYTES"); v && !v->empty()) {
    WSSTEP_ASSIGN_OR_RETURN(l.max_message_bytes, ParseInt(*v, "WSSTEP_MAX_MESSAGE_BYTES"));
  }
  if (auto v = env("WSSTEP_SPIN_WAIT_US"); v && !v->empty()) {
    WSSTEP_ASSIGN_OR_RETURN(l.spin_wait_us, ParseInt(*v, "WSSTEP_SPIN_WAIT_US"));
  }
  if (auto v = env("WSSTEP_MAX_BODY_BYTES"); v && !v->empty()) {
    WSSTEP_ASSIGN_OR_RETURN(l.max_body_bytes, ParseInt(*v, "WSSTEP_MAX_BODY_BYTES"));
  }
  if (auto v = env("WSSTEP_MAX_CHUNKED_BODY_BYTES"); v && !v->empty()) {
    WSSTEP_ASSIGN_OR_RETURN(l.max_chunked_body_bytes,
                            ParseInt(*v, "WSSTEP_MAX_CHUNKED_BODY_BYTES"));
  }
  if (auto v = env("WSSTEP_SHUTDOWN_GRACE"); v && !v->empty()) {
    WSSTEP_ASSIGN_OR_RETURN(l.shutdown_grace, ParseDuration(*v, "WSSTEP_SHUTDOWN_GRACE"));
  }
  return l;
}

Result<ConfigLayer> LayerFromJson(std::string_view json_text, const std::string& name) {
  const nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Invalid(name + ": not a JSON object");
  }
  ConfigLayer l;
  auto want = [&](const nlohmann::json& v, const std::string& key,
                  nlohmann::json::value_t type) -> Status {
    const bool ok = v.type() == type ||
                    (type == nlohmann::json::value_t::number_integer &&
                     v.type() == nlohmann::json::value_t::number_unsigned);
    if (!ok) return Invalid(name + ": \"" + key + "\" has the wrong type (expected " +
                            nlohmann::json(type).type_name() + ")");
    return {};
  };
  using T = nlohmann::json::value_t;
  for (const auto& [key, v] : j.items()) {
    if (key == "data_dir" || key == "master_key_file" || key == "listen" ||
        key == "log_level" || key == "metrics_listen" || key == "store") {
      WSSTEP_RETURN_IF_ERROR(want(v, key, T::string));
      std::optional<std::string>& dst = key == "data_dir"          ? l.data_dir
                                        : key == "master_key_file" ? l.master_key_file
                                        : key == "listen"          ? l.listen
                                        : key == "metrics_listen"  ? l.metrics_listen
                                        : key == "store"           ? l.store
                                                                   : l.log_level;
      dst = v.get<std::string>();
    } else if (key == "spin_wait_us") {
      WSSTEP_RETURN_IF_ERROR(want(v, key, T::number_integer));
      l.spin_wait_us = v.get<int64_t>();
    } else if (key == "allow_remote") {
      WSSTEP_RETURN_IF_ERROR(want(v, key, T::boolean));
      l.allow_remote = v.get<bool>();
    } else if (key == "http2") {
      WSSTEP_RETURN_IF_ERROR(want(v, key, T::boolean));
      l.offer_http2 = v.get<bool>();
    } else if (key == "propagate_trace_context") {
      WSSTEP_RETURN_IF_ERROR(want(v, key, T::boolean));
      l.propagate_trace_context = v.get<bool>();
    } else if (key == "protected_environments") {
      WSSTEP_RETURN_IF_ERROR(want(v, key, T::array));
      std::vector<std::string> envs;
      for (const auto& e : v) {
        if (!e.is_string()) return Invalid(name + ": \"protected_environments\" must hold strings");
        envs.push_back(e.get<std::string>());
      }
      l.protected_environments = std::move(envs);
    } else if (key == "shutdown_grace") {
      if (v.is_number_integer()) {
        l.shutdown_grace = std::chrono::milliseconds(v.get<int64_t>() * 1000);
      } else {
        WSSTEP_RETURN_IF_ERROR(want(v, key, T::string));
        WSSTEP_ASSIGN_OR_RETURN(l.shutdown_grace,
                                ParseDuration(v.get<std::string>(), name + ": shutdown_grace"));
      }
    } else if (key == "limits") {
      WSSTEP_RETURN_IF_ERROR(want(v, key, T::object));
      for (const auto& [lk, lv] : v.items()) {
        const std::string path = "limits." + lk;
        if (lk != "max_in_flight_steps" && lk != "max_in_flight_per_origin" &&
            lk != "max_message_bytes" && lk != "max_body_bytes" &&
            lk != "max_chunked_body_bytes") {
          return Invalid(name + ": unknown key \"" + path + "\"");
        }
        WSSTEP_RETURN_IF_ERROR(want(lv, path, T::number_integer));
        if (lk == "max_in_flight_steps") l.max_in_flight_steps = lv.get<int>();
        if (lk == "max_in_flight_per_origin") l.max_in_flight_per_origin = lv.get<int>();
        if (lk == "max_message_bytes") l.max_message_bytes = lv.get<int64_t>();
        if (lk == "max_body_bytes") l.max_body_bytes = lv.get<int64_t>();
        if (lk == "max_chunked_body_bytes") l.max_chunked_body_bytes = lv.get<int64_t>();
      }
    } else if (key == "proxy") {
      WSSTEP_RETURN_IF_ERROR(want(v, key, T::object));
      for (const auto& [pk, pv] : v.items()) {
        const std::string path = "proxy." + pk;
        if (pk == "url" || pk == "username" || pk == "password_file" || pk == "credential") {
          WSSTEP_RETURN_IF_ERROR(want(pv, path, T::string));
          (pk == "url"        ? l.proxy_url
           : pk == "username" ? l.proxy_username
           : pk == "credential" ? l.proxy_credential
                              : l.proxy_password_file) = pv.get<std::string>();
        } else if (pk == "no_proxy") {
          WSSTEP_RETURN_IF_ERROR(want(pv, path, T::array));
          std::vector<std::string> hosts;
          for (const auto& h : pv) {
            if (!h.is_string()) return Invalid(name + ": \"proxy.no_proxy\" must hold strings");
            hosts.push_back(h.get<std::string>());
          }
          l.no_proxy = std::move(hosts);
        } else if (pk == "from_environment") {
          WSSTEP_RETURN_IF_ERROR(want(pv, path, T::boolean));
          l.proxy_from_environment = pv.get<bool>();
        } else if (pk == "password") {
          return Invalid(name + ": \"proxy.password\" is not accepted in a config file; use "
                                "\"proxy.password_file\" or WSSTEP_PROXY_PASSWORD");
        } else {
          return Invalid(name + ": unknown key \"" + path + "\"");
        }
      }
    } else if (key == "master_key") {
      return Invalid(name + ": \"master_key\" is not accepted in a config file; use "
                            "\"master_key_file\" or the WSSTEP_MASTER_KEY environment variable");
    } else {
      return Invalid(name + ": unknown key \"" + key + "\"");
    }
  }
  return l;
}

Result<ConfigLayer> LayerFromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Invalid(path + ": cannot read the config file");
  std::ostringstream text;
  text << in.rdbuf();
  return LayerFromJson(text.str(), path);
}

std::string DefaultDataDir(const EnvLookup& env) {
  if (auto x = env("XDG_DATA_HOME"); x && !x->empty()) return *x + "/wsstep";
  if (auto h = env("HOME"); h && !h->empty()) return *h + "/.local/share/wsstep";
  return "./wsstep-data";
}

std::string DefaultListenAddress(const std::string& data_dir) {
  return "unix://" + data_dir + "/wsstep.sock";
}

Result<Config> LoadConfig(const ConfigLayer& flags, const EnvLookup& env) {
  WSSTEP_ASSIGN_OR_RETURN(ConfigLayer from_env, LayerFromEnvironment(env));
  ConfigLayer merged;
  std::optional<std::string> file = flags.config_file ? flags.config_file : from_env.config_file;
  if (file) {
    WSSTEP_ASSIGN_OR_RETURN(merged, LayerFromFile(*file));
    merged.config_file = file;
  }
  Overlay(merged, from_env);
  Overlay(merged, flags);

  Config c;
  c.config_file = merged.config_file.value_or("");
  c.data_dir = merged.data_dir.value_or(DefaultDataDir(env));
  c.master_key_file = merged.master_key_file.value_or("");
  if (merged.master_key_base64) {
    // Validated here so a bad variable fails at startup, with the store's own message.
    auto key = core::MasterKey::FromBase64(*merged.master_key_base64, "WSSTEP_MASTER_KEY");
    if (!key.ok()) return key.error();
    c.master_key = std::move(key).value();
  }
  c.listen = merged.listen.value_or(DefaultListenAddress(c.data_dir));
  c.allow_remote = merged.allow_remote.value_or(false);
  c.propagate_trace_context = merged.propagate_trace_context.value_or(false);
  c.metrics_listen = merged.metrics_listen.value_or("");
  c.store = merged.store.value_or("");
  c.offer_http2 = merged.offer_http2.value_or(true);
  if (merged.protected_environments) c.protected_environments = *merged.protected_environments;
  if (merged.max_in_flight_steps) c.limits.max_in_flight_steps = *merged.max_in_flight_steps;
  if (merged.max_in_flight_per_origin) {
    c.limits.max_in_flight_per_origin = *merged.max_in_flight_per_origin;
  }
  if (merged.max_message_bytes) c.limits.max_message_bytes = *merged.max_message_bytes;
  if (merged.max_body_bytes) c.limits.max_body_bytes = *merged.max_body_bytes;
  if (merged.max_chunked_body_bytes) {
    c.limits.max_chunked_body_bytes = *merged.max_chunked_body_bytes;
  }
  if (merged.shutdown_grace) c.shutdown_grace = *merged.shutdown_grace;
  if (merged.spin_wait_us) {
    if (*merged.spin_wait_us < 0 || *merged.spin_wait_us > kMaxSpinWait.count()) {
      return Invalid("spin_wait_us must be between 0 (never spin) and " +
                     std::to_string(kMaxSpinWait.count()) + " (got " +
                     std::to_string(*merged.spin_wait_us) + ")");
    }
    c.spin_wait = std::chrono::microseconds(*merged.spin_wait_us);
  }
  if (merged.log_level) {
    auto level = LogLevelFromName(*merged.log_level);
    if (!level) {
      return Invalid("log level '" + *merged.log_level +
                     "' is not one of debug, info, warn, error");
    }
    c.log_level = *level;
  }

  if (c.limits.max_in_flight_steps < 1) {
    return Invalid("max_in_flight_steps must be at least 1 (got " +
                   std::to_string(c.limits.max_in_flight_steps) + ")");
  }
  if (c.limits.max_in_flight_per_origin < 0) {
    return Invalid("max_in_flight_per_origin must be 0 (no cap) or more (got " +
                   std::to_string(c.limits.max_in_flight_per_origin) + ")");
  }
  // gRPC takes an int; keep a floor that still fits a useful step.
  if (c.limits.max_message_bytes < 64 * 1024 || c.limits.max_message_bytes > INT32_MAX) {
    return Invalid("max_message_bytes must be between 65536 and 2147483647 (got " +
                   std::to_string(c.limits.max_message_bytes) + ")");
  }
  if (c.limits.max_body_bytes < 1 || c.limits.max_body_bytes > c.limits.max_message_bytes) {
    return Invalid("max_body_bytes must be between 1 and max_message_bytes (" +
                   std::to_string(c.limits.max_message_bytes) + "); got " +
                   std::to_string(c.limits.max_body_bytes));
  }
  if (c.limits.max_chunked_body_bytes < c.limits.max_body_bytes) {
    return Invalid("max_chunked_body_bytes must be at least max_body_bytes (" +
                   std::to_string(c.limits.max_body_bytes) + "); got " +
                   std::to_string(c.limits.max_chunked_body_bytes));
  }
  if (c.shutdown_grace.count() < 0) return Invalid("shutdown_grace must not be negative");
  if (c.data_dir.empty()) return Invalid("data_dir must not be empty");
  auto addr = ParseListenAddress(c.listen);
  if (!addr.ok()) return addr.error();
  if (!c.store.empty() && !core::IsPostgresConnectionString(c.store)) {
    // Not echoed: a connection string may hold a password.
    return Invalid("store: not a PostgreSQL connection string (postgresql://user@host/db or "
                   "\"host=... dbname=...\"); leave it unset for the embedded SQLite store in "
                   "the data directory");
  }
  if (!c.metrics_listen.empty()) {
    auto metrics = ParseMetricsAddress(c.metrics_listen);
    if (!metrics.ok()) return Invalid(metrics.error().message);
  }
  WSSTEP_ASSIGN_OR_RETURN(c.proxy, ProxyFrom(merged, env));
  return c;
}

}  // namespace wsstep::plugin

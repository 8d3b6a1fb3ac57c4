// Structured logging for the plugin: one JSON object per line on stderr (stdout belongs
// to the go-plugin handshake and must carry nothing else), secrets redacted.
//
//   Log().Info("step finished", {{"step_id", ctx.step_id}, {"status", 200}});
//   Log().Warn("verification disabled", Redact(fields));   // masks password/token/... keys
//   Log().Debug("request", {{"request", RedactedJson(request)}});  // clears secret fields
//
// A line has hclog's JSON shape, so a go-plugin host logs it at its own level with its
// fields (anything else it relays verbatim at DEBUG, which a host at INFO never shows):
//   {"@timestamp":"2026-11-23T13:53:24.123456Z","@level":"info","@message":"step finished",
//    "step_id":"s1"}
// Every line is written with one write(2), so lines from concurrent threads never mix.
//
// Redaction is a safety net, not the mechanism: secrets live in SecretBytes and the
// (wsstep.v1.secret) proto fields, which never reach a log call in the first place.
#ifndef WSSTEP_PLUGIN_PROCESS_LOG_H_
#define WSSTEP_PLUGIN_PROCESS_LOG_H_

#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace google::protobuf {
class Message;
}

namespace wsstep::plugin {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
std::string_view LogLevelName(LogLevel level);  // "debug", "info", "warn", "error"
std::optional<LogLevel> LogLevelFromName(std::string_view name);

// Fields of a line, in insertion order.
using LogFields = nlohmann::ordered_json;

// The fields of a line, serialized as they are added: for the lines written on every
// step, where building a JSON object first would cost more than the step's own bookkeeping.
// Keys are the caller's literals (plain ASCII, never user data); string values are
// escaped as nlohmann::json escapes them, after ValidUtf8.
//
//   LineFields f;
//   f.Add("method", call.method);
//   f.Add("http_status", 200);
//   Log().Write(LogLevel::kInfo, "step finished", f);
class LineFields {
 public:
  LineFields() { text_.reserve(192); }
  void Add(std::string_view key, std::string_view value);
  void Add(std::string_view key, int64_t value);
  bool empty() const { return text_.empty(); }
  // ,"key":value,... in the order added ("" when none).
  const std::string& text() const { return text_; }

 private:
  void Key(std::string_view key);
  std::string text_;
};

// Appends `text` to `out` as a JSON string (quotes included), escaped exactly as
// nlohmann::json::dump does for valid UTF-8; invalid UTF-8 first becomes U+FFFD
// (ValidUtf8).
void AppendJsonString(std::string_view text, std::string& out);

class Logger {
 public:
  // Where finished lines go (without the trailing newline). Default: stderr.
  using Sink = std::function<void(std::string_view line)>;

  Logger();
  void SetLevel(LogLevel level);
  LogLevel level() const;
  bool Enabled(LogLevel level) const { return level >= level_; }
  // Replaces the sink (tests capture lines); an empty function restores stderr.
  void SetSink(Sink sink);

  // Writes one line if `level` is enabled. `fields` must be a JSON object (or null); its
  // keys follow "@timestamp", "@level" and "@message". Values are written as given:
  // redact first when they may hold request data.
  void Write(LogLevel level, std::string_view msg, const LogFields& fields = nullptr);
  // The same line from fields already serialized (LineFields): the per-step path.
  void Write(LogLevel level, std::string_view msg, const LineFields& fields);
  void Debug(std::string_view msg, const LogFields& fields = nullptr) {
    Write(LogLevel::kDebug, msg, fields);
  }
  void Info(std::string_view msg, const LogFields& fields = nullptr) {
    Write(LogLevel::kInfo, msg, fields);
  }
  void Warn(std::string_view msg, const LogFields& fields = nullptr) {
    Write(LogLevel::kWarn, msg, fields);
  }
  void Error(std::string_view msg, const LogFields& fields = nullptr) {
    Write(LogLevel::kError, msg, fields);
  }

 private:
  // To the sink, under the lock (`text` gets its newline for a moment).
  void WriteLine(std::string& text);
  // Appends {"@timestamp":..,"@level":..,"@message":.. to `text`.
  void AppendFrame(LogLevel level, std::string_view msg, std::string& text) const;

  LogLevel level_ = LogLevel::kInfo;
  mutable std::mutex mu_;
  Sink sink_;
};

// The process-wide logger.
Logger& Log();

// Sends gRPC core's own lines (gpr_log: "Failed accept4: Too many open files", ...)
// through Log() at their severity, with gRPC's file and line as fields, so that stderr
// stays one JSON object per line. Call once from main(), before the server starts.
void RouteGrpcLogging();

inline constexpr std::string_view kRedacted = "[REDACTED]";

// True for keys that name secrets: password, passwd, passphrase, secret, token,
// authorization, cookie, api_key/apikey, private_key, key_password, master_key,
// client_secret, credential... (case-insensitive, '-' and '_' ignored, substring match:
// "x-api-key", "proxy-authorization", "bearer_token", "clientSecret" all match).
bool IsSecretKey(std::string_view key);

// A copy of `fields` where every value under a secret key is replaced by "[REDACTED]",
// recursively through objects and arrays. Objects of the shape {"name": N, "value": V}
// (headers, query parameters) have V masked when N is a secret key.
LogFields Redact(LogFields fields);

// The value of an HTTP header as it may be logged: "[REDACTED]" for secret header names,
// except that an Authorization-style value keeps its scheme ("Bearer [REDACTED]").
std::string RedactHeaderValue(std::string_view name, std::string_view value);

// The message in the proto3 JSON mapping with every field annotated (wsstep.v1.secret)
// replaced by "[REDACTED]" (set fields only), at any depth. Safe to log.
LogFields RedactedJson(const google::protobuf::Message& message);

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_PROCESS_LOG_H_

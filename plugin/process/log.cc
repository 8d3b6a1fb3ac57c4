#include "plugin/process/log.h"

#include <grpc/support/log.h>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/reflection.h>
#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <ctime>

#include "plugin/process/utf8.h"
#include "wsstep/v1/options.pb.h"

namespace wsstep::plugin {
namespace {

// hclog's JSON time layout, "2006-01-02T15:04:05.000000Z07:00" in Go's notation: go-plugin
// parses @timestamp with exactly this layout (six fraction digits, Z for UTC) and drops
// a line whose timestamp does not match.
// Appends the time now as hclog writes it.
void AppendHclogTimestamp(std::string& out) {
  const auto now = std::chrono::system_clock::now();
  const auto secs = std::chrono::time_point_cast<std::chrono::seconds>(now);
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(now - secs).count();
  const std::time_t t = std::chrono::system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(micros));
  out += buf;
}

// `buf` is a whole line with its newline: one write, so concurrent lines never
// interleave (and a host reading stderr line by line always gets whole objects).
void WriteAllToStderr(std::string_view buf) {
  size_t off = 0;
  while (off < buf.size()) {
    const ssize_t n = ::write(STDERR_FILENO, buf.data() + off, buf.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // stderr gone (host closed it): nothing useful left to do
    off += static_cast<size_t>(n);
  }
}

// Lower case with '-' and '_' removed, so "X-Api-Key", "api_key" and "apiKey" compare
// equal.
std::string Canonical(std::string_view key) {
  std::string out;
  out.reserve(key.size());
  for (char c : key) {
    if (c == '-' || c == '_' || c == '.' || c == ' ') continue;
    out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return out;
}

constexpr std::array<std::string_view, 14> kSecretWords = {
    "password", "passwd",     "passphrase", "secret",     "token",
    "authorization", "cookie", "apikey",    "privatekey", "keypassword",
    "masterkey", "credential", "signature", "sessionid",
};

bool IsSecretProtoField(const google::protobuf::FieldDescriptor* field) {
  return field->options().GetExtension(wsstep::v1::secret);
}

// Clears every secret field of `m` in place, at any depth.
void ClearSecrets(google::protobuf::Message* m) {
  const auto* refl = m->GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  refl->ListFields(*m, &fields);
  for (const auto* f : fields) {
    if (IsSecretProtoField(f)) {
      refl->ClearField(m, f);
      continue;
    }
    if (f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (f->is_repeated()) {
      for (int i = 0; i < refl->FieldSize(*m, f); ++i) {
        ClearSecrets(refl->MutableRepeatedMessage(m, f, i));
      }
    } else {
      ClearSecrets(refl->MutableMessage(m, f));
    }
  }
}

bool JsonIsObjectFor(const google::protobuf::Descriptor* d) {
  // Well-known types (Duration, Timestamp, wrappers...) map to JSON scalars; maps map
  // entries to object members, not objects.
  return d->file()->package() != "google.protobuf" && !d->options().map_entry();
}

// Puts "[REDACTED]" where `original` has a secret field set, walking `json` (the JSON of
// the cleared copy, which has the same shape apart from the secrets).
void MarkSecrets(const google::protobuf::Message& original, LogFields& json) {
  if (!json.is_object()) return;
  const auto* refl = original.GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  refl->ListFields(original, &fields);
  for (const auto* f : fields) {
    const std::string& name = f->json_name();
    if (IsSecretProtoField(f)) {
      json[name] = kRedacted;
      continue;
    }
    if (f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE ||
        !JsonIsObjectFor(f->message_type()) || !json.contains(name)) {
      continue;
    }
    auto& sub = json[name];
    if (f->is_repeated()) {
      if (!sub.is_array()) continue;
      const int n = refl->FieldSize(original, f);
      for (int i = 0; i < n && static_cast<size_t>(i) < sub.size(); ++i) {
        MarkSecrets(refl->GetRepeatedMessage(original, f, i), sub[static_cast<size_t>(i)]);
      }
    } else {
      MarkSecrets(refl->GetMessage(original, f), sub);
    }
  }
}

}  // namespace

std::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

std::optional<LogLevel> LogLevelFromName(std::string_view name) {
  const std::string c = Canonical(name);
  if (c == "debug" || c == "trace") return LogLevel::kDebug;
  if (c == "info") return LogLevel::kInfo;
  if (c == "warn" || c == "warning") return LogLevel::kWarn;
  if (c == "error") return LogLevel::kError;
  return std::nullopt;
}

Logger::Logger() = default;

void Logger::SetLevel(LogLevel level) {
  std::lock_guard<std::mutex> lock(mu_);
  level_ = level;
}

LogLevel Logger::level() const {
  std::lock_guard<std::mutex> lock(mu_);
  return level_;
}

void Logger::SetSink(Sink sink) {
  std::lock_guard<std::mutex> lock(mu_);
  sink_ = std::move(sink);
}

void AppendJsonString(std::string_view text, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  // The common case, text that needs neither escaping nor repair, is copied in one go.
  const auto plain = [](unsigned char c) { return c >= 0x20 && c != '"' && c != '\\' && c < 0x80; };
  size_t i = 0;
  while (i < text.size() && plain(static_cast<unsigned char>(text[i]))) ++i;
  out += '"';
  out.append(text.data(), i);
  if (i < text.size()) {
    const std::string rest = ValidUtf8(text.substr(i));
    for (char ch : rest) {
      const auto c = static_cast<unsigned char>(ch);
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          if (c < 0x20) {
            out += "\\u00";
            out += kHex[c >> 4];
            out += kHex[c & 0xf];
          } else {
            out += ch;
          }
      }
    }
  }
  out += '"';
}

void LineFields::Key(std::string_view key) {
  text_ += ",\"";
  text_ += key;
  text_ += "\":";
}

void LineFields::Add(std::string_view key, std::string_view value) {
  Key(key);
  AppendJsonString(value, text_);
}

void LineFields::Add(std::string_view key, int64_t value) {
  Key(key);
  text_ += std::to_string(value);
}

void Logger::AppendFrame(LogLevel level, std::string_view msg, std::string& text) const {
  text += "{\"@timestamp\":\"";
  AppendHclogTimestamp(text);
  text += "\",\"@level\":\"";
  text += LogLevelName(level);
  text += "\",\"@message\":";
  AppendJsonString(msg, text);
}

void Logger::Write(LogLevel level, std::string_view msg, const LineFields& fields) {
  if (!Enabled(level)) return;
  // A step writes a line on every call: each thread builds its lines in one buffer that
  // keeps its room.
  thread_local std::string text;
  text.clear();
  AppendFrame(level, msg, text);
  text += fields.text();
  text += '}';
  WriteLine(text);
}

void Logger::Write(LogLevel level, std::string_view msg, const LogFields& fields) {
  if (!Enabled(level)) return;
  // A step writes a line on every call, so the fields are serialized in one dump (each
  // dump sets up a serializer, which costs more than the members) and spliced after the
  // frame; only fields that would shadow the frame are written member by member, without
  // them. Invalid UTF-8 in a value (a header from the wire) must not make the logger
  // throw.
  const auto dump = [](const LogFields& v, std::string& out) {
    out += v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  std::string text;
  text.reserve(256);
  AppendFrame(level, msg, text);
  if (fields.is_object() && !fields.empty()) {
    if (!fields.contains("@timestamp") && !fields.contains("@level") &&
        !fields.contains("@message")) {
      // "{...}" with its opening brace replaced by the separator; its closing brace
      // closes the line.
      const size_t at = text.size();
      dump(fields, text);
      text[at] = ',';
      WriteLine(text);
      return;
    }
    for (const auto& [k, v] : fields.items()) {
      if (k == "@timestamp" || k == "@level" || k == "@message") continue;  // the frame's
      text += ',';
      dump(LogFields(k), text);
      text += ':';
      dump(v, text);
    }
  }
  text += '}';
  WriteLine(text);
}

void Logger::WriteLine(std::string& text) {
  std::lock_guard<std::mutex> lock(mu_);
  if (sink_) {
    sink_(text);
  } else {
    text.push_back('\n');  // written with the line, not copied to it
    WriteAllToStderr(text);
    text.pop_back();
  }
}

Logger& Log() {
  static Logger* logger = new Logger();  // never destroyed: usable from any exit path
  return *logger;
}

bool IsSecretKey(std::string_view key) {
  const std::string c = Canonical(key);
  for (std::string_view w : kSecretWords) {
    if (c.find(w) != std::string::npos) return true;
  }
  return false;
}

LogFields Redact(LogFields fields) {
  if (fields.is_object()) {
    // {"name": "Authorization", "value": "..."}: a header or query parameter.
    if (fields.contains("name") && fields.contains("value") && fields["name"].is_string() &&
        IsSecretKey(fields["name"].get<std::string>())) {
      fields["value"] = kRedacted;
    }
    for (auto& [k, v] : fields.items()) {
      if (IsSecretKey(k)) {
        v = kRedacted;
      } else {
        v = Redact(std::move(v));
      }
    }
  } else if (fields.is_array()) {
    for (auto& v : fields) v = Redact(std::move(v));
  }
  return fields;
}

std::string RedactHeaderValue(std::string_view name, std::string_view value) {
  if (!IsSecretKey(name)) return std::string(value);
  const std::string c = Canonical(name);
  if (c.find("authorization") != std::string::npos) {
    // Keep the scheme: "Bearer [REDACTED]" tells the reader which auth was used.
    const size_t sp = value.find(' ');
    if (sp != std::string_view::npos && sp > 0 && sp < 32) {
      return std::string(value.substr(0, sp + 1)) + std::string(kRedacted);
    }
  }
  return std::string(kRedacted);
}

LogFields RedactedJson(const google::protobuf::Message& message) {
  std::unique_ptr<google::protobuf::Message> copy(message.New());
  copy->CopyFrom(message);
  ClearSecrets(copy.get());
  std::string text;
  if (!google::protobuf::util::MessageToJsonString(*copy, &text).ok()) {
    return LogFields{{"type", message.GetTypeName()}, {"error", "not representable as JSON"}};
  }
  LogFields json = LogFields::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return LogFields{{"type", message.GetTypeName()}};
  MarkSecrets(message, json);
  return json;
}

void RouteGrpcLogging() {
  gpr_set_log_function([](gpr_log_func_args* args) {
    const LogLevel level = args->severity == GPR_LOG_SEVERITY_ERROR   ? LogLevel::kError
                           : args->severity == GPR_LOG_SEVERITY_INFO ? LogLevel::kInfo
                                                                     : LogLevel::kDebug;
    if (!Log().Enabled(level)) return;
    LogFields f = LogFields::object();
    f["source"] = "grpc";
    f["grpc_message"] = ValidUtf8(args->message != nullptr ? args->message : "");
    f["file"] = ValidUtf8(args->file != nullptr ? args->file : "");
    f["line"] = args->line;
    Log().Write(level, "grpc", f);
  });
}

}  // namespace wsstep::plugin

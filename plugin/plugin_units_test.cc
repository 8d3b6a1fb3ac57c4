// Unit tests of the plugin's building blocks (config layering, log redaction, error
// mapping, handshake line, listen addresses, JSON Schemas) and of the services running
// in-process against fake backends. One binary on purpose: every plugin test links gRPC.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <random>
#include <unistd.h>

#include <condition_variable>
#include <fstream>
#include <map>
#include <sys/stat.h>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/ossl.h"
#include "google/rpc/error_details.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "google/rpc/status.pb.h"
#include "plugin/automtls.h"
#include "plugin/call_context.h"
#include "plugin/config.h"
#include "plugin/handshake.h"
#include "plugin/health_service.h"
#include "plugin/listen.h"
#include "plugin/log.h"
#include "plugin/schema.h"
#include "plugin/server.h"
#include "plugin/status_map.h"
#include "plugin/step_convert.h"
#include "wsstep/v1/certificate_service.grpc.pb.h"
#include "wsstep/v1/step_plugin_service.grpc.pb.h"

namespace wsstep::plugin {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

EnvLookup MapEnv(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/" + name + "-" + std::to_string(::getpid());
}

// ---------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------

TEST(ConfigTest, DefaultsWithoutAnyLayer) {
  auto c = LoadConfig({}, MapEnv({{"HOME", "/home/ann"}}));
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->data_dir, "/home/ann/.local/share/wsstep");
  EXPECT_EQ(c->listen, "unix:///home/ann/.local/share/wsstep/wsstep.sock");
  EXPECT_THAT(c->protected_environments, ElementsAre("production"));
  EXPECT_EQ(c->limits.max_in_flight_steps, 256);
  EXPECT_EQ(c->log_level, LogLevel::kInfo);
  EXPECT_FALSE(c->master_key.has_value());
}

TEST(ConfigTest, FlagsBeatEnvironmentWhichBeatsTheFile) {
  const std::string file = TempPath("config.json");
  {
    std::ofstream out(file);
    out << R"({"data_dir": "/from/file", "listen": "127.0.0.1:7000",
               "protected_environments": ["prod", "live"],
               "limits": {"max_in_flight_steps": 7, "max_body_bytes": 1000},
               "shutdown_grace": "3s", "log_level": "debug"})";
  }
  ConfigLayer flags;
  flags.listen = "unix:///from/flags.sock";
  auto c = LoadConfig(flags, MapEnv({{"WSSTEP_CONFIG", file},
                                     {"WSSTEP_DATA_DIR", "/from/env"},
                                     {"WSSTEP_LISTEN", "127.0.0.1:8000"},
                                     {"WSSTEP_MAX_IN_FLIGHT_STEPS", "9"}}));
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->config_file, file);
  EXPECT_EQ(c->data_dir, "/from/env");               // env over file
  EXPECT_EQ(c->listen, "unix:///from/flags.sock");   // flags over env
  EXPECT_EQ(c->limits.max_in_flight_steps, 9);       // env over file
  EXPECT_EQ(c->limits.max_body_bytes, 1000);         // file over default
  EXPECT_THAT(c->protected_environments, ElementsAre("prod", "live"));
  EXPECT_EQ(c->shutdown_grace, std::chrono::seconds(3));
  EXPECT_EQ(c->log_level, LogLevel::kDebug);
  ::unlink(file.c_str());
}

TEST(ConfigTest, SpinWaitComesFromFileOrEnvironmentWithinItsBounds) {
  auto d = LoadConfig({}, MapEnv({{"HOME", "/h"}}));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->spin_wait, std::chrono::microseconds(250));
  EXPECT_EQ(d->Describe()["spin_wait_us"], 250);

  auto file = LayerFromJson(R"({"spin_wait_us": 0})", "c.json");
  ASSERT_TRUE(file.ok()) << file.error().ToString();
  EXPECT_EQ(file->spin_wait_us, 0);
  auto env = LoadConfig({}, MapEnv({{"WSSTEP_SPIN_WAIT_US", "1000"}, {"HOME", "/h"}}));
  ASSERT_TRUE(env.ok()) << env.error().ToString();
  EXPECT_EQ(env->spin_wait, std::chrono::microseconds(1000));

  auto big = LoadConfig({}, MapEnv({{"WSSTEP_SPIN_WAIT_US", "10001"}, {"HOME", "/h"}}));
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code, Code::kInvalidArgument);
  EXPECT_THAT(big.error().message,
              HasSubstr("spin_wait_us must be between 0 (never spin) and 10000 (got 10001)"));
  auto negative = LoadConfig({}, MapEnv({{"WSSTEP_SPIN_WAIT_US", "-1"}, {"HOME", "/h"}}));
  ASSERT_FALSE(negative.ok());
  auto words = LoadConfig({}, MapEnv({{"WSSTEP_SPIN_WAIT_US", "fast"}, {"HOME", "/h"}}));
  ASSERT_FALSE(words.ok());
  EXPECT_EQ(words.error().message, "WSSTEP_SPIN_WAIT_US: 'fast' is not an integer");
  auto typed = LayerFromJson(R"({"spin_wait_us": "250"})", "c.json");
  ASSERT_FALSE(typed.ok());
  EXPECT_THAT(typed.error().message, HasSubstr("\"spin_wait_us\" has the wrong type"));
}

TEST(ConfigTest, EmptyProtectedEnvironmentsVariableProtectsNone) {
  auto c = LoadConfig({}, MapEnv({{"WSSTEP_PROTECTED_ENVIRONMENTS", ""}, {"HOME", "/h"}}));
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->protected_environments.empty());
}

TEST(ConfigTest, ErrorsNameTheInput) {
  auto unknown = LayerFromJson(R"({"lissten": "x"})", "wsstep.json");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, Code::kInvalidArgument);
  EXPECT_EQ(unknown.error().message, "wsstep.json: unknown key \"lissten\"");

  auto typed = LayerFromJson(R"({"allow_remote": "yes"})", "c.json");
  ASSERT_FALSE(typed.ok());
  EXPECT_THAT(typed.error().message, HasSubstr("\"allow_remote\" has the wrong type"));

  auto key = LayerFromJson(R"({"master_key": "abc"})", "c.json");
  ASSERT_FALSE(key.ok());
  EXPECT_THAT(key.error().message, HasSubstr("not accepted in a config file"));

  auto env = LoadConfig({}, MapEnv({{"WSSTEP_MAX_BODY_BYTES", "lots"}}));
  ASSERT_FALSE(env.ok());
  EXPECT_EQ(env.error().message, "WSSTEP_MAX_BODY_BYTES: 'lots' is not an integer");

  auto level = LoadConfig({}, MapEnv({{"WSSTEP_LOG_LEVEL", "loud"}}));
  ASSERT_FALSE(level.ok());
  EXPECT_THAT(level.error().message, HasSubstr("log level 'loud'"));

  auto master = LoadConfig({}, MapEnv({{"WSSTEP_MASTER_KEY", "dG9vIHNob3J0"}}));
  ASSERT_FALSE(master.ok());
  EXPECT_EQ(master.error().code, Code::kMasterKeyError);
  EXPECT_THAT(master.error().message, HasSubstr("WSSTEP_MASTER_KEY"));
}

TEST(ConfigTest, MasterKeyFromEnvironmentIsDecodedAndNeverDescribed) {
  const std::string b64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";  // bytes 0..31
  auto c = LoadConfig({}, MapEnv({{"WSSTEP_MASTER_KEY", b64}, {"HOME", "/h"}}));
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  ASSERT_TRUE(c->master_key.has_value());
  EXPECT_EQ(c->master_key->bytes().size(), 32u);
  const std::string described = c->Describe().dump();
  EXPECT_THAT(described, HasSubstr("\"master_key_from_environment\":true"));
  EXPECT_THAT(described, ::testing::Not(HasSubstr(b64)));
}

TEST(ConfigTest, ParseDuration) {
  EXPECT_EQ(*ParseDuration("10", "x"), std::chrono::seconds(10));
  EXPECT_EQ(*ParseDuration("250ms", "x"), std::chrono::milliseconds(250));
  EXPECT_EQ(*ParseDuration("2m", "x"), std::chrono::minutes(2));
  EXPECT_FALSE(ParseDuration("2h", "x").ok());
  EXPECT_FALSE(ParseDuration("soon", "x").ok());
}

// ---------------------------------------------------------------------------------------
// Logging and redaction
// ---------------------------------------------------------------------------------------

TEST(StatusMapTest, ValidUtf8KeepsWellFormedTextAndReplacesEveryOtherByte) {
  EXPECT_EQ(ValidUtf8("plain ascii"), "plain ascii");
  EXPECT_EQ(ValidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  const std::string r = "\xef\xbf\xbd";
  EXPECT_EQ(ValidUtf8("caf\xe9"), "caf" + r);                      // Latin-1
  EXPECT_EQ(ValidUtf8("\xc0\xaf"), r + r);                         // overlong '/'
  EXPECT_EQ(ValidUtf8("\xed\xa0\x80"), r + r + r);                 // a UTF-16 surrogate
  EXPECT_EQ(ValidUtf8("\xf4\x90\x80\x80"), r + r + r + r);         // above U+10FFFF
  EXPECT_EQ(ValidUtf8("a\xe2\x82"), "a" + r + r);                  // cut short
  EXPECT_EQ(ValidUtf8(std::string("\x00\xff", 2)), std::string("\x00", 1) + r);
}

TEST(StatusMapTest, TakeValidUtf8KeepsAValidStringsBufferAndRepairsLikeValidUtf8) {
  const std::string r = "\xef\xbf\xbd";
  for (std::string t : {std::string("plain ascii"), std::string("caf\xe9"), std::string("\xc0\xaf"),
                        std::string("\xed\xa0\x80"), std::string("a\xe2\x82"),
                        std::string("\x00\xff", 2), std::string("caf\xc3\xa9 \xf0\x9f\x98\x80")}) {
    const std::string expected = ValidUtf8(t);
    EXPECT_EQ(TakeValidUtf8(std::string(t)), expected);
  }
  std::string valid(200, 'x');
  valid += "\xe2\x82\xac";  // beyond the small-string buffer: the heap block moves along
  const char* block = valid.data();
  const std::string taken = TakeValidUtf8(std::move(valid));
  EXPECT_EQ(taken.data(), block);
  EXPECT_EQ(taken.size(), 203u);
}

TEST(LogTest, LinesAreOneJsonObjectWithTheFrameFirst) {
  Logger logger;
  std::vector<std::string> lines;
  logger.SetSink([&](std::string_view l) { lines.emplace_back(l); });
  logger.Info("step finished", {{"step_id", "s-1"}, {"http_status", 200}, {"msg", "spoof"}});
  logger.Debug("hidden at info");
  ASSERT_EQ(lines.size(), 1u);
  const auto j = nlohmann::ordered_json::parse(lines[0]);
  auto it = j.begin();
  EXPECT_EQ(it.key(), "time");
  EXPECT_EQ((++it).key(), "level");
  EXPECT_EQ((++it).key(), "msg");
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["msg"], "step finished");  // a field cannot overwrite the frame
  EXPECT_EQ(j["step_id"], "s-1");
  EXPECT_EQ(j["http_status"], 200);
  EXPECT_EQ(lines[0].find('\n'), std::string::npos);
}

TEST(LogTest, FieldsFollowTheFrameExactlyWithInvalidUtf8Replaced) {
  Logger logger;
  std::vector<std::string> lines;
  logger.SetSink([&](std::string_view l) { lines.emplace_back(l); });
  logger.Info("m", {{"a", "x\xff"}, {"n", {{"k", 1}}}, {"b", true}});
  logger.Warn("no fields", LogFields::object());
  logger.Error("null fields");
  ASSERT_EQ(lines.size(), 3u);
  // After "{"time":"2026-...Z"," comes the rest, byte for byte.
  auto rest = [](const std::string& line) { return line.substr(line.find("\"level\"")); };
  EXPECT_EQ(rest(lines[0]), "\"level\":\"info\",\"msg\":\"m\",\"a\":\"x\xef\xbf\xbd\",\"n\":{\"k\":1},\"b\":true}");
  EXPECT_EQ(rest(lines[1]), "\"level\":\"warn\",\"msg\":\"no fields\"}");
  EXPECT_EQ(rest(lines[2]), "\"level\":\"error\",\"msg\":\"null fields\"}");
  for (const auto& line : lines) EXPECT_TRUE(nlohmann::ordered_json::accept(line)) << line;
}

TEST(LogTest, AppendJsonStringEscapesAsNlohmannDoes) {
  // Every ASCII byte alone and in company, and multi-byte UTF-8: byte for byte what
  // nlohmann::json::dump writes for the same string.
  std::vector<std::string> cases = {"", "plain", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                                    "q\"b\\s/\x7f", "tab\tnl\ncr\rbs\bff\f"};
  for (int c = 0; c < 0x80; ++c) {
    cases.push_back(std::string(1, static_cast<char>(c)));
    cases.push_back("a" + std::string(1, static_cast<char>(c)) + "\xc3\xa9z");
  }
  std::mt19937 rng(7);
  const std::vector<std::string> pieces = {"a", "\"", "\\", "\x01", "\x1f", "\n", "\xc3\xa9", "\xe2\x82\xac", " "};
  for (int i = 0; i < 500; ++i) {
    std::string t;
    for (int k = static_cast<int>(rng() % 12); k > 0; --k) t += pieces[rng() % pieces.size()];
    cases.push_back(t);
  }
  for (const auto& t : cases) {
    std::string ours;
    AppendJsonString(t, ours);
    EXPECT_EQ(ours, nlohmann::json(t).dump()) << nlohmann::json(t).dump();
  }
}

TEST(LogTest, AppendJsonStringRepairsInvalidUtf8) {
  std::string out;
  AppendJsonString("x\xff\"y\xc3", out);
  EXPECT_EQ(out, "\"x\xef\xbf\xbd\\\"y\xef\xbf\xbd\"");
  EXPECT_TRUE(nlohmann::json::accept(out));
}

TEST(LogTest, LineFieldsFollowTheFrameExactly) {
  Logger logger;
  std::vector<std::string> lines;
  logger.SetSink([&](std::string_view l) { lines.emplace_back(l); });
  LineFields f;
  f.Add("method", "/wsstep.v1.StepPluginService/ExecuteRestStep");
  f.Add("step_id", "s\"1");
  f.Add("http_status", 200);
  f.Add("duration_ms", int64_t{-3});
  logger.Write(LogLevel::kInfo, "step finished", f);
  logger.Write(LogLevel::kWarn, "no fields", LineFields());
  logger.Write(LogLevel::kDebug, "hidden at info", f);
  ASSERT_EQ(lines.size(), 2u);
  auto rest = [](const std::string& line) { return line.substr(line.find("\"level\"")); };
  EXPECT_EQ(rest(lines[0]),
            "\"level\":\"info\",\"msg\":\"step finished\",\"method\":\"/wsstep.v1.StepPluginService/"
            "ExecuteRestStep\",\"step_id\":\"s\\\"1\",\"http_status\":200,\"duration_ms\":-3}");
  EXPECT_EQ(rest(lines[1]), "\"level\":\"warn\",\"msg\":\"no fields\"}");
  for (const auto& line : lines) {
    ASSERT_TRUE(nlohmann::ordered_json::accept(line)) << line;
    EXPECT_EQ(line.rfind("{\"time\":\"", 0), 0u) << line;
  }
}

TEST(LogTest, RedactMasksSecretKeysAndSecretHeaders) {
  LogFields f = {{"password", "hunter2"},
                 {"X-Api-Key", "k"},
                 {"clientSecret", "s"},
                 {"user", "ann"},
                 {"headers",
                  {{{"name", "Authorization"}, {"value", "Bearer abc"}},
                   {{"name", "Accept"}, {"value", "text/xml"}}}},
                 {"nested", {{"bearer_token", "t"}, {"host", "api.example"}}}};
  const std::string out = Redact(f).dump();
  for (const char* secret : {"hunter2", "\"k\"", "\"s\"", "Bearer abc", "\"t\""}) {
    EXPECT_THAT(out, ::testing::Not(HasSubstr(secret))) << out;
  }
  EXPECT_THAT(out, HasSubstr("\"user\":\"ann\""));
  EXPECT_THAT(out, HasSubstr("text/xml"));
  EXPECT_THAT(out, HasSubstr("api.example"));
}

TEST(LogTest, RedactHeaderValueKeepsTheScheme) {
  EXPECT_EQ(RedactHeaderValue("Authorization", "Bearer abc.def"), "Bearer [REDACTED]");
  EXPECT_EQ(RedactHeaderValue("Proxy-Authorization", "Basic dXNlcjpwdw=="), "Basic [REDACTED]");
  EXPECT_EQ(RedactHeaderValue("Cookie", "session=1"), "[REDACTED]");
  EXPECT_EQ(RedactHeaderValue("Accept", "application/json"), "application/json");
}

TEST(LogTest, RedactedJsonClearsEverySecretProtoField) {
  v1::ExecuteRestStepRequest req;
  req.mutable_step()->set_url("https://api.example/x");
  req.mutable_step()->mutable_auth()->mutable_basic()->set_username("ann");
  req.mutable_step()->mutable_auth()->mutable_basic()->set_password("pässwörd");
  v1::CreateCertificateRequest create;
  create.mutable_certificate()->set_name("bank");
  create.mutable_material()->set_content("key store bytes");
  create.mutable_material()->mutable_password()->set_value("p12 secret");
  create.mutable_material()->set_content_name("client.p12");

  const LogFields rest = RedactedJson(req);
  EXPECT_EQ(rest["step"]["auth"]["basic"]["password"], "[REDACTED]");
  EXPECT_EQ(rest["step"]["auth"]["basic"]["username"], "ann");
  EXPECT_EQ(rest["step"]["url"], "https://api.example/x");

  const LogFields cert = RedactedJson(create);
  EXPECT_EQ(cert["material"]["content"], "[REDACTED]");
  EXPECT_EQ(cert["material"]["password"], "[REDACTED]");
  EXPECT_EQ(cert["material"]["contentName"], "client.p12");
  const std::string text = cert.dump();
  EXPECT_THAT(text, ::testing::Not(HasSubstr("p12 secret")));
  EXPECT_THAT(text, ::testing::Not(HasSubstr("cDEyIHNlY3JldA")));  // base64 of it
  // The original is untouched.
  EXPECT_EQ(req.step().auth().basic().password(), "pässwörd");
}

// ---------------------------------------------------------------------------------------
// Error mapping
// ---------------------------------------------------------------------------------------

TEST(StatusMapTest, EveryCatalogCodeHasItsProtoValue) {
  for (int i = static_cast<int>(Code::kInvalidCertificateFormat);
       i <= static_cast<int>(Code::kInternal); ++i) {
    const Code code = static_cast<Code>(i);
    const v1::ErrorCode proto = ToProtoErrorCode(code);
    EXPECT_NE(proto, v1::ERROR_CODE_UNSPECIFIED) << CodeName(code);
    EXPECT_EQ(v1::ErrorCode_Name(proto), "ERROR_CODE_" + std::string(CodeName(code)));
    EXPECT_EQ(FromProtoErrorCode(proto), code) << CodeName(code);
  }
  EXPECT_EQ(ToProtoErrorCode(Code::kOk), v1::ERROR_CODE_UNSPECIFIED);
}

TEST(StatusMapTest, StepErrorCarriesNameEnumHintSideAndDetail) {
  Error e(Code::kClientCertRejected,
          "api.bank.example:443 rejected the client certificate 'bank' (unknown_ca)",
          "ask the bank to trust the issuing CA", Side::kServer);
  e.With("alert", "unknown_ca").With("host", "api.bank.example");
  v1::StepError out;
  FillStepError(e, &out);
  EXPECT_EQ(out.code(), "CLIENT_CERT_REJECTED");
  EXPECT_EQ(out.error_code(), v1::ERROR_CODE_CLIENT_CERT_REJECTED);
  EXPECT_EQ(out.message(), e.message);
  EXPECT_EQ(out.hint(), e.hint);
  EXPECT_EQ(out.side(), v1::ERROR_SIDE_SERVER);
  EXPECT_EQ(out.detail().at("alert"), "unknown_ca");
  const Error back = FromStepError(out);
  EXPECT_EQ(back.code, e.code);
  EXPECT_EQ(back.detail, e.detail);
}

TEST(StatusMapTest, GrpcCodes) {
  EXPECT_EQ(GrpcCodeFor(Code::kWrongPassword), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(GrpcCodeFor(Code::kInvalidStepConfig), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(GrpcCodeFor(Code::kNotFound), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(GrpcCodeFor(Code::kDuplicateName), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(GrpcCodeFor(Code::kFailedPrecondition), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(GrpcCodeFor(Code::kMasterKeyError), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(GrpcCodeFor(Code::kTimeout), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(GrpcCodeFor(Code::kStorageError), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(GrpcCodeFor(Code::kInternal), grpc::StatusCode::INTERNAL);
}

TEST(StatusMapTest, ContractErrorCarriesErrorInfoAndFieldViolations) {
  Error e(Code::kWrongPassword, "client.p12: wrong password", "check the PKCS#12 password",
          Side::kConfiguration);
  e.With("field", "material.password");
  const grpc::Status s = ToGrpcStatus(e, {{"material.content_name", "example"}});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "client.p12: wrong password (check the PKCS#12 password)");

  // Decoded with the raw google.rpc types, as any client would.
  google::rpc::Status rich;
  ASSERT_TRUE(rich.ParseFromString(s.error_details()));
  EXPECT_EQ(rich.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  ASSERT_EQ(rich.details_size(), 2);
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(rich.details(0).UnpackTo(&info));
  EXPECT_EQ(rich.details(0).type_url(), "type.googleapis.com/google.rpc.ErrorInfo");
  EXPECT_EQ(info.reason(), "WRONG_PASSWORD");
  EXPECT_EQ(info.domain(), "wsstep.dev");
  EXPECT_EQ(info.metadata().at("hint"), "check the PKCS#12 password");
  EXPECT_EQ(info.metadata().at("side"), "CONFIGURATION");
  google::rpc::BadRequest bad;
  ASSERT_TRUE(rich.details(1).UnpackTo(&bad));
  ASSERT_EQ(bad.field_violations_size(), 2);
  EXPECT_EQ(bad.field_violations(0).field(), "material.content_name");
  EXPECT_EQ(bad.field_violations(1).field(), "material.password");
  EXPECT_EQ(bad.field_violations(1).description(), "client.p12: wrong password");

  const StatusDetails d = DecodeStatusDetails(s);
  EXPECT_EQ(d.reason, "WRONG_PASSWORD");
  EXPECT_EQ(d.violations.size(), 2u);
}

TEST(StatusMapTest, NotFoundHasNoBadRequest) {
  const grpc::Status s = ToGrpcStatus(Error(Code::kNotFound, "certificate 'x' not found"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  const StatusDetails d = DecodeStatusDetails(s);
  EXPECT_EQ(d.reason, "NOT_FOUND");
  EXPECT_TRUE(d.violations.empty());
}

// ---------------------------------------------------------------------------------------
// Handshake, base64, AutoMTLS certificates
// ---------------------------------------------------------------------------------------

TEST(HandshakeTest, FormatsFiveFieldsWithoutCertificateAndSixWith) {
  HandshakeLine line;
  line.network = "unix";
  line.address = "/tmp/wsstep-abc/plugin.sock";
  EXPECT_EQ(FormatHandshakeLine(line), "1|1|unix|/tmp/wsstep-abc/plugin.sock|grpc");
  line.server_cert_der = std::string("\x30\x82\x01\x0a\xff", 5);
  EXPECT_EQ(FormatHandshakeLine(line), "1|1|unix|/tmp/wsstep-abc/plugin.sock|grpc|MIIBCv8");
}

TEST(HandshakeTest, ParsesWhatItFormatsAndRejectsLogLines) {
  auto p = ParseHandshakeLine("1|1|tcp|127.0.0.1:4321|grpc|MIIBCv8\n");
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  EXPECT_EQ(p->network, "tcp");
  EXPECT_EQ(p->address, "127.0.0.1:4321");
  EXPECT_EQ(p->protocol, "grpc");
  EXPECT_EQ(p->server_cert_der, std::string("\x30\x82\x01\x0a\xff", 5));
  EXPECT_FALSE(ParseHandshakeLine(R"({"level":"info","msg":"serving"})").ok());
  EXPECT_FALSE(ParseHandshakeLine("x|1|unix|/s|grpc").ok());
  EXPECT_FALSE(ParseHandshakeLine("1|1|pipe|/s|grpc").ok());
}

TEST(HandshakeTest, Base64RawStdMatchesGo) {
  // Go: base64.RawStdEncoding.EncodeToString([]byte("any carnal pleas")) etc.
  EXPECT_EQ(Base64RawStdEncode("any carnal pleas"), "YW55IGNhcm5hbCBwbGVhcw");
  EXPECT_EQ(Base64RawStdEncode("any carnal pleasu"), "YW55IGNhcm5hbCBwbGVhc3U");
  EXPECT_EQ(Base64RawStdEncode("any carnal pleasur"), "YW55IGNhcm5hbCBwbGVhc3Vy");
  EXPECT_EQ(Base64RawStdEncode(std::string("\xfb\xff", 2)), "+/8");
  EXPECT_EQ(*Base64RawStdDecode("YW55IGNhcm5hbCBwbGVhcw"), "any carnal pleas");
  EXPECT_EQ(*Base64RawStdDecode("YW55IGNhcm5hbCBwbGVhcw=="), "any carnal pleas");
  EXPECT_FALSE(Base64RawStdDecode("YW5-").has_value());
  EXPECT_FALSE(Base64RawStdDecode("Y").has_value());
}

TEST(HandshakeTest, ReadsTheHostEnvironment) {
  auto h = ReadHandshakeEnv(MapEnv({{"WSSTEP_PLUGIN", std::string(kMagicCookieValue)},
                                    {"PLUGIN_PROTOCOL_VERSIONS", "3, 1,x"},
                                    {"PLUGIN_MIN_PORT", "10000"},
                                    {"PLUGIN_MAX_PORT", "10010"},
                                    {"WSSTEP_PLUGIN_NETWORK", "tcp"},
                                    {"WSSTEP_PLUGIN_WATCH_STDIN", "false"}}));
  EXPECT_EQ(h.cookie, CookieState::kMatches);
  EXPECT_THAT(h.protocol_versions, ElementsAre(3, 1));
  EXPECT_EQ(h.min_port, 10000);
  EXPECT_EQ(h.max_port, 10010);
  EXPECT_TRUE(h.use_tcp);
  EXPECT_FALSE(h.watch_stdin);
  EXPECT_EQ(ReadHandshakeEnv(MapEnv({})).cookie, CookieState::kAbsent);
  EXPECT_EQ(ReadHandshakeEnv(MapEnv({{"WSSTEP_PLUGIN", "other"}})).cookie, CookieState::kWrong);

  bool compatible = false;
  EXPECT_EQ(NegotiateAppProtocol({3, 1}, &compatible), 1);
  EXPECT_TRUE(compatible);
  NegotiateAppProtocol({2}, &compatible);
  EXPECT_FALSE(compatible);
  NegotiateAppProtocol({}, &compatible);
  EXPECT_TRUE(compatible);
}

TEST(AutoMtlsTest, SelfSignedCertificateHasTheGoPluginShape) {
  auto cert = GenerateSelfSignedCertificate("localhost", std::chrono::hours(1));
  ASSERT_TRUE(cert.ok()) << cert.error().ToString();
  EXPECT_THAT(cert->cert_pem, HasSubstr("BEGIN CERTIFICATE"));
  EXPECT_THAT(std::string(cert->key_pem.view()), HasSubstr("BEGIN PRIVATE KEY"));
  const auto* p = reinterpret_cast<const unsigned char*>(cert->cert_der.data());
  ossl::X509Ptr x(d2i_X509(nullptr, &p, static_cast<long>(cert->cert_der.size())));
  ASSERT_TRUE(x);
  EXPECT_EQ(X509_check_host(x.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(x.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ca(x.get()), 1);
  EXPECT_EQ(X509_check_issued(x.get(), x.get()), X509_V_OK);  // self-signed
  ossl::EvpPkeyPtr key(X509_get_pubkey(x.get()));
  EXPECT_EQ(EVP_PKEY_get_id(key.get()), EVP_PKEY_EC);
  EXPECT_EQ(EVP_PKEY_get_bits(key.get()), 256);
  // Valid now, not for long.
  EXPECT_LT(X509_cmp_current_time(X509_get0_notBefore(x.get())), 0);
  EXPECT_GT(X509_cmp_current_time(X509_get0_notAfter(x.get())), 0);
  auto pem = DerToPem(cert->cert_der);
  ASSERT_TRUE(pem.ok());
  EXPECT_EQ(*pem, cert->cert_pem);
  EXPECT_TRUE(CheckPemCertificates(cert->cert_pem, "PLUGIN_CLIENT_CERT").ok());
  EXPECT_EQ(CheckPemCertificates("garbage", "PLUGIN_CLIENT_CERT").code(), Code::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------
// Listen addresses
// ---------------------------------------------------------------------------------------

TEST(ListenTest, ParsesUnixAndTcpForms) {
  EXPECT_EQ(ParseListenAddress("unix:///run/w.sock")->path, "/run/w.sock");
  EXPECT_EQ(ParseListenAddress("unix:/run/w.sock")->path, "/run/w.sock");
  EXPECT_EQ(ParseListenAddress("/run/w.sock")->GrpcUri(), "unix:///run/w.sock");
  auto tcp = ParseListenAddress("tcp://127.0.0.1:7443");
  ASSERT_TRUE(tcp.ok());
  EXPECT_EQ(tcp->kind, ListenAddress::Kind::kTcp);
  EXPECT_EQ(tcp->port, 7443);
  EXPECT_EQ(ParseListenAddress("[::1]:0")->GrpcUri(), "[::1]:0");
  EXPECT_FALSE(ParseListenAddress("::1:80").ok());
  EXPECT_FALSE(ParseListenAddress("localhost:99999").ok());
  EXPECT_FALSE(ParseListenAddress("unix://" + std::string(200, 'a')).ok());
}

TEST(ListenTest, RefusesRemoteTcpUnlessAllowed) {
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.3.2.1"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_FALSE(IsLoopbackHost("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackHost("10.1.2.3"));
  const auto remote = *ParseListenAddress("0.0.0.0:7443");
  EXPECT_EQ(CheckListenPolicy(remote, false).code(), Code::kInvalidArgument);
  EXPECT_TRUE(CheckListenPolicy(remote, true).ok());
  EXPECT_TRUE(CheckListenPolicy(*ParseListenAddress("/tmp/x.sock"), false).ok());
}

TEST(ListenTest, PreparesPrivateDirectories) {
  auto dir = MakePrivateTempDir("");
  ASSERT_TRUE(dir.ok()) << dir.error().ToString();
  struct stat st{};
  ASSERT_EQ(::stat(dir->c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  const std::string nested = *dir + "/a/b/plugin.sock";
  ASSERT_TRUE(PrepareUnixSocketPath(nested).ok());
  ASSERT_EQ(::stat((*dir + "/a/b").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // A regular file where the socket should go is never removed.
  { std::ofstream(*dir + "/a/b/plugin.sock") << "data"; }
  EXPECT_EQ(PrepareUnixSocketPath(nested).code(), Code::kInvalidArgument);
  ::unlink(nested.c_str());
  ::rmdir((*dir + "/a/b").c_str());
  ::rmdir((*dir + "/a").c_str());
  ::rmdir(dir->c_str());
}

// ---------------------------------------------------------------------------------------
// JSON Schemas
// ---------------------------------------------------------------------------------------

TEST(SchemaTest, RestStepSchemaIsGeneratedFromTheProto) {
  const auto s = nlohmann::json::parse(StepConfigSchema(v1::RestStep::descriptor()));
  EXPECT_EQ(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
  EXPECT_EQ(s["$ref"], "#/$defs/wsstep.v1.RestStep");
  const auto& rest = s["$defs"]["wsstep.v1.RestStep"];
  EXPECT_EQ(rest["properties"]["maxResponseBytes"]["type"], nlohmann::json({"integer", "string"}));
  EXPECT_EQ(rest["properties"]["body"]["contentEncoding"], "base64");
  EXPECT_EQ(rest["additionalProperties"], false);
  // Descriptions come from the proto comments.
  EXPECT_THAT(rest["properties"]["url"]["description"].get<std::string>(),
              HasSubstr("Absolute http(s) URL"));
  // Secrets are write-only.
  const auto& basic = s["$defs"]["wsstep.v1.BasicAuth"];
  EXPECT_EQ(basic["properties"]["password"]["writeOnly"], true);
  EXPECT_FALSE(basic["properties"]["username"].contains("writeOnly"));
  // Wrappers and enums.
  const auto& tls = s["$defs"]["wsstep.v1.TlsOptions"];
  EXPECT_EQ(tls["properties"]["verifyPeer"]["type"], "boolean");
  EXPECT_THAT(tls["properties"]["minTlsVersion"]["enum"].dump(), HasSubstr("TLS_VERSION_1_3"));
  // A oneof allows one member at most.
  ASSERT_TRUE(s["$defs"]["wsstep.v1.HttpAuth"].contains("allOf"));
  EXPECT_EQ(s["$defs"]["wsstep.v1.HttpAuth"]["allOf"][0]["oneOf"].size(), 5u);
}

TEST(SchemaTest, SoapStepSchemaHandlesTheRecursiveElementTree) {
  const auto s = nlohmann::json::parse(StepConfigSchema(v1::SoapStep::descriptor()));
  const auto& el = s["$defs"]["wsstep.v1.XmlElement"];
  EXPECT_EQ(el["properties"]["children"]["items"]["$ref"], "#/$defs/wsstep.v1.XmlElement");
  EXPECT_EQ(s["$defs"]["wsstep.v1.WsSecurity"]["properties"]["timestampTtl"]["pattern"],
            "^-?[0-9]+(\\.[0-9]{1,9})?s$");
}

// ---------------------------------------------------------------------------------------
// Step conversion
// ---------------------------------------------------------------------------------------

v1::RestStep OAuth2RestStep(v1::OAuth2ClientCredentials::ClientAuthentication method) {
  v1::RestStep step;
  step.set_url("https://api.example.test/x");
  auto* o = step.mutable_auth()->mutable_oauth2_client_credentials();
  o->set_token_url("https://auth.example.test/token");
  o->set_client_id("c");
  o->set_client_secret("s");
  o->set_client_authentication(method);
  return step;
}

TEST(PluginStepConvertTest, OAuth2ClientAuthenticationReachesTheEngine) {
  using P = v1::OAuth2ClientCredentials;
  const std::pair<P::ClientAuthentication, rest::OAuth2ClientAuth> cases[] = {
      {P::CLIENT_AUTHENTICATION_UNSPECIFIED, rest::OAuth2ClientAuth::kUnspecified},
      {P::CLIENT_AUTHENTICATION_CLIENT_SECRET_BASIC, rest::OAuth2ClientAuth::kClientSecretBasic},
      {P::CLIENT_AUTHENTICATION_CLIENT_SECRET_POST, rest::OAuth2ClientAuth::kClientSecretPost},
      {P::CLIENT_AUTHENTICATION_TLS_CLIENT_AUTH, rest::OAuth2ClientAuth::kTlsClientAuth},
  };
  for (const auto& [proto, engine] : cases) {
    auto s = RestStepFromProto(OAuth2RestStep(proto), "", StepLimits{});
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    const auto* oauth = std::get_if<rest::OAuth2ClientCredentials>(&s->auth);
    ASSERT_NE(oauth, nullptr);
    EXPECT_EQ(oauth->client_authentication, engine) << proto;
    EXPECT_EQ(oauth->client_secret.view(), "s");
  }
}

TEST(PluginStepConvertTest, UnknownOAuth2ClientAuthenticationIsInvalidStepConfig) {
  auto s = RestStepFromProto(
      OAuth2RestStep(static_cast<v1::OAuth2ClientCredentials::ClientAuthentication>(9)), "",
      StepLimits{});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Code::kInvalidStepConfig);
  EXPECT_EQ(s.error().detail.at("field"), "auth.oauth2_client_credentials.client_authentication");
}

TEST(PluginStepConvertTest, SoapRawBodyAndHeaderBlocksAreBoundedByMaxBodyBytes) {
  StepLimits limits;
  limits.max_body_bytes = 100;
  v1::SoapStep step;
  step.set_endpoint("https://soap.example.test/ws");
  step.set_raw_body(std::string(60, 'b'));
  step.add_header_blocks(std::string(40, 'h'));  // exactly at the limit: fine
  auto at_limit = SoapStepFromProto(step, limits);
  ASSERT_TRUE(at_limit.ok()) << at_limit.error().ToString();
  EXPECT_EQ(at_limit->header_blocks.size(), 1u);

  step.add_header_blocks("<x/>");  // the second block takes the envelope over
  auto over = SoapStepFromProto(step, limits);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().code, Code::kInvalidStepConfig);
  EXPECT_EQ(over.error().detail.at("field"), "header_blocks[1]");
  EXPECT_EQ(over.error().detail.at("limit"), "100");
  EXPECT_EQ(over.error().message,
            "header_blocks[1]: with raw_body and the blocks before it, 104 bytes, above the "
            "plugin's max_body_bytes of 100");

  step.clear_header_blocks();
  step.set_raw_body(std::string(101, 'b'));
  auto big_body = SoapStepFromProto(step, limits);
  ASSERT_FALSE(big_body.ok());
  EXPECT_EQ(big_body.error().code, Code::kInvalidStepConfig);
  EXPECT_EQ(big_body.error().detail.at("field"), "raw_body");
  EXPECT_EQ(big_body.error().message, "raw_body: 101 bytes, above the plugin's max_body_bytes of 100");
}

// ---------------------------------------------------------------------------------------
// Services in-process, with fake backends
// ---------------------------------------------------------------------------------------

// A REST runner that answers from a script and records what it saw.
class FakeRestRunner : public RestStepRunner {
 public:
  Status Validate(const CallContext&, const v1::RestStep& step, const std::string& environment,
                  v1::ValidateStepResponse* response) override {
    if (step.url().empty()) {
      auto* d = response->add_diagnostics();
      d->set_severity(v1::SEVERITY_ERROR);
      d->set_code("INVALID_STEP_CONFIG");
      d->set_summary("url is required");
      d->set_field_path("url");
    }
    last_environment = environment;
    return {};
  }
  void Execute(const CallContext& call, const v1::ExecuteRestStepRequest& request,
               v1::ExecuteRestStepResponse* response, Done done) override {
    last_call = call;
    if (request.step().url() == "block") {
      // Hold the step until the test releases it (in-flight limit, cancellation).
      std::thread([this, call, response, done] {
        // Polls the cancelled flag as the real engine does (nobody notifies on cancel).
        std::unique_lock<std::mutex> lock(mu);
        for (int i = 0; i < 1000 && !release && !call.Cancelled(); ++i) {
          cv.wait_for(lock, std::chrono::milliseconds(10));
        }
        saw_cancel = call.Cancelled();
        response->mutable_outcome()->mutable_error()->set_code("CANCELLED");
        done(Status());
      }).detach();
      return;
    }
    if (request.step().url() == "contract") {
      done(Error(Code::kInvalidStepConfig, "step.url: not a URL").With("field", "step.url"));
      return;
    }
    Error e(Code::kCertificateNotFound, "SSL Certificate Not Found for api.example:443 in default",
            "bind a certificate", Side::kStore);
    FillStepError(e, response->mutable_outcome()->mutable_error());
    done(Status());
  }
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  bool saw_cancel = false;
  CallContext last_call;
  std::string last_environment;
};

Backends RestOnly(std::shared_ptr<RestStepRunner> rest) {
  Backends b;
  b.rest = std::move(rest);
  return b;
}

class ServiceTest : public ::testing::Test {
 protected:
  void StartServer(Backends backends, int max_in_flight = 4) {
    socket_dir_ = *MakePrivateTempDir("");
    ServerOptions o;
    o.listen = ListenAddress::Unix(socket_dir_ + "/t.sock");
    o.backends = std::move(backends);
    o.facts.limits.max_in_flight_steps = max_in_flight;
    o.facts.protected_environments = {"production"};
    o.on_shutdown_rpc = [this](std::string why) { shutdown_reason_ = why; };
    auto server = PluginServer::Start(std::move(o));
    ASSERT_TRUE(server.ok()) << server.error().ToString();
    server_ = std::move(server).value();
    channel_ = grpc::CreateChannel("unix://" + socket_dir_ + "/t.sock",
                                   grpc::InsecureChannelCredentials());
    steps_ = v1::StepPluginService::NewStub(channel_);
    certs_ = v1::CertificateService::NewStub(channel_);
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::seconds(2));
    server_.reset();
    if (!socket_dir_.empty()) {
      ::unlink((socket_dir_ + "/t.sock").c_str());
      ::rmdir(socket_dir_.c_str());
    }
  }
  static void Deadline(grpc::ClientContext* ctx, int seconds = 10) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  }

  std::string socket_dir_;
  std::string shutdown_reason_;
  std::unique_ptr<PluginServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::StepPluginService::Stub> steps_;
  std::unique_ptr<v1::CertificateService::Stub> certs_;
};

TEST_F(ServiceTest, WithoutBackendsEveryWorkingMethodIsUnimplemented) {
  StartServer({});
  grpc::ClientContext c1;
  Deadline(&c1);
  v1::GetPluginInfoResponse info;
  ASSERT_TRUE(steps_->GetPluginInfo(&c1, {}, &info).ok());
  EXPECT_EQ(info.name(), "wsstep");
  EXPECT_EQ(info.api_version(), "wsstep.v1");
  ASSERT_EQ(info.step_kinds_size(), 2);
  EXPECT_EQ(info.step_kinds(0).kind(), "rest");
  EXPECT_EQ(info.step_kinds(1).config_message(), "wsstep.v1.SoapStep");
  EXPECT_TRUE(info.capabilities().empty());
  EXPECT_EQ(info.limits().max_in_flight_steps(), 4);

  grpc::ClientContext c2;
  Deadline(&c2);
  v1::ExecuteRestStepRequest req;
  req.mutable_step()->set_url("https://api.example/");
  v1::ExecuteRestStepResponse resp;
  const grpc::Status s = steps_->ExecuteRestStep(&c2, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(s.error_message(), HasSubstr("the REST engine is not wired"));

  grpc::ClientContext c3;
  Deadline(&c3);
  v1::ListCertificatesResponse list;
  const grpc::Status s3 = certs_->ListCertificates(&c3, {}, &list);
  EXPECT_EQ(s3.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(s3.error_message(), HasSubstr("the certificate store"));

  grpc::ClientContext c4;
  Deadline(&c4);
  auto reader = certs_->WatchEvents(&c4, {});
  v1::WatchEventsResponse ev;
  EXPECT_FALSE(reader->Read(&ev));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

// gRPC refuses these before any handler runs; the interceptor makes the answer the
// contract's INVALID_ARGUMENT instead of UNIMPLEMENTED with an empty message.
TEST_F(ServiceTest, UnparseableRequestsAreInvalidArgumentNamingTheProblem) {
  StartServer({});
  auto expect_unparseable = [](const grpc::Status& s, const std::string& method) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << method << ": "
                                                                   << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("the request to " + method + " could not be parsed"));
    EXPECT_THAT(s.error_message(), HasSubstr("not valid UTF-8"));
    StatusDetails d = DecodeStatusDetails(s);
    EXPECT_EQ(d.reason, "INVALID_ARGUMENT");
    EXPECT_EQ(d.domain, "wsstep.dev");
    EXPECT_EQ(d.metadata["method"], method);
  };
  // The C++ client serializes a non-UTF-8 string anyway (logging an error), as a careless
  // host would.
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::ExecuteRestStepRequest req;
    req.mutable_step()->set_url("https://api.example/\xff\xfe");
    v1::ExecuteRestStepResponse resp;
    expect_unparseable(steps_->ExecuteRestStep(&ctx, req, &resp),
                       "/wsstep.v1.StepPluginService/ExecuteRestStep");
  }
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::GetCertificateRequest req;
    req.set_name("\xc3\x28");
    v1::GetCertificateResponse resp;
    expect_unparseable(certs_->GetCertificate(&ctx, req, &resp),
                       "/wsstep.v1.CertificateService/GetCertificate");
  }
  // Nested deeper than protobuf's parser goes (100).
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::ExecuteSoapStepRequest req;
    v1::XmlElement* e = req.mutable_step()->mutable_operation()->add_parameters();
    for (int i = 0; i < 150; ++i) {
      e->set_name("p");
      e = e->add_children();
    }
    v1::ExecuteSoapStepResponse resp;
    expect_unparseable(steps_->ExecuteSoapStep(&ctx, req, &resp),
                       "/wsstep.v1.StepPluginService/ExecuteSoapStep");
  }
  // A parseable request still reaches its handler (here: not wired in this server).
  grpc::ClientContext ctx;
  Deadline(&ctx);
  v1::ExecuteRestStepRequest req;
  req.mutable_step()->set_url("https://api.example/");
  v1::ExecuteRestStepResponse resp;
  const grpc::Status s = steps_->ExecuteRestStep(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(s.error_message(), HasSubstr("the REST engine is not wired"));
}

TEST_F(ServiceTest, StepOutcomesComeBackInTheResponseWithTheStepId) {
  auto rest = std::make_shared<FakeRestRunner>();
  StartServer(RestOnly(rest));
  grpc::ClientContext ctx;
  Deadline(&ctx);
  ctx.AddMetadata("x-wsstep-step-id", "step-7");
  ctx.AddMetadata("x-wsstep-workflow-id", "wf-1");
  ctx.AddMetadata("x-wsstep-actor", "ann");
  v1::ExecuteRestStepRequest req;
  req.mutable_step()->set_url("https://api.example/");
  v1::ExecuteRestStepResponse resp;
  ASSERT_TRUE(steps_->ExecuteRestStep(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.outcome().error().code(), "CERTIFICATE_NOT_FOUND");
  EXPECT_EQ(resp.outcome().error().side(), v1::ERROR_SIDE_STORE);
  EXPECT_EQ(resp.outcome().step_id(), "step-7");
  EXPECT_EQ(rest->last_call.workflow_id, "wf-1");
  EXPECT_EQ(rest->last_call.actor, "ann");
  EXPECT_EQ(rest->last_call.method, "wsstep.v1.StepPluginService/ExecuteRestStep");
  EXPECT_TRUE(rest->last_call.HasDeadline());
  // The server's deadline is the client's, give or take the transfer time.
  EXPECT_LE(rest->last_call.TimeLeft(), std::chrono::seconds(11));
  EXPECT_GE(rest->last_call.TimeLeft(), std::chrono::seconds(5));
}

TEST_F(ServiceTest, ContractErrorsAreGrpcStatusesWithFieldViolations) {
  StartServer(RestOnly(std::make_shared<FakeRestRunner>()));
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::ExecuteRestStepResponse resp;
    const grpc::Status s = steps_->ExecuteRestStep(&ctx, v1::ExecuteRestStepRequest(), &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    const auto d = DecodeStatusDetails(s);
    ASSERT_EQ(d.violations.size(), 1u);
    EXPECT_EQ(d.violations[0].field, "step");
  }
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::ExecuteRestStepRequest req;
    req.mutable_step()->set_url("contract");
    v1::ExecuteRestStepResponse resp;
    const grpc::Status s = steps_->ExecuteRestStep(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    const auto d = DecodeStatusDetails(s);
    EXPECT_EQ(d.reason, "INVALID_STEP_CONFIG");
    ASSERT_EQ(d.violations.size(), 1u);
    EXPECT_EQ(d.violations[0].field, "step.url");
  }
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::ValidateStepRequest req;
    req.mutable_rest();  // no url
    req.set_environment("sandbox");
    v1::ValidateStepResponse resp;
    ASSERT_TRUE(steps_->ValidateStep(&ctx, req, &resp).ok());
    EXPECT_FALSE(resp.valid());
    ASSERT_EQ(resp.diagnostics_size(), 1);
    EXPECT_EQ(resp.diagnostics(0).field_path(), "url");
  }
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::ValidateStepRequest req;
    req.mutable_soap();
    v1::ValidateStepResponse resp;
    EXPECT_EQ(steps_->ValidateStep(&ctx, req, &resp).error_code(),
              grpc::StatusCode::UNIMPLEMENTED);
  }
}

TEST_F(ServiceTest, InFlightLimitRefusesWithUnavailableAndCancellationReachesTheRunner) {
  auto rest = std::make_shared<FakeRestRunner>();
  StartServer(RestOnly(rest), /*max_in_flight=*/1);
  grpc::ClientContext blocked;
  Deadline(&blocked);
  v1::ExecuteRestStepRequest req;
  req.mutable_step()->set_url("block");
  v1::ExecuteRestStepResponse blocked_resp;
  grpc::Status blocked_status;
  std::atomic<bool> blocked_done{false};
  steps_->async()->ExecuteRestStep(&blocked, &req, &blocked_resp, [&](grpc::Status s) {
    blocked_status = s;
    blocked_done = true;
  });
  for (int i = 0; i < 200 && server_->step_service().in_flight() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(server_->step_service().in_flight(), 1);

  grpc::ClientContext second;
  Deadline(&second);
  v1::ExecuteRestStepRequest other;
  other.mutable_step()->set_url("https://api.example/");
  v1::ExecuteRestStepResponse other_resp;
  const grpc::Status s = steps_->ExecuteRestStep(&second, other, &other_resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("max_in_flight_steps"));

  blocked.TryCancel();
  for (int i = 0; i < 500 && !blocked_done; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(blocked_done);
  EXPECT_EQ(blocked_status.error_code(), grpc::StatusCode::CANCELLED);
  for (int i = 0; i < 200 && server_->step_service().in_flight() != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(rest->saw_cancel);
  EXPECT_EQ(server_->step_service().in_flight(), 0);
}

TEST_F(ServiceTest, DrainLetsARunningStepFinishAndRefusesNewOnes) {
  auto rest = std::make_shared<FakeRestRunner>();
  StartServer(RestOnly(rest));
  grpc::ClientContext blocked;
  Deadline(&blocked);
  v1::ExecuteRestStepRequest req;
  req.mutable_step()->set_url("block");
  v1::ExecuteRestStepResponse resp;
  std::atomic<bool> done{false};
  grpc::Status status;
  steps_->async()->ExecuteRestStep(&blocked, &req, &resp, [&](grpc::Status s) {
    status = s;
    done = true;
  });
  for (int i = 0; i < 200 && server_->step_service().in_flight() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  grpc::Status during_drain;
  grpc::health::v1::HealthCheckResponse health_during_drain;
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    // The server is draining: new steps are refused, health says NOT_SERVING.
    grpc::ClientContext ctx;
    Deadline(&ctx, 2);
    v1::ExecuteRestStepRequest other;
    other.mutable_step()->set_url("https://api.example/");
    v1::ExecuteRestStepResponse other_resp;
    during_drain = steps_->ExecuteRestStep(&ctx, other, &other_resp);
    grpc::ClientContext hctx;
    Deadline(&hctx, 2);
    grpc::health::v1::HealthCheckRequest hreq;
    hreq.set_service("plugin");
    grpc::health::v1::Health::NewStub(channel_)->Check(&hctx, hreq, &health_during_drain);
    std::lock_guard<std::mutex> lock(rest->mu);
    rest->release = true;
    rest->cv.notify_all();
  });
  server_->Shutdown(std::chrono::seconds(5));  // returns once the step has finished
  releaser.join();
  for (int i = 0; i < 200 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(done);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(rest->saw_cancel);
  EXPECT_EQ(during_drain.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(during_drain.error_message(), HasSubstr("shutting down"));
  EXPECT_EQ(health_during_drain.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  server_.reset();
}

TEST_F(ServiceTest, HealthAnswersKnownServicesAndWatchesUnknownOnes) {
  StartServer({});
  auto health = grpc::health::v1::Health::NewStub(channel_);
  for (const std::string service : {"", "plugin", "wsstep.v1.StepPluginService"}) {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    ASSERT_TRUE(health->Check(&ctx, req, &resp).ok()) << service;
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    grpc::health::v1::HealthCheckRequest req;
    req.set_service("no.such.Service");
    grpc::health::v1::HealthCheckResponse resp;
    EXPECT_EQ(health->Check(&ctx, req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  grpc::ClientContext unknown_ctx;
  Deadline(&unknown_ctx);
  grpc::health::v1::HealthCheckRequest unknown;
  unknown.set_service("no.such.Service");
  auto unknown_watch = health->Watch(&unknown_ctx, unknown);
  grpc::health::v1::HealthCheckResponse seen;
  ASSERT_TRUE(unknown_watch->Read(&seen));
  EXPECT_EQ(seen.status(), grpc::health::v1::HealthCheckResponse::SERVICE_UNKNOWN);
  unknown_ctx.TryCancel();
  EXPECT_EQ(unknown_watch->Finish().error_code(), grpc::StatusCode::CANCELLED);

}

// The service on its own, so that its Shutdown ends the stream itself (through the
// plugin's server, the server's own cancellation races it on a loaded machine).
TEST(HealthServiceTest, WatchSeesAChangeAndTheShutdownThenEnds) {
  const std::string dir = *MakePrivateTempDir("");
  const std::string address = "unix://" + dir + "/h.sock";
  HealthService service;
  service.Set("plugin", true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));

  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service("plugin");
  auto watch = stub->Watch(&ctx, req);
  grpc::health::v1::HealthCheckResponse seen;
  ASSERT_TRUE(watch->Read(&seen));
  EXPECT_EQ(seen.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  service.Set("plugin", false);
  ASSERT_TRUE(watch->Read(&seen));
  EXPECT_EQ(seen.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  service.Set("plugin", true);
  ASSERT_TRUE(watch->Read(&seen));
  EXPECT_EQ(seen.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  service.Shutdown();
  ASSERT_TRUE(watch->Read(&seen));
  EXPECT_EQ(seen.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(watch->Read(&seen));
  EXPECT_EQ(watch->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  service.Set("plugin", true);  // ignored after Shutdown
  {
    grpc::ClientContext check_ctx;
    grpc::health::v1::HealthCheckResponse check;
    ASSERT_TRUE(stub->Check(&check_ctx, req, &check).ok());
    EXPECT_EQ(check.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  }
  server->Shutdown();
  ::unlink((dir + "/h.sock").c_str());
  ::rmdir(dir.c_str());
}

}  // namespace
}  // namespace wsstep::plugin

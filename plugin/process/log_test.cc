// The JSON log: one object per line, the frame first, exact escaping, redaction of secrets.
#include "plugin/process/log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <regex>

#include "wsstep/v1/certificate_service.pb.h"
#include "wsstep/v1/step_plugin_service.grpc.pb.h"

namespace wsstep::plugin {
namespace {

using ::testing::HasSubstr;

TEST(LogTest, LinesAreOneJsonObjectWithTheFrameFirst) {
  Logger logger;
  std::vector<std::string> lines;
  logger.SetSink([&](std::string_view l) { lines.emplace_back(l); });
  logger.Info("step finished",
              {{"step_id", "s-1"}, {"http_status", 200}, {"@message", "spoof"}, {"msg", "kept"}});
  logger.Debug("hidden at info");
  ASSERT_EQ(lines.size(), 1u);
  const auto j = nlohmann::ordered_json::parse(lines[0]);
  auto it = j.begin();
  EXPECT_EQ(it.key(), "@timestamp");
  EXPECT_EQ((++it).key(), "@level");
  EXPECT_EQ((++it).key(), "@message");
  EXPECT_EQ(j["@level"], "info");
  EXPECT_EQ(j["@message"], "step finished");  // a field cannot overwrite the frame
  EXPECT_EQ(j["msg"], "kept");                // an ordinary field by that name is a field
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
  // After "{"@timestamp":"2026-...Z"," comes the rest, byte for byte.
  auto rest = [](const std::string& line) { return line.substr(line.find("\"@level\"")); };
  EXPECT_EQ(
      rest(lines[0]),
      "\"@level\":\"info\",\"@message\":\"m\",\"a\":\"x\xef\xbf\xbd\",\"n\":{\"k\":1},\"b\":true}");
  EXPECT_EQ(rest(lines[1]), "\"@level\":\"warn\",\"@message\":\"no fields\"}");
  EXPECT_EQ(rest(lines[2]), "\"@level\":\"error\",\"@message\":\"null fields\"}");
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
  const std::vector<std::string> pieces = {"a",  "\"",       "\\",           "\x01", "\x1f",
                                           "\n", "\xc3\xa9", "\xe2\x82\xac", " "};
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
  auto rest = [](const std::string& line) { return line.substr(line.find("\"@level\"")); };
  EXPECT_EQ(rest(lines[0]),
            "\"@level\":\"info\",\"@message\":\"step "
            "finished\",\"method\":\"/wsstep.v1.StepPluginService/"
            "ExecuteRestStep\",\"step_id\":\"s\\\"1\",\"http_status\":200,\"duration_ms\":-3}");
  EXPECT_EQ(rest(lines[1]), "\"@level\":\"warn\",\"@message\":\"no fields\"}");
  for (const auto& line : lines) {
    ASSERT_TRUE(nlohmann::ordered_json::accept(line)) << line;
    EXPECT_EQ(line.rfind("{\"@timestamp\":\"", 0), 0u) << line;
  }
}

// go-plugin (log_entry.go) parses @timestamp with Go's layout
// "2006-01-02T15:04:05.000000Z07:00" and, when it does not match, relays the raw line
// at DEBUG. Six fraction digits and Z, nothing else.
TEST(LogTest, TimestampHasHclogsLayoutExactly) {
  Logger logger;
  std::vector<std::string> lines;
  logger.SetSink([&](std::string_view l) { lines.emplace_back(l); });
  logger.Error("e");
  ASSERT_EQ(lines.size(), 1u);
  const std::string ts = nlohmann::json::parse(lines[0])["@timestamp"];
  EXPECT_TRUE(std::regex_match(ts, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)"))) << ts;
  EXPECT_EQ(nlohmann::json::parse(lines[0])["@level"], "error");
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

}  // namespace
}  // namespace wsstep::plugin

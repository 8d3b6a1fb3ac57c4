// The go-plugin handshake line and the host environment it reads.
#include "plugin/process/handshake.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

namespace wsstep::plugin {
namespace {

using ::testing::ElementsAre;

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
  EXPECT_FALSE(ParseHandshakeLine(R"({"@level":"info","@message":"serving"})").ok());
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
  auto h = ReadHandshakeEnv(FixedEnvironment({{"WSSTEP_PLUGIN", std::string(kMagicCookieValue)},
                                              {"PLUGIN_PROTOCOL_VERSIONS", "3, 1,x"},
                                              {"PLUGIN_MIN_PORT", "10000"},
                                              {"PLUGIN_MAX_PORT", "10010"},
                                              {"WSSTEP_PLUGIN_NETWORK", "tcp"},
                                              {"WSSTEP_PLUGIN_WATCH_STDIN", "true"}}));
  EXPECT_EQ(h.cookie, CookieState::kMatches);
  EXPECT_THAT(h.protocol_versions, ElementsAre(3, 1));
  EXPECT_EQ(h.min_port, 10000);
  EXPECT_EQ(h.max_port, 10010);
  EXPECT_TRUE(h.use_tcp);
  EXPECT_TRUE(h.watch_stdin);
  // Off unless asked for: go-plugin hands the plugin its own stdin, which may be at EOF.
  EXPECT_FALSE(ReadHandshakeEnv(FixedEnvironment({})).watch_stdin);
  EXPECT_FALSE(
      ReadHandshakeEnv(FixedEnvironment({{"WSSTEP_PLUGIN_WATCH_STDIN", "false"}})).watch_stdin);
  EXPECT_EQ(ReadHandshakeEnv(FixedEnvironment({})).cookie, CookieState::kAbsent);
  EXPECT_EQ(ReadHandshakeEnv(FixedEnvironment({{"WSSTEP_PLUGIN", "other"}})).cookie,
            CookieState::kWrong);

  bool compatible = false;
  EXPECT_EQ(NegotiateAppProtocol({3, 1}, &compatible), 1);
  EXPECT_TRUE(compatible);
  NegotiateAppProtocol({2}, &compatible);
  EXPECT_FALSE(compatible);
  NegotiateAppProtocol({}, &compatible);
  EXPECT_TRUE(compatible);
}

}  // namespace
}  // namespace wsstep::plugin

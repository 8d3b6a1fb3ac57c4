#include "rest/http_text.h"

#include <gtest/gtest.h>

#include "rest/tls_util.h"

namespace wsstep::rest {
namespace {

TEST(HttpTextTest, PercentEncodeKeepsOnlyUnreserved) {
  EXPECT_EQ(PercentEncode("aZ09-._~"), "aZ09-._~");
  EXPECT_EQ(PercentEncode("a b&c=d/é+%"), "a%20b%26c%3Dd%2F%C3%A9%2B%25");
  EXPECT_EQ(PercentEncode(std::string("\0\r\n", 3)), "%00%0D%0A");
}

TEST(HttpTextTest, AppendQueryKeepsOrderAndFragmentOut) {
  EXPECT_EQ(AppendQuery("https://h/p", {{"a", "1"}, {"b", "x y"}, {"a", "2"}}).value(),
            "https://h/p?a=1&b=x%20y&a=2");
  EXPECT_EQ(AppendQuery("https://h/p?z=0", {{"a", "1"}}).value(), "https://h/p?z=0&a=1");
  EXPECT_EQ(AppendQuery("https://h/p?", {{"a", "1"}}).value(), "https://h/p?a=1");
  EXPECT_EQ(AppendQuery("https://h/p#frag", {{"a", "1"}}).value(), "https://h/p?a=1");
  EXPECT_EQ(AppendQuery("https://h/p", {}).value(), "https://h/p");
}

TEST(HttpTextTest, ParseHttpUrl) {
  auto u = ParseHttpUrl("HTTPS://API.Example.COM./x");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->host, "api.example.com");
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->Origin(), "https://api.example.com:443");
  auto v6 = ParseHttpUrl("http://[::1]:8080/");
  ASSERT_TRUE(v6.ok());
  EXPECT_TRUE(v6->host_is_ipv6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 8080);
  EXPECT_TRUE(ParseHttpUrl("https://127.0.0.1/")->host_is_ip);
  for (const char* bad : {"ftp://h/", "https://", "https://h/a b", "https://h/\r\n", "/relative",
                          "https://u:p@h/"}) {
    auto r = ParseHttpUrl(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, Code::kInvalidStepConfig) << bad;
    EXPECT_EQ(r.error().detail.at("field"), "url");
  }
}

TEST(HttpTextTest, ParseHttpUrlErrorsNameTheFieldTheyWereGiven) {
  for (const char* field : {"url", "auth.oauth2.token_url", "Location"}) {
    auto bad = ParseHttpUrl("ftp://a.example:8443/p", field);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().detail.at("field"), field);
    EXPECT_EQ(bad.error().message, std::string(field) + ": scheme \"ftp\" is not supported");
  }
}

TEST(HttpTextTest, HeaderValidation) {
  EXPECT_TRUE(ValidateHeader("X-Ok", "value with spaces; and: colons", "headers[0]").ok());
  EXPECT_TRUE(ValidateHeader("X-Empty", "", "headers[0]").ok());
  Status crlf = ValidateHeader("X-Bad", "a\r\nSet-Cookie: x", "headers[3]");
  ASSERT_FALSE(crlf.ok());
  EXPECT_EQ(crlf.error().detail.at("header"), "X-Bad");
  EXPECT_EQ(crlf.error().detail.at("field"), "headers[3].value");
  EXPECT_TRUE(crlf.error().message.starts_with("headers[3].value: ")) << crlf.error().message;
  EXPECT_EQ(crlf.error().message.find("Set-Cookie"), std::string::npos);  // value not echoed
  EXPECT_EQ(ValidateHeader("X-Bad", std::string("a\0", 2), "h").error().detail.at("field"),
            "h.value");
  EXPECT_EQ(ValidateHeader("", "a", "h").error().detail.at("field"), "h.name");
  Status bad_name = ValidateHeader("Bad:Name", "a", "headers[1]");
  ASSERT_FALSE(bad_name.ok());
  EXPECT_EQ(bad_name.error().detail.at("field"), "headers[1].name");
  EXPECT_TRUE(bad_name.error().message.starts_with("headers[1].name: "));
  EXPECT_EQ(ValidateHeader("a\nb", "v", "h").error().detail.at("header"), "a\\nb");
  // A bad name is reported even when the value is bad too.
  EXPECT_EQ(ValidateHeader("a\nb", "v\n", "h").error().detail.at("field"), "h.name");
}

// A DNS name of `size` characters: 62-character labels joined by dots.
std::string HostOfLength(size_t size) {
  std::string host;
  while (host.size() < size) {
    host += (host.size() % 63 == 62) ? '.' : 'a';
  }
  if (host.back() == '.') host.back() = 'b';
  return host;
}

TEST(HttpTextTest, ParseHttpUrlRefusesHostNamesLongerThanDnsAllows) {
  std::string longest = HostOfLength(253);
  auto ok = ParseHttpUrl("https://" + longest + "/x", "auth.oauth2.token_url");
  ASSERT_TRUE(ok.ok()) << ok.error().ToString();
  EXPECT_EQ(ok->host, longest);
  // The trailing dot of a fully qualified name does not count.
  EXPECT_TRUE(ParseHttpUrl("https://" + longest + "./x").ok());
  auto r = ParseHttpUrl("https://" + HostOfLength(254) + "/x", "auth.oauth2.token_url");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kInvalidStepConfig);
  EXPECT_EQ(r.error().detail.at("field"), "auth.oauth2.token_url");
  EXPECT_EQ(r.error().message,
            "auth.oauth2.token_url: the host name is 254 characters; DNS names have at most 253");
  auto huge = ParseHttpUrl("http://" + HostOfLength(5000) + ":8080/", "Location");
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.error().detail.at("field"), "Location");
}

TEST(HttpTextTest, NormalizePin) {
  EXPECT_EQ(NormalizePin("sha256//abc=;sha256//def=").value(), "sha256//abc=;sha256//def=");
  std::string hex(64, 'a');
  auto pin = NormalizePin(hex);
  ASSERT_TRUE(pin.ok());
  EXPECT_EQ(pin.value(), "sha256//qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqo=");
  EXPECT_EQ(NormalizePin("AA:AA").code(), Code::kInvalidStepConfig);
  EXPECT_EQ(NormalizePin("md5//x").code(), Code::kInvalidStepConfig);
}

}  // namespace
}  // namespace wsstep::rest

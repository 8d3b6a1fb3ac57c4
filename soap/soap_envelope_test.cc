#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <pugixml.hpp>
#include <string>

#include "soap/envelope.h"
#include "soap/wssecurity.h"

namespace wsstep::soap {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr core::UnixSeconds kNow = 1700000000;  // 2023-11-14T22:13:20Z
constexpr char kDecl[] = R"(<?xml version="1.0" encoding="utf-8"?>)";

// Bytes 0x11, 0x22, ... 0xF1, 0x12, ...: deterministic, and includes bytes above 0x7F so
// the digest test proves the raw nonce (not its text) is hashed.
class FixedRandom : public RandomSource {
 public:
  Status Fill(std::span<uint8_t> out) override {
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(0x11 * (i + 1) + i / 15);
    return Status();
  }
};

class FailingRandom : public RandomSource {
 public:
  Status Fill(std::span<uint8_t>) override { return Error(Code::kInternal, "no entropy"); }
};

core::Clock FixedClock() {
  return [] { return kNow; };
}

Result<BuiltEnvelope> Build(const SoapStep& step) {
  FixedRandom random;
  return BuildEnvelope(step, FixedClock(), random);
}

SoapStep PriceStep(SoapVersion v) {
  SoapStep step;
  step.version = v;
  step.action = "urn:example:GetPrice";
  SoapOperation op{.name = "GetPrice", .ns = "urn:example", .prefix = "m"};
  op.parameters.push_back({.name = "Item", .text = "apple"});
  step.body = std::move(op);
  return step;
}

// The Body's inner XML of a built envelope, for compact assertions.
std::string BodyOf(const std::string& envelope) {
  const size_t open = envelope.find("<soap:Body>");
  const size_t close = envelope.rfind("</soap:Body>");
  if (open == std::string::npos || close == std::string::npos) return "<no body>";
  return envelope.substr(open + 11, close - open - 11);
}

void ExpectConfigError(const Result<BuiltEnvelope>& r, const std::string& field) {
  ASSERT_FALSE(r.ok()) << "expected INVALID_STEP_CONFIG at " << field;
  EXPECT_EQ(r.error().code, Code::kInvalidStepConfig) << r.error().ToString();
  EXPECT_EQ(r.error().side, Side::kConfiguration);
  ASSERT_TRUE(r.error().detail.count("field")) << r.error().ToString();
  EXPECT_EQ(r.error().detail.at("field"), field) << r.error().ToString();
  EXPECT_TRUE(r.error().message.starts_with(field + ": ")) << r.error().message;
}

TEST(SoapEnvelope, Soap11ExactEnvelopeContentTypeAndSoapAction) {
  auto r = Build(PriceStep(SoapVersion::k11));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->body, std::string(kDecl) +
                         R"(<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">)"
                         R"(<soap:Body><m:GetPrice xmlns:m="urn:example"><m:Item>apple</m:Item>)"
                         R"(</m:GetPrice></soap:Body></soap:Envelope>)");
  EXPECT_EQ(r->content_type, "text/xml; charset=utf-8");
  ASSERT_EQ(r->headers.size(), 1u);
  EXPECT_EQ(r->headers[0].first, "SOAPAction");
  EXPECT_EQ(r->headers[0].second, "\"urn:example:GetPrice\"");
  EXPECT_FALSE(r->contains_secret);
}

TEST(SoapEnvelope, Soap12ExactEnvelopeAndActionInContentType) {
  auto r = Build(PriceStep(SoapVersion::k12));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->body, std::string(kDecl) +
                         R"(<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope">)"
                         R"(<soap:Body><m:GetPrice xmlns:m="urn:example"><m:Item>apple</m:Item>)"
                         R"(</m:GetPrice></soap:Body></soap:Envelope>)");
  EXPECT_EQ(r->content_type,
            "application/soap+xml; charset=utf-8; action=\"urn:example:GetPrice\"");
  EXPECT_TRUE(r->headers.empty());
}

TEST(SoapEnvelope, EmptyActionIsQuotedFor11AndOmittedFor12) {
  SoapStep s11 = PriceStep(SoapVersion::k11);
  s11.action.clear();
  auto r11 = Build(s11);
  ASSERT_TRUE(r11.ok());
  ASSERT_EQ(r11->headers.size(), 1u);
  EXPECT_EQ(r11->headers[0].second, "\"\"");
  SoapStep s12 = PriceStep(SoapVersion::k12);
  s12.action.clear();
  auto r12 = Build(s12);
  ASSERT_TRUE(r12.ok());
  EXPECT_EQ(r12->content_type, "application/soap+xml; charset=utf-8");
}

TEST(SoapEnvelope, ActionWithQuoteBackslashControlOrSpaceIsRefused) {
  for (const std::string& bad :
       std::vector<std::string>{"urn:a\"b", "urn:a\\b", "urn:a\r\nX-Injected: 1", "urn:a b",
                                "urn:\xC3\xA4", std::string("urn:\0", 5)}) {
    for (SoapVersion v : {SoapVersion::k11, SoapVersion::k12}) {
      SoapStep step = PriceStep(v);
      step.action = bad;
      ExpectConfigError(Build(step), "action");
    }
  }
}

TEST(SoapEnvelope, HostileTextSurvivesARoundTripThroughAParser) {
  const std::string hostile = "a<b>&c]]>d\"e'f &amp; <![CDATA[x]]> \t\n end";
  SoapStep step = PriceStep(SoapVersion::k11);
  auto& op = std::get<SoapOperation>(step.body);
  op.parameters[0].text = hostile;
  op.parameters[0].attributes.push_back({.name = "note", .value = hostile + "\r"});
  auto r = Build(step);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  // "]]>" may stand in an attribute value, never in character data.
  EXPECT_THAT(r->body, HasSubstr(">a&lt;b&gt;&amp;c]]&gt;d"));
  EXPECT_THAT(r->body, Not(HasSubstr("<b>")));
  pugi::xml_document doc;
  ASSERT_TRUE(
      doc.load_buffer(r->body.data(), r->body.size(), pugi::parse_default | pugi::parse_eol));
  pugi::xml_node item =
      doc.child("soap:Envelope").child("soap:Body").child("m:GetPrice").child("m:Item");
  ASSERT_TRUE(item);
  EXPECT_EQ(std::string(item.text().get()), hostile);
  EXPECT_EQ(std::string(item.attribute("note").value()), hostile + "\r");
  EXPECT_EQ(std::distance(item.children().begin(), item.children().end()), 1);
}

TEST(SoapEnvelope, UnicodeTextIsWrittenAsUtf8) {
  SoapStep step = PriceStep(SoapVersion::k12);
  std::get<SoapOperation>(step.body).parameters[0].text = "Gr\xC3\xBC\xC3\x9F\x65 \xF0\x9F\x8D\x8E";
  auto r = Build(step);
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(r->body, HasSubstr("<m:Item>Gr\xC3\xBC\xC3\x9F\x65 \xF0\x9F\x8D\x8E</m:Item>"));
}

// parameters.order.items[0..2].name, the third name's text set to `text`.
SoapStep OrderStep(const std::string& text) {
  SoapStep step = PriceStep(SoapVersion::k11);
  XmlNode order{.name = "order"};
  for (int i = 0; i < 3; ++i) {
    XmlNode item{.name = "items"};
    item.children.push_back({.name = "name", .text = i == 2 ? text : "ok"});
    order.children.push_back(std::move(item));
  }
  std::get<SoapOperation>(step.body).parameters = {std::move(order)};
  return step;
}

TEST(SoapEnvelope, IllegalCharactersAreRefusedNamingTheFieldPath) {
  for (const std::string& bad : {std::string("a\x01z"), std::string("a\0z", 3), std::string("\x1F"),
                                 std::string("\x7F\xEF\xBF\xBE"),  // U+FFFE
                                 std::string("\xEF\xBF\xBF"),      // U+FFFF
                                 std::string("\xC3\x28"),          // invalid UTF-8
                                 std::string("\xC0\xAF"),          // overlong '/'
                                 std::string("\xED\xA0\x80"),      // encoded surrogate
                                 std::string("\xF4\x90\x80\x80"),  // above U+10FFFF
                                 std::string("abc\xE2\x82")}) {    // truncated sequence
    auto r = Build(OrderStep(bad));
    ExpectConfigError(r, "parameters.order.items[2].name");
  }
  auto ok = Build(OrderStep("tab\tcr\rlf\n \xEE\x80\x80 \xF0\x9F\x98\x80"));
  EXPECT_TRUE(ok.ok()) << ok.error().ToString();
}

TEST(SoapEnvelope, ErrorMessagesSayWhatAndWhere) {
  auto r = Build(OrderStep("a\x01"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            "parameters.order.items[2].name: text contains U+0001 at byte 1, which XML 1.0 "
            "cannot carry");
  auto r2 = Build(OrderStep("\xC3\x28"));
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().message,
            "parameters.order.items[2].name: text is not valid UTF-8 at byte 0");
}

TEST(SoapEnvelope, IllegalAttributeValuesNameTheAttribute) {
  SoapStep step = OrderStep("ok");
  std::get<SoapOperation>(step.body).parameters[0].attributes.push_back(
      {.name = "currency", .value = "EUR\x02"});
  ExpectConfigError(Build(step), "parameters.order@currency");
}

TEST(SoapEnvelope, NamesMustBeNcNames) {
  for (const std::string& bad :
       std::vector<std::string>{"", "1abc", "a:b", "a b", "-x", "a<b", "\xC3\x28"}) {
    SoapStep step = OrderStep("ok");
    std::get<SoapOperation>(step.body).parameters[0].children[1].name = bad;
    ExpectConfigError(Build(step), "parameters.order.#1");

    SoapStep op_step = PriceStep(SoapVersion::k11);
    std::get<SoapOperation>(op_step.body).name = bad;
    ExpectConfigError(Build(op_step), "operation.name");

    SoapStep attr_step = PriceStep(SoapVersion::k11);
    std::get<SoapOperation>(attr_step.body)
        .parameters[0]
        .attributes.push_back({.name = bad, .value = "v"});
    ExpectConfigError(Build(attr_step), "parameters.Item@#0");
  }
  for (const std::string& good :
       std::vector<std::string>{"_a", "a-b.c", "\xC3\xA9t\xC3\xA9", "x1"}) {
    SoapStep step = OrderStep("ok");
    std::get<SoapOperation>(step.body).parameters[0].children[1].name = good;
    EXPECT_TRUE(Build(step).ok()) << good;
  }
}

TEST(SoapEnvelope, PrefixesAreValidatedAndReservedOnesRefused) {
  SoapStep step = PriceStep(SoapVersion::k11);
  std::get<SoapOperation>(step.body).prefix = "xmlns";
  ExpectConfigError(Build(step), "operation.prefix");
  std::get<SoapOperation>(step.body).prefix = "a:b";
  ExpectConfigError(Build(step), "operation.prefix");
  std::get<SoapOperation>(step.body).prefix = "m";
  std::get<SoapOperation>(step.body).ns = "";
  ExpectConfigError(Build(step), "operation.prefix");  // a prefix needs a namespace
  SoapStep attr = PriceStep(SoapVersion::k11);
  std::get<SoapOperation>(attr.body).parameters[0].attributes.push_back(
      {.name = "xmlns", .value = "urn:sneaky"});
  ExpectConfigError(Build(attr), "parameters.Item@xmlns");
}

TEST(SoapEnvelope, NamespacesInheritRedeclareAndUnqualify) {
  SoapStep step = PriceStep(SoapVersion::k11);
  SoapOperation op{.name = "Op", .ns = "urn:a"};             // default namespace on the operation
  XmlNode qualified{.name = "q", .text = "1"};               // inherits urn:a
  XmlNode unqualified{.name = "u", .ns = "", .text = "2"};   // no namespace
  XmlNode other{.name = "o", .ns = "urn:b", .prefix = "b"};  // prefixed, other namespace
  other.children.push_back({.name = "inner", .text = "3"});  // inherits urn:b via b:
  XmlNode attrs{.name = "at"};
  attrs.attributes = {{.name = "plain", .value = "p"},
                      {.name = "lang", .ns = "http://www.w3.org/XML/1998/namespace", .value = "de"},
                      {.name = "typed", .ns = "urn:c", .value = "t"},
                      {.name = "again", .ns = "urn:b", .value = "reuse"}};
  op.parameters = {qualified, unqualified, other, attrs};
  step.body = std::move(op);
  auto r = Build(step);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(BodyOf(r->body),
            R"(<Op xmlns="urn:a"><q>1</q><u xmlns="">2</u>)"
            R"(<b:o xmlns:b="urn:b"><b:inner>3</b:inner></b:o>)"
            R"(<at xmlns:ns1="urn:c" xmlns:ns2="urn:b" plain="p" xml:lang="de" ns1:typed="t" )"
            R"(ns2:again="reuse"/></Op>)")
      << "(namespace declarations are written before the attributes)";
}

TEST(SoapEnvelope, ConflictingPrefixOnOneElementIsRefused) {
  SoapStep step = PriceStep(SoapVersion::k11);
  auto& item = std::get<SoapOperation>(step.body).parameters[0];  // m:Item in urn:example
  item.attributes.push_back({.name = "x", .ns = "urn:other", .prefix = "m", .value = "1"});
  ExpectConfigError(Build(step), "parameters.Item@x.prefix");
}

TEST(SoapEnvelope, DuplicateAttributesAreRefused) {
  SoapStep step = PriceStep(SoapVersion::k11);
  auto& item = std::get<SoapOperation>(step.body).parameters[0];
  item.attributes = {{.name = "id", .value = "1"}, {.name = "id", .value = "2"}};
  ExpectConfigError(Build(step), "parameters.Item@id");
}

TEST(SoapEnvelope, RepeatedElementsKeepTheirOrder) {
  SoapStep step = PriceStep(SoapVersion::k11);
  auto& op = std::get<SoapOperation>(step.body);
  op.parameters.clear();
  for (const char* v : {"c", "a", "b"}) op.parameters.push_back({.name = "v", .ns = "", .text = v});
  auto r = Build(step);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(BodyOf(r->body),
            R"(<m:GetPrice xmlns:m="urn:example"><v>c</v><v>a</v><v>b</v></m:GetPrice>)");
}

TEST(SoapEnvelope, DeepParameterTreesAreRefused) {
  SoapStep step = PriceStep(SoapVersion::k11);
  XmlNode root{.name = "d"};
  XmlNode* cur = &root;
  for (int i = 0; i < 300; ++i) {
    cur->children.push_back({.name = "d"});
    cur = &cur->children.back();
  }
  std::get<SoapOperation>(step.body).parameters = {std::move(root)};
  auto r = Build(step);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kInvalidStepConfig);
  EXPECT_THAT(r.error().message, HasSubstr("deeper than 64"));
}

TEST(SoapEnvelope, RawBodyIsInsertedAsGiven) {
  SoapStep step = PriceStep(SoapVersion::k12);
  step.body = RawXml{
      R"(<x:Ping xmlns:x="urn:x" a="1"><x:v>&lt;&amp;</x:v><!-- c --></x:Ping><x:More xmlns:x="urn:x" soap:mustUnderstand="true"/>)"};
  auto r = Build(step);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(
      BodyOf(r->body),
      R"(<x:Ping xmlns:x="urn:x" a="1"><x:v>&lt;&amp;</x:v><!-- c --></x:Ping><x:More xmlns:x="urn:x" soap:mustUnderstand="true"/>)");
  step.body = RawXml{""};
  EXPECT_TRUE(Build(step).ok()) << "an empty Body is valid SOAP";
}

TEST(SoapEnvelope, MalformedRawBodyNamesFieldOffsetAndReason) {
  SoapStep step = PriceStep(SoapVersion::k11);
  step.body = RawXml{"<a><b></a>"};
  auto r = Build(step);
  ExpectConfigError(r, "body");
  EXPECT_EQ(r.error().message, "body: not well-formed XML at offset 8: Start-end tags mismatch");
  EXPECT_EQ(r.error().detail.at("offset"), "8");
}

TEST(SoapEnvelope, RawFragmentsAreCheckedBeyondWellFormedness) {
  const std::string cases[] = {
      "<a>",                                         // unclosed
      "<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>",  // DOCTYPE
      "<?xml version=\"1.0\"?><a/>",                 // declaration mid-message
      "<a/><?pi x?>",                                // processing instruction
      "text<a/>",                                    // text outside an element
      "<m:a/>",                                      // undeclared prefix
      "<a m:x=\"1\"/>",                              // undeclared attribute prefix
      "<a>&#1;</a>",                                 // control char by reference
      "<a x=\"&#x1F;\"/>",                           // ... in an attribute
      "<a>\x01</a>",                                 // raw control char
      "<a>\xC3\x28</a>",                             // invalid UTF-8
      "<a x=\"1\" x=\"2\"/>",                        // duplicate attribute
      "<a:b:c xmlns:a=\"u\"/>",                      // not a QName
  };
  for (const std::string& bad : cases) {
    SoapStep step = PriceStep(SoapVersion::k11);
    step.body = RawXml{bad};
    ExpectConfigError(Build(step), "body");
  }
}

TEST(SoapEnvelope, HeaderBlocksAreCheckedAndPlacedInTheHeader) {
  SoapStep step = PriceStep(SoapVersion::k11);
  step.header_blocks = {R"(<t:Trace xmlns:t="urn:t">1</t:Trace>)", "<broken>"};
  ExpectConfigError(Build(step), "header_blocks[1]");
  step.header_blocks[1] = "<!-- only a comment -->";
  ExpectConfigError(Build(step), "header_blocks[1]");
  step.header_blocks[1] = R"(<t:Lang xmlns:t="urn:t" soap:mustUnderstand="1">de</t:Lang>)";
  auto r = Build(step);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_THAT(r->body, HasSubstr(R"(<soap:Header><t:Trace xmlns:t="urn:t">1</t:Trace>)"
                                 R"(<t:Lang xmlns:t="urn:t" soap:mustUnderstand="1">de</t:Lang>)"
                                 R"(</soap:Header><soap:Body>)"));
}

// --- WS-Security -------------------------------------------------------------------------

constexpr char kCreated[] = "2023-11-14T22:13:20Z";

std::string RunShell(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "<popen failed>";
  char buf[256];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// printf(1) octal escapes for raw bytes, e.g. "\\021\\042".
std::string OctalEscapes(std::span<const uint8_t> bytes) {
  std::string octal;
  for (uint8_t b : bytes) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\%03o", b);
    octal += buf;
  }
  return octal;
}

TEST(SoapWsSecurity, PasswordDigestMatchesTheOpensslCli) {
  std::array<uint8_t, 16> nonce;
  ASSERT_TRUE(FixedRandom().Fill(nonce).ok());
  const std::string password = "p\xC3\xA4ss w\xC3\xB6rd 1";
  // The raw nonce bytes through printf's octal escapes; created and password as text.
  const std::string octal = OctalEscapes(nonce);
  const std::string expected =
      RunShell("{ printf '" + octal + "'; printf '%s' '" + kCreated + password +
               "'; } | openssl dgst -sha1 -binary | openssl base64");
  ASSERT_EQ(expected.size(), 28u) << expected;

  auto digest = PasswordDigest(nonce, kCreated, SecretBytes(password));
  ASSERT_TRUE(digest.ok());
  EXPECT_EQ(*digest, expected);

  SoapStep step = PriceStep(SoapVersion::k11);
  step.security.username_token = UsernameToken{
      .username = "alice", .password = SecretBytes(password), .type = PasswordType::kDigest};
  auto r = Build(step);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_FALSE(r->contains_secret);
  EXPECT_THAT(r->body, Not(HasSubstr("w\xC3\xB6rd")));
  const std::string nonce_b64 = Base64Encode(nonce);
  EXPECT_THAT(
      r->body,
      HasSubstr(
          R"(<soap:Header><wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" )"
          R"(xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd" soap:mustUnderstand="1">)"
          R"(<wsse:UsernameToken><wsse:Username>alice</wsse:Username>)"
          R"(<wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">)" +
          expected +
          R"(</wsse:Password><wsse:Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">)" +
          nonce_b64 + R"(</wsse:Nonce><wsu:Created>)" + kCreated +
          R"(</wsu:Created></wsse:UsernameToken></wsse:Security></soap:Header>)"));
}

TEST(SoapWsSecurity, Base64MatchesTheOpensslCli) {
  std::array<uint8_t, 16> nonce;
  ASSERT_TRUE(FixedRandom().Fill(nonce).ok());
  const std::string octal = OctalEscapes(nonce);
  EXPECT_EQ(Base64Encode(nonce), RunShell("printf '" + octal + "' | openssl base64"));
  EXPECT_EQ(Base64Encode({}), "");
}

TEST(SoapWsSecurity, PasswordTextTimestampAndMustUnderstandFor12) {
  SoapStep step = PriceStep(SoapVersion::k12);
  step.security.username_token =
      UsernameToken{.username = "bob<&>",
                    .password = SecretBytes(std::string_view("s3cr\"t<&")),
                    .type = PasswordType::kText};
  step.security.timestamp = {.enabled = true, .ttl_seconds = 90};
  auto r = Build(step);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_TRUE(r->contains_secret);
  EXPECT_THAT(
      r->body,
      HasSubstr(
          R"(xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd" soap:mustUnderstand="true">)"
          R"(<wsu:Timestamp><wsu:Created>2023-11-14T22:13:20Z</wsu:Created><wsu:Expires>2023-11-14T22:14:50Z</wsu:Expires></wsu:Timestamp>)"
          R"(<wsse:UsernameToken><wsse:Username>bob&lt;&amp;&gt;</wsse:Username>)"
          R"(<wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText">s3cr"t&lt;&amp;</wsse:Password>)"
          R"(</wsse:UsernameToken></wsse:Security></soap:Header>)"));
}

TEST(SoapWsSecurity, TimestampAloneWithoutMustUnderstand) {
  SoapStep step = PriceStep(SoapVersion::k11);
  step.security.timestamp = {.enabled = true, .ttl_seconds = 300};
  step.security.must_understand = false;
  auto r = Build(step);
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(
      r->body,
      HasSubstr(
          R"(-utility-1.0.xsd"><wsu:Timestamp><wsu:Created>2023-11-14T22:13:20Z</wsu:Created><wsu:Expires>2023-11-14T22:18:20Z</wsu:Expires></wsu:Timestamp></wsse:Security>)"));
  EXPECT_THAT(r->body, Not(HasSubstr("mustUnderstand")));
}

TEST(SoapWsSecurity, InvalidSecuritySettingsNameTheirField) {
  SoapStep step = PriceStep(SoapVersion::k11);
  step.security.timestamp = {.enabled = true, .ttl_seconds = 0};
  ExpectConfigError(Build(step), "security.timestamp.ttl_seconds");
  step.security.timestamp = {};
  step.security.username_token = UsernameToken{.username = ""};
  ExpectConfigError(Build(step), "security.username_token.username");
  step.security.username_token = UsernameToken{.username = "u",
                                               .password = SecretBytes(std::string_view("x\x01y")),
                                               .type = PasswordType::kText};
  auto r = Build(step);
  ExpectConfigError(r, "security.username_token.password");
  EXPECT_THAT(r.error().message, Not(HasSubstr("x\x01y")));
  // A digest hashes the bytes, so they need not be XML text.
  step.security.username_token->type = PasswordType::kDigest;
  EXPECT_TRUE(Build(step).ok());
}

TEST(SoapWsSecurity, RandomFailureIsAnError) {
  SoapStep step = PriceStep(SoapVersion::k11);
  step.security.username_token = UsernameToken{.username = "u", .type = PasswordType::kDigest};
  FailingRandom random;
  auto r = BuildEnvelope(step, FixedClock(), random);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kInternal);
}

TEST(SoapWsSecurity, SystemRandomGivesFreshNonces) {
  SoapStep step = PriceStep(SoapVersion::k11);
  step.security.username_token = UsernameToken{.username = "u", .type = PasswordType::kDigest};
  auto a = BuildEnvelope(step, FixedClock(), SystemRandom());
  auto b = BuildEnvelope(step, FixedClock(), SystemRandom());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->body, b->body);
}

TEST(SoapEnvelope, ValidateSoapStepChecksWithoutClockOrRandom) {
  EXPECT_TRUE(ValidateSoapStep(PriceStep(SoapVersion::k12)).ok());
  Status st = ValidateSoapStep(OrderStep("\x01"));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().detail.at("field"), "parameters.order.items[2].name");
}

}  // namespace
}  // namespace wsstep::soap

// SoapClient without a network: the HTTP request it hands the REST engine, what the
// transport may not override, and how finished HTTP exchanges become SOAP outcomes.
// (soap_interop_test.cc covers real calls.)
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "rest/engine.h"
#include "soap/client.h"

namespace wsstep::soap {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kUrl[] = "https://soap.example:8443/svc";

class ZeroRandom : public RandomSource {
 public:
  Status Fill(std::span<uint8_t> out) override {
    std::fill(out.begin(), out.end(), 0);
    return Status();
  }
};

SoapStep EchoStep(SoapVersion v) {
  SoapStep step;
  step.endpoint = kUrl;
  step.version = v;
  step.action = "urn:echo";
  step.body = SoapOperation{.name = "Echo", .ns = "urn:e"};
  return step;
}

class SoapClientTest : public ::testing::Test {
 protected:
  static rest::EngineOptions OneWorker() {
    rest::EngineOptions options;
    options.workers = 1;
    return options;
  }
  rest::RestEngine engine_{OneWorker()};
  ZeroRandom random_;
  SoapClient client_{engine_, [] { return core::UnixSeconds{0}; }, random_};
};

TEST_F(SoapClientTest, PreparesAPostWithTheEnvelopeAndSoapHeaders) {
  rest::RestStep transport;
  transport.headers.push_back({"X-Trace", "1"});
  transport.tls.ssl_verification = true;
  transport.max_response_bytes = 1234;
  auto req = client_.PrepareRequest(EchoStep(SoapVersion::k11), std::move(transport));
  ASSERT_TRUE(req.ok()) << req.error().ToString();
  EXPECT_EQ(req->method, "POST");
  EXPECT_EQ(req->url, kUrl);
  EXPECT_EQ(req->content_type, "text/xml; charset=utf-8");
  EXPECT_EQ(req->headers,
            (std::vector<rest::Header>{{"X-Trace", "1"}, {"SOAPAction", "\"urn:echo\""}}));
  EXPECT_THAT(req->body, HasSubstr("<soap:Body><Echo xmlns=\"urn:e\"/></soap:Body>"));
  EXPECT_TRUE(req->tls.ssl_verification);  // the rest of the transport is kept
  EXPECT_EQ(req->max_response_bytes, 1234u);

  auto req12 = client_.PrepareRequest(EchoStep(SoapVersion::k12), rest::RestStep{});
  ASSERT_TRUE(req12.ok());
  EXPECT_EQ(req12->content_type, "application/soap+xml; charset=utf-8; action=\"urn:echo\"");
  EXPECT_TRUE(req12->headers.empty());
}

TEST_F(SoapClientTest, TransportCannotOverrideWhatSoapDecides) {
  auto field_of = [&](rest::RestStep t, SoapStep step = EchoStep(SoapVersion::k11)) {
    auto r = client_.PrepareRequest(step, std::move(t));
    if (r.ok()) return std::string("<ok>");
    EXPECT_EQ(r.error().code, Code::kInvalidStepConfig);
    return r.error().detail.at("field");
  };
  rest::RestStep t;
  t.url = "https://other.example/";
  EXPECT_EQ(field_of(std::move(t)), "transport.url");
  t = {};
  t.method = "PUT";
  EXPECT_EQ(field_of(std::move(t)), "transport.method");
  t = {};
  t.body = "x";
  EXPECT_EQ(field_of(std::move(t)), "transport.body");
  t = {};
  t.content_type = "text/plain";
  EXPECT_EQ(field_of(std::move(t)), "transport.content_type");
  t = {};
  t.headers = {{"X-A", "1"}, {"soapaction", "\"x\""}};
  EXPECT_EQ(field_of(std::move(t)), "transport.headers[1]");
  t = {};
  t.headers = {{"content-TYPE", "text/plain"}};
  EXPECT_EQ(field_of(std::move(t)), "transport.headers[0]");
  SoapStep no_endpoint = EchoStep(SoapVersion::k11);
  no_endpoint.endpoint.clear();
  EXPECT_EQ(field_of({}, std::move(no_endpoint)), "endpoint");
  t = {};
  t.url = kUrl;  // the same URL is harmless
  EXPECT_EQ(field_of(std::move(t)), "<ok>");
}

TEST_F(SoapClientTest, ValidateNamesTheEndpointForUrlProblems) {
  SoapStep step = EchoStep(SoapVersion::k11);
  EXPECT_TRUE(client_.Validate(step, rest::RestStep{}).ok());
  step.endpoint = "ftp://soap.example/svc";
  Status st = client_.Validate(step, rest::RestStep{});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, Code::kInvalidStepConfig);
  EXPECT_EQ(st.error().detail.at("field"), "endpoint");
  EXPECT_THAT(st.error().message, StartsWith("endpoint: "));
  step = EchoStep(SoapVersion::k11);
  step.action = "urn:a b";
  st = client_.Validate(step, rest::RestStep{});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().detail.at("field"), "action");
}

TEST(SoapInterpret, ApplicationRefusalLeadsTheMessage) {
  rest::RestResult http;
  http.status = 401;
  http.content_type = "text/plain";
  http.body = "Unauthorized";
  http.tls.used_tls = true;
  http.application_refused = true;
  http.application_refused_message = "TLS succeeded, the application refused: HTTP 401";
  auto r = InterpretHttpResult(std::move(http), SoapVersion::k11, kUrl, 1 << 20);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kInvalidResponse);
  EXPECT_THAT(r.error().message, StartsWith("TLS succeeded, the application refused: HTTP 401; " +
                                            std::string(kUrl) + ": the response is not XML"));
  EXPECT_EQ(r.error().detail.at("application_refused"), "true");
}

TEST(SoapInterpret, FaultsAndPayloadsAreResults) {
  rest::RestResult http;
  http.status = 500;
  http.content_type = "text/xml";
  http.body =
      R"(<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>)"
      R"(<faultcode>s:Server</faultcode><faultstring>down</faultstring></s:Fault></s:Body></s:Envelope>)";
  auto r = InterpretHttpResult(std::move(http), SoapVersion::k11, kUrl, 1 << 20);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->http.status, 500);
  ASSERT_TRUE(r->response.fault);
  EXPECT_EQ(r->response.fault->reason, "down");

  rest::RestResult big;
  big.status = 200;
  big.body = std::string(100, ' ');
  auto too_large = InterpretHttpResult(std::move(big), SoapVersion::k11, kUrl, 10);
  ASSERT_FALSE(too_large.ok());
  EXPECT_EQ(too_large.error().code, Code::kResponseTooLarge);
  EXPECT_THAT(too_large.error().message, StartsWith(std::string(kUrl) + ": "));
}

}  // namespace
}  // namespace wsstep::soap

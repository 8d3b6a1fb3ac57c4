// Interoperability: wsstep's SOAP client against an independent SOAP implementation
// (Debian's python3-spyne, soap/testdata/soap_service.py, validating requests against
// its schema with lxml) behind a real nginx that requires a client certificate
// (ssl_verify_client on) and proxies plain HTTP to the service. Loopback only.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <tuple>

#include "rest/engine.h"
#include "rest/rest_test_util.h"
#include "soap/client.h"
#include "soap/soap_test_util.h"
#include "tests/support/nginx.h"
#include "tests/support/pki.h"
#include "tests/support/process.h"

namespace wsstep::soap {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using wsstep::testing::NginxServer;
using wsstep::testing::PkiPath;

constexpr char kTns[] = "urn:wsstep:interop";
constexpr char kServicePassword[] = "interop secret \xC3\xBC";  // as in soap_service.py

std::string LocalPart(const std::string& qname) { return qname.substr(qname.find(':') + 1); }

class SoapInterop : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    env_ = new testutil::ServiceBehindNginx("soap_service.py", {"/soap11", "/soap12"});
    nginx_ = env_->nginx.get();
    engine_ = env_->engine.get();
  }
  static void TearDownTestSuite() {
    delete env_;
    env_ = nullptr;
  }

  void SetUp() override { ASSERT_TRUE(env_->error.empty()) << env_->error; }

  static std::string Endpoint(SoapVersion v) {
    return nginx_->base_url() + (v == SoapVersion::k11 ? "/soap11" : "/soap12");
  }

  static rest::RestStep Transport() {
    rest::RestStep t;
    t.tls.ssl_verification = true;
    t.timeouts.total = std::chrono::milliseconds(20'000);
    return t;
  }

  static SoapStep Step(SoapVersion v, std::string operation, std::vector<XmlNode> params = {}) {
    SoapStep step;
    step.endpoint = Endpoint(v);
    step.version = v;
    step.action = std::string(kTns) + ":" + operation;
    SoapOperation op{.name = std::move(operation), .ns = kTns, .prefix = "i"};
    op.parameters = std::move(params);
    step.body = std::move(op);
    return step;
  }

  static Result<SoapResult> Call(const SoapStep& step, const std::string& client_cert = "rsa") {
    SoapClient client(*engine_);
    return client.Execute(step, Transport(), rest::testutil::Creds(client_cert),
                          rest::testutil::Soon());
  }

  static XmlNode Leaf(std::string name, std::string text) {
    return XmlNode{.name = std::move(name), .text = std::move(text)};
  }

  static std::vector<XmlNode> OrderParams() {
    XmlNode order{.name = "order"};
    order.children.push_back(Leaf("customer", "ACME <&> \"Ltd\""));
    XmlNode items{.name = "items"};
    for (const auto& [name, qty, price] :
         {std::tuple{"apple", "2", "1.50"}, {"pear", "1", "0.25"}, {"kiwi", "3", "2"}}) {
      XmlNode item{.name = "Item"};
      item.children = {Leaf("name", name), Leaf("quantity", qty), Leaf("price", price)};
      items.children.push_back(std::move(item));
    }
    order.children.push_back(std::move(items));
    return {std::move(order)};
  }

  // The text of <Result>/<child> in an operation's response.
  static std::string ResultField(const SoapResult& r, const std::string& op,
                                 const std::string& field) {
    const XmlElement* resp = r.response.body.Child(op + "Response");
    const XmlElement* result = resp ? resp->Child(op + "Result") : nullptr;
    const XmlElement* f = result ? result->Child(field) : nullptr;
    return f ? f->text : "<missing " + field + ">";
  }

  static testutil::ServiceBehindNginx* env_;
  static NginxServer* nginx_;
  static rest::RestEngine* engine_;
};

testutil::ServiceBehindNginx* SoapInterop::env_ = nullptr;
NginxServer* SoapInterop::nginx_ = nullptr;
rest::RestEngine* SoapInterop::engine_ = nullptr;

TEST_F(SoapInterop, Soap11OperationWithNestedAndRepeatedParameters) {
  auto r = Call(Step(SoapVersion::k11, "Compute", OrderParams()));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->http.status, 200);
  EXPECT_EQ(r->response.version, SoapVersion::k11);
  ASSERT_FALSE(r->response.fault) << r->response.fault->reason;
  EXPECT_EQ(r->response.ToJson(),
            R"({"ComputeResponse":{"ComputeResult":{"customer":"ACME <&> \"Ltd\"","count":"6",)"
            R"("total":"9.25","names":{"string":["apple","pear","kiwi"]}}}})");
  EXPECT_EQ(r->response.body.children.at(0).ns, kTns);
  // The TLS facts come from the REST engine: the certificate nginx asked for and got.
  ASSERT_TRUE(r->http.tls.client_certificate);
  EXPECT_EQ(r->http.tls.client_certificate->fingerprint,
            wsstep::testing::Sha256FingerprintOfPemFile(PkiPath("client/rsa.pem")));
  EXPECT_FALSE(r->http.tls.protocol.empty());
}

TEST_F(SoapInterop, Soap12OperationThroughSubmit) {
  SoapClient client(*engine_);
  std::promise<Result<SoapResult>> promise;
  client.Submit(Step(SoapVersion::k12, "Compute", OrderParams()), Transport(),
                rest::testutil::Creds("rsa"), rest::testutil::Soon(), {},
                [&promise](Result<SoapResult> r) { promise.set_value(std::move(r)); });
  auto future = promise.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  Result<SoapResult> r = future.get();
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->http.status, 200);
  EXPECT_EQ(r->response.version, SoapVersion::k12);
  EXPECT_EQ(ResultField(*r, "Compute", "total"), "9.25");
  EXPECT_EQ(ResultField(*r, "Compute", "count"), "6");
  EXPECT_EQ(ResultField(*r, "Compute", "customer"), "ACME <&> \"Ltd\"");
}

TEST_F(SoapInterop, HostileTextRoundTripsThroughTheService) {
  const std::string text = "<&]]>\"' \xC3\xBC \xE2\x82\xAC \xF0\x9F\x98\x80 tab\tline\nend";
  for (SoapVersion v : {SoapVersion::k11, SoapVersion::k12}) {
    auto r = Call(Step(v, "Echo", {Leaf("text", text)}));
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    ASSERT_FALSE(r->response.fault) << r->response.fault->reason;
    const XmlElement* resp = r->response.body.Child("EchoResponse");
    ASSERT_TRUE(resp && resp->Child("EchoResult")) << r->response.body_xml;
    EXPECT_EQ(resp->Child("EchoResult")->text, text);
  }
}

TEST_F(SoapInterop, Soap11FaultRaisedByTheService) {
  auto r = Call(Step(SoapVersion::k11, "Fail", {Leaf("reason", "bad <order> & more")}));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->http.status, 500);
  ASSERT_TRUE(r->response.fault);
  const SoapFault& f = *r->response.fault;
  EXPECT_EQ(f.code_namespace, kSoap11Namespace);
  EXPECT_EQ(LocalPart(f.code), "Client.Validation");
  EXPECT_EQ(f.reason, "bad <order> & more");
  EXPECT_TRUE(f.has_detail);
  EXPECT_THAT(f.detail_xml, HasSubstr(">4711</code>"));
  const Error e = FaultError(f);
  EXPECT_EQ(e.code, Code::kSoapFault);
  EXPECT_EQ(e.side, Side::kClient);
}

TEST_F(SoapInterop, Soap12FaultRaisedByTheService) {
  auto r = Call(Step(SoapVersion::k12, "Fail", {Leaf("reason", "no stock")}));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->http.status, 500);
  ASSERT_TRUE(r->response.fault);
  const SoapFault& f = *r->response.fault;
  EXPECT_EQ(f.code_namespace, kSoap12Namespace);
  EXPECT_EQ(LocalPart(f.code), "Sender");
  EXPECT_EQ(f.subcodes, std::vector<std::string>{"Validation"});
  EXPECT_EQ(f.reason, "no stock");
  EXPECT_EQ(f.lang, "en");
  EXPECT_THAT(f.detail_xml, HasSubstr(">4711</code>"));
}

TEST_F(SoapInterop, WsSecurityUsernameTokenIsAcceptedByTheService) {
  struct Case {
    SoapVersion version;
    PasswordType type;
    std::string password;
    bool ok;
  };
  for (const Case& c : {Case{SoapVersion::k11, PasswordType::kDigest, kServicePassword, true},
                        Case{SoapVersion::k12, PasswordType::kText, kServicePassword, true},
                        Case{SoapVersion::k12, PasswordType::kDigest, "wrong", false}}) {
    SoapStep step = Step(c.version, "WhoAmI");
    step.security.username_token =
        UsernameToken{.username = "alice", .password = SecretBytes(c.password), .type = c.type};
    step.security.timestamp = {.enabled = true, .ttl_seconds = 300};
    step.security.must_understand = true;
    auto r = Call(step);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    ASSERT_FALSE(r->response.fault) << r->response.fault->reason;
    EXPECT_EQ(ResultField(*r, "WhoAmI", "username"), "alice");
    EXPECT_EQ(ResultField(*r, "WhoAmI", "password_type"),
              c.type == PasswordType::kDigest ? "PasswordDigest" : "PasswordText");
    EXPECT_EQ(ResultField(*r, "WhoAmI", "password_ok"), c.ok ? "true" : "false");
    EXPECT_EQ(ResultField(*r, "WhoAmI", "has_timestamp"), "true");
    EXPECT_EQ(ResultField(*r, "WhoAmI", "client_subject"), "CN=rsa,O=wsstep tests");
    if (c.version == SoapVersion::k11) {
      EXPECT_EQ(ResultField(*r, "WhoAmI", "soap_action"), "\"urn:wsstep:interop:WhoAmI\"");
      EXPECT_EQ(ResultField(*r, "WhoAmI", "content_type"), "text/xml; charset=utf-8");
    } else {
      EXPECT_EQ(ResultField(*r, "WhoAmI", "soap_action"), "");
      EXPECT_EQ(ResultField(*r, "WhoAmI", "content_type"),
                "application/soap+xml; charset=utf-8; action=\"urn:wsstep:interop:WhoAmI\"");
    }
  }
}

TEST_F(SoapInterop, WrongClientCertificateIsRejected) {
  auto r = Call(Step(SoapVersion::k11, "Echo", {Leaf("text", "x")}), "self-signed");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kClientCertRejected) << r.error().ToString();
  EXPECT_EQ(r.error().side, Side::kClient);
  EXPECT_EQ(r.error().detail.at("certificate"), "self-signed");
  EXPECT_THAT(r.error().message, StartsWith(Endpoint(SoapVersion::k11) + ": "));
}

TEST_F(SoapInterop, MissingClientCertificateIsRequired) {
  auto r = Call(Step(SoapVersion::k12, "Echo", {Leaf("text", "x")}), "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kClientCertRequired) << r.error().ToString();
}

TEST_F(SoapInterop, WrongSoapVersionIsReported) {
  SoapStep step = Step(SoapVersion::k11, "Echo", {Leaf("text", "x")});
  step.endpoint = Endpoint(SoapVersion::k12);  // the 1.2 service answers with a 1.2 fault
  auto r = Call(step);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kInvalidResponse);
  EXPECT_THAT(r.error().message, HasSubstr("expected a SOAP 1.1 envelope, got SOAP 1.2"));
}

}  // namespace
}  // namespace wsstep::soap

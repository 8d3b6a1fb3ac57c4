// Hostile input over gRPC, against the real plugin binary: messages over the plugin's
// message limit, invalid UTF-8 in string fields, 100,000 headers, CR/LF in header names
// and values, bodies over max_body_bytes, SOAP parameter trees 10,000 deep, bogus URLs.
// Each is refused with an exact answer naming the input (the contract's INVALID_ARGUMENT /
// RESOURCE_EXHAUSTED when the request cannot even be read, otherwise the catalog's
// INVALID_STEP_CONFIG outcome with the field), nothing reaches the origin, and the plugin
// stays up: the next normal step succeeds and health says SERVING.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/e2e/e2e_util.h"
#include "tests/mock_engine/mock_engine.h"
#include "tests/support/pki.h"
#include "tests/support/tls_server.h"

namespace wsstep::e2e {
namespace {

using ::testing::HasSubstr;
using mock_engine::MockEngine;

class HostileInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    origin_ = std::make_unique<testing::TlsServer>(MtlsOriginConfig(nullptr));
    ASSERT_TRUE(origin_->Start()) << origin_->start_error();
    ASSERT_TRUE(engine_.Start()) << engine_.start_error();
    auto info = engine_.Info();
    ASSERT_TRUE(info.ok());
    limits_ = info.response.limits();
    ASSERT_EQ(limits_.max_message_bytes(), 16 << 20) << "the documented default";
    ASSERT_EQ(limits_.max_body_bytes(), 8 << 20) << "the documented default";
    ASSERT_FALSE(ImportRsaIdentity(engine_, origin_->port()).id().empty());
  }
  void TearDown() override {
    EXPECT_EQ(origin_->request_count(), normal_steps_) << "a refused input reached the origin";
    EXPECT_EQ(engine_.Stop(), 0);
    origin_->Stop();
  }

  std::string Url(const std::string& path = "/") const {
    return "https://localhost:" + std::to_string(origin_->port()) + path;
  }

  // ExecuteSoapStep straight over the plugin's channel (a SOAP step of any shape).
  grpc::Status CallSoap(const v1::SoapStep& step, v1::ExecuteSoapStepResponse* response) {
    auto stub = v1::StepPluginService::NewStub(engine_.process().channel());
    v1::ExecuteSoapStepRequest request;
    *request.mutable_step() = step;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return stub->ExecuteSoapStep(&ctx, request, response);
  }

  // The plugin is still up and serves a normal step.
  void ExpectStillServing(const std::string& after) {
    EXPECT_EQ(engine_.Health("plugin"), "SERVING") << after;
    auto r = engine_.Rest(mock_engine::GetStep(Url("/after")), "", Opts("after"));
    ASSERT_TRUE(r.ok()) << after << ": " << r.status.error_message();
    ASSERT_TRUE(r.response.outcome().has_http()) << after << ": " << r.response.outcome().error().message();
    EXPECT_EQ(r.response.outcome().http().status(), 200) << after;
    ++normal_steps_;
  }

  // The step was refused as the catalog's INVALID_STEP_CONFIG outcome on `field`.
  static void ExpectInvalidStepConfig(const grpc::Status& status, const v1::StepOutcome& outcome,
                                      const std::string& field, const std::string& what) {
    // Messages quote the input; a 100 kB URL is not worth printing in full.
    auto brief = [](const std::string& m) { return m.size() > 300 ? m.substr(0, 300) + "..." : m; };
    ASSERT_TRUE(status.ok()) << what << ": gRPC " << status.error_code() << " " << brief(status.error_message());
    ASSERT_TRUE(outcome.has_error()) << what << ": HTTP " << outcome.http().status();
    EXPECT_EQ(outcome.error().code(), "INVALID_STEP_CONFIG") << what << ": " << brief(outcome.error().message());
    EXPECT_EQ(outcome.error().side(), v1::ERROR_SIDE_CONFIGURATION) << what;
    ASSERT_TRUE(outcome.error().detail().contains("field")) << what << ": " << brief(outcome.error().message());
    EXPECT_EQ(outcome.error().detail().at("field"), field) << what << ": " << brief(outcome.error().message());
    EXPECT_THAT(outcome.error().message(), HasSubstr(field)) << what;
  }

  std::unique_ptr<testing::TlsServer> origin_;
  MockEngine engine_;
  v1::PluginLimits limits_;
  size_t normal_steps_ = 0;
};

TEST_F(HostileInputTest, AMessageOverMaxMessageBytesIsResourceExhausted) {
  auto step = mock_engine::GetStep(Url());
  step.set_method("POST");
  step.set_body(std::string(static_cast<size_t>(limits_.max_message_bytes()) + 1024, 'b'));
  auto r = engine_.Rest(step, "", Opts("oversized"));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << r.status.error_message();
  ExpectStillServing("oversized message");
}

TEST_F(HostileInputTest, ABodyOverMaxBodyBytesIsInvalidStepConfigOnTheBody) {
  auto step = mock_engine::GetStep(Url());
  step.set_method("POST");
  step.set_content_type("application/octet-stream");
  step.set_body(std::string(10 * 1000 * 1000, 'b'));  // 10 MB > 8 MiB, < 16 MiB message
  auto r = engine_.Rest(step, "", Opts("big-body"));
  ExpectInvalidStepConfig(r.status, r.response.outcome(), "body", "10 MB body");
  EXPECT_THAT(r.response.outcome().error().message(), HasSubstr(std::to_string(limits_.max_body_bytes())));
  ExpectStillServing("10 MB body");
}

// What a host sees for a request protobuf cannot parse: gRPC refuses it before the
// plugin's handler runs (on its own it would answer UNIMPLEMENTED with an empty message);
// the plugin's interceptor turns that into the contract's INVALID_ARGUMENT naming the
// method and the likely causes. The plugin never runs the request and stays up.
void ExpectUnreadableRequest(const grpc::Status& s, const std::string& method) {
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(),
              HasSubstr("the request to /wsstep.v1.StepPluginService/" + method +
                        " could not be parsed: a string field is not valid UTF-8, messages "
                        "are nested deeper than 100 levels"));
}

TEST_F(HostileInputTest, InvalidUtf8InAStringFieldIsRefusedBeforeTheStep) {
  // Protobuf refuses to parse a proto3 string that is not UTF-8. The C++ client
  // serializes it anyway (with an error log line), as a careless host would.
  for (const std::string& bad : {std::string("https://localhost/\xff\xfe"), std::string("\xc3\x28")}) {
    auto url_step = mock_engine::GetStep(bad);
    auto r = engine_.Rest(url_step, "", Opts("utf8-url"));
    ExpectUnreadableRequest(r.status, "ExecuteRestStep");
    auto header_step = mock_engine::GetStep(Url());
    auto* h = header_step.add_headers();
    h->set_name("X-Bad");
    h->set_value(bad);
    auto rh = engine_.Rest(header_step, "", Opts("utf8-header"));
    ExpectUnreadableRequest(rh.status, "ExecuteRestStep");
    // The same step as a call on an ExecuteSteps stream ends the stream the same way.
    auto stream = engine_.OpenSteps(Opts("utf8-stream"));
    v1::ExecuteStepsRequest request;
    v1::StepCall* call = request.add_calls();
    call->set_call_id(1);
    *call->mutable_rest()->mutable_step() = url_step;
    stream->Send(request);
    stream->CloseSend();
    EXPECT_FALSE(stream->Read().has_value());
    ExpectUnreadableRequest(stream->Finish(), "ExecuteSteps");
  }
  ExpectStillServing("invalid UTF-8");
}

TEST_F(HostileInputTest, AHundredThousandHeadersAreInvalidStepConfigOnTheHeaders) {
  auto step = mock_engine::GetStep(Url());
  for (int i = 0; i < 100'000; ++i) {
    auto* h = step.add_headers();
    h->set_name("X-H" + std::to_string(i));
    h->set_value("v");
  }
  auto r = engine_.Rest(step, "", Opts("headers-100k"));
  ExpectInvalidStepConfig(r.status, r.response.outcome(), "headers", "100k headers");
  ExpectStillServing("100k headers");
}

TEST_F(HostileInputTest, CrOrLfInAHeaderNameOrValueIsInvalidStepConfigOnThatField) {
  struct Case {
    std::string name, value, field;
  };
  const std::vector<Case> cases = {
      {"X-Ok", "a\r\nX-Injected: 1", "headers[1].value"},
      {"X-Ok", "a\nb", "headers[1].value"},
      {"X-Ok", "a\rb", "headers[1].value"},
      {"X-Bad\r\nX-Injected", "1", "headers[1].name"},
      {"X-Bad\n", "1", "headers[1].name"},
  };
  for (const auto& c : cases) {
    auto step = mock_engine::GetStep(Url());
    auto* first = step.add_headers();
    first->set_name("Accept");
    first->set_value("*/*");
    auto* h = step.add_headers();
    h->set_name(c.name);
    h->set_value(c.value);
    auto r = engine_.Rest(step, "", Opts("crlf"));
    ExpectInvalidStepConfig(r.status, r.response.outcome(), c.field, "header " + c.field);
  }
  ExpectStillServing("CR/LF headers");
}

// The step is checked before its certificate is resolved: a broken step to a host with no
// binding is INVALID_STEP_CONFIG on the broken field, never CERTIFICATE_NOT_FOUND.
TEST_F(HostileInputTest, ABrokenStepToAnUnboundHostIsInvalidStepConfigNotCertificateNotFound) {
  const std::string unbound = "https://localhost:1/";
  auto step = mock_engine::GetStep(unbound);
  auto* h = step.add_headers();
  h->set_name("X-Ok");
  h->set_value("a\r\nX-Injected: 1");
  auto r = engine_.Rest(step, "", Opts("unbound-crlf"));
  ExpectInvalidStepConfig(r.status, r.response.outcome(), "headers[0].value", "unbound + CR/LF");
  // The same step without the broken header is the resolution's outcome.
  auto fine = engine_.Rest(mock_engine::GetStep(unbound), "", Opts("unbound"));
  ASSERT_TRUE(fine.status.ok()) << fine.status.error_message();
  EXPECT_EQ(fine.response.outcome().error().code(), "CERTIFICATE_NOT_FOUND")
      << fine.response.outcome().error().message();
  ExpectStillServing("unbound host");
}

TEST_F(HostileInputTest, BogusUrlsAreInvalidStepConfigOnTheUrl) {
  const std::vector<std::string> urls = {
      "",
      "not a url",
      "ht!tp://localhost/",
      "file:///etc/passwd",
      "gopher://localhost:70/",
      "https://",
      "https://[::1",
      "https://localhost:99999/",
      "https://localhost:-1/",
      "https://local host/",
      "https://localhost/\r\nX-Injected: 1",
      std::string("https://localhost/\0x", 19),
      "https://" + std::string(100'000, 'a') + "/",
  };
  for (const auto& url : urls) {
    auto r = engine_.Rest(mock_engine::GetStep(url), "", Opts("bogus-url"));
    ExpectInvalidStepConfig(r.status, r.response.outcome(), "url", "url '" + url.substr(0, 40) + "'");
  }
  ExpectStillServing("bogus URLs");
}

// A SOAP parameter tree `depth` elements deep.
v1::SoapStep DeepSoapStep(const std::string& endpoint, int depth) {
  v1::SoapStep step;
  step.set_endpoint(endpoint);
  step.mutable_tls()->set_ssl_verification(true);
  auto* op = step.mutable_operation();
  op->set_name("Op");
  op->set_namespace_uri("urn:e2e");
  v1::XmlElement* e = op->add_parameters();
  for (int i = 1; i < depth; ++i) {
    e->set_name("p");
    e = e->add_children();
  }
  e->set_name("leaf");
  e->set_text("x");
  return step;
}

TEST_F(HostileInputTest, SoapParameterTreesTenThousandDeepAreRefusedAndThePluginStaysUp) {
  // Deeper than protobuf's parser goes (100 nested messages): the request cannot be read.
  {
    v1::ExecuteSoapStepResponse response;
    const grpc::Status s = CallSoap(DeepSoapStep(Url("/soap"), 10'000), &response);
    ExpectUnreadableRequest(s, "ExecuteSoapStep");
  }
  // Deep enough to parse, deeper than the SOAP layer builds: refused on the parameters.
  {
    v1::ExecuteSoapStepResponse response;
    const grpc::Status s = CallSoap(DeepSoapStep(Url("/soap"), 90), &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_TRUE(response.outcome().has_error());
    EXPECT_EQ(response.outcome().error().code(), "INVALID_STEP_CONFIG") << response.outcome().error().message();
    EXPECT_THAT(response.outcome().error().message(), HasSubstr("deeper than 64"));
  }
  // A raw body nested 10,000 deep is text to protobuf: the SOAP layer refuses it.
  {
    v1::SoapStep step;
    step.set_endpoint(Url("/soap"));
    step.mutable_tls()->set_ssl_verification(true);
    step.set_raw_body(NestedXml("a", 10'000));
    v1::ExecuteSoapStepResponse response;
    const grpc::Status s = CallSoap(step, &response);
    ExpectInvalidStepConfig(s, response.outcome(), "raw_body", "raw body 10k deep");
  }
  // A header block likewise.
  {
    v1::SoapStep step;
    step.set_endpoint(Url("/soap"));
    step.mutable_tls()->set_ssl_verification(true);
    step.set_raw_body("<ok/>");
    step.add_header_blocks(NestedXml("h", 10'000));
    v1::ExecuteSoapStepResponse response;
    const grpc::Status s = CallSoap(step, &response);
    ExpectInvalidStepConfig(s, response.outcome(), "header_blocks[0]", "header block 10k deep");
  }
  ExpectStillServing("deep SOAP trees");
}

TEST_F(HostileInputTest, ASoapRawBodyOrHeaderBlocksOverMaxBodyBytesAreInvalidStepConfig) {
  // 10 MB > 8 MiB max_body_bytes, < 16 MiB max_message_bytes: it reaches the plugin.
  const std::string ten_mb = "<a>" + std::string(10 * 1000 * 1000, 'x') + "</a>";
  {
    v1::SoapStep step;
    step.set_endpoint(Url("/soap"));
    step.mutable_tls()->set_ssl_verification(true);
    step.set_raw_body(ten_mb);
    v1::ExecuteSoapStepResponse response;
    const grpc::Status s = CallSoap(step, &response);
    ExpectInvalidStepConfig(s, response.outcome(), "raw_body", "10 MB raw body");
    EXPECT_THAT(response.outcome().error().message(),
                HasSubstr(std::to_string(limits_.max_body_bytes())));
  }
  // Header blocks count with the body: the block that crosses the limit is named.
  {
    v1::SoapStep step;
    step.set_endpoint(Url("/soap"));
    step.mutable_tls()->set_ssl_verification(true);
    step.set_raw_body("<ok/>");
    step.add_header_blocks("<h/>");
    step.add_header_blocks(ten_mb);
    v1::ExecuteSoapStepResponse response;
    const grpc::Status s = CallSoap(step, &response);
    ExpectInvalidStepConfig(s, response.outcome(), "header_blocks[1]", "10 MB header block");
  }
  ExpectStillServing("10 MB SOAP body");
}

// Contract errors travel in trailers (grpc-message, grpc-status-details-bin), which hosts
// accept only up to a few KiB (gRPC's default: 8 KiB of metadata): an error that quotes a
// huge input must still reach the host as itself, with its code and field.
TEST_F(HostileInputTest, AdminErrorsQuotingAHugeInputStillReachTheHostWithTheirCode) {
  const std::string huge(100'000, 'n');
  auto certs = v1::CertificateService::NewStub(engine_.process().channel());
  {
    v1::GetCertificateRequest req;
    req.set_name(huge);
    v1::GetCertificateResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    const grpc::Status s = certs->GetCertificate(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message().substr(0, 200);
    EXPECT_LT(s.error_message().size(), 4096u);
  }
  {
    auto create = mock_engine::KeyPairFromFiles(huge, "client/second.pem", "client/second.key.pem", {});
    auto r = engine_.Create(create);
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << r.status.error_message().substr(0, 200);
    ASSERT_FALSE(r.details.violations.empty());
    EXPECT_EQ(r.details.violations[0].field, "certificate.name");
  }
  {
    v1::ResolveCertificateRequest req;
    req.set_host(huge);
    req.set_port(443);
    v1::ResolveCertificateResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    const grpc::Status s = certs->ResolveCertificate(&ctx, req, &resp);
    // Resolution failures are part of the answer, like a step's.
    ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message().substr(0, 200);
    EXPECT_EQ(resp.error().code(), "CERTIFICATE_NOT_FOUND") << resp.error().message().substr(0, 200);
  }
  ExpectStillServing("huge admin inputs");
}

// The other direction: a SOAP response whose payload nests deeper than a host's protobuf
// parser accepts (100 nested messages, in C++, Java, Go and Python alike) must not come
// back as a tree no host can read: it is an INVALID_RESPONSE outcome. A merely deep one
// (40 levels) comes back whole.
TEST_F(HostileInputTest, ASoapResponseTooDeepForAHostToParseIsAnInvalidResponseOutcome) {
  origin_->SetHandler([](const testing::ServerRequest& req) {
    const int depth = req.target == "/deep150" ? 150 : 40;
    testing::ServerResponse r;
    r.headers.push_back({"Content-Type", "text/xml; charset=utf-8"});
    r.body = R"(<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>)" +
             NestedXml("a", depth) + "</s:Body></s:Envelope>";
    return r;
  });
  auto stub = v1::StepPluginService::NewStub(engine_.process().channel());
  auto call = [&](const std::string& path, v1::ExecuteSoapStepResponse* response) {
    v1::ExecuteSoapStepRequest request;
    request.mutable_step()->set_endpoint(Url(path));
    request.mutable_step()->mutable_tls()->set_ssl_verification(true);
    request.mutable_step()->set_raw_body("<ping xmlns=\"urn:e2e\"/>");
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    ++normal_steps_;  // these reach the origin
    return stub->ExecuteSoapStep(&ctx, request, response);
  };
  {
    v1::ExecuteSoapStepResponse response;
    const grpc::Status s = call("/deep150", &response);
    ASSERT_TRUE(s.ok()) << "the host could not read the plugin's answer: gRPC " << s.error_code() << " "
                        << s.error_message();
    ASSERT_TRUE(response.outcome().has_error()) << "a tree 150 deep came back";
    EXPECT_EQ(response.outcome().error().code(), "INVALID_RESPONSE") << response.outcome().error().message();
    EXPECT_THAT(response.outcome().error().message(), HasSubstr("deeper than"));
  }
  {
    v1::ExecuteSoapStepResponse response;
    const grpc::Status s = call("/deep40", &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_TRUE(response.outcome().has_soap()) << response.outcome().error().message();
    int depth = 0;
    const v1::XmlElement* e = response.outcome().soap().body_size() == 1 ? &response.outcome().soap().body(0) : nullptr;
    while (e != nullptr) {
      ++depth;
      e = e->children_size() == 1 ? &e->children(0) : nullptr;
    }
    EXPECT_EQ(depth, 40);
  }
  origin_->SetHandler(nullptr);
  ExpectStillServing("deep SOAP response");
}

}  // namespace
}  // namespace wsstep::e2e

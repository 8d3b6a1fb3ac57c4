// W3C trace context through the real plugin: the host's traceparent (gRPC metadata) puts
// trace and span ids on the step's log lines, and with WSSTEP_PROPAGATE_TRACE_CONTEXT the
// origin receives a child traceparent (this step's span, the host's trace) and the
// host's tracestate. Without the setting nothing is sent; a broken traceparent is no trace.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <sstream>

#include "tests/e2e/e2e_util.h"
#include "tests/mock_engine/mock_engine.h"
#include "tests/support/nginx.h"
#include "tests/support/tls_server.h"
#include "tests/support/wait.h"
#include "wsstep/v1/step_plugin_service.grpc.pb.h"

namespace wsstep::e2e {
namespace {

using mock_engine::MockEngine;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::string_view kTraceId = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr std::string_view kHostSpan = "00f067aa0ba902b7";

mock_engine::CallOptions Traced(std::string step_id, std::string traceparent) {
  mock_engine::CallOptions o = Opts(std::move(step_id));
  o.traceparent = std::move(traceparent);
  o.tracestate = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
  return o;
}

std::string HostTraceparent() {
  return "00-" + std::string(kTraceId) + "-" + std::string(kHostSpan) + "-01";
}

class TraceContextTest : public ::testing::Test {
 protected:
  void Start(bool propagate) {
    origin_ = std::make_unique<testing::TlsServer>(MtlsOriginConfig(nullptr));
    ASSERT_TRUE(origin_->Start()) << origin_->start_error();
    std::vector<std::pair<std::string, std::string>> env;
    if (propagate) env.push_back({"WSSTEP_PROPAGATE_TRACE_CONTEXT", "true"});
    ASSERT_TRUE(engine_.Start(env)) << engine_.start_error();
    ASSERT_FALSE(ImportRsaIdentity(engine_, origin_->port()).id().empty());
  }
  void TearDown() override {
    EXPECT_EQ(engine_.Stop(), 0);
    if (origin_) origin_->Stop();
  }
  std::string Url() const { return "https://localhost:" + std::to_string(origin_->port()) + "/t"; }

  std::string FinishedLine(const std::string& step_id) { return FinishedLineOf(engine_, step_id); }

  std::unique_ptr<testing::TlsServer> origin_;
  MockEngine engine_;
};

TEST_F(TraceContextTest, TheOriginGetsAChildOfTheHostsSpanAndTheLogNamesIt) {
  Start(/*propagate=*/true);
  std::set<std::string> spans;
  for (const char* id : {"traced-1", "traced-2"}) {
    auto r = engine_.Rest(mock_engine::GetStep(Url()), "", Traced(id, HostTraceparent()));
    ASSERT_TRUE(r.ok()) << r.status.error_message();
    ASSERT_TRUE(r.response.outcome().has_http()) << r.response.outcome().error().message();
    const auto requests = origin_->requests();
    ASSERT_FALSE(requests.empty());
    const std::string sent = requests.back().request.Header("traceparent");
    std::smatch m;
    ASSERT_TRUE(std::regex_match(sent, m, std::regex("00-([0-9a-f]{32})-([0-9a-f]{16})-01")))
        << sent;
    EXPECT_EQ(m[1].str(), kTraceId);
    EXPECT_NE(m[2].str(), kHostSpan) << "the origin must see our span, a child of the host's";
    spans.insert(m[2].str());
    EXPECT_EQ(requests.back().request.Header("tracestate"),
              "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    const std::string line = FinishedLine(id);
    EXPECT_THAT(line, HasSubstr("\"trace_id\":\"" + std::string(kTraceId) + "\""));
    EXPECT_THAT(line, HasSubstr("\"span_id\":\"" + m[2].str() + "\""));
    EXPECT_THAT(line, HasSubstr("\"parent_span_id\":\"" + std::string(kHostSpan) + "\""));
  }
  EXPECT_EQ(spans.size(), 2u) << "every step is a span of its own";
}

TEST_F(TraceContextTest, ASoapStepSendsTheChildTraceparentToo) {
  Start(/*propagate=*/true);
  v1::SoapStep step;
  step.set_endpoint(Url());
  step.mutable_tls()->set_ssl_verification(true);
  step.mutable_operation()->set_name("Ping");
  step.mutable_operation()->set_namespace_uri("urn:e2e");
  auto stub = v1::StepPluginService::NewStub(engine_.process().channel());
  v1::ExecuteSoapStepRequest request;
  *request.mutable_step() = step;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  ctx.AddMetadata("traceparent", HostTraceparent());
  v1::ExecuteSoapStepResponse response;
  ASSERT_TRUE(stub->ExecuteSoapStep(&ctx, request, &response).ok());
  // The origin answers plain text, not SOAP: the outcome is an error, but the request
  // (with its headers) reached it.
  const auto requests = origin_->requests();
  ASSERT_EQ(requests.size(), 1u);
  const std::string sent = requests[0].request.Header("traceparent");
  EXPECT_TRUE(
      std::regex_match(sent, std::regex("00-" + std::string(kTraceId) + "-[0-9a-f]{16}-01")))
      << sent;
  EXPECT_EQ(sent.find(kHostSpan), std::string::npos) << sent;
  EXPECT_FALSE(requests[0].request.HasHeader("tracestate")) << "the host sent none";
}

TEST_F(TraceContextTest, WithoutTheSettingNothingIsSentButTheLogStillNamesTheTrace) {
  Start(/*propagate=*/false);
  auto r = engine_.Rest(mock_engine::GetStep(Url()), "", Traced("quiet", HostTraceparent()));
  ASSERT_TRUE(r.ok() && r.response.outcome().has_http()) << r.status.error_message();
  EXPECT_FALSE(origin_->requests().back().request.HasHeader("traceparent"));
  EXPECT_FALSE(origin_->requests().back().request.HasHeader("tracestate"));
  EXPECT_THAT(FinishedLine("quiet"), HasSubstr("\"trace_id\":\"" + std::string(kTraceId) + "\""));
}

TEST_F(TraceContextTest, ABrokenTraceparentIsNoTraceAtAll) {
  Start(/*propagate=*/true);
  for (const std::string& bad :
       {"00-" + std::string(32, '0') + "-" + std::string(kHostSpan) + "-01",   // zero trace id
        "00-" + std::string(kTraceId) + "-" + std::string(kHostSpan) + "-1",   // short flags
        "ff-" + std::string(kTraceId) + "-" + std::string(kHostSpan) + "-01",  // version ff
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-" + std::string(kHostSpan) + "-01"}) {  // upper case
    const std::string id = "broken-" + std::to_string(bad.size()) + bad.substr(0, 2);
    auto r = engine_.Rest(mock_engine::GetStep(Url()), "", Traced(id, bad));
    ASSERT_TRUE(r.ok()) << r.status.error_message();
    ASSERT_TRUE(r.response.outcome().has_http()) << r.response.outcome().error().message();
    EXPECT_FALSE(origin_->requests().back().request.HasHeader("traceparent")) << bad;
    EXPECT_THAT(FinishedLine(id), Not(HasSubstr("trace_id"))) << bad;
  }
}

TEST_F(TraceContextTest, AStepCanAskForPropagationThePluginDoesNotDo) {
  Start(/*propagate=*/false);
  v1::RestStep step = mock_engine::GetStep(Url());
  step.mutable_propagate_trace_context()->set_value(true);
  auto r = engine_.Rest(step, "", Traced("asks", HostTraceparent()));
  ASSERT_TRUE(r.ok() && r.response.outcome().has_http()) << r.status.error_message();
  EXPECT_TRUE(std::regex_match(origin_->requests().back().request.Header("traceparent"),
                               std::regex("00-" + std::string(kTraceId) + "-[0-9a-f]{16}-01")));
  EXPECT_EQ(origin_->requests().back().request.Header("tracestate"),
            "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
}

TEST_F(TraceContextTest, AStepCanRefusePropagationThePluginDoes) {
  Start(/*propagate=*/true);
  v1::RestStep step = mock_engine::GetStep(Url());
  step.mutable_propagate_trace_context()->set_value(false);
  auto r = engine_.Rest(step, "", Traced("refuses", HostTraceparent()));
  ASSERT_TRUE(r.ok() && r.response.outcome().has_http()) << r.status.error_message();
  EXPECT_FALSE(origin_->requests().back().request.HasHeader("traceparent"));
  EXPECT_FALSE(origin_->requests().back().request.HasHeader("tracestate"));
  // The log still names the trace: that stays between the host and the plugin.
  EXPECT_THAT(FinishedLine("refuses"), HasSubstr("\"trace_id\":\"" + std::string(kTraceId) + "\""));
}

TEST(TraceContextNginxTest, NginxReceivesTheChildTraceparentTheLogNames) {
  // A real nginx with client certificates required answers with the trace headers it
  // received; the step's span in the plugin's log is the span nginx saw.
  testing::NginxConfig config;
  config.verify_client = testing::NginxVerifyClient::kOn;
  config.extra_server_directives =
      "location = /trace { return 200 \"$http_traceparent|$http_tracestate\"; }";
  testing::NginxServer nginx(config);
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();
  MockEngine engine;
  ASSERT_TRUE(engine.Start({{"WSSTEP_PROPAGATE_TRACE_CONTEXT", "true"}})) << engine.start_error();
  ASSERT_FALSE(ImportRsaIdentity(engine, nginx.port()).id().empty());

  auto r = engine.Rest(
      mock_engine::GetStep("https://localhost:" + std::to_string(nginx.port()) + "/trace"), "",
      Traced("at-nginx", HostTraceparent()));
  ASSERT_TRUE(r.ok()) << r.status.error_message();
  ASSERT_TRUE(r.response.outcome().has_http()) << r.response.outcome().error().message();
  EXPECT_EQ(r.response.outcome().http().status(), 200);
  std::smatch m;
  const std::string body = r.response.outcome().http().body();
  ASSERT_TRUE(
      std::regex_match(body, m,
                       std::regex("00-" + std::string(kTraceId) +
                                  "-([0-9a-f]{16})-01\\|congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")))
      << body;
  const std::string span = m[1].str();
  EXPECT_NE(span, kHostSpan);
  const std::string line = FinishedLineOf(engine, "at-nginx");
  EXPECT_THAT(line, HasSubstr("\"trace_id\":\"" + std::string(kTraceId) + "\""));
  EXPECT_THAT(line, HasSubstr("\"span_id\":\"" + span + "\""));
  EXPECT_THAT(line, HasSubstr("\"parent_span_id\":\"" + std::string(kHostSpan) + "\""));
  EXPECT_EQ(engine.Stop(), 0);
}

}  // namespace
}  // namespace wsstep::e2e

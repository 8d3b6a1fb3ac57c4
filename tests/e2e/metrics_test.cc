// Prometheus metrics through the real plugin (WSSTEP_METRICS_LISTEN): the endpoint is
// scraped over HTTP while steps run against an mTLS origin, and the values move exactly
// as the steps did — steps by kind, outcome and code, latency and phase histograms,
// connections and handshakes of the entry, steps in flight, refusals, and the store's
// entries, expiry and bindings. Every scrape passes `promtool check metrics`.
#include <curl/curl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <ctime>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/e2e/e2e_util.h"
#include "tests/mock_engine/mock_engine.h"
#include "tests/support/tls_server.h"
#include "tests/support/wait.h"

namespace wsstep::e2e {
namespace {

using mock_engine::MockEngine;
using Labels = std::map<std::string, std::string>;

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// GET `url`; the body, with the HTTP status and content type checked.
std::string Scrape(const std::string& url) {
  CURL* curl = curl_easy_init();
  std::string body;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  char* type = nullptr;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
  EXPECT_EQ(rc, CURLE_OK) << url << ": " << curl_easy_strerror(rc);
  EXPECT_EQ(status, 200) << url;
  EXPECT_THAT(type == nullptr ? "" : type, ::testing::StartsWith("text/plain"));
  curl_easy_cleanup(curl);
  return body;
}

// The value of the series `name` whose labels are exactly `labels`; nullopt if absent.
std::optional<double> Value(const std::string& text, const std::string& name,
                            const Labels& labels = {}) {
  static const std::regex kLine(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$)");
  static const std::regex kLabel(R"re(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)")re");
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (line.empty() || line[0] == '#' || !std::regex_match(line, m, kLine)) continue;
    if (m[1].str() != name) continue;
    Labels got;
    const std::string body = m[3].str();
    for (std::sregex_iterator it(body.begin(), body.end(), kLabel), end; it != end; ++it) {
      got[(*it)[1].str()] = (*it)[2].str();
    }
    if (got == labels) return std::stod(m[4].str());
  }
  return std::nullopt;
}

// `promtool check metrics` on the text: "" when it passes, its complaint otherwise.
std::string PromtoolProblems(const std::string& text, const std::string& dir) {
  const std::string file = dir + "/scrape.txt";
  FILE* f = std::fopen(file.c_str(), "w");
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
  const std::string cmd = "promtool check metrics < " + file + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return "cannot run promtool";
  std::string out;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int rc = ::pclose(p);
  return rc == 0 ? "" : "promtool exit " + std::to_string(rc) + ": " + out;
}

class MetricsTest : public ::testing::Test {
 protected:
  void Start(testing::TlsServerConfig origin,
             std::vector<std::pair<std::string, std::string>> env = {}) {
    origin_ = std::make_unique<testing::TlsServer>(std::move(origin));
    ASSERT_TRUE(origin_->Start()) << origin_->start_error();
    env.push_back({"WSSTEP_METRICS_LISTEN", "127.0.0.1:0"});
    ASSERT_TRUE(engine_.Start(env)) << engine_.start_error();
    entry_ = ImportRsaIdentity(engine_, origin_->port());
    ASSERT_FALSE(entry_.id().empty());
    // The "serving" line names the endpoint (port 0 picked a free one).
    std::smatch m;
    const std::string err = engine_.StderrText();
    ASSERT_TRUE(std::regex_search(
        err, m, std::regex(R"re("metrics":"(http://127\.0\.0\.1:\d+/metrics)")re")))
        << err;
    url_ = m[1].str();
  }
  void TearDown() override {
    EXPECT_EQ(engine_.Stop(), 0);
    if (origin_) origin_->Stop();
  }
  std::string Url(const std::string& path = "/m") const {
    return "https://localhost:" + std::to_string(origin_->port()) + path;
  }
  // Scrapes, and fails the test unless promtool accepts the exposition.
  std::string CheckedScrape() {
    const std::string text = Scrape(url_);
    EXPECT_EQ(PromtoolProblems(text, work_.path()), "");
    return text;
  }
  Labels Rest(const std::string& outcome, const std::string& code = "") const {
    return {{"kind", "rest"}, {"outcome", outcome}, {"code", code}};
  }

  testing::TempDir work_;
  std::unique_ptr<testing::TlsServer> origin_;
  MockEngine engine_;
  v1::Certificate entry_;
  std::string url_;
};

TEST_F(MetricsTest, ValuesMoveAsStepsRun) {
  Start(MtlsOriginConfig(nullptr));
  const std::string name = entry_.name();

  const std::string before = CheckedScrape();
  EXPECT_EQ(Value(before, "wsstep_steps_total", Rest("http")), 0);
  EXPECT_EQ(Value(before, "wsstep_steps_total", Rest("error", "CLIENT_CERT_REJECTED")), 0)
      << "every step-time code has its series from the start";
  EXPECT_EQ(Value(before, "wsstep_steps_in_flight"), 0);
  EXPECT_EQ(Value(before, "wsstep_build_info", {{"version", "0.1.0"}}), 1);
  // The store: the key pair and the trust store, both valid and bound to the origin.
  EXPECT_EQ(Value(before, "wsstep_certificates", {{"status", "VALID"}}), 2);
  EXPECT_EQ(Value(before, "wsstep_certificates", {{"status", "EXPIRED"}}), 0);
  EXPECT_EQ(Value(before, "wsstep_certificate_info",
                  {{"entry", name}, {"status", "VALID"}, {"type", "KEY_PAIR"}}),
            1);
  EXPECT_EQ(Value(before, "wsstep_certificate_binding_info",
                  {{"binding", "localhost:" + std::to_string(origin_->port())},
                   {"entry", name},
                   {"environment", "default"}}),
            1);
  const auto expiry = Value(before, "wsstep_certificate_expiry_seconds", {{"entry", name}});
  ASSERT_TRUE(expiry.has_value());
  const double expected =
      static_cast<double>(entry_.certificate().not_after().seconds() - std::time(nullptr));
  EXPECT_NEAR(*expiry, expected, 120.0);
  EXPECT_EQ(Value(before, "wsstep_notifications_due"), 0);

  constexpr int kSteps = 5;
  for (int i = 0; i < kSteps; ++i) {
    auto r = engine_.Rest(mock_engine::GetStep(Url()), "", Opts("m-" + std::to_string(i)));
    ASSERT_TRUE(r.ok()) << r.status.error_message();
    ASSERT_TRUE(r.response.outcome().has_http()) << r.response.outcome().error().message();
  }
  // Nothing is bound to port 9: the store's catalog code.
  auto miss = engine_.Rest(mock_engine::GetStep("https://localhost:9/x"), "", Opts("m-miss"));
  ASSERT_TRUE(miss.ok());
  ASSERT_EQ(miss.response.outcome().error().code(), "CERTIFICATE_NOT_FOUND");

  const std::string after = CheckedScrape();
  EXPECT_EQ(Value(after, "wsstep_steps_total", Rest("http")), kSteps);
  EXPECT_EQ(Value(after, "wsstep_steps_total", Rest("error", "CERTIFICATE_NOT_FOUND")), 1);
  EXPECT_EQ(
      Value(after, "wsstep_step_duration_seconds_count", {{"kind", "rest"}, {"outcome", "http"}}),
      kSteps);
  EXPECT_EQ(
      Value(after, "wsstep_step_duration_seconds_count", {{"kind", "rest"}, {"outcome", "error"}}),
      1);
  EXPECT_EQ(Value(after, "wsstep_step_duration_seconds_bucket",
                  {{"kind", "rest"}, {"outcome", "http"}, {"le", "+Inf"}}),
            kSteps);
  EXPECT_EQ(Value(after, "wsstep_steps_in_flight"), 0);

  // The origin's requests, as the engine counted them for the entry: every step went over
  // one of its connections, new or kept alive, and every new one had a handshake.
  const double opened =
      Value(after, "wsstep_connections_opened_total", {{"entry", name}}).value_or(-1);
  const double reused =
      Value(after, "wsstep_connection_reuses_total", {{"entry", name}}).value_or(-1);
  const double full =
      Value(after, "wsstep_tls_handshakes_total", {{"entry", name}, {"handshake", "full"}})
          .value_or(-1);
  const double resumed =
      Value(after, "wsstep_tls_handshakes_total", {{"entry", name}, {"handshake", "resumed"}})
          .value_or(-1);
  EXPECT_EQ(Value(after, "wsstep_http_requests_total", {{"entry", name}}), kSteps);
  EXPECT_EQ(static_cast<size_t>(opened), origin_->connections().size());
  EXPECT_EQ(opened + reused, kSteps);
  EXPECT_EQ(full + resumed, opened);
  EXPECT_GE(full, 1);
  // One phase sample per new connection for connect and TLS, one per step for first byte.
  EXPECT_EQ(Value(after, "wsstep_step_phase_seconds_count", {{"kind", "rest"}, {"phase", "tls"}}),
            opened);
  EXPECT_EQ(
      Value(after, "wsstep_step_phase_seconds_count", {{"kind", "rest"}, {"phase", "first_byte"}}),
      kSteps);
}

// Response bodies are counted by how they travelled: whole in a step's result, or in
// chunks on an ExecuteSteps stream.
TEST_F(MetricsTest, ResponseBodyBytesAreCountedWholeAndInChunks) {
  constexpr uint64_t kStreamed = 1 << 20;
  Start(MtlsOriginConfig([](const testing::ServerRequest& req) {
    testing::ServerResponse r;
    if (req.target == "/big") {
      r.huge_body_bytes = kStreamed;
      r.chunked = true;
    } else {
      r.body = "small";
    }
    return r;
  }));
  const std::string before = CheckedScrape();
  EXPECT_EQ(Value(before, "wsstep_response_body_bytes_total", {{"delivery", "whole"}}), 0);
  EXPECT_EQ(Value(before, "wsstep_response_body_bytes_total", {{"delivery", "chunks"}}), 0);

  auto whole = engine_.Rest(mock_engine::GetStep(Url("/small")), "", Opts("whole"));
  ASSERT_TRUE(whole.response.outcome().has_http()) << whole.response.outcome().error().message();
  ASSERT_EQ(whole.response.outcome().http().body(), "small");

  auto stream = engine_.OpenSteps();
  v1::ExecuteStepsRequest request;
  v1::StepCall* call = request.add_calls();
  call->set_call_id(1);
  *call->mutable_rest()->mutable_step() = mock_engine::GetStep(Url("/big"));
  call->set_response_body_chunks(true);
  ASSERT_TRUE(stream->Send(request));
  uint64_t received = 0;
  std::optional<v1::StepCallResult> result;
  while (!result) {
    auto message = stream->Read();
    ASSERT_TRUE(message.has_value()) << "the stream ended before the call's result";
    for (const auto& chunk : message->body_chunks()) received += chunk.data().size();
    for (const auto& r : message->results()) result = r;
  }
  stream->CloseSend();
  while (stream->Read()) {
  }
  EXPECT_TRUE(stream->Finish().ok());
  ASSERT_TRUE(result->rest().outcome().has_http()) << result->rest().outcome().error().message();
  EXPECT_TRUE(result->rest().outcome().http().body_chunked());
  EXPECT_EQ(received, kStreamed);

  const std::string after = CheckedScrape();
  EXPECT_EQ(Value(after, "wsstep_response_body_bytes_total", {{"delivery", "whole"}}), 5);
  EXPECT_EQ(Value(after, "wsstep_response_body_bytes_total", {{"delivery", "chunks"}}),
            static_cast<double>(kStreamed));
}

TEST_F(MetricsTest, StepsInFlightAndRefusalsAreCounted) {
  Gate gate;
  Start(MtlsOriginConfig(gate.Handler()), {{"WSSTEP_MAX_IN_FLIGHT_STEPS", "1"}});
  ConcurrentRestCalls calls(engine_.process().channel());
  v1::ExecuteRestStepRequest held;
  *held.mutable_step() = mock_engine::GetStep(Url("/held"));
  calls.Start(held, "held", std::chrono::seconds(30));
  ASSERT_TRUE(gate.WaitForWaiting(1, std::chrono::seconds(10)));

  const std::string during = CheckedScrape();
  EXPECT_EQ(Value(during, "wsstep_steps_in_flight"), 1);
  // The plugin runs one step at a time: a second one is refused before it starts.
  auto refused = engine_.Rest(mock_engine::GetStep(Url("/second")), "", Opts("second"));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  const std::string refused_scrape = CheckedScrape();
  EXPECT_EQ(Value(refused_scrape, "wsstep_steps_not_admitted_total",
                  {{"kind", "rest"}, {"reason", "max_in_flight_steps"}}),
            1);
  EXPECT_EQ(Value(refused_scrape, "wsstep_steps_total", Rest("http")), 0);

  gate.Open();
  ASSERT_TRUE(calls.WaitAll(std::chrono::seconds(20)));
  ASSERT_TRUE(calls.result(0).status.ok());
  const std::string after = CheckedScrape();
  EXPECT_EQ(Value(after, "wsstep_steps_in_flight"), 0);
  EXPECT_EQ(Value(after, "wsstep_steps_total", Rest("http")), 1);
}

TEST_F(MetricsTest, WithoutTheSettingNothingListens) {
  origin_ = std::make_unique<testing::TlsServer>(MtlsOriginConfig(nullptr));
  ASSERT_TRUE(origin_->Start());
  ASSERT_TRUE(engine_.Start()) << engine_.start_error();
  EXPECT_THAT(engine_.StderrText(), ::testing::Not(::testing::HasSubstr("\"metrics\"")));
}

}  // namespace
}  // namespace wsstep::e2e

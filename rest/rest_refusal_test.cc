// The engine's refusals are typed: TrySubmit returns them and leaves the callback alone;
// Submit answers them as before (FAILED_PRECONDITION, detail reason). Prepare checks a
// step once and keeps its parsed URLs for the layers below.
#include <gtest/gtest.h>

#include <optional>

#include "rest/engine.h"

namespace wsstep::rest {
namespace {

RestStep NeverSent() {
  RestStep step;
  step.url = "http://127.0.0.1:9/never";  // refused before any connection is made
  return step;
}

PreparedStep Prepared(const RestEngine& engine) { return engine.Prepare(NeverSent()).value(); }

Deadline Soon() { return std::chrono::steady_clock::now() + std::chrono::seconds(20); }

TEST(RefusalTest, NamesAreTheReasonsHostsSee) {
  EXPECT_EQ(RefusalName(Refusal::kEngineBusy), "engine_busy");
  EXPECT_EQ(RefusalName(Refusal::kShuttingDown), "shutting_down");
}

TEST(RefusalTest, NoPlaceInFlightIsEngineBusy) {
  EngineOptions options;
  options.workers = 1;
  options.max_queue = 0;  // no step may be in flight: every step is refused
  RestEngine engine(options);
  bool called = false;
  std::optional<Refusal> refusal = engine.TrySubmit(
      Prepared(engine), {}, Soon(), {}, [&called](Result<RestResult>) { called = true; });
  EXPECT_EQ(refusal, Refusal::kEngineBusy);
  EXPECT_FALSE(called);

  std::optional<Result<RestResult>> answer;
  engine.Submit(NeverSent(), {}, Soon(), {}, [&](Result<RestResult> r) { answer = std::move(r); });
  ASSERT_TRUE(answer.has_value());
  ASSERT_FALSE(answer->ok());
  EXPECT_EQ(answer->error().code, Code::kFailedPrecondition);
  EXPECT_EQ(answer->error().detail.at("reason"), "engine_busy");
  EXPECT_EQ(answer->error().message, "engine busy: 0 steps are already in flight");
}

TEST(RefusalTest, AStoppedEngineIsShuttingDown) {
  RestEngine engine;
  engine.Shutdown();
  bool called = false;
  EXPECT_EQ(engine.TrySubmit(Prepared(engine), {}, Soon(), {},
                             [&called](Result<RestResult>) { called = true; }),
            Refusal::kShuttingDown);
  EXPECT_FALSE(called);

  auto answer = engine.Execute(NeverSent(), {}, Soon());
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(answer.error().detail.at("reason"), "shutting_down");
  EXPECT_EQ(answer.error().message, "the REST engine is shutting down");
}

TEST(RefusalTest, AnInvalidStepIsAnAnswerNotARefusal) {
  RestEngine engine;
  auto invalid = [] {
    RestStep step = NeverSent();
    step.method = "NOT A METHOD";
    return step;
  };
  // Prepare names the field; Submit of the unprepared step answers the same through `done`.
  Result<PreparedStep> prepared = engine.Prepare(invalid());
  ASSERT_FALSE(prepared.ok());
  EXPECT_EQ(prepared.code(), Code::kInvalidStepConfig);
  EXPECT_EQ(prepared.error().detail.at("field"), "method");
  std::optional<Result<RestResult>> answer;
  engine.Submit(invalid(), {}, Soon(), {}, [&](Result<RestResult> r) { answer = std::move(r); });
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->code(), Code::kInvalidStepConfig);
  EXPECT_EQ(answer->error().message, prepared.error().message);
}

TEST(PreparedStepTest, CarriesTheParsedUrlAndTokenEndpoint) {
  RestEngine engine;
  RestStep step;
  step.url = "https://API.Example.com:8443/v1/accounts?x=1";
  OAuth2ClientCredentials oauth;
  oauth.token_url = "https://login.example.com/token";
  oauth.client_id = "app";
  oauth.client_secret = SecretBytes("s3cret");
  step.auth = std::move(oauth);
  Result<PreparedStep> prepared = engine.Prepare(std::move(step));
  ASSERT_TRUE(prepared.ok()) << prepared.error().ToString();
  EXPECT_EQ(prepared->url().scheme, "https");
  EXPECT_EQ(prepared->url().host, "api.example.com");
  EXPECT_EQ(prepared->url().port, 8443);
  EXPECT_EQ(prepared->step().url, "https://API.Example.com:8443/v1/accounts?x=1");
  ASSERT_TRUE(prepared->token_url().has_value());
  EXPECT_EQ(prepared->token_url()->Origin(), "https://login.example.com:443");
}

TEST(PreparedStepTest, NoTokenEndpointWithoutOAuth2) {
  RestEngine engine;
  Result<PreparedStep> prepared = engine.Prepare(NeverSent());
  ASSERT_TRUE(prepared.ok());
  EXPECT_EQ(prepared->url().Origin(), "http://127.0.0.1:9");
  EXPECT_FALSE(prepared->token_url().has_value());
}

}  // namespace
}  // namespace wsstep::rest

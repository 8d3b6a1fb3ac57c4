// The engine's refusals are typed: TrySubmit returns them and leaves the callback alone;
// Submit answers them as before (FAILED_PRECONDITION, detail reason).
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

Deadline Soon() { return std::chrono::steady_clock::now() + std::chrono::seconds(20); }

TEST(RefusalTest, NamesAreTheReasonsHostsSee) {
  EXPECT_EQ(RefusalName(Refusal::kEngineBusy), "engine_busy");
  EXPECT_EQ(RefusalName(Refusal::kShuttingDown), "shutting_down");
}

TEST(RefusalTest, AFullQueueIsEngineBusy) {
  EngineOptions options;
  options.workers = 1;
  options.max_queue = 0;  // no place to wait: every step is refused
  RestEngine engine(options);
  bool called = false;
  std::optional<Refusal> refusal = engine.TrySubmit(
      NeverSent(), {}, Soon(), {}, [&called](Result<RestResult>) { called = true; });
  EXPECT_EQ(refusal, Refusal::kEngineBusy);
  EXPECT_FALSE(called);

  std::optional<Result<RestResult>> answer;
  engine.Submit(NeverSent(), {}, Soon(), {}, [&](Result<RestResult> r) { answer = std::move(r); });
  ASSERT_TRUE(answer.has_value());
  ASSERT_FALSE(answer->ok());
  EXPECT_EQ(answer->error().code, Code::kFailedPrecondition);
  EXPECT_EQ(answer->error().detail.at("reason"), "engine_busy");
  EXPECT_EQ(answer->error().message, "engine busy: 0 steps are already waiting");
}

TEST(RefusalTest, AStoppedEngineIsShuttingDown) {
  RestEngine engine;
  engine.Shutdown();
  bool called = false;
  EXPECT_EQ(engine.TrySubmit(NeverSent(), {}, Soon(), {},
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
  RestStep step = NeverSent();
  step.method = "NOT A METHOD";
  std::optional<Result<RestResult>> answer;
  EXPECT_EQ(engine.TrySubmit(std::move(step), {}, Soon(), {},
                             [&](Result<RestResult> r) { answer = std::move(r); }),
            std::nullopt);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->code(), Code::kInvalidStepConfig);
}

}  // namespace
}  // namespace wsstep::rest

// The step runners over a real engine and store, without a network: what the engine's
// typed refusals become for the host, and the warnings ValidateStep gives.
#include "plugin/adapters/rest_runner.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <optional>

namespace wsstep::plugin {
namespace {

class RestRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> n{0};
    dir_ = ::testing::TempDir() + "/wsstep-runner-" + std::to_string(::getpid()) + "-" +
           std::to_string(n++);
    core::StoreOptions options;
    options.data_dir = dir_;
    auto store = core::CertificateStore::Open(std::move(options));
    ASSERT_TRUE(store.ok()) << store.error().ToString();
    store_ = std::move(store).value();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::shared_ptr<Transfers> MakeTransfersWithQueue(size_t max_queue) {
    TransferOptions options;
    options.workers = 1;
    options.max_queue = max_queue;
    return MakeTransfers(store_, options);
  }

  // Runs `run(done)` and returns the Status `done` got; the runners answer a refusal on
  // the calling thread, before anything is sent.
  template <typename Run>
  static std::optional<Status> Answer(Run run) {
    std::optional<Status> got;
    run([&got](Status s) { got = std::move(s); });
    return got;
  }

  static constexpr std::string_view kBusy =
      "the transfer engine's queue is full; the step was not started, retry later";

  static void ExpectUnavailable(const std::optional<Status>& s, std::string_view reason,
                                std::string_view message = kBusy) {
    ASSERT_TRUE(s.has_value()) << "not answered at once";
    ASSERT_FALSE(s->ok());
    EXPECT_EQ(s->error().code, Code::kTransferFailed);  // UNAVAILABLE on the wire
    EXPECT_EQ(s->error().detail.at("reason"), reason);
    EXPECT_EQ(s->error().message, message);
  }

  std::string dir_;
  std::shared_ptr<core::CertificateStore> store_;
};

TEST_F(RestRunnerTest, EngineRefusalsAreUnavailableWithTheirReason) {
  // A queue of 0 places refuses every step: the engine is "busy" at once.
  auto busy = MakeTransfersWithQueue(0);
  CallContext call;
  v1::ExecuteRestStepRequest rest;
  rest.mutable_step()->set_url("http://127.0.0.1:9/never");
  v1::ExecuteRestStepResponse rest_response;
  auto rest_runner = MakeRestRunner(busy);
  ExpectUnavailable(
      Answer([&](Done d) { rest_runner->Execute(call, rest, &rest_response, std::move(d)); }),
      "engine_busy");
  EXPECT_FALSE(rest_response.outcome().has_error());

  v1::ExecuteSoapStepRequest soap;
  soap.mutable_step()->set_endpoint("http://127.0.0.1:9/ws");
  soap.mutable_step()->set_raw_body("<x/>");
  v1::ExecuteSoapStepResponse soap_response;
  auto soap_runner = MakeSoapRunner(busy);
  ExpectUnavailable(
      Answer([&](Done d) { soap_runner->Execute(call, soap, &soap_response, std::move(d)); }),
      "engine_busy");

  v1::TestConnectionRequest probe;
  probe.set_host("127.0.0.1");
  probe.set_port(9);
  probe.mutable_tls()->set_ssl_verification(false);
  v1::TestConnectionResponse probe_response;
  ConnectionTester tester = MakeConnectionTester(busy);
  ExpectUnavailable(Answer([&](Done d) { tester(call, probe, &probe_response, std::move(d)); }),
                    "engine_busy");

  auto stopping = MakeTransfersWithQueue(16);
  ShutdownTransfers(*stopping);
  auto stopped_runner = MakeRestRunner(stopping);
  ExpectUnavailable(
      Answer([&](Done d) { stopped_runner->Execute(call, rest, &rest_response, std::move(d)); }),
      "shutting_down", "the transfer engine is shutting down; the step was not started");
}

TEST_F(RestRunnerTest, ValidateStepWarnsOfVerificationOffWithTheOutcomesWords) {
  auto transfers = MakeTransfersWithQueue(16);
  auto runner = MakeRestRunner(transfers);
  v1::RestStep step;
  step.set_url("https://api.example.test/x");
  step.mutable_tls()->mutable_verify_peer()->set_value(false);
  step.mutable_tls()->mutable_verify_host()->set_value(false);
  v1::ValidateStepResponse response;
  ASSERT_TRUE(runner->Validate(CallContext(), step, "", &response).ok());
  ASSERT_EQ(response.diagnostics_size(), 2);
  const auto expected = rest::TlsOptionWarnings([] {
    rest::TlsOptions tls;
    tls.verify_peer = tls.verify_host = false;
    return tls;
  }());
  EXPECT_EQ(response.diagnostics(0).warning_code(), v1::WARNING_CODE_VERIFY_PEER_DISABLED);
  EXPECT_EQ(response.diagnostics(0).code(), "VERIFY_PEER_DISABLED");
  EXPECT_EQ(response.diagnostics(0).field_path(), "tls.verify_peer");
  EXPECT_EQ(response.diagnostics(0).summary(), expected[0].message);
  EXPECT_EQ(response.diagnostics(1).warning_code(), v1::WARNING_CODE_VERIFY_HOST_DISABLED);
  EXPECT_EQ(response.diagnostics(1).code(), "VERIFY_HOST_DISABLED");
  EXPECT_EQ(response.diagnostics(1).summary(), expected[1].message);
}

}  // namespace
}  // namespace wsstep::plugin

// ExecuteSteps, the streaming form of ExecuteRestStep/ExecuteSoapStep, end to end: the
// real binary behind the mock engine, an mTLS origin that records what it saw. Each call
// on a stream must behave as its unary call does (result, certificate, step id, contract
// errors, cancellation, deadline), results must reach the call that asked, and a stream
// must end cleanly however the host leaves it.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <thread>

#include "tests/e2e/e2e_util.h"
#include "tests/mock_engine/mock_engine.h"
#include "tests/support/tls_server.h"
#include "tests/support/wait.h"

namespace wsstep::e2e {
namespace {

using mock_engine::MockEngine;
using namespace std::chrono_literals;

class StepsStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto held = gate_.Handler();
    origin_ = std::make_unique<testing::TlsServer>(
        MtlsOriginConfig([held](const testing::ServerRequest& req) {
          if (req.target.find("held") != std::string::npos) return held(req);
          testing::ServerResponse r;
          if (req.target == "/soap") {
            r.headers.push_back({"Content-Type", "text/xml; charset=utf-8"});
            r.body = R"(<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>)"
                     R"(<OpResponse xmlns="urn:e2e">ok</OpResponse></s:Body></s:Envelope>)";
          } else {
            r.body = req.target;
          }
          return r;
        }));
    ASSERT_TRUE(origin_->Start()) << origin_->start_error();
    std::vector<std::pair<std::string, std::string>> env = {{"WSSTEP_LOG_LEVEL", "info"}};
    env.insert(env.end(), extra_env_.begin(), extra_env_.end());
    ASSERT_TRUE(engine_.Start(env)) << engine_.start_error();
    identity_ = ImportRsaIdentity(engine_, origin_->port());
    ASSERT_FALSE(identity_.id().empty());
  }
  void TearDown() override {
    gate_.Open();
    if (!stopped_) {
      EXPECT_EQ(engine_.Stop(), 0);
    }
    origin_->Stop();
  }

  std::string Url(const std::string& path) const {
    return "https://localhost:" + std::to_string(origin_->port()) + path;
  }
  v1::StepCall RestCall(uint64_t id, const std::string& path) const {
    v1::StepCall c;
    c.set_call_id(id);
    *c.mutable_rest()->mutable_step() = mock_engine::GetStep(Url(path));
    c.set_step_id("s" + std::to_string(id));
    return c;
  }

  // Sends `call` alone on `stream` and expects its result at once: refused with `code`,
  // the message naming `why`.
  static void ExpectRefused(mock_engine::StepStream& stream, const v1::StepCall& call,
                            grpc::StatusCode code, const std::string& why) {
    v1::ExecuteStepsRequest request;
    *request.add_calls() = call;
    ASSERT_TRUE(stream.Send(request));
    auto results = stream.ReadResults(1);
    ASSERT_EQ(results.count(call.call_id()), 1u);
    const v1::StepCallResult& r = results[call.call_id()];
    EXPECT_EQ(r.code(), static_cast<int>(code)) << r.message();
    EXPECT_NE(r.message().find(why), std::string::npos) << r.message();
    EXPECT_FALSE(r.has_rest());
  }

  Gate gate_;
  std::unique_ptr<testing::TlsServer> origin_;
  MockEngine engine_;
  v1::Certificate identity_;
  bool stopped_ = false;  // the test stopped the plugin itself
  std::vector<std::pair<std::string, std::string>> extra_env_;  // set by a derived fixture
};

// The plugin runs at most four steps at once.
class StepsStreamLimitTest : public StepsStreamTest {
 protected:
  StepsStreamLimitTest() { extra_env_ = {{"WSSTEP_MAX_IN_FLIGHT_STEPS", "4"}}; }
};

TEST_F(StepsStreamTest, EachCallGetsItsOwnResultAndTheOriginSawOurCertificateOnEveryRequest) {
  EXPECT_TRUE(engine_.Has("execute-steps"));
  auto stream = engine_.OpenSteps();
  constexpr int kCalls = 40;
  // Four messages of ten calls each, sent before reading anything, then a SOAP call.
  for (int m = 0; m < 4; ++m) {
    v1::ExecuteStepsRequest request;
    for (int i = 0; i < 10; ++i) {
      const int id = m * 10 + i + 1;
      *request.add_calls() = RestCall(id, "/r" + std::to_string(id));
    }
    ASSERT_TRUE(stream->Send(request));
  }
  v1::ExecuteStepsRequest soap;
  v1::StepCall* call = soap.add_calls();
  call->set_call_id(kCalls + 1);
  v1::SoapStep* step = call->mutable_soap()->mutable_step();
  step->set_endpoint(Url("/soap"));
  step->mutable_tls()->set_ssl_verification(true);
  step->mutable_operation()->set_name("Op");
  step->mutable_operation()->set_namespace_uri("urn:e2e");
  ASSERT_TRUE(stream->Send(soap));
  stream->CloseSend();
  auto results = stream->ReadResults(kCalls + 1);
  EXPECT_FALSE(stream->Read().has_value()) << "nothing after the last result";
  const grpc::Status end = stream->Finish();
  EXPECT_TRUE(end.ok()) << end.error_message();
  ASSERT_EQ(results.size(), static_cast<size_t>(kCalls + 1));
  const v1::StepCallResult& soap_result = results[kCalls + 1];
  EXPECT_EQ(soap_result.code(), 0) << soap_result.message();
  ASSERT_TRUE(soap_result.soap().outcome().has_soap()) << soap_result.soap().outcome().error().code();
  EXPECT_EQ(soap_result.soap().outcome().soap().http_status(), 200);
  EXPECT_NE(soap_result.soap().outcome().soap().body_xml().find("OpResponse"), std::string::npos);
  EXPECT_EQ(soap_result.soap().outcome().tls().client_certificate().certificate_id(), identity_.id());
  for (int id = 1; id <= kCalls; ++id) {
    const v1::StepCallResult& r = results[id];
    SCOPED_TRACE(id);
    EXPECT_EQ(r.code(), 0) << r.message();
    ASSERT_TRUE(r.rest().outcome().has_http()) << r.rest().outcome().error().code();
    EXPECT_EQ(r.rest().outcome().http().status(), 200);
    EXPECT_EQ(r.rest().outcome().http().body(), "/r" + std::to_string(id));
    EXPECT_EQ(r.rest().outcome().step_id(), "s" + std::to_string(id));
    EXPECT_EQ(r.rest().outcome().tls().client_certificate().certificate_id(), identity_.id());
  }
  // What the origin saw: each path once, each with our client certificate.
  std::set<std::string> targets;
  for (const auto& rec : origin_->requests()) {
    targets.insert(rec.request.target);
    EXPECT_FALSE(rec.client_cert_fingerprint.empty()) << rec.request_line;
    EXPECT_EQ(rec.client_cert_fingerprint, origin_->requests().front().client_cert_fingerprint);
    if (rec.request.target == "/soap") {
      EXPECT_EQ(rec.request_line, "POST /soap HTTP/1.1");
      EXPECT_NE(rec.request.body.find("urn:e2e"), std::string::npos);
    }
  }
  EXPECT_EQ(targets.size(), static_cast<size_t>(kCalls + 1));
  // And the plugin logged each as a step with the call's own step id.
  const std::string log = engine_.StderrText();
  EXPECT_NE(log.find("\"step_id\":\"s40\""), std::string::npos);
}

TEST_F(StepsStreamTest, AContractErrorIsTheCallsResultAndTheStreamGoesOn) {
  auto stream = engine_.OpenSteps();
  v1::ExecuteStepsRequest request;
  *request.add_calls() = RestCall(0, "/zero");  // no call id
  v1::StepCall empty;                           // neither rest nor soap
  empty.set_call_id(2);
  *request.add_calls() = empty;
  v1::StepCall no_step;  // rest without its step, as ExecuteRestStep refuses it
  no_step.set_call_id(3);
  no_step.mutable_rest();
  *request.add_calls() = no_step;
  *request.add_calls() = RestCall(4, "/fine");
  ASSERT_TRUE(stream->Send(request));
  auto results = stream->ReadResults(4);
  ASSERT_EQ(results.size(), 4u);
  EXPECT_EQ(results[0].code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_NE(results[0].message().find("call_id is required"), std::string::npos) << results[0].message();
  EXPECT_EQ(results[2].code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_NE(results[2].message().find("set `rest` or `soap`"), std::string::npos) << results[2].message();
  EXPECT_EQ(results[3].code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(results[3].message(), "ExecuteRestStep: `step` is required");
  EXPECT_FALSE(results[3].details().empty()) << "the BadRequest details the unary call carries";
  EXPECT_FALSE(results[3].has_rest());
  EXPECT_EQ(results[4].code(), 0);
  EXPECT_EQ(results[4].rest().outcome().http().body(), "/fine");

  // The stream is still usable after them.
  v1::ExecuteStepsRequest more;
  *more.add_calls() = RestCall(5, "/after");
  ASSERT_TRUE(stream->Send(more));
  stream->CloseSend();
  auto after = stream->ReadResults(1);
  ASSERT_EQ(after.count(5), 1u);
  EXPECT_EQ(after[5].rest().outcome().http().body(), "/after");
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(origin_->requests().size(), 2u) << "the refused calls never reached the origin";
}

TEST_F(StepsStreamTest, CancelDeadlineAndDuplicateIdsAffectOnlyTheirCall) {
  auto stream = engine_.OpenSteps();
  v1::ExecuteStepsRequest request;
  *request.add_calls() = RestCall(1, "/held?i=1");
  *request.add_calls() = RestCall(2, "/held?i=2");
  v1::StepCall timed = RestCall(3, "/held?i=3");
  // Long enough for all three to reach the origin first (TLS handshakes under ASan on a
  // loaded 2-core machine took more than 400 ms), short enough to end well before the gate.
  timed.mutable_timeout()->set_seconds(3);
  *request.add_calls() = timed;
  ASSERT_TRUE(stream->Send(request));
  ASSERT_TRUE(gate_.WaitForWaiting(3, 10s)) << gate_.waiting();

  // Call 2 again while it runs: refused, alone.
  ExpectRefused(*stream, RestCall(2, "/other"), grpc::StatusCode::INVALID_ARGUMENT, "already running");

  // Call 3's own timeout ends it with the TIMEOUT outcome; call 1 is cancelled. Both end
  // while the origin still holds every request (the gate opens only below).
  v1::ExecuteStepsRequest cancel;
  cancel.add_cancel_call_ids(1);
  cancel.add_cancel_call_ids(99);  // unknown: ignored
  ASSERT_TRUE(stream->Send(cancel));
  auto ended = stream->ReadResults(2);
  ASSERT_EQ(ended.size(), 2u);
  EXPECT_EQ(ended[1].code(), 0) << ended[1].message();
  EXPECT_EQ(ended[1].rest().outcome().error().code(), "CANCELLED");
  EXPECT_EQ(ended[3].code(), 0) << ended[3].message();
  EXPECT_EQ(ended[3].rest().outcome().error().code(), "TIMEOUT");

  // Call 2 still runs and succeeds when the origin answers.
  gate_.Open();
  stream->CloseSend();
  auto last = stream->ReadResults(1);
  ASSERT_EQ(last.count(2), 1u);
  EXPECT_EQ(last[2].rest().outcome().http().body(), "released /held?i=2");
  EXPECT_TRUE(stream->Finish().ok());
}

// A stream runs its next call in what a finished call held (its context, the room of its
// request and result): nothing of one call may reach another. A cancelled call with a
// workflow id, then calls one at a time, with and without step ids of their own.
TEST_F(StepsStreamTest, ACallCarriesNothingOfTheCallsBeforeIt) {
  auto stream = engine_.OpenSteps();
  v1::ExecuteStepsRequest first;
  v1::StepCall held = RestCall(1, "/held?i=1");
  held.set_workflow_id("w-first");
  *first.add_calls() = held;
  ASSERT_TRUE(stream->Send(first));
  ASSERT_TRUE(gate_.WaitForWaiting(1, 10s)) << gate_.waiting();
  v1::ExecuteStepsRequest cancel;
  cancel.add_cancel_call_ids(1);
  ASSERT_TRUE(stream->Send(cancel));
  auto cancelled = stream->ReadResults(1);
  ASSERT_EQ(cancelled.count(1), 1u);
  EXPECT_EQ(cancelled[1].rest().outcome().error().code(), "CANCELLED");
  gate_.Open();

  // Each result comes before the next call is sent: each call runs in the one before it.
  for (uint64_t id = 2; id <= 6; ++id) {
    SCOPED_TRACE(id);
    v1::StepCall c = RestCall(id, "/r" + std::to_string(id));
    const bool own_id = id % 2 == 0;
    if (!own_id) c.clear_step_id();
    v1::ExecuteStepsRequest request;
    *request.add_calls() = c;
    ASSERT_TRUE(stream->Send(request));
    auto results = stream->ReadResults(1);
    ASSERT_EQ(results.count(id), 1u);
    EXPECT_EQ(results[id].code(), 0) << results[id].message();
    const v1::StepOutcome& o = results[id].rest().outcome();
    ASSERT_TRUE(o.has_http()) << o.error().code();
    EXPECT_EQ(o.http().status(), 200);
    EXPECT_EQ(o.http().body(), "/r" + std::to_string(id));
    EXPECT_EQ(o.step_id(), own_id ? "s" + std::to_string(id) : "");
    EXPECT_EQ(o.tls().client_certificate().certificate_id(), identity_.id());
  }
  stream->CloseSend();
  EXPECT_TRUE(stream->Finish().ok());
  // Only the first call's own line names its workflow.
  const std::string log = engine_.StderrText();
  size_t lines = 0;
  for (size_t at = log.find("\"workflow_id\":\"w-first\""); at != std::string::npos;
       at = log.find("\"workflow_id\":\"w-first\"", at + 1)) {
    ++lines;
  }
  EXPECT_EQ(lines, 1u) << log;
}

TEST_F(StepsStreamLimitTest, AHostThatCancelsTheStreamCancelsItsStepsAndTheSlotsComeBack) {
  auto stream = engine_.OpenSteps();
  v1::ExecuteStepsRequest request;
  for (uint64_t id = 1; id <= 4; ++id) *request.add_calls() = RestCall(id, "/held?i=" + std::to_string(id));
  ASSERT_TRUE(stream->Send(request));
  ASSERT_TRUE(gate_.WaitForWaiting(4, 10s)) << gate_.waiting();
  stream->Cancel();
  EXPECT_FALSE(stream->Read().has_value());
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The plugin ends each step (its log says so, at info level only when a step ends)
  // without waiting for the origin: the gate is still closed.
  std::string log;
  auto all_logged = [&log] {
    for (int id = 1; id <= 4; ++id) {
      if (log.find("\"step_id\":\"s" + std::to_string(id) + "\"") == std::string::npos) return false;
    }
    return true;
  };
  EXPECT_TRUE(testing::WaitUntil("the plugin logs the end of steps s1..s4", [&] {
    log = engine_.StderrText();
    return all_logged();
  }));
  for (int id = 1; id <= 4; ++id) {
    EXPECT_NE(log.find("\"step_id\":\"s" + std::to_string(id) + "\""), std::string::npos) << id;
  }
  // All four in-flight slots came back: four calls on a new stream all run (one slot
  // leaked would make one of them UNAVAILABLE), and a fifth at once is refused.
  auto next = engine_.OpenSteps();
  v1::ExecuteStepsRequest again;
  for (uint64_t id = 1; id <= 4; ++id) *again.add_calls() = RestCall(id, "/held?again=" + std::to_string(id));
  ASSERT_TRUE(next->Send(again));
  ASSERT_TRUE(gate_.WaitForWaiting(8, 10s)) << gate_.waiting();
  ExpectRefused(*next, RestCall(5, "/fifth"), grpc::StatusCode::UNAVAILABLE, "max_in_flight_steps");
  gate_.Open();
  next->CloseSend();
  auto results = next->ReadResults(4);
  ASSERT_EQ(results.size(), 4u);
  for (const auto& [id, r] : results) {
    EXPECT_EQ(r.code(), 0) << id << " " << r.message();
    EXPECT_EQ(r.rest().outcome().http().body(), "released /held?again=" + std::to_string(id));
  }
  EXPECT_TRUE(next->Finish().ok());
}

TEST_F(StepsStreamTest, AnUnparseableMessageEndsTheStreamWithInvalidArgument) {
  // Field 1 (calls) announced as 100 bytes long, with 2 present.
  const grpc::Status status = engine_.StepsWithRawMessage(std::string("\x0a\x64\x08\x01", 4));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_NE(status.error_message().find("ExecuteSteps"), std::string::npos) << status.error_message();
  EXPECT_TRUE(origin_->requests().empty());
}

TEST_F(StepsStreamTest, APluginStoppingWithAStreamOpenEndsItAndExitsCleanly) {
  auto stream = engine_.OpenSteps();
  v1::ExecuteStepsRequest request;
  *request.add_calls() = RestCall(1, "/before-stop");
  ASSERT_TRUE(stream->Send(request));
  auto results = stream->ReadResults(1);
  ASSERT_EQ(results.count(1), 1u);
  EXPECT_EQ(results[1].rest().outcome().http().body(), "/before-stop");
  // The host goes away with the stream still open: the plugin drains and exits 0
  // and the stream ends on the host's side.
  stopped_ = true;
  EXPECT_EQ(engine_.Stop(), 0);
  EXPECT_FALSE(stream->Read().has_value());
  EXPECT_FALSE(stream->Finish().ok());
}

}  // namespace
}  // namespace wsstep::e2e

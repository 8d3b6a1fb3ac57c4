// The services in process, against fake backends: unimplemented methods, unparseable
// requests, step outcomes, contract errors, the in-flight limit, drain and health.
#include "plugin/server/server.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <future>
#include <thread>

#include "google/rpc/error_details.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "plugin/process/listen.h"
#include "plugin/process/log.h"
#include "plugin/server/call_context.h"
#include "plugin/server/status_map.h"
#include "wsstep/v1/certificate_service.grpc.pb.h"
#include "wsstep/v1/step_plugin_service.grpc.pb.h"

namespace wsstep::plugin {
namespace {

using ::testing::HasSubstr;

// A REST runner that answers from a script and records what it saw.
class FakeRestRunner : public RestStepRunner {
 public:
  Status Validate(const CallContext&, const v1::RestStep& step, const std::string& environment,
                  v1::ValidateStepResponse* response) override {
    if (step.url().empty()) {
      auto* d = response->add_diagnostics();
      d->set_severity(v1::SEVERITY_ERROR);
      d->set_code("INVALID_STEP_CONFIG");
      d->set_summary("url is required");
      d->set_field_path("url");
    }
    last_environment = environment;
    return {};
  }
  void Execute(const CallContext& call, const v1::ExecuteRestStepRequest& request,
               v1::ExecuteRestStepResponse* response, Done done) override {
    last_call = call;
    if (request.step().url() == "block") {
      {
        std::lock_guard<std::mutex> lock(mu);
        ++blocked;
      }
      cv.notify_all();
      // Hold the step until the test releases it (in-flight limit, cancellation).
      std::thread([this, call, response, done] {
        // Polls the cancelled flag as the real engine does (nobody notifies on cancel);
        // a release wakes it at once. Gives up after a safety bound, as a held step would
        // at its deadline.
        std::unique_lock<std::mutex> lock(mu);
        const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (!release && !call.Cancelled() && std::chrono::steady_clock::now() < give_up) {
          cv.wait_for(lock, std::chrono::milliseconds(10));
        }
        saw_cancel = call.Cancelled();
        response->mutable_outcome()->mutable_error()->set_code("CANCELLED");
        lock.unlock();
        done(Status());  // releases the in-flight slot
        lock.lock();
        ++finished;
        cv.notify_all();
      }).detach();
      return;
    }
    if (request.step().url() == "contract") {
      done(Error(Code::kInvalidStepConfig, "step.url: not a URL").With("field", "step.url"));
      return;
    }
    Error e(Code::kCertificateNotFound, "SSL Certificate Not Found for api.example:443 in default",
            "bind a certificate", Side::kStore);
    FillStepError(e, response->mutable_outcome()->mutable_error());
    done(Status());
  }
  // Until `n` "block" steps are held here (each holds its in-flight slot from then on).
  bool WaitForBlocked(int n) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(30), [&] { return blocked >= n; });
  }
  // Until `n` "block" steps were answered (their `done` returned: the slot is free).
  bool WaitForFinished(int n) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(30), [&] { return finished >= n; });
  }
  bool SawCancel() {
    std::lock_guard<std::mutex> lock(mu);
    return saw_cancel;
  }
  std::mutex mu;
  std::condition_variable cv;
  int blocked = 0;
  int finished = 0;
  bool release = false;
  bool saw_cancel = false;
  CallContext last_call;
  std::string last_environment;
};

Backends RestOnly(std::shared_ptr<RestStepRunner> rest) {
  Backends b;
  b.rest = std::move(rest);
  return b;
}

class ServiceTest : public ::testing::Test {
 protected:
  void StartServer(Backends backends, int max_in_flight = 4) {
    socket_dir_ = *MakePrivateTempDir("");
    ServerOptions o;
    o.listen = ListenAddress::Unix(socket_dir_ + "/t.sock");
    o.backends = std::move(backends);
    o.facts.limits.max_in_flight_steps = max_in_flight;
    o.facts.protected_environments = {"production"};
    o.on_shutdown_rpc = [this](std::string why) { shutdown_reason_ = why; };
    auto server = PluginServer::Start(std::move(o));
    ASSERT_TRUE(server.ok()) << server.error().ToString();
    server_ = std::move(server).value();
    channel_ = grpc::CreateChannel("unix://" + socket_dir_ + "/t.sock",
                                   grpc::InsecureChannelCredentials());
    steps_ = v1::StepPluginService::NewStub(channel_);
    certs_ = v1::CertificateService::NewStub(channel_);
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::seconds(2));
    server_.reset();
    if (!socket_dir_.empty()) {
      ::unlink((socket_dir_ + "/t.sock").c_str());
      ::rmdir(socket_dir_.c_str());
    }
  }
  static void Deadline(grpc::ClientContext* ctx, int seconds = 10) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  }

  std::string socket_dir_;
  std::string shutdown_reason_;
  std::unique_ptr<PluginServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::StepPluginService::Stub> steps_;
  std::unique_ptr<v1::CertificateService::Stub> certs_;
};

TEST_F(ServiceTest, WithoutBackendsEveryWorkingMethodIsUnimplemented) {
  StartServer({});
  grpc::ClientContext c1;
  Deadline(&c1);
  v1::GetPluginInfoResponse info;
  ASSERT_TRUE(steps_->GetPluginInfo(&c1, {}, &info).ok());
  EXPECT_EQ(info.name(), "wsstep");
  EXPECT_EQ(info.api_version(), "wsstep.v1");
  ASSERT_EQ(info.step_kinds_size(), 2);
  EXPECT_EQ(info.step_kinds(0).kind(), "rest");
  EXPECT_EQ(info.step_kinds(1).config_message(), "wsstep.v1.SoapStep");
  EXPECT_TRUE(info.capabilities().empty());
  EXPECT_EQ(info.limits().max_in_flight_steps(), 4);

  grpc::ClientContext c2;
  Deadline(&c2);
  v1::ExecuteRestStepRequest req;
  req.mutable_step()->set_url("https://api.example/");
  v1::ExecuteRestStepResponse resp;
  const grpc::Status s = steps_->ExecuteRestStep(&c2, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(s.error_message(), HasSubstr("the REST engine is not wired"));

  grpc::ClientContext c3;
  Deadline(&c3);
  v1::ListCertificatesResponse list;
  const grpc::Status s3 = certs_->ListCertificates(&c3, {}, &list);
  EXPECT_EQ(s3.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(s3.error_message(), HasSubstr("the certificate store"));

  grpc::ClientContext c4;
  Deadline(&c4);
  auto reader = certs_->WatchEvents(&c4, {});
  v1::WatchEventsResponse ev;
  EXPECT_FALSE(reader->Read(&ev));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

// gRPC refuses these before any handler runs; the interceptor makes the answer the
// contract's INVALID_ARGUMENT instead of UNIMPLEMENTED with an empty message.
TEST_F(ServiceTest, UnparseableRequestsAreInvalidArgumentNamingTheProblem) {
  StartServer({});
  auto expect_unparseable = [](const grpc::Status& s, const std::string& method) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << method << ": " << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("the request to " + method + " could not be parsed"));
    EXPECT_THAT(s.error_message(), HasSubstr("not valid UTF-8"));
    StatusDetails d = DecodeStatusDetails(s);
    EXPECT_EQ(d.reason, "INVALID_ARGUMENT");
    EXPECT_EQ(d.domain, "wsstep.dev");
    EXPECT_EQ(d.metadata["method"], method);
  };
  // The C++ client serializes a non-UTF-8 string anyway (logging an error), as a careless
  // host would.
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::ExecuteRestStepRequest req;
    req.mutable_step()->set_url("https://api.example/\xff\xfe");
    v1::ExecuteRestStepResponse resp;
    expect_unparseable(steps_->ExecuteRestStep(&ctx, req, &resp),
                       "/wsstep.v1.StepPluginService/ExecuteRestStep");
  }
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::GetCertificateRequest req;
    req.set_name("\xc3\x28");
    v1::GetCertificateResponse resp;
    expect_unparseable(certs_->GetCertificate(&ctx, req, &resp),
                       "/wsstep.v1.CertificateService/GetCertificate");
  }
  // Nested deeper than protobuf's parser goes (100).
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::ExecuteSoapStepRequest req;
    v1::XmlElement* e = req.mutable_step()->mutable_operation()->add_parameters();
    for (int i = 0; i < 150; ++i) {
      e->set_name("p");
      e = e->add_children();
    }
    v1::ExecuteSoapStepResponse resp;
    expect_unparseable(steps_->ExecuteSoapStep(&ctx, req, &resp),
                       "/wsstep.v1.StepPluginService/ExecuteSoapStep");
  }
  // A parseable request still reaches its handler (here: not wired in this server).
  grpc::ClientContext ctx;
  Deadline(&ctx);
  v1::ExecuteRestStepRequest req;
  req.mutable_step()->set_url("https://api.example/");
  v1::ExecuteRestStepResponse resp;
  const grpc::Status s = steps_->ExecuteRestStep(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(s.error_message(), HasSubstr("the REST engine is not wired"));
}

TEST_F(ServiceTest, StepOutcomesComeBackInTheResponseWithTheStepId) {
  auto rest = std::make_shared<FakeRestRunner>();
  StartServer(RestOnly(rest));
  grpc::ClientContext ctx;
  Deadline(&ctx);
  ctx.AddMetadata("x-wsstep-step-id", "step-7");
  ctx.AddMetadata("x-wsstep-workflow-id", "wf-1");
  ctx.AddMetadata("x-wsstep-actor", "ann");
  v1::ExecuteRestStepRequest req;
  req.mutable_step()->set_url("https://api.example/");
  v1::ExecuteRestStepResponse resp;
  ASSERT_TRUE(steps_->ExecuteRestStep(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.outcome().error().code(), "CERTIFICATE_NOT_FOUND");
  EXPECT_EQ(resp.outcome().error().side(), v1::ERROR_SIDE_STORE);
  EXPECT_EQ(resp.outcome().step_id(), "step-7");
  EXPECT_EQ(rest->last_call.workflow_id, "wf-1");
  EXPECT_EQ(rest->last_call.actor, "ann");
  EXPECT_EQ(rest->last_call.method, "wsstep.v1.StepPluginService/ExecuteRestStep");
  EXPECT_TRUE(rest->last_call.HasDeadline());
  // The server's deadline is the client's, give or take the transfer time.
  EXPECT_LE(rest->last_call.TimeLeft(), std::chrono::seconds(11));
  EXPECT_GE(rest->last_call.TimeLeft(), std::chrono::seconds(5));
}

TEST_F(ServiceTest, ContractErrorsAreGrpcStatusesWithFieldViolations) {
  StartServer(RestOnly(std::make_shared<FakeRestRunner>()));
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::ExecuteRestStepResponse resp;
    const grpc::Status s = steps_->ExecuteRestStep(&ctx, v1::ExecuteRestStepRequest(), &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    const auto d = DecodeStatusDetails(s);
    ASSERT_EQ(d.violations.size(), 1u);
    EXPECT_EQ(d.violations[0].field, "step");
  }
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::ExecuteRestStepRequest req;
    req.mutable_step()->set_url("contract");
    v1::ExecuteRestStepResponse resp;
    const grpc::Status s = steps_->ExecuteRestStep(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    const auto d = DecodeStatusDetails(s);
    EXPECT_EQ(d.reason, "INVALID_STEP_CONFIG");
    ASSERT_EQ(d.violations.size(), 1u);
    EXPECT_EQ(d.violations[0].field, "step.url");
  }
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::ValidateStepRequest req;
    req.mutable_rest();  // no url
    req.set_environment("sandbox");
    v1::ValidateStepResponse resp;
    ASSERT_TRUE(steps_->ValidateStep(&ctx, req, &resp).ok());
    EXPECT_FALSE(resp.valid());
    ASSERT_EQ(resp.diagnostics_size(), 1);
    EXPECT_EQ(resp.diagnostics(0).field_path(), "url");
  }
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::ValidateStepRequest req;
    req.mutable_soap();
    v1::ValidateStepResponse resp;
    EXPECT_EQ(steps_->ValidateStep(&ctx, req, &resp).error_code(), grpc::StatusCode::UNIMPLEMENTED);
  }
}

TEST_F(ServiceTest, InFlightLimitRefusesWithUnavailableAndCancellationReachesTheRunner) {
  auto rest = std::make_shared<FakeRestRunner>();
  StartServer(RestOnly(rest), /*max_in_flight=*/1);
  grpc::ClientContext blocked;
  Deadline(&blocked);
  v1::ExecuteRestStepRequest req;
  req.mutable_step()->set_url("block");
  v1::ExecuteRestStepResponse blocked_resp;
  std::promise<grpc::Status> blocked_done;
  steps_->async()->ExecuteRestStep(&blocked, &req, &blocked_resp,
                                   [&](grpc::Status s) { blocked_done.set_value(s); });
  ASSERT_TRUE(rest->WaitForBlocked(1)) << "the blocked step never reached the runner";
  ASSERT_EQ(server_->step_service().in_flight(), 1);

  grpc::ClientContext second;
  Deadline(&second);
  v1::ExecuteRestStepRequest other;
  other.mutable_step()->set_url("https://api.example/");
  v1::ExecuteRestStepResponse other_resp;
  const grpc::Status s = steps_->ExecuteRestStep(&second, other, &other_resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("max_in_flight_steps"));

  blocked.TryCancel();
  auto blocked_future = blocked_done.get_future();
  ASSERT_EQ(blocked_future.wait_for(std::chrono::seconds(30)), std::future_status::ready)
      << "the cancelled call never completed";
  EXPECT_EQ(blocked_future.get().error_code(), grpc::StatusCode::CANCELLED);
  // The runner's `done` releases the slot; the runner answers once it saw the cancel.
  ASSERT_TRUE(rest->WaitForFinished(1)) << "the runner never answered";
  EXPECT_TRUE(rest->SawCancel());
  EXPECT_EQ(server_->step_service().in_flight(), 0);
}

TEST_F(ServiceTest, DrainLetsARunningStepFinishAndRefusesNewOnes) {
  auto rest = std::make_shared<FakeRestRunner>();
  StartServer(RestOnly(rest));
  grpc::ClientContext blocked;
  Deadline(&blocked);
  v1::ExecuteRestStepRequest req;
  req.mutable_step()->set_url("block");
  v1::ExecuteRestStepResponse resp;
  std::promise<grpc::Status> done;
  steps_->async()->ExecuteRestStep(&blocked, &req, &resp,
                                   [&](grpc::Status s) { done.set_value(s); });
  ASSERT_TRUE(rest->WaitForBlocked(1)) << "the blocked step never reached the runner";
  // Shutdown logs "draining in-flight calls" once it stopped accepting steps and turned
  // health NOT_SERVING: the releaser waits for that line (other lines still reach stderr).
  std::promise<void> draining;
  std::atomic<bool> draining_seen{false};
  Log().SetSink([&](std::string_view line) {
    if (line.find("\"@message\":\"draining in-flight calls\"") != std::string_view::npos &&
        !draining_seen.exchange(true)) {
      draining.set_value();
    }
    std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
  });
  struct RestoreSink {
    ~RestoreSink() { Log().SetSink({}); }
  } restore_sink;
  grpc::Status during_drain;
  grpc::health::v1::HealthCheckResponse health_during_drain;
  std::thread releaser([&] {
    const bool drain_began =
        draining.get_future().wait_for(std::chrono::seconds(30)) == std::future_status::ready;
    EXPECT_TRUE(drain_began) << "Shutdown never logged that it was draining";
    // The server is draining: new steps are refused, health says NOT_SERVING.
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::ExecuteRestStepRequest other;
    other.mutable_step()->set_url("https://api.example/");
    v1::ExecuteRestStepResponse other_resp;
    during_drain = steps_->ExecuteRestStep(&ctx, other, &other_resp);
    grpc::ClientContext hctx;
    Deadline(&hctx);
    grpc::health::v1::HealthCheckRequest hreq;
    hreq.set_service("plugin");
    grpc::health::v1::Health::NewStub(channel_)->Check(&hctx, hreq, &health_during_drain);
    std::lock_guard<std::mutex> lock(rest->mu);
    rest->release = true;
    rest->cv.notify_all();
  });
  // Returns once the step has finished (the grace is a safety bound: the step is released
  // as soon as the releaser has made its two calls).
  server_->Shutdown(std::chrono::seconds(30));
  releaser.join();
  auto finished = done.get_future();
  ASSERT_EQ(finished.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  const grpc::Status status = finished.get();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(rest->SawCancel());
  EXPECT_EQ(during_drain.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(during_drain.error_message(), HasSubstr("shutting down"));
  EXPECT_EQ(health_during_drain.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  server_.reset();
}

TEST_F(ServiceTest, HealthAnswersKnownServicesAndWatchesUnknownOnes) {
  StartServer({});
  auto health = grpc::health::v1::Health::NewStub(channel_);
  for (const std::string service : {"", "plugin", "wsstep.v1.StepPluginService"}) {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    ASSERT_TRUE(health->Check(&ctx, req, &resp).ok()) << service;
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    grpc::health::v1::HealthCheckRequest req;
    req.set_service("no.such.Service");
    grpc::health::v1::HealthCheckResponse resp;
    EXPECT_EQ(health->Check(&ctx, req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  grpc::ClientContext unknown_ctx;
  Deadline(&unknown_ctx);
  grpc::health::v1::HealthCheckRequest unknown;
  unknown.set_service("no.such.Service");
  auto unknown_watch = health->Watch(&unknown_ctx, unknown);
  grpc::health::v1::HealthCheckResponse seen;
  ASSERT_TRUE(unknown_watch->Read(&seen));
  EXPECT_EQ(seen.status(), grpc::health::v1::HealthCheckResponse::SERVICE_UNKNOWN);
  unknown_ctx.TryCancel();
  EXPECT_EQ(unknown_watch->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

// The service on its own, so that its Shutdown ends the stream itself (through the
// plugin's server, the server's own cancellation races it on a loaded machine).

}  // namespace
}  // namespace wsstep::plugin

// Faults, against the real plugin binary: SIGKILL while a host imports certificates (then
// a restart on the same data directory), an origin that stalls mid-response, an origin
// that resets the connection mid-response, and a disk that refuses every write
// (RLIMIT_FSIZE on the plugin: tests may run as root, where a read-only chmod stops
// nothing). Each ends with an exact outcome and a plugin that still works.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

#include <atomic>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "tests/e2e/e2e_util.h"
#include "tests/mock_engine/mock_engine.h"
#include "tests/support/nginx.h"
#include "tests/support/pki.h"
#include "tests/support/tls_server.h"
#include "tests/support/wait.h"

namespace wsstep::e2e {
namespace {

using ::testing::HasSubstr;
using mock_engine::KeyPairFromFiles;
using mock_engine::MockEngine;
using mock_engine::TrustStoreFromFile;
using testing::PkiPath;

std::string Fp(const std::string& rel) { return testing::Sha256FingerprintOfPemFile(PkiPath(rel)); }

template <typename Request, typename Response, typename Method>
grpc::Status CallCerts(MockEngine& engine, Method method, const Request& request, Response* response) {
  auto stub = v1::CertificateService::NewStub(engine.process().channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  return ((*stub).*method)(&ctx, request, response);
}

v1::ResolveCertificateResponse Resolve(MockEngine& engine, const std::string& host, uint32_t port,
                                       grpc::Status* status) {
  v1::ResolveCertificateRequest req;
  req.set_host(host);
  req.set_port(port);
  v1::ResolveCertificateResponse resp;
  *status = CallCerts(engine, &v1::CertificateService::Stub::ResolveCertificate, req, &resp);
  return resp;
}

std::set<std::string> ListedNames(MockEngine& engine) {
  v1::ListCertificatesRequest req;
  req.set_page_size(1000);
  auto r = engine.List(req);
  EXPECT_TRUE(r.ok()) << r.status.error_message();
  std::set<std::string> names;
  for (const auto& c : r.response.certificates()) names.insert(c.name());
  EXPECT_EQ(static_cast<size_t>(r.response.total_size()), names.size());
  return names;
}

// --- (a) SIGKILL mid-import ------------------------------------------------------------

TEST(FaultsTest, SigkillWhileImportingLosesNothingAcknowledgedAndTheStoreReopens) {
  testing::NginxConfig config;
  config.verify_client = testing::NginxVerifyClient::kOn;
  testing::NginxServer nginx(config);
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();
  const uint32_t port = nginx.port();

  MockEngine first;
  ASSERT_TRUE(first.Start()) << first.start_error();
  ASSERT_TRUE(first.Create(TrustStoreFromFile("trust", "trust/bundle.pem", {{"localhost", port, ""}})).ok());

  std::mutex mu;
  std::condition_variable acked_more;
  std::vector<std::string> acked;
  std::string in_flight;
  grpc::Status failure;
  std::thread importer([&] {
    for (int i = 0; i < 400; ++i) {
      const std::string name = "bulk-" + std::to_string(i);
      const std::string pki = i % 2 == 0 ? "rsa" : "second";
      {
        std::lock_guard<std::mutex> lock(mu);
        in_flight = name;
      }
      auto r = first.Create(KeyPairFromFiles(name, "client/" + pki + ".pem", "client/" + pki + ".key.pem",
                                             {{"localhost", port, ""}}));
      std::lock_guard<std::mutex> lock(mu);
      if (!r.ok()) {
        failure = r.status;
        acked_more.notify_all();
        return;
      }
      acked.push_back(name);
      acked_more.notify_all();
    }
  });
  // Kill at a random moment once a good number were acknowledged, while the loop runs.
  std::mt19937 rng(std::random_device{}());
  const size_t kill_after = 15 + rng() % 10;
  {
    std::unique_lock<std::mutex> lock(mu);
    EXPECT_TRUE(acked_more.wait_for(lock, testing::kWaitBound, [&] {
      return acked.size() >= kill_after || !failure.ok();
    })) << acked.size() << " of " << kill_after << " imports acknowledged";
  }
  // Not a wait for anything: a random offset of up to 4 ms puts the kill at a random
  // point of the next import (the fault under test), wherever that import has got to.
  std::this_thread::sleep_for(std::chrono::microseconds(rng() % 4000));
  first.process().Signal(SIGKILL);
  importer.join();
  EXPECT_EQ(first.process().Wait(std::chrono::seconds(10)), 128 + SIGKILL);
  ASSERT_FALSE(failure.ok()) << "the import loop must have been cut by the kill";
  EXPECT_EQ(failure.error_code(), grpc::StatusCode::UNAVAILABLE) << failure.error_message();
  ASSERT_GE(acked.size(), kill_after);

  // Restart on the same data directory (and so the same master key file).
  MockEngine second;
  ASSERT_TRUE(second.Start({{"WSSTEP_DATA_DIR", first.data_dir()}})) << second.start_error();
  std::set<std::string> names = ListedNames(second);
  for (const auto& name : acked) EXPECT_TRUE(names.count(name)) << name << " was acknowledged, then lost";
  // Nothing else appears: at most the one import that was in flight when it died.
  std::set<std::string> allowed(acked.begin(), acked.end());
  allowed.insert(in_flight);
  allowed.insert("trust");
  for (const auto& name : names) EXPECT_TRUE(allowed.count(name)) << "unexpected entry " << name;
  std::cout << "[figures] SIGKILL after " << acked.size() << " acknowledged imports; "
            << names.size() - 1 << " listed after restart (in flight: " << in_flight << ", "
            << (names.count(in_flight) ? "committed" : "not committed") << ")" << std::endl;

  // Resolution works, and a step presents the chosen certificate to nginx.
  grpc::Status status;
  const auto resolved = Resolve(second, "localhost", port, &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_TRUE(resolved.has_chosen()) << resolved.explanation();
  EXPECT_TRUE(names.count(resolved.chosen().name()));
  auto step = second.Rest(mock_engine::GetStep("https://localhost:" + std::to_string(port) + "/echo"));
  ASSERT_TRUE(step.ok()) << step.status.error_message();
  ASSERT_TRUE(step.response.outcome().has_http()) << step.response.outcome().error().message();
  EXPECT_EQ(testing::NginxEcho::Parse(step.response.outcome().http().body()).client_fingerprint,
            resolved.chosen().certificate().sha256_fingerprint());
  EXPECT_EQ(step.response.outcome().tls().client_certificate().name(), resolved.chosen().name());
  // And the store takes writes again.
  EXPECT_TRUE(second.Create(KeyPairFromFiles("after-restart", "client/ec256.pem", "client/ec256.key.pem", {})).ok());
  EXPECT_EQ(second.Stop(), 0);
}

// --- Imports that must never be usable --------------------------------------------------

// An entry imported with `disabled` set is never a candidate, not even for the moment
// between storing it and disabling it: hosts resolving in a tight loop while such imports
// land (same certificate as the active entry, so a saved-later enabled one would win the
// tie) always get the active entry.
TEST(FaultsTest, AnEntryCreatedDisabledIsNeverResolvedEvenWhileItIsBeingStored) {
  MockEngine engine;
  ASSERT_TRUE(engine.Start({{"WSSTEP_LOG_LEVEL", "info"}})) << engine.start_error();
  constexpr uint32_t kPort = 8443;
  ASSERT_TRUE(engine.Create(KeyPairFromFiles("active", "client/rsa.pem", "client/rsa.key.pem",
                                             {{"localhost", kPort, ""}}))
                  .ok());
  std::atomic<bool> importing{true};
  std::atomic<int> resolutions{0};
  std::mutex mu;
  std::map<std::string, int> chosen;
  std::vector<std::thread> resolvers;
  for (int t = 0; t < 2; ++t) {
    resolvers.emplace_back([&] {
      auto stub = v1::CertificateService::NewStub(engine.process().channel());
      while (importing) {
        v1::ResolveCertificateRequest req;
        req.set_host("localhost");
        req.set_port(kPort);
        v1::ResolveCertificateResponse resp;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        const grpc::Status s = stub->ResolveCertificate(&ctx, req, &resp);
        std::lock_guard<std::mutex> lock(mu);
        ++chosen[s.ok() ? resp.chosen().name() : "error " + s.error_message()];
        ++resolutions;
      }
    });
  }
  for (int i = 0; i < 30; ++i) {
    auto request = KeyPairFromFiles("disabled-" + std::to_string(i), "client/rsa.pem", "client/rsa.key.pem",
                                    {{"localhost", kPort, ""}});
    request.mutable_certificate()->set_disabled(true);
    auto r = engine.Create(request);
    ASSERT_TRUE(r.ok()) << r.status.error_message();
    EXPECT_TRUE(r.response.certificate().disabled());
  }
  importing = false;
  for (auto& t : resolvers) t.join();
  EXPECT_GT(resolutions.load(), 30);
  EXPECT_EQ(chosen, (std::map<std::string, int>{{"active", resolutions.load()}}));
  EXPECT_EQ(engine.Stop(), 0);
}

// --- (b), (c) Origins failing mid-response -------------------------------------------------

class OriginFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    origin_ = std::make_unique<testing::TlsServer>(MtlsOriginConfig(nullptr));
    ASSERT_TRUE(origin_->Start()) << origin_->start_error();
    ASSERT_TRUE(engine_.Start()) << engine_.start_error();
    ASSERT_FALSE(ImportRsaIdentity(engine_, origin_->port()).id().empty());
  }
  void TearDown() override {
    EXPECT_EQ(engine_.Stop(), 0);
    origin_->Stop();
  }
  std::string Url(const std::string& path) const {
    return "https://localhost:" + std::to_string(origin_->port()) + path;
  }
  // A healthy step on the same identity: the pool recovered.
  void ExpectHealthyStep(const std::string& label) {
    origin_->SetHandler(nullptr);  // 200 "ok"
    auto r = engine_.Rest(mock_engine::GetStep(Url("/ok")), "", Opts(label));
    ASSERT_TRUE(r.ok()) << label << ": " << r.status.error_message();
    ASSERT_TRUE(r.response.outcome().has_http()) << label << ": " << r.response.outcome().error().code()
                                                 << " " << r.response.outcome().error().message();
    EXPECT_EQ(r.response.outcome().http().status(), 200);
    EXPECT_EQ(r.response.outcome().http().body(), "ok");
    EXPECT_EQ(r.response.outcome().tls().client_certificate().sha256_fingerprint(), Fp("client/rsa.pem"));
    EXPECT_EQ(origin_->requests().back().client_cert_fingerprint, Fp("client/rsa.pem"));
    EXPECT_EQ(engine_.Health("plugin"), "SERVING");
  }

  std::unique_ptr<testing::TlsServer> origin_;
  MockEngine engine_;
};

TEST_F(OriginFaultTest, AHeaderValueThatIsNotUtf8ReachesTheHostAsValidUtf8) {
  // HTTP allows any byte >= 0x80 in a header value (obs-text); proto3 strings must be
  // UTF-8, or the host cannot parse the response at all.
  origin_->SetHandler([](const testing::ServerRequest&) {
    testing::ServerResponse r;
    r.headers.push_back({"X-Latin1", "caf\xe9 cr\xe8me"});
    r.body = "ok";
    return r;
  });
  auto check = [](const v1::StepOutcome& outcome, const std::string& how) {
    ASSERT_TRUE(outcome.has_http()) << how << ": " << outcome.error().code();
    std::string value;
    for (const auto& h : outcome.http().headers()) {
      if (h.name() == "X-Latin1" || h.name() == "x-latin1") value = h.value();
    }
    EXPECT_EQ(value, "caf\xef\xbf\xbd cr\xef\xbf\xbdme") << how;
  };
  auto r = engine_.Rest(mock_engine::GetStep(Url("/latin1")), "", Opts("latin1"));
  ASSERT_TRUE(r.ok()) << r.status.error_code() << " " << r.status.error_message();
  check(r.response.outcome(), "ExecuteRestStep");
  // On a stream, one such result must not break the stream for the calls around it.
  auto stream = engine_.OpenSteps();
  v1::ExecuteStepsRequest request;
  for (uint64_t id = 1; id <= 3; ++id) {
    v1::StepCall* call = request.add_calls();
    call->set_call_id(id);
    *call->mutable_rest()->mutable_step() = mock_engine::GetStep(Url("/latin1"));
  }
  ASSERT_TRUE(stream->Send(request));
  stream->CloseSend();
  auto results = stream->ReadResults(3);
  ASSERT_EQ(results.size(), 3u);
  for (const auto& [id, result] : results) check(result.rest().outcome(), "call " + std::to_string(id));
  EXPECT_TRUE(stream->Finish().ok());
  ExpectHealthyStep("after latin1");
}

TEST_F(OriginFaultTest, StallAfterHeadersAndPartOfTheBodyIsTimeoutWithinTheStepDeadline) {
  // Warm the pool first, so that the stall happens on a kept-alive connection too.
  ExpectHealthyStep("warm");
  origin_->SetHandler([](const testing::ServerRequest&) {
    testing::ServerResponse r;
    r.mode = testing::ServerResponse::Mode::kStall;
    r.huge_body_bytes = 64 * 1024;
    r.partial_body_bytes = 1000;
    return r;
  });
  constexpr auto kTotal = std::chrono::milliseconds(1500);
  auto step = mock_engine::GetStep(Url("/stall"));
  step.mutable_timeouts()->mutable_total()->set_seconds(1);
  step.mutable_timeouts()->mutable_total()->set_nanos(500'000'000);
  const auto start = Clock::now();
  auto r = engine_.Rest(step, "", Opts("stall", std::chrono::seconds(20)));
  const auto elapsed = Clock::now() - start;
  ASSERT_TRUE(r.ok()) << r.status.error_message();
  ASSERT_TRUE(r.response.outcome().has_error()) << "HTTP " << r.response.outcome().http().status();
  const auto& e = r.response.outcome().error();
  EXPECT_EQ(e.code(), "TIMEOUT") << e.message();
  EXPECT_EQ(e.error_code(), v1::ERROR_CODE_TIMEOUT);
  EXPECT_FALSE(e.hint().empty());
  // Timing is the behaviour under test: the step's own 1.5 s timeout ended it, not the
  // 20 s deadline and not the origin (which would stall until it is stopped). The lower
  // bound cannot fail on a slow machine; the upper one only separates 1.5 s from 20 s.
  EXPECT_GE(elapsed, kTotal - std::chrono::milliseconds(50));
  EXPECT_LT(elapsed, std::chrono::seconds(10));
  std::cout << "[figures] stalled origin: TIMEOUT after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()
            << " ms for a 1500 ms step timeout: " << e.message() << std::endl;
  ASSERT_EQ(origin_->requests().size(), 2u);
  ExpectHealthyStep("after-stall");
}

TEST_F(OriginFaultTest, AStepStalledOnTheDispatchingThreadDoesNotHoldUpTheNextSteps) {
  // The plugin runs a step that arrives while it is idle on the thread that received it
  // (plugin/server/step_service.h); a stand-in must take the next calls while that step waits.
  ExpectHealthyStep("warm");
  // The stalled step is held at the origin until the next steps are done: they can only
  // finish first if they do not wait behind it (then they would wait until their own
  // deadline, and fail).
  Gate held;
  auto hold = held.Handler();
  origin_->SetHandler([hold](const testing::ServerRequest& request) {
    if (request.target == "/stall") return hold(request);
    return testing::ServerResponse{};  // 200 "ok"
  });
  auto stalled_step = mock_engine::GetStep(Url("/stall"));
  std::atomic<bool> stalled_done{false};
  mock_engine::Reply<v1::ExecuteRestStepResponse> stalled;
  std::thread stalled_caller([&] {
    stalled = engine_.Rest(stalled_step, "", Opts("stalled", std::chrono::seconds(50)));
    stalled_done = true;
  });
  struct JoinOnExit {
    Gate& gate;
    std::thread& thread;
    ~JoinOnExit() {
      gate.Open();
      if (thread.joinable()) thread.join();
    }
  } join_on_exit{held, stalled_caller};
  ASSERT_TRUE(held.WaitForWaiting(1, testing::kWaitBound)) << "the stalled request never reached the origin";
  for (int i = 0; i < 5; ++i) {
    auto r = engine_.Rest(mock_engine::GetStep(Url("/ok")), "",
                          Opts("next-" + std::to_string(i), std::chrono::seconds(20)));
    ASSERT_TRUE(r.ok()) << "step " << i << " waited for the stall: " << r.status.error_message();
    ASSERT_TRUE(r.response.outcome().has_http()) << r.response.outcome().error().message();
    EXPECT_EQ(r.response.outcome().http().body(), "ok");
  }
  EXPECT_FALSE(stalled_done) << "the stalled step ended before the others were run";
  held.Open();
  stalled_caller.join();
  ASSERT_TRUE(stalled.ok()) << stalled.status.error_message();
  ASSERT_TRUE(stalled.response.outcome().has_http()) << stalled.response.outcome().error().code();
  EXPECT_EQ(stalled.response.outcome().http().body(), "released /stall");
}

TEST_F(OriginFaultTest, ResetMidResponseIsTransferFailedAndTheNextStepOnTheIdentitySucceeds) {
  ExpectHealthyStep("warm");
  origin_->SetHandler([](const testing::ServerRequest&) {
    testing::ServerResponse r;
    r.mode = testing::ServerResponse::Mode::kReset;
    r.huge_body_bytes = 64 * 1024;
    r.partial_body_bytes = 1000;
    return r;
  });
  const auto start = Clock::now();
  auto r = engine_.Rest(mock_engine::GetStep(Url("/reset")), "", Opts("reset"));
  const auto elapsed = Clock::now() - start;
  ASSERT_TRUE(r.ok()) << r.status.error_message();
  ASSERT_TRUE(r.response.outcome().has_error()) << "HTTP " << r.response.outcome().http().status();
  const auto& e = r.response.outcome().error();
  EXPECT_EQ(e.code(), "TRANSFER_FAILED") << e.message();
  EXPECT_EQ(e.side(), v1::ERROR_SIDE_NETWORK) << e.message();
  EXPECT_FALSE(e.message().empty());
  EXPECT_FALSE(e.hint().empty());
  std::cout << "[figures] reset mid-response: " << e.code() << " after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()
            << " ms: " << e.message() << std::endl;
  ExpectHealthyStep("after-reset");
  ExpectHealthyStep("after-reset-2");
}

// --- (d) A disk that refuses writes ---------------------------------------------------------

// RLIMIT_FSIZE on the plugin makes every write that grows a file fail with EFBIG (what a
// full disk looks like to SQLite); SIGXFSZ is ignored in the plugin, which inherits the
// disposition from us through exec. Root is not exempt from RLIMIT_FSIZE.
class DiskFullTest : public ::testing::Test {
 protected:
  void SetUp() override { old_ = ::signal(SIGXFSZ, SIG_IGN); }
  void TearDown() override { ::signal(SIGXFSZ, old_); }
  static bool LimitFileSize(pid_t pid, rlim_t bytes) {
    rlimit limit{bytes, bytes};
    rlimit old{};
    // Raising it again later needs the hard limit too: root may, so keep hard = infinity.
    limit.rlim_max = RLIM_INFINITY;
    return ::prlimit(pid, RLIMIT_FSIZE, &limit, &old) == 0;
  }
  sighandler_t old_ = SIG_DFL;
};

TEST_F(DiskFullTest, WritesFailWithAStorageErrorNamingTheStoreAndReadsAndStepsKeepWorking) {
  testing::TlsServer origin(MtlsOriginConfig(nullptr));
  ASSERT_TRUE(origin.Start()) << origin.start_error();
  const uint32_t port = origin.port();
  MockEngine engine;
  ASSERT_TRUE(engine.Start()) << engine.start_error();
  const v1::Certificate created = ImportRsaIdentity(engine, port);
  ASSERT_FALSE(created.id().empty());
  const std::string url = "https://localhost:" + std::to_string(port) + "/";

  ASSERT_TRUE(LimitFileSize(engine.process().pid(), 4096)) << std::strerror(errno);

  // A write: refused with the catalog reason, naming what failed, and nothing changes.
  auto refused = engine.Create(KeyPairFromFiles("new", "client/second.pem", "client/second.key.pem",
                                                {{"localhost", port, ""}}));
  ASSERT_FALSE(refused.ok()) << "an import was acknowledged on a disk that takes no writes";
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.status.error_message();
  EXPECT_EQ(refused.details.reason, "STORAGE_ERROR") << refused.status.error_message();
  EXPECT_THAT(refused.status.error_message(), HasSubstr(engine.data_dir()))
      << "the message names the store file";
  std::cout << "[figures] create on a full disk: gRPC " << refused.status.error_code() << " "
            << refused.details.reason << ": " << refused.status.error_message() << std::endl;

  // An update and a delete fail the same way and change nothing.
  v1::UpdateCertificateRequest update;
  update.mutable_certificate()->set_id(created.id());
  update.mutable_certificate()->set_disabled(true);
  update.mutable_update_mask()->add_paths("disabled");
  v1::UpdateCertificateResponse updated;
  grpc::Status us = CallCerts(engine, &v1::CertificateService::Stub::UpdateCertificate, update, &updated);
  EXPECT_EQ(us.error_code(), grpc::StatusCode::UNAVAILABLE) << us.error_message();
  v1::DeleteCertificateRequest del;
  del.set_id(created.id());
  v1::DeleteCertificateResponse deleted;
  grpc::Status ds = CallCerts(engine, &v1::CertificateService::Stub::DeleteCertificate, del, &deleted);
  EXPECT_EQ(ds.error_code(), grpc::StatusCode::UNAVAILABLE) << ds.error_message();

  // Reads keep working and show the state before the failed writes.
  EXPECT_EQ(ListedNames(engine), (std::set<std::string>{"id", "trust"}));
  v1::GetCertificateRequest get;
  get.set_name("id");
  v1::GetCertificateResponse got;
  grpc::Status gs = CallCerts(engine, &v1::CertificateService::Stub::GetCertificate, get, &got);
  ASSERT_TRUE(gs.ok()) << gs.error_message();
  EXPECT_FALSE(got.certificate().disabled());
  grpc::Status rs;
  const auto resolved = Resolve(engine, "localhost", port, &rs);
  ASSERT_TRUE(rs.ok()) << rs.error_message();
  EXPECT_EQ(resolved.chosen().name(), "id");
  // Steps keep working (their audit records cannot be written; the step does not care).
  for (int i = 0; i < 3; ++i) {
    auto step = engine.Rest(mock_engine::GetStep(url), "", Opts("full-" + std::to_string(i)));
    ASSERT_TRUE(step.ok()) << step.status.error_message();
    ASSERT_TRUE(step.response.outcome().has_http()) << step.response.outcome().error().message();
    EXPECT_EQ(step.response.outcome().tls().client_certificate().name(), "id");
  }
  EXPECT_EQ(engine.Health("plugin"), "SERVING");

  // Space comes back: writes work again without a restart.
  ASSERT_TRUE(LimitFileSize(engine.process().pid(), RLIM_INFINITY));
  auto again = engine.Create(KeyPairFromFiles("new", "client/second.pem", "client/second.key.pem",
                                              {{"localhost", port, ""}}));
  EXPECT_TRUE(again.ok()) << again.status.error_message();
  EXPECT_EQ(ListedNames(engine), (std::set<std::string>{"id", "new", "trust"}));
  EXPECT_EQ(engine.Stop(), 0);
}

}  // namespace
}  // namespace wsstep::e2e

// Request building, results, auth, redirects, OAuth2 and back-pressure, against the
// in-process TLS server.
#include "rest/engine.h"

#include <gtest/gtest.h>

#include <thread>

#include <optional>

#include <atomic>
#include <future>

#include "rest/rest_test_util.h"

namespace wsstep::rest {
namespace {

using namespace std::chrono_literals;
using testing::ClientAuth;
using testing::ServerRequest;
using testing::ServerResponse;
using testing::TlsServer;
using namespace testutil;

// The code of an answer (kOk for a result). Out of line: inlined into a callback, GCC 12
// warns, wrongly, that the error may be read uninitialized.
[[gnu::noinline]] Code CodeOf(const Result<RestResult>& r) { return r.code(); }

// A handler that stalls (status line and headers, then nothing) on "/stall" and answers
// 200 "ok" elsewhere.
ServerResponse StallOnStallPath(const ServerRequest& request) {
  ServerResponse r;
  if (request.target == "/stall") r.mode = ServerResponse::Mode::kStall;
  return r;
}

std::unique_ptr<TlsServer> Serve(testing::TlsServerConfig config) {
  auto server = std::make_unique<TlsServer>(std::move(config));
  EXPECT_TRUE(server->Start()) << server->start_error();
  return server;
}

std::unique_ptr<TlsServer> ServeStallingOnStallPath() {
  auto config = ServerConfig("localhost", ClientAuth::kNone);
  config.handler = StallOnStallPath;
  return Serve(std::move(config));
}

TEST(EngineTest, SendsMethodQueryHeadersAndBodyAndReportsTheResult) {
  auto config = ServerConfig("localhost", ClientAuth::kRequired);
  config.handler = [](const ServerRequest&) {
    ServerResponse r;
    r.status = 201;
    r.headers = {{"Content-Type", "application/json"}, {"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"}};
    r.body = R"({"id":7})";
    return r;
  };
  auto server = Serve(std::move(config));
  RestEngine engine;
  RestStep step = Get(server->BaseUrl() + "/items?fixed=1");
  step.method = "POST";
  step.query = {{"q", "a b&c=d/é"}, {"empty", ""}, {"q", "2"}};
  step.headers = {{"X-Trace", "abc"}, {"X-Empty", ""}};
  step.body = std::string("{\"name\":\"x\"}\0tail", 17);
  step.content_type = "application/json";
  core::CallCredentials creds = Creds("rsa");
  auto r = engine.Execute(std::move(step), creds, Soon());
  ASSERT_TRUE(r.ok()) << r.error().ToString();

  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->body, R"({"id":7})");
  EXPECT_EQ(r->content_type, "application/json");
  EXPECT_EQ(r->FindHeader("content-type"), "application/json");
  int cookies = 0;
  for (const auto& h : r->headers) cookies += h.name == "Set-Cookie" ? 1 : 0;
  EXPECT_EQ(cookies, 2);
  EXPECT_FALSE(r->application_refused);
  EXPECT_TRUE(r->warnings.empty());
  EXPECT_GT(r->timings.total_us, 0);
  EXPECT_GT(r->timings.tls_us, 0);
  EXPECT_GE(r->timings.first_byte_us, r->timings.tls_us);

  EXPECT_TRUE(r->tls.used_tls);
  EXPECT_EQ(r->tls.protocol, "TLSv1.3");
  EXPECT_FALSE(r->tls.cipher.empty());
  EXPECT_EQ(r->tls.server_subject, "CN=localhost,O=wsstep tests");
  EXPECT_EQ(r->tls.server_issuer, "CN=wsstep Test Intermediate CA,O=wsstep tests");
  EXPECT_GT(r->tls.server_not_after, 0);
  ASSERT_TRUE(r->tls.client_certificate.has_value());
  EXPECT_EQ(r->tls.client_certificate->entry_id, "entry-rsa");
  EXPECT_EQ(r->tls.client_certificate->name, "rsa");
  EXPECT_EQ(r->tls.client_certificate->fingerprint, creds.identity->fingerprint);
  EXPECT_FALSE(r->tls.connection_reused);

  auto recs = server->requests();
  ASSERT_EQ(recs.size(), 1u);
  const auto& req = recs[0].request;
  EXPECT_EQ(recs[0].request_line,
            "POST /items?fixed=1&q=a%20b%26c%3Dd%2F%C3%A9&empty=&q=2 HTTP/1.1");
  EXPECT_EQ(req.Header("X-Trace"), "abc");
  EXPECT_TRUE(req.HasHeader("X-Empty"));
  EXPECT_EQ(req.Header("Content-Type"), "application/json");
  EXPECT_FALSE(req.HasHeader("Expect"));
  EXPECT_EQ(req.body, std::string("{\"name\":\"x\"}\0tail", 17));
  EXPECT_EQ(recs[0].client_cert_fingerprint, creds.identity->fingerprint);

  // The same step again rides the kept-alive connection.
  auto again = engine.Execute(Get(server->BaseUrl() + "/"), creds, Soon());
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->tls.connection_reused);
  EXPECT_EQ(again->tls.client_certificate->fingerprint, creds.identity->fingerprint);
}

TEST(EngineTest, MethodsWithoutBodyAndHead) {
  auto server = Serve(ServerConfig("localhost", ClientAuth::kNone));
  RestEngine engine;
  for (std::string method : {"DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"}) {
    RestStep step = Get(server->BaseUrl() + "/m");
    step.method = method;
    auto r = engine.Execute(std::move(step), Creds(""), Soon());
    ASSERT_TRUE(r.ok()) << method << ": " << r.error().ToString();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, method == "HEAD" ? "" : "ok");
  }
  auto recs = server->requests();
  ASSERT_EQ(recs.size(), 5u);
  EXPECT_EQ(recs[0].request.method, "DELETE");
  EXPECT_EQ(recs[1].request.method, "PUT");
  EXPECT_EQ(recs[1].request.Header("Content-Length"), "0");
  EXPECT_EQ(recs[4].request.method, "HEAD");
}

TEST(EngineTest, ALentThreadRunsAStepItselfOnlyWhenTheEngineIsIdle) {
  auto server = Serve(ServerConfig("localhost", ClientAuth::kNone));
  RestEngine engine;
  auto lease = engine.LendThisThread();
  const auto here = std::this_thread::get_id();

  // Idle: the step runs here, and `done` has run when Submit returns.
  std::optional<std::thread::id> ran_on;
  engine.Submit(Get(server->BaseUrl() + "/a"), Creds(""), Soon(), {},
                [&](Result<RestResult> r) {
                  ASSERT_TRUE(r.ok()) << r.error().ToString();
                  ran_on = std::this_thread::get_id();
                });
  ASSERT_TRUE(ran_on.has_value());
  EXPECT_EQ(*ran_on, here);

  // Not allowed: a worker runs it.
  lease->AllowRunHere(false);
  std::promise<std::thread::id> worker;
  engine.Submit(Get(server->BaseUrl() + "/b"), Creds(""), Soon(), {},
                [&](Result<RestResult> r) {
                  EXPECT_TRUE(r.ok());
                  worker.set_value(std::this_thread::get_id());
                });
  EXPECT_NE(worker.get_future().get(), here);
  lease->AllowRunHere(true);

  // Another step running (stalled on a worker): this one queues for a worker too.
  server->SetHandler(StallOnStallPath);
  CancelToken stall_cancel;
  std::promise<Code> stalled;
  std::thread other([&] {
    engine.Submit(Get(server->BaseUrl() + "/stall"), Creds(""), Soon(), stall_cancel,
                  [&](Result<RestResult> r) { stalled.set_value(CodeOf(r)); });
  });
  other.join();  // not a lent thread: queued for a worker, which is now stalled
  // The stalled request is recorded when the stall begins: the worker is busy from here.
  ASSERT_TRUE(server->WaitForRequests(3)) << "the stalled step never reached the server";
  ASSERT_EQ(server->requests().size(), 3u);
  std::promise<std::thread::id> busy;
  engine.Submit(Get(server->BaseUrl() + "/c"), Creds(""), Soon(), {},
                [&](Result<RestResult> r) {
                  EXPECT_TRUE(r.ok());
                  busy.set_value(std::this_thread::get_id());
                });
  EXPECT_NE(busy.get_future().get(), here);
  stall_cancel.Cancel();
  EXPECT_EQ(stalled.get_future().get(), Code::kCancelled);
}

// A fresh engine is idle, so the step runs on the lent thread (the worker of an earlier
// step counts itself idle only after its `done` returned: nothing a test could wait for).
TEST(EngineTest, ASlowStepOnALentThreadSaysSoOnce) {
  auto server = Serve(ServerConfig("localhost", ClientAuth::kNone));
  server->SetHandler([](const testing::ServerRequest&) {
    testing::ServerResponse r;
    r.mode = testing::ServerResponse::Mode::kStall;
    return r;
  });
  RestEngine engine;
  int slow_calls = 0;
  auto lease = engine.LendThisThread([&] { ++slow_calls; });
  RestStep slow = Get(server->BaseUrl() + "/stall");
  slow.timeouts.total = std::chrono::milliseconds(300);
  std::optional<Code> slow_code;
  engine.Submit(std::move(slow), Creds(""), Soon(), {},
                [&](Result<RestResult> r) { slow_code = r.code(); });
  ASSERT_TRUE(slow_code.has_value());  // ran here
  EXPECT_EQ(*slow_code, Code::kTimeout);
  EXPECT_EQ(slow_calls, 1);
}

TEST(EngineTest, NonSuccessIsAResultAnd401IsFlagged) {
  auto config = ServerConfig("localhost", ClientAuth::kRequired);
  config.handler = [](const ServerRequest& req) {
    ServerResponse r;
    r.status = req.target == "/denied" ? 403 : req.target == "/login" ? 401 : 500;
    r.body = "nope";
    return r;
  };
  auto server = Serve(std::move(config));
  RestEngine engine;
  for (auto [path, status, refused] : {std::tuple{"/denied", 403, true},
                                       std::tuple{"/login", 401, true},
                                       std::tuple{"/boom", 500, false}}) {
    auto r = engine.Execute(Get(server->BaseUrl() + path), Creds("rsa"), Soon());
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(r->status, status);
    EXPECT_EQ(r->body, "nope");
    EXPECT_EQ(r->application_refused, refused);
    if (refused) {
      EXPECT_NE(r->application_refused_message.find("TLS succeeded, the application refused"),
                std::string::npos);
    }
  }
}

TEST(EngineTest, VerificationOffWarnsAndIsRefusedInProduction) {
  auto server = Serve(ServerConfig("self-signed", ClientAuth::kNone));
  RestEngine engine;
  RestStep step = Get(server->BaseUrl() + "/");
  step.tls.verify_peer = false;
  step.tls.verify_host = false;
  auto r = engine.Execute(std::move(step), Creds(""), Soon());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ASSERT_EQ(r->warnings.size(), 2u);
  EXPECT_EQ(r->warnings[0].code, WarningCode::kVerifyPeerDisabled);
  EXPECT_EQ(r->warnings[1].code, WarningCode::kVerifyHostDisabled);

  RestStep prod = Get(server->BaseUrl() + "/");
  prod.tls.verify_peer = false;
  prod.tls.environment = "production";
  auto refused = engine.Execute(std::move(prod), Creds(""), Soon());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Code::kInvalidStepConfig);
  EXPECT_EQ(server->request_count(), 1u);  // only the first step reached the server

  EngineOptions options;
  options.protected_environments = {"bank"};
  RestEngine custom(options);
  RestStep bank = Get(server->BaseUrl() + "/");
  bank.tls.verify_host = false;
  bank.tls.verify_peer = false;
  bank.tls.environment = "bank";
  EXPECT_EQ(custom.Validate(bank).code(), Code::kInvalidStepConfig);
  bank.tls.environment = "production";
  EXPECT_TRUE(custom.Validate(bank).ok());
}

// Found by fuzz_rest_step: "1" passed as a DNS name, then reached the wire as 0.0.0.1.
TEST(EngineTest, TlsServerNameIsADnsNameOrAnIpv4AddressWrittenTheUsualWay) {
  RestEngine engine;
  auto with_name = [](std::string name) {
    RestStep step = Get("https://[2001:db8::1]:9443/v2/items/7");
    step.tls.tls_server_name = std::move(name);
    return step;
  };
  for (const char* ok : {"api.example.com", "api.example.com.", "a-1.example", "10.0.0.1",
                         "1a", "example.0x", "192.0.2.7"}) {
    EXPECT_TRUE(engine.Validate(with_name(ok)).ok()) << ok;
  }
  for (const char* bad : {"1", "10.1", "0x7f.1", "a.0x1f", "010.0.0.1", "1.2.3.4.5", "host.123",
                          "256.0.0.1"}) {
    Status st = engine.Validate(with_name(bad));
    EXPECT_EQ(st.code(), Code::kInvalidStepConfig) << bad;
    if (!st.ok()) {
      EXPECT_EQ(st.error().detail.at("field"), "tls.tls_server_name") << bad;
    }
  }
}

TEST(EngineTest, AuthSchemes) {
  auto server = Serve(ServerConfig("localhost", ClientAuth::kNone));
  RestEngine engine;

  RestStep basic = Get(server->BaseUrl() + "/basic");
  basic.auth = BasicAuth{"user", SecretBytes(std::string_view("p\xC3\xA4ss word:x"))};
  ASSERT_TRUE(engine.Execute(std::move(basic), Creds(""), Soon()).ok());

  RestStep bearer = Get(server->BaseUrl() + "/bearer");
  bearer.auth = BearerAuth{SecretBytes(std::string_view("tok-123"))};
  ASSERT_TRUE(engine.Execute(std::move(bearer), Creds(""), Soon()).ok());

  RestStep header_key = Get(server->BaseUrl() + "/key");
  header_key.auth = ApiKeyAuth{"X-API-Key", SecretBytes(std::string_view("k1")), ApiKeyLocation::kHeader};
  ASSERT_TRUE(engine.Execute(std::move(header_key), Creds(""), Soon()).ok());

  RestStep query_key = Get(server->BaseUrl() + "/qkey?x=1");
  query_key.auth = ApiKeyAuth{"api_key", SecretBytes(std::string_view("k 2")), ApiKeyLocation::kQuery};
  ASSERT_TRUE(engine.Execute(std::move(query_key), Creds(""), Soon()).ok());

  // An API key in the query never shows in an error or the result's URL.
  RestStep leaky = Get("https://127.0.0.1:1/none");
  leaky.auth = ApiKeyAuth{"api_key", SecretBytes(std::string_view("top-secret-key")),
                          ApiKeyLocation::kQuery};
  auto refused = engine.Execute(std::move(leaky), Creds(""), Soon());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().ToString().find("top-secret-key"), std::string::npos);
  EXPECT_EQ(refused.error().detail.at("url"), "https://127.0.0.1:1/none?api_key=REDACTED");

  auto recs = server->requests();
  ASSERT_EQ(recs.size(), 4u);
  // base64("user:päss word:x")
  EXPECT_EQ(recs[0].request.Header("Authorization"), "Basic dXNlcjpww6RzcyB3b3JkOng=");
  EXPECT_EQ(recs[1].request.Header("Authorization"), "Bearer tok-123");
  EXPECT_EQ(recs[2].request.Header("X-API-Key"), "k1");
  EXPECT_EQ(recs[3].request.target, "/qkey?x=1&api_key=k%202");
}

TEST(EngineTest, TlsServerNameForACallToAnAddress) {
  // The certificate names only wrong.example; the URL uses the address.
  auto server = Serve(ServerConfig("wrong-name", ClientAuth::kNone));
  RestEngine engine;
  std::string url = "https://127.0.0.1:" + std::to_string(server->port()) + "/sni";
  auto mismatch = engine.Execute(Get(url), Creds(""), Soon());
  ASSERT_FALSE(mismatch.ok());
  EXPECT_EQ(mismatch.error().code, Code::kHostnameMismatch);
  EXPECT_EQ(mismatch.error().detail.at("expected_name"), "127.0.0.1");

  RestStep step = Get(url);
  step.tls.tls_server_name = "wrong.example";
  auto r = engine.Execute(std::move(step), Creds(""), Soon());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  auto recs = server->requests();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].request.Header("Host"), "wrong.example:" + std::to_string(server->port()));
}

TEST(EngineTest, RedirectsAreOffByDefault) {
  auto config = ServerConfig("localhost", ClientAuth::kNone);
  config.handler = [](const ServerRequest&) { return ServerResponse::Redirect(302, "/elsewhere"); };
  auto server = Serve(std::move(config));
  RestEngine engine;
  auto r = engine.Execute(Get(server->BaseUrl() + "/start"), Creds(""), Soon());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 302);
  EXPECT_EQ(r->FindHeader("Location"), "/elsewhere");
  EXPECT_EQ(server->request_count(), 1u);
}

TEST(EngineTest, SameOriginRedirectKeepsAuthAndCertificate) {
  auto config = ServerConfig("localhost", ClientAuth::kRequired);
  config.handler = [](const ServerRequest& req) {
    if (req.target == "/start") return ServerResponse::Redirect(307, "/next");
    return ServerResponse{};
  };
  auto server = Serve(std::move(config));
  RestEngine engine;
  RestStep step = Get(server->BaseUrl() + "/start");
  step.method = "POST";
  step.body = "payload";
  step.follow_redirects = true;
  step.auth = BearerAuth{SecretBytes(std::string_view("secret-token"))};
  core::CallCredentials creds = Creds("rsa");
  auto r = engine.Execute(std::move(step), creds, Soon());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->redirects_followed, 1);
  auto recs = server->requests();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[1].request.method, "POST");  // 307 keeps method and body
  EXPECT_EQ(recs[1].request.body, "payload");
  EXPECT_EQ(recs[1].request.Header("Authorization"), "Bearer secret-token");
  EXPECT_EQ(recs[1].client_cert_fingerprint, creds.identity->fingerprint);
}

TEST(EngineTest, CrossOriginRedirectCarriesNoCertificateNorAuthorization) {
  // Second server: 127.0.0.1 on another port, asks for (but does not require) a cert.
  auto second_config = ServerConfig("localhost", ClientAuth::kOptional);
  auto second = Serve(std::move(second_config));
  std::string target = "https://127.0.0.1:" + std::to_string(second->port()) + "/landing";
  auto first_config = ServerConfig("localhost", ClientAuth::kRequired);
  first_config.handler = [target](const ServerRequest&) {
    return ServerResponse::Redirect(302, target);
  };
  auto first = Serve(std::move(first_config));

  auto source = std::make_shared<MapCredentialSource>();
  EngineOptions options;
  options.credentials = source;
  RestEngine engine(options);
  core::CallCredentials creds = Creds("rsa");
  // The other host is bound to no certificate: trust only.
  core::CallCredentials other = Creds("");
  source->Set("127.0.0.1:" + std::to_string(second->port()), other);

  RestStep step = Get(first->BaseUrl() + "/start");
  step.follow_redirects = true;
  step.method = "POST";
  step.body = "form";
  step.headers = {{"Authorization", "Basic c2VjcmV0"}, {"Cookie", "s=1"}, {"X-Keep", "yes"}};
  auto r = engine.Execute(std::move(step), creds, Soon());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->effective_url, target);
  EXPECT_FALSE(r->tls.client_certificate.has_value());
  EXPECT_EQ(source->calls, 1);

  auto first_recs = first->requests();
  ASSERT_EQ(first_recs.size(), 1u);
  EXPECT_EQ(first_recs[0].client_cert_fingerprint, creds.identity->fingerprint);
  EXPECT_EQ(first_recs[0].request.Header("Authorization"), "Basic c2VjcmV0");
  auto second_recs = second->requests();
  ASSERT_EQ(second_recs.size(), 1u);
  EXPECT_EQ(second_recs[0].client_cert_fingerprint, "");
  EXPECT_FALSE(second_recs[0].request.HasHeader("Authorization"));
  EXPECT_FALSE(second_recs[0].request.HasHeader("Cookie"));
  EXPECT_EQ(second_recs[0].request.Header("X-Keep"), "yes");
  EXPECT_EQ(second_recs[0].request.method, "GET");  // 302 after POST becomes GET
  EXPECT_EQ(second_recs[0].request.body, "");
}

TEST(EngineTest, CrossOriginRedirectUsesTheOtherHostsOwnCertificate) {
  auto second = Serve(ServerConfig("localhost", ClientAuth::kRequired));
  std::string target = "https://127.0.0.1:" + std::to_string(second->port()) + "/landing";
  auto first_config = ServerConfig("localhost", ClientAuth::kRequired);
  first_config.handler = [target](const ServerRequest&) {
    return ServerResponse::Redirect(301, target);
  };
  auto first = Serve(std::move(first_config));
  auto source = std::make_shared<MapCredentialSource>();
  core::CallCredentials other = Creds("second");
  source->Set("127.0.0.1:" + std::to_string(second->port()), other);
  EngineOptions options;
  options.credentials = source;
  RestEngine engine(options);

  RestStep step = Get(first->BaseUrl() + "/start");
  step.follow_redirects = true;
  auto r = engine.Execute(std::move(step), Creds("rsa"), Soon());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ASSERT_TRUE(r->tls.client_certificate.has_value());
  EXPECT_EQ(r->tls.client_certificate->fingerprint, other.identity->fingerprint);
  EXPECT_EQ(second->requests().at(0).client_cert_fingerprint, other.identity->fingerprint);

  // A hop to a host the store cannot resolve fails with the store's error.
  auto unresolved_config = ServerConfig("localhost", ClientAuth::kRequired);
  std::string nowhere = "https://127.0.0.1:" + std::to_string(first->port() ^ 1) + "/";
  unresolved_config.handler = [nowhere](const ServerRequest&) {
    return ServerResponse::Redirect(302, nowhere);
  };
  auto third = Serve(std::move(unresolved_config));
  RestStep lost = Get(third->BaseUrl() + "/");
  lost.follow_redirects = true;
  auto failed = engine.Execute(std::move(lost), Creds("rsa"), Soon());
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, Code::kCertificateNotFound);
}

TEST(EngineTest, RedirectLoopIsBounded) {
  auto config = ServerConfig("localhost", ClientAuth::kNone);
  config.handler = [](const ServerRequest& req) {
    return ServerResponse::Redirect(302, req.target + "x");
  };
  auto server = Serve(std::move(config));
  RestEngine engine;
  RestStep step = Get(server->BaseUrl() + "/a");
  step.follow_redirects = true;
  step.max_redirects = 3;
  auto r = engine.Execute(std::move(step), Creds(""), Soon());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kTransferFailed);
  EXPECT_EQ(r.error().detail.at("redirects_followed"), "3");
  EXPECT_EQ(server->request_count(), 4u);
}

TEST(EngineTest, OAuth2ClientCredentialsTokenFetchedOnceWithTheCertificate) {
  std::atomic<int> token_calls{0};
  auto token_config = ServerConfig("localhost", ClientAuth::kRequired);
  token_config.handler = [&](const ServerRequest& req) {
    ServerResponse r;
    if (req.method != "POST" || req.target != "/token") {
      r.status = 404;
      return r;
    }
    ++token_calls;
    r.headers = {{"Content-Type", "application/json"}};
    r.body = R"({"access_token":"at-)" + std::to_string(token_calls.load()) +
             R"(","token_type":"Bearer","expires_in":3600})";
    return r;
  };
  auto token_server = Serve(std::move(token_config));
  auto api = Serve(ServerConfig("localhost", ClientAuth::kRequired));

  auto source = std::make_shared<MapCredentialSource>();
  core::CallCredentials token_creds = Creds("second");
  source->Set("127.0.0.1:" + std::to_string(token_server->port()), token_creds);
  EngineOptions options;
  options.credentials = source;
  RestEngine engine(options);

  auto make_step = [&] {
    RestStep step = Get(api->BaseUrl() + "/data");
    step.auth = OAuth2ClientCredentials{
        "https://127.0.0.1:" + std::to_string(token_server->port()) + "/token", "client-1",
        SecretBytes(std::string_view("s3cr&t")), "read write", "api://x"};
    return step;
  };
  core::CallCredentials api_creds = Creds("rsa");
  for (int i = 0; i < 3; ++i) {
    auto r = engine.Execute(make_step(), api_creds, Soon());
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(r->status, 200);
  }
  EXPECT_EQ(token_calls.load(), 1);
  auto token_recs = token_server->requests();
  ASSERT_EQ(token_recs.size(), 1u);
  EXPECT_EQ(token_recs[0].client_cert_fingerprint, token_creds.identity->fingerprint);
  EXPECT_EQ(token_recs[0].request.Header("Content-Type"), "application/x-www-form-urlencoded");
  // No client_authentication and a secret: client_secret_basic, base64("client-1:s3cr%26t").
  EXPECT_EQ(token_recs[0].request.Header("Authorization"), "Basic Y2xpZW50LTE6czNjciUyNnQ=");
  EXPECT_EQ(token_recs[0].request.body,
            "grant_type=client_credentials&scope=read%20write&audience=api%3A%2F%2Fx");
  auto api_recs = api->requests();
  ASSERT_EQ(api_recs.size(), 3u);
  for (const auto& rec : api_recs) {
    EXPECT_EQ(rec.request.Header("Authorization"), "Bearer at-1");
    EXPECT_EQ(rec.client_cert_fingerprint, api_creds.identity->fingerprint);
  }
}

// What the token endpoint received for one client authentication method.
struct TokenRequestSeen {
  bool has_authorization = false;
  std::string authorization;
  std::string body;
  std::string client_cert_fingerprint;
};

class OAuth2ClientAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto config = ServerConfig("localhost", ClientAuth::kRequired);
    config.handler = [this](const ServerRequest& req) {
      ServerResponse r;
      if (req.target == "/token") {
        ++token_calls_;
        r.headers = {{"Content-Type", "application/json"}};
        r.body = R"({"access_token":"tok","token_type":"Bearer","expires_in":3600})";
      }
      return r;
    };
    server_ = Serve(std::move(config));
    auto source = std::make_shared<MapCredentialSource>();
    token_creds_ = Creds("second");
    source->Set("127.0.0.1:" + std::to_string(server_->port()), token_creds_);
    EngineOptions options;
    options.credentials = source;
    engine_ = std::make_unique<RestEngine>(options);
  }

  RestStep Step(std::string_view secret, OAuth2ClientAuth method) {
    RestStep step = Get(server_->BaseUrl() + "/api");
    // A ':' in the id and '&', ':' in the secret show each part is form-urlencoded.
    step.auth = OAuth2ClientCredentials{
        "https://127.0.0.1:" + std::to_string(server_->port()) + "/token", "client:1",
        SecretBytes(secret), "read write", "", method};
    return step;
  }

  // Runs one step and returns what the token endpoint saw.
  TokenRequestSeen FetchToken(std::string_view secret, OAuth2ClientAuth method) {
    size_t before = server_->requests().size();
    auto r = engine_->Execute(Step(secret, method), Creds("rsa"), Soon());
    EXPECT_TRUE(r.ok()) << r.error().ToString();
    auto recs = server_->requests();
    EXPECT_EQ(recs.size(), before + 2);  // token, then the API
    TokenRequestSeen seen;
    if (recs.size() < before + 2) return seen;
    const auto& token = recs[before];
    EXPECT_EQ(token.request.target, "/token");
    EXPECT_EQ(recs[before + 1].request.Header("Authorization"), "Bearer tok");
    seen.has_authorization = token.request.HasHeader("Authorization");
    seen.authorization = token.request.Header("Authorization");
    seen.body = token.request.body;
    seen.client_cert_fingerprint = token.client_cert_fingerprint;
    return seen;
  }

  std::atomic<int> token_calls_{0};  // before server_: its handler counts here
  std::unique_ptr<TlsServer> server_;
  core::CallCredentials token_creds_;
  std::unique_ptr<RestEngine> engine_;
};

constexpr std::string_view kSecret = "s3cr&t:x";
// base64("client%3A1:s3cr%26t%3Ax"), RFC 6749 §2.3.1.
constexpr std::string_view kBasic = "Basic Y2xpZW50JTNBMTpzM2NyJTI2dCUzQXg=";

TEST_F(OAuth2ClientAuthTest, ClientSecretBasicSendsBothInTheAuthorizationHeaderOnly) {
  TokenRequestSeen seen = FetchToken(kSecret, OAuth2ClientAuth::kClientSecretBasic);
  EXPECT_EQ(seen.authorization, kBasic);
  EXPECT_EQ(seen.body, "grant_type=client_credentials&scope=read%20write");
  EXPECT_EQ(seen.client_cert_fingerprint, token_creds_.identity->fingerprint);
}

TEST_F(OAuth2ClientAuthTest, UnspecifiedWithASecretIsClientSecretBasic) {
  TokenRequestSeen seen = FetchToken(kSecret, OAuth2ClientAuth::kUnspecified);
  EXPECT_EQ(seen.authorization, kBasic);
  EXPECT_EQ(seen.body, "grant_type=client_credentials&scope=read%20write");
}

TEST_F(OAuth2ClientAuthTest, ClientSecretPostSendsBothInTheFormAndNoAuthorization) {
  TokenRequestSeen seen = FetchToken(kSecret, OAuth2ClientAuth::kClientSecretPost);
  EXPECT_FALSE(seen.has_authorization);
  EXPECT_EQ(seen.body,
            "grant_type=client_credentials&client_id=client%3A1&scope=read%20write"
            "&client_secret=s3cr%26t%3Ax");
}

TEST_F(OAuth2ClientAuthTest, TlsClientAuthSendsOnlyTheClientIdAndTheBoundCertificate) {
  TokenRequestSeen seen = FetchToken("", OAuth2ClientAuth::kTlsClientAuth);
  EXPECT_FALSE(seen.has_authorization);
  EXPECT_EQ(seen.body, "grant_type=client_credentials&client_id=client%3A1&scope=read%20write");
  EXPECT_EQ(seen.client_cert_fingerprint, token_creds_.identity->fingerprint);
}

TEST_F(OAuth2ClientAuthTest, UnspecifiedWithoutASecretIsTlsClientAuth) {
  TokenRequestSeen seen = FetchToken("", OAuth2ClientAuth::kUnspecified);
  EXPECT_FALSE(seen.has_authorization);
  EXPECT_EQ(seen.body, "grant_type=client_credentials&client_id=client%3A1&scope=read%20write");
  EXPECT_EQ(seen.client_cert_fingerprint, token_creds_.identity->fingerprint);
}

TEST_F(OAuth2ClientAuthTest, TokensAreCachedPerClientAuthenticationMethod) {
  // Same URL, client, secret and scope: only the method differs, so each gets a token.
  FetchToken(kSecret, OAuth2ClientAuth::kClientSecretPost);
  FetchToken(kSecret, OAuth2ClientAuth::kClientSecretBasic);
  for (OAuth2ClientAuth method :
       {OAuth2ClientAuth::kClientSecretPost, OAuth2ClientAuth::kClientSecretBasic}) {
    auto r = engine_->Execute(Step(kSecret, method), Creds("rsa"), Soon());
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(r->status, 200);
  }
  EXPECT_EQ(token_calls_.load(), 2);  // the last two came from the cache
}

TEST_F(OAuth2ClientAuthTest, MethodThatContradictsTheSecretIsInvalidStepConfig) {
  struct Case {
    std::string_view secret;
    OAuth2ClientAuth method;
  };
  for (const Case& c : {Case{"", OAuth2ClientAuth::kClientSecretBasic},
                        Case{"", OAuth2ClientAuth::kClientSecretPost},
                        Case{kSecret, OAuth2ClientAuth::kTlsClientAuth}}) {
    auto r = engine_->Execute(Step(c.secret, c.method), Creds("rsa"), Soon());
    ASSERT_FALSE(r.ok()) << static_cast<int>(c.method);
    EXPECT_EQ(r.error().code, Code::kInvalidStepConfig);
    EXPECT_EQ(r.error().detail.at("field"), "auth.oauth2.client_secret");
    EXPECT_EQ(r.error().ToString().find("s3cr"), std::string::npos);
  }
  EXPECT_EQ(server_->request_count(), 0u);
}

TEST(EngineTest, OAuth2TokenRefusedNamesTheEndpoint) {
  auto token_config = ServerConfig("localhost", ClientAuth::kNone);
  token_config.handler = [](const ServerRequest&) {
    ServerResponse r;
    r.status = 401;
    r.body = R"({"error":"invalid_client","error_description":"unknown client"})";
    return r;
  };
  auto token_server = Serve(std::move(token_config));
  RestEngine engine;
  std::string token_url = token_server->BaseUrl() + "/token";
  RestStep step = Get(token_server->BaseUrl() + "/api");
  step.auth = OAuth2ClientCredentials{token_url, "c", SecretBytes(std::string_view("zzz-secret")), "", ""};
  auto r = engine.Execute(std::move(step), Creds(""), Soon());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Code::kTransferFailed);
  EXPECT_EQ(r.error().detail.at("token_endpoint"), token_url);
  EXPECT_EQ(r.error().detail.at("oauth_error"), "invalid_client");
  EXPECT_NE(r.error().message.find(token_url), std::string::npos);
  EXPECT_EQ(r.error().ToString().find("zzz-secret"), std::string::npos);
  EXPECT_EQ(token_server->request_count(), 1u);  // the API was never called
}

TEST(EngineTest, OAuth2TokenRefreshedOnceWhenTheApiRejectsIt) {
  std::atomic<int> token_calls{0};
  auto config = ServerConfig("localhost", ClientAuth::kNone);
  config.handler = [&](const ServerRequest& req) {
    ServerResponse r;
    if (req.target == "/token") {
      int n = ++token_calls;
      r.body = R"({"access_token":"t)" + std::to_string(n) + R"(","expires_in":3600})";
    } else if (req.Header("Authorization") != "Bearer t2") {
      r.status = 401;  // only the second token is good
    }
    return r;
  };
  auto server = Serve(std::move(config));
  RestEngine engine;
  RestStep step = Get(server->BaseUrl() + "/api");
  step.auth = OAuth2ClientCredentials{server->BaseUrl() + "/token", "c", SecretBytes(), "", ""};
  auto r = engine.Execute(std::move(step), Creds(""), Soon());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(token_calls.load(), 2);
}

TEST(EngineTest, OAuth2TokenNotReusedPastItsExpiryMargin) {
  std::atomic<int> token_calls{0};
  auto config = ServerConfig("localhost", ClientAuth::kNone);
  config.handler = [&](const ServerRequest& req) {
    ServerResponse r;
    if (req.target == "/token") {
      ++token_calls;
      r.body = R"({"access_token":"short","token_type":"bearer","expires_in":20})";
    }
    return r;
  };
  auto server = Serve(std::move(config));
  EngineOptions options;
  options.oauth2_expiry_margin = std::chrono::seconds(30);  // longer than the token lives
  RestEngine engine(options);
  for (int i = 0; i < 2; ++i) {
    RestStep step = Get(server->BaseUrl() + "/api");
    step.auth = OAuth2ClientCredentials{server->BaseUrl() + "/token", "c", SecretBytes(), "", ""};
    auto r = engine.Execute(std::move(step), Creds(""), Soon());
    ASSERT_TRUE(r.ok()) << r.error().ToString();
  }
  EXPECT_EQ(token_calls.load(), 2);
}

TEST(EngineTest, MaxQueueStepsInFlightThenEngineBusy) {
  auto server = ServeStallingOnStallPath();
  EngineOptions options;
  options.workers = 1;
  options.max_queue = 2;
  RestEngine engine(options);
  std::vector<std::promise<Result<RestResult>>> promises(3);
  for (int i = 0; i < 3; ++i) {
    RestStep step = Get(server->BaseUrl() + "/stall");
    step.timeouts.total = 1500ms;
    engine.Submit(std::move(step), Creds(""), Soon(), {},
                  [&promises, i](Result<RestResult> r) { promises[i].set_value(std::move(r)); });
  }
  auto third = promises[2].get_future().get();  // refused at once
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(third.error().detail.at("reason"), "engine_busy");
  // One event loop drives both stalled steps at once: both reached the server.
  EXPECT_TRUE(server->WaitForRequests(2));
  EXPECT_EQ(promises[0].get_future().get().code(), Code::kTimeout);
  EXPECT_EQ(promises[1].get_future().get().code(), Code::kTimeout);
}

TEST(EngineTest, StepsStalledAtOneOriginDoNotDelayAnother) {
  auto stalled = ServeStallingOnStallPath();
  auto healthy = Serve(ServerConfig("localhost", ClientAuth::kNone));
  EngineOptions options;
  options.workers = 1;  // one event loop for everything
  RestEngine engine(options);
  constexpr int kStalled = 16;
  CancelToken cancel;
  std::vector<std::promise<Code>> codes(kStalled);
  for (int i = 0; i < kStalled; ++i) {
    engine.Submit(Get(stalled->BaseUrl() + "/stall"), Creds(""), Soon(), cancel,
                  [&codes, i](Result<RestResult> r) {
                    codes[i].set_value(CodeOf(r));
                  });
  }
  ASSERT_TRUE(stalled->WaitForRequests(kStalled)) << "every stalled step runs at once";
  for (int i = 0; i < 5; ++i) {
    auto r = engine.Execute(Get(healthy->BaseUrl() + "/ok"), Creds(""), Soon());
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(r->status, 200);
  }
  cancel.Cancel();
  for (auto& c : codes) EXPECT_EQ(c.get_future().get(), Code::kCancelled);
}

TEST(EngineTest, APerOriginCapQueuesThenTimesOutQueuedThenAnswersOriginBusy) {
  auto server = ServeStallingOnStallPath();
  EngineOptions options;
  options.max_in_flight_per_origin = 1;
  RestEngine engine(options);
  CancelToken cancel;
  std::promise<Code> first;
  engine.Submit(Get(server->BaseUrl() + "/stall"), Creds(""), Soon(), cancel,
                [&first](Result<RestResult> r) { first.set_value(CodeOf(r)); });
  ASSERT_TRUE(server->WaitForRequests(1));

  // Waits for the one place; its own timeout (from admission) runs out there.
  RestStep queued = Get(server->BaseUrl() + "/queued");
  queued.timeouts.total = 300ms;
  auto timed_out = engine.Execute(std::move(queued), Creds(""), Soon());
  ASSERT_FALSE(timed_out.ok());
  EXPECT_EQ(timed_out.error().code, Code::kTimeout) << timed_out.error().ToString();
  EXPECT_EQ(timed_out.error().detail.at("phase"), "queued");
  EXPECT_EQ(timed_out.error().detail.at("started"), "false");
  EXPECT_EQ(timed_out.error().detail.at("limit"), "step_timeout");
  EXPECT_EQ(timed_out.error().side, Side::kPlugin);

  // One waiting fills the origin's queue: the next is ORIGIN_BUSY at once.
  std::promise<Code> waiting;
  engine.Submit(Get(server->BaseUrl() + "/after"), Creds(""), Soon(), {},
                [&waiting](Result<RestResult> r) { waiting.set_value(CodeOf(r)); });
  auto busy = engine.Execute(Get(server->BaseUrl() + "/busy"), Creds(""), Soon());
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.error().code, Code::kOriginBusy) << busy.error().ToString();
  EXPECT_EQ(busy.error().detail.at("origin"), server->BaseUrl() + "");
  // Another origin is not held back at all.
  auto other = Serve(ServerConfig("localhost", ClientAuth::kNone));
  EXPECT_TRUE(engine.Execute(Get(other->BaseUrl() + "/ok"), Creds(""), Soon()).ok());

  // The place frees: the waiting step runs.
  cancel.Cancel();
  EXPECT_EQ(first.get_future().get(), Code::kCancelled);
  EXPECT_EQ(waiting.get_future().get(), Code::kOk);
  EXPECT_EQ(server->requests().back().request.target, "/after");
}

TEST(EngineTest, NoSocketLeftIsDescriptorsExhaustedAndIdleConnectionsClose) {
  auto server = ServeStallingOnStallPath();
  EngineOptions options;
  options.max_connections = 1;
  RestEngine engine(options);
  // An idle kept-alive connection holds the one socket...
  ASSERT_TRUE(engine.Execute(Get(server->BaseUrl() + "/a"), Creds(""), Soon()).ok());
  // ... and is closed for a step of another identity partition that needs one.
  RestStep other = Get(server->BaseUrl() + "/b");
  other.tls.min_tls_version = "1.3";  // another partition: its own connections
  ASSERT_TRUE(engine.Execute(std::move(other), Creds(""), Soon()).ok());
  EXPECT_EQ(server->connection_count(), 2u);

  // A running transfer holds it: no socket for the next step.
  CancelToken cancel;
  std::promise<Code> stalled;
  RestStep stall = Get(server->BaseUrl() + "/stall");
  stall.tls.min_tls_version = "1.3";
  engine.Submit(std::move(stall), Creds(""), Soon(), cancel,
                [&stalled](Result<RestResult> r) { stalled.set_value(CodeOf(r)); });
  ASSERT_TRUE(server->WaitForRequests(3));
  RestStep fresh = Get(server->BaseUrl() + "/c");
  fresh.reuse_connections = false;
  auto exhausted = engine.Execute(std::move(fresh), Creds(""), Soon());
  ASSERT_FALSE(exhausted.ok());
  EXPECT_EQ(exhausted.error().code, Code::kDescriptorsExhausted) << exhausted.error().ToString();
  EXPECT_EQ(exhausted.error().side, Side::kPlugin);
  cancel.Cancel();
  EXPECT_EQ(stalled.get_future().get(), Code::kCancelled);
}

TEST(EngineTest, ShutdownDrainsAndThenRefuses) {
  auto server = Serve(ServerConfig("localhost", ClientAuth::kNone));
  RestEngine engine;
  std::promise<Result<RestResult>> p;
  engine.Submit(Get(server->BaseUrl() + "/"), Creds(""), Soon(), {},
                [&p](Result<RestResult> r) { p.set_value(std::move(r)); });
  engine.Shutdown();
  EXPECT_TRUE(p.get_future().get().ok());
  auto refused = engine.Execute(Get(server->BaseUrl() + "/"), Creds(""), Soon());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().detail.at("reason"), "shutting_down");
}

TEST(EngineTest, PlainHttpNeverCarriesACertificate) {
  auto config = ServerConfig("localhost", ClientAuth::kNone);
  config.plain_http = true;
  auto server = Serve(std::move(config));
  RestEngine engine;
  RestStep step = Get(server->BaseUrl() + "/plain");
  ASSERT_FALSE(step.tls.ssl_verification);
  auto r = engine.Execute(std::move(step), Creds("rsa"), Soon());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_FALSE(r->tls.used_tls);
  EXPECT_FALSE(r->tls.client_certificate.has_value());
}

}  // namespace
}  // namespace wsstep::rest

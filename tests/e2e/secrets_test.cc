// Secrets scan over a representative integration workload, extending the mock engine's
// scan (tests/mock_engine) to every import format with a password (encrypted PEM keys,
// PKCS#12 modern and legacy, JKS and JCEKS with distinct store and key passwords,
// keytool's PKCS#12), OAuth2 client credentials (client secret and the access token the
// plugin obtains), WS-Security UsernameToken passwords, API keys, failing imports and
// failing steps, and every admin read (get, list, resolve, audit, validate).
//
// Scanned: every plugin log line (stderr at debug level), every gRPC response and status
// (serialized and as text), and every file in the data directory - while the plugin runs
// (SQLite -wal and -shm present) and after it stopped. Looked for: each private key's PEM
// body lines and DER windows, its raw private number(s) (RSA d, p, q; EC scalar), every
// password and token, and their base64 forms. Zero hits allowed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/e2e/e2e_util.h"
#include "tests/mock_engine/mock_engine.h"
#include "tests/support/nginx.h"
#include "tests/support/pki.h"
#include "tests/support/process.h"
#include "tests/support/tls_server.h"

namespace wsstep::e2e {
namespace {

using mock_engine::KeyPairFromFiles;
using mock_engine::MockEngine;
using mock_engine::Pkcs12FromFile;
using mock_engine::Secret;
using mock_engine::TextSecret;
using mock_engine::TrustStoreFromFile;
using testing::PkiPath;
namespace pki = testing::pki;

constexpr char kWrongPassword[] = "wrong-E2E-pass-31337";
constexpr char kBearer[] = "e2e-bearer-TOKEN-8f3a";
constexpr char kBasicPassword[] = "e2e-basic-PASS-77c1";
constexpr char kApiKey[] = "e2e-api-KEY-91bd";
constexpr char kClientId[] = "e2e-client";
constexpr char kClientSecret[] = "e2e-client-SECRET-5e2c";
constexpr char kAccessToken[] = "e2e-access-TOKEN-c0ffee";
constexpr char kWssePassword[] = "e2e-wsse-PASS-4a4a";

// The private key of a key store, extracted with the JDK and OpenSSL at test time (the
// test PKI has no separate key file for keytool-made entries).
std::string ExtractKeyPem(const testing::TempDir& dir, const std::string& store_rel,
                          const std::string& store_type, const std::string& store_pass,
                          const std::string& key_pass) {
  const std::string p12 = dir.Path(store_rel.substr(store_rel.find('/') + 1) + ".p12");
  std::string source = PkiPath(store_rel);
  if (store_type != "PKCS12") {
    // -XX:-UsePerfData: no hsperfdata_<user> in /tmp, where the JVM puts it whatever
    // TMPDIR says.
    auto r = testing::RunCommand({"keytool", "-J-XX:-UsePerfData", "-importkeystore", "-noprompt",
                                  "-srckeystore", source,
                                  "-srcstoretype", store_type, "-srcstorepass", store_pass,
                                  "-srcalias", "client", "-srckeypass", key_pass, "-destkeystore", p12,
                                  "-deststoretype", "PKCS12", "-deststorepass", "tmp-pass",
                                  "-destkeypass", "tmp-pass"});
    if (r.exit_code != 0) throw std::runtime_error("keytool: " + r.output);
    source = p12;
  }
  const std::string pass = store_type == "PKCS12" ? store_pass : "tmp-pass";
  const std::string out = dir.Path(store_rel.substr(store_rel.find('/') + 1) + ".key.pem");
  auto r = testing::RunCommand({"openssl", "pkcs12", "-in", source, "-nocerts", "-nodes", "-passin",
                                "pass:" + pass, "-out", out});
  if (r.exit_code != 0) throw std::runtime_error("openssl pkcs12: " + r.output);
  return testing::ReadFile(out);
}

class SecretsTest : public ::testing::Test {
 protected:
  // Records a response (and its status) the way MockEngine does, for the scan.
  template <typename Response>
  void Record(const grpc::Status& status, const Response& response) {
    transcript_ += response.SerializeAsString();
    transcript_ += response.DebugString();
    transcript_ += status.error_message();
    transcript_ += status.error_details();
  }
  template <typename Stub, typename Request, typename Response>
  grpc::Status Call(Stub* stub, grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                    const Request& request, Response* response) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    ctx.AddMetadata("x-wsstep-step-id", "secrets");
    const grpc::Status s = (stub->*method)(&ctx, request, response);
    Record(s, *response);
    return s;
  }

  std::string transcript_;
};

TEST_F(SecretsTest, NoKeyPasswordOrTokenAppearsInLogsResponsesOrTheDataDirectory) {
  testing::TempDir work("wsstep-e2e-secrets-");
  const std::string jks_key = ExtractKeyPem(work, "jks/client.jks", "JKS", std::string(pki::kStorePassword),
                                            std::string(pki::kJksKeyPassword));
  const std::string java_key = ExtractKeyPem(work, "p12/java-modern.p12", "PKCS12",
                                             std::string(pki::kJavaP12Password), "");
  std::vector<Secret> secrets = {
      mock_engine::KeySecret("client/rsa.key.pem"),
      mock_engine::KeySecret("client/second.key.pem"),
      mock_engine::KeySecret("client/ec256.key.pem"),
      mock_engine::KeySecretFromPem("JKS key", jks_key),
      mock_engine::KeySecretFromPem("keytool PKCS#12 key", java_key),
      KeyNumberSecret("client/rsa.key.pem"),
      KeyNumberSecret("client/second.key.pem"),
      KeyNumberSecret("client/ec256.key.pem"),
      KeyNumberSecretFromPem("JKS key number", jks_key),
      KeyNumberSecretFromPem("keytool PKCS#12 key number", java_key),
      TextSecret("PKCS#12 password", std::string(pki::kP12Password)),
      TextSecret("key password", std::string(pki::kKeyPassword)),
      TextSecret("JKS store password", std::string(pki::kStorePassword)),
      TextSecret("JKS key password", std::string(pki::kJksKeyPassword)),
      TextSecret("keytool PKCS#12 password", std::string(pki::kJavaP12Password)),
      TextSecret("wrong password attempt", kWrongPassword),
      TextSecret("bearer token", kBearer),
      TextSecret("basic password", kBasicPassword),
      TextSecret("basic credentials", std::string("user:") + kBasicPassword),
      TextSecret("API key", kApiKey),
      TextSecret("OAuth2 client secret", kClientSecret),
      TextSecret("OAuth2 client credentials", std::string(kClientId) + ":" + kClientSecret),
      TextSecret("OAuth2 access token", kAccessToken),
      TextSecret("WS-Security password", kWssePassword),
  };

  // Origins: nginx (mTLS) for REST steps; an in-process mTLS server for the OAuth2 token
  // endpoint, an API and a SOAP service, which must see the credentials (so they are
  // really used) but never echo them.
  testing::NginxConfig nc;
  nc.verify_client = testing::NginxVerifyClient::kOn;
  testing::NginxServer nginx(nc);
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();
  std::atomic<int> token_calls{0}, api_with_token{0}, wsse_seen{0};
  testing::TlsServer service(MtlsOriginConfig([&](const testing::ServerRequest& req) {
    testing::ServerResponse r;
    if (req.target == "/token") {
      ++token_calls;
      r.headers.push_back({"Content-Type", "application/json"});
      r.body = std::string(R"({"access_token":")") + kAccessToken + R"(","token_type":"Bearer","expires_in":3600})";
    } else if (req.target == "/soap") {
      wsse_seen += req.body.find("UsernameToken") != std::string::npos;
      r.headers.push_back({"Content-Type", "text/xml; charset=utf-8"});
      r.body = R"(<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>)"
               R"(<r xmlns="urn:e2e">ok</r></s:Body></s:Envelope>)";
    } else if (req.target == "/denied") {
      r.status = 401;
      r.body = "denied";
    } else {
      api_with_token += req.Header("Authorization") == std::string("Bearer ") + kAccessToken;
      r.body = "api ok";
    }
    return r;
  }));
  ASSERT_TRUE(service.Start()) << service.start_error();
  const uint32_t pn = nginx.port(), ps = service.port();
  const std::string svc = "https://localhost:" + std::to_string(ps);

  MockEngine engine;
  ASSERT_TRUE(engine.Start()) << engine.start_error();
  auto certs = v1::CertificateService::NewStub(engine.process().channel());
  auto steps = v1::StepPluginService::NewStub(engine.process().channel());

  auto must_create = [&](const v1::CreateCertificateRequest& request) {
    auto r = engine.Create(request);
    EXPECT_TRUE(r.ok()) << request.certificate().name() << ": " << r.status.error_message();
    return r.response.certificate();
  };
  auto java_store = [](const std::string& name, const std::string& rel, const std::vector<mock_engine::Bind>& b) {
    v1::CreateCertificateRequest r;
    r.mutable_certificate()->set_name(name);
    r.mutable_certificate()->set_type(v1::CERTIFICATE_TYPE_JAVA_KEYSTORE);
    for (const auto& x : b) {
      auto* bb = r.mutable_certificate()->add_bindings();
      bb->set_host(x.host);
      bb->set_port(x.port);
      bb->set_environment(x.environment);
    }
    r.mutable_material()->set_content(testing::ReadFile(PkiPath(rel)));
    r.mutable_material()->set_content_name(rel);
    r.mutable_material()->mutable_password()->set_value(std::string(pki::kStorePassword));
    r.mutable_material()->mutable_key_password()->set_value(std::string(pki::kJksKeyPassword));
    return r;
  };

  // --- Imports, every format with a secret -------------------------------------------
  must_create(TrustStoreFromFile("trust", "trust/bundle.pem",
                                 {{"localhost", pn, ""}, {"localhost", pn, "sandbox"}, {"localhost", ps, ""},
                                  {"localhost", pn, "jks"}, {"localhost", pn, "jceks"}, {"localhost", pn, "java"}}));
  must_create(KeyPairFromFiles("pem-plain", "client/rsa.pem", "client/rsa.key.pem", {{"localhost", pn, ""}}));
  must_create(KeyPairFromFiles("pem-aes", "client/rsa.pem", "client/rsa.key.pkcs8-aes.pem", {},
                               std::string(pki::kKeyPassword)));
  must_create(KeyPairFromFiles("pem-trad-enc", "client/rsa.pem", "client/rsa.key.trad-enc.pem", {},
                               std::string(pki::kKeyPassword)));
  must_create(KeyPairFromFiles("der-enc", "client/rsa.pem", "client/rsa.key.pkcs8-aes.der", {},
                               std::string(pki::kKeyPassword)));
  must_create(KeyPairFromFiles("second", "client/second.pem", "client/second.key.pem",
                               {{"localhost", pn, "sandbox"}}));
  must_create(Pkcs12FromFile("p12-modern", "p12/rsa-modern.p12", std::string(pki::kP12Password), {}));
  must_create(Pkcs12FromFile("p12-legacy", "p12/rsa-legacy.p12", std::string(pki::kP12Password), {}));
  must_create(Pkcs12FromFile("p12-ec", "p12/ec256.p12", std::string(pki::kP12Password), {{"localhost", ps, ""}}));
  must_create(Pkcs12FromFile("p12-java", "p12/java-modern.p12", std::string(pki::kJavaP12Password),
                             {{"localhost", pn, "java"}}));
  must_create(java_store("jks", "jks/client.jks", {{"localhost", pn, "jks"}}));
  must_create(java_store("jceks", "jks/client.jceks", {{"localhost", pn, "jceks"}}));

  // Failing imports: wrong passwords on every kind, a missing password.
  for (const auto& bad : {Pkcs12FromFile("bad-p12", "p12/rsa-modern.p12", kWrongPassword, {}),
                          KeyPairFromFiles("bad-key", "client/rsa.pem", "client/rsa.key.pkcs8-aes.pem", {},
                                           std::string(kWrongPassword)),
                          KeyPairFromFiles("no-pass", "client/rsa.pem", "client/rsa.key.trad-enc.pem", {})}) {
    auto r = engine.Create(bad);
    EXPECT_FALSE(r.ok()) << bad.certificate().name();
  }
  {
    auto bad = java_store("bad-jks", "jks/client.jks", {});
    bad.mutable_material()->mutable_key_password()->set_value(kWrongPassword);
    EXPECT_FALSE(engine.Create(bad).ok());
    bad.mutable_material()->mutable_password()->set_value(kWrongPassword);
    EXPECT_FALSE(engine.Create(bad).ok());
  }

  // --- Steps with every kind of credential ---------------------------------------------
  auto rest = [&](v1::RestStep step, const std::string& env) {
    auto r = engine.Rest(step, env, Opts("s"));
    EXPECT_TRUE(r.ok()) << r.status.error_message();
    return r.response.outcome();
  };
  const std::string echo = "https://localhost:" + std::to_string(pn) + "/echo";
  {
    auto s = mock_engine::GetStep(echo);
    s.mutable_auth()->mutable_bearer()->set_token(kBearer);
    EXPECT_TRUE(rest(s, "").has_http());
  }
  {
    auto s = mock_engine::GetStep(echo);
    s.mutable_auth()->mutable_basic()->set_username("user");
    s.mutable_auth()->mutable_basic()->set_password(kBasicPassword);
    EXPECT_TRUE(rest(s, "sandbox").has_http());
  }
  for (const char* env : {"jks", "jceks", "java"}) {
    auto s = mock_engine::GetStep(echo);
    s.mutable_auth()->mutable_api_key()->set_name("X-Api-Key");
    s.mutable_auth()->mutable_api_key()->set_value(kApiKey);
    const auto o = rest(s, env);
    EXPECT_TRUE(o.has_http()) << env << ": " << o.error().message();
  }
  {
    auto s = mock_engine::GetStep(echo + "?q=1");
    s.mutable_auth()->mutable_api_key()->set_name("api_key");
    s.mutable_auth()->mutable_api_key()->set_value(kApiKey);
    s.mutable_auth()->mutable_api_key()->set_location(v1::ApiKeyAuth::LOCATION_QUERY);
    const auto o = rest(s, "");
    EXPECT_TRUE(o.has_http()) << o.error().message();
  }
  // Named entries with encrypted keys.
  for (const char* name : {"pem-aes", "pem-trad-enc", "der-enc", "p12-modern", "p12-legacy"}) {
    auto s = mock_engine::GetStep(echo);
    s.mutable_tls()->set_certificate(name);
    const auto o = rest(s, "");
    EXPECT_TRUE(o.has_http()) << name << ": " << o.error().message();
  }
  // OAuth2 client credentials (the token call presents the bound certificate too).
  auto oauth_step = [&](const std::string& path) {
    auto s = mock_engine::GetStep(svc + path);
    auto* o = s.mutable_auth()->mutable_oauth2_client_credentials();
    o->set_token_url(svc + "/token");
    o->set_client_id(kClientId);
    o->set_client_secret(kClientSecret);
    o->add_scopes("read");
    return s;
  };
  {
    const auto o = rest(oauth_step("/api"), "");
    ASSERT_TRUE(o.has_http()) << o.error().code() << " " << o.error().message();
    EXPECT_EQ(o.http().body(), "api ok");
    const auto denied = rest(oauth_step("/denied"), "");
    ASSERT_TRUE(denied.has_http());
    EXPECT_EQ(denied.http().status(), 401);
    auto post = oauth_step("/api");
    post.mutable_auth()->mutable_oauth2_client_credentials()->set_client_authentication(
        v1::OAuth2ClientCredentials::CLIENT_AUTHENTICATION_CLIENT_SECRET_POST);
    EXPECT_TRUE(rest(post, "").has_http());
  }
  EXPECT_GE(token_calls.load(), 1);
  EXPECT_GE(api_with_token.load(), 1) << "the access token was really used";
  // WS-Security UsernameToken, text and digest.
  for (auto type : {v1::WsSecurity::UsernameToken::PASSWORD_TYPE_TEXT,
                    v1::WsSecurity::UsernameToken::PASSWORD_TYPE_DIGEST}) {
    v1::ExecuteSoapStepRequest req;
    auto* s = req.mutable_step();
    s->set_endpoint(svc + "/soap");
    s->mutable_tls()->set_ssl_verification(true);
    s->mutable_operation()->set_name("Op");
    s->mutable_operation()->set_namespace_uri("urn:e2e");
    auto* t = s->mutable_ws_security()->mutable_username_token();
    t->set_username("wsse-user");
    t->set_password(kWssePassword);
    t->set_password_type(type);
    v1::ExecuteSoapStepResponse resp;
    const auto st = Call(steps.get(), &v1::StepPluginService::Stub::ExecuteSoapStep, req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_TRUE(resp.outcome().has_soap()) << resp.outcome().error().code() << " " << resp.outcome().error().message();
  }
  EXPECT_EQ(wsse_seen.load(), 2);
  // Failing steps carrying credentials.
  {
    auto s = mock_engine::GetStep(echo);
    s.mutable_auth()->mutable_basic()->set_username("user");
    s.mutable_auth()->mutable_basic()->set_password(kBasicPassword);
    EXPECT_EQ(rest(s, "nowhere").error().code(), "CERTIFICATE_NOT_FOUND");
    auto t = oauth_step("/api");
    t.mutable_auth()->mutable_oauth2_client_credentials()->set_token_url(
        "https://localhost:" + std::to_string(testing::PickFreeLoopbackPort()) + "/token");
    EXPECT_TRUE(rest(t, "").has_error());
    auto v = mock_engine::GetStep(echo);
    auto* h = v.add_headers();
    h->set_name("X-Secret");
    h->set_value(std::string(kBearer) + "\r\nX-Injected: 1");
    EXPECT_EQ(rest(v, "").error().code(), "INVALID_STEP_CONFIG");
  }

  // --- Admin reads ------------------------------------------------------------------------
  {
    v1::ListCertificatesRequest lr;
    lr.set_page_size(1000);
    auto list = engine.List(lr);
    ASSERT_TRUE(list.ok());
    EXPECT_EQ(list.response.total_size(), 12);
    for (const auto& c : list.response.certificates()) {
      v1::GetCertificateRequest g;
      g.set_id(c.id());
      v1::GetCertificateResponse gr;
      EXPECT_TRUE(Call(certs.get(), &v1::CertificateService::Stub::GetCertificate, g, &gr).ok());
    }
    v1::ResolveCertificateRequest rr;
    rr.set_host("localhost");
    rr.set_port(pn);
    rr.set_environment("jks");
    v1::ResolveCertificateResponse rresp;
    EXPECT_TRUE(Call(certs.get(), &v1::CertificateService::Stub::ResolveCertificate, rr, &rresp).ok());
    v1::ListAuditEventsRequest ar;
    ar.set_page_size(1000);
    v1::ListAuditEventsResponse aresp;
    EXPECT_TRUE(Call(certs.get(), &v1::CertificateService::Stub::ListAuditEvents, ar, &aresp).ok());
    EXPECT_GT(aresp.events_size(), 10);
    v1::ValidateStepRequest vr;
    *vr.mutable_rest() = oauth_step("/api");
    v1::ValidateStepResponse vresp;
    EXPECT_TRUE(Call(steps.get(), &v1::StepPluginService::Stub::ValidateStep, vr, &vresp).ok());
  }

  // --- The scan: while running (WAL present), then after a clean stop ----------------------
  // The scanner itself can see a leak: the raw numbers are inside the plain DER key, the
  // PEM windows inside the PEM key, and a password inside a sentence.
  EXPECT_EQ(Leaks("self-check", testing::ReadFile(PkiPath("client/rsa.key.der")),
                  {KeyNumberSecret("client/rsa.key.pem")}).size(), 1u);
  EXPECT_EQ(Leaks("self-check", jks_key, {mock_engine::KeySecretFromPem("JKS key", jks_key)}).size(), 1u);
  EXPECT_EQ(Leaks("self-check", std::string("x ") + kClientSecret + " y", secrets).size(), 1u);
  std::vector<std::string> leaks;
  bool saw_wal = false;
  auto scan_dir = [&](const std::string& when) {
    size_t files = 0;
    for (const auto& [path, bytes] : mock_engine::ReadTree(engine.data_dir())) {
      ++files;
      saw_wal = saw_wal || (path.ends_with("-wal") && !bytes.empty());
      for (auto& l : Leaks(when + " " + path, bytes, secrets)) leaks.push_back(l);
    }
    return files;
  };
  EXPECT_GE(scan_dir("running"), 2u);
  EXPECT_TRUE(saw_wal) << "the running store's write-ahead log was scanned";
  for (auto& l : Leaks("responses", engine.Transcript() + transcript_, secrets)) leaks.push_back(l);
  EXPECT_EQ(engine.Stop(), 0);
  scan_dir("stopped");
  const std::string log = engine.StderrText();
  EXPECT_GT(std::count(log.begin(), log.end(), '\n'), 40) << "the debug log is this workload's";
  for (auto& l : Leaks("stderr", log, secrets)) leaks.push_back(l);
  EXPECT_THAT(leaks, ::testing::IsEmpty());
}

}  // namespace
}  // namespace wsstep::e2e

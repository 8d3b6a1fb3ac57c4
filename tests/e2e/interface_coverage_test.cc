// Every feature of the certificate store proven through the interface (issue 15): the
// rows that were tested only below gRPC, each driven through the real binary — over gRPC
// by the mock engine (one plugin and one set of nginx origins per suite; each test uses
// its own environment or origin, so their entries do not meet), and with the `wsstep`
// CLI where a command exists — against real nginx, which reports the client certificate
// it saw:
// - uploads: a combined PEM (certificate, chain and key in one file), a DER certificate
//   with a DER key, a DER trust store, a self-signed server certificate as the trust, a
//   mobile provisioning profile;
// - bindings: a one-label wildcard (and the exact binding beating it), the default port;
// - step TLS options: SNI override, public-key pinning, minimum TLS version;
// - failures: SERVER_CERT_EXPIRED, HOSTNAME_MISMATCH, PIN_MISMATCH, DNS_FAILURE,
//   CONNECTION_REFUSED, RESPONSE_TOO_LARGE, each with its side;
// - lifecycle: GenerateKeyAndCsr -> AttachCertificate -> the call presents it; update,
//   revoke and delete taking effect for the next step, delete refused while in use;
//   WatchEvents, ListPendingNotifications, AcknowledgeNotification;
// - ValidateStep's "verification on, but no certificate is bound" finding.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/e2e/e2e_util.h"
#include "tests/mock_engine/mock_engine.h"
#include "tests/support/nginx.h"
#include "tests/support/pki.h"
#include "tests/support/process.h"

namespace wsstep::mock_engine {
namespace {

using ::testing::HasSubstr;
using testing::NginxConfig;
using testing::NginxEcho;
using testing::NginxServer;
using testing::NginxVerifyClient;
using testing::PkiPath;

std::string Fp(const std::string& path) { return testing::Sha256FingerprintOfPemFile(path); }

// `bash -c script`; its output with the trailing newline removed; a failure fails the test.
std::string Shell(const std::string& script) {
  auto r = testing::RunCommand({"bash", "-c", "set -euo pipefail; " + script});
  EXPECT_EQ(r.exit_code, 0) << script << "\n" << r.output;
  while (!r.output.empty() && r.output.back() == '\n') r.output.pop_back();
  return r.output;
}

// "sha256//BASE64" of a certificate's public key (SubjectPublicKeyInfo), as curl takes it.
std::string SpkiPin(const std::string& cert) {
  return "sha256//" + Shell("openssl x509 -in '" + cert +
                            "' -pubkey -noout | openssl pkey -pubin -outform DER | "
                            "openssl dgst -sha256 -binary | base64");
}

// A certificate issued by the test intermediate for `key` (PEM), made at test time with
// `ext` (openssl extension lines); returns the leaf's path in `dir`.
std::string IssueByIntermediate(const testing::TempDir& dir, const std::string& name,
                                const std::string& csr_or_key, bool is_csr,
                                const std::string& subject, const std::string& ext) {
  const std::string csr = dir.Path(name + ".csr"), leaf = dir.Path(name + ".pem");
  testing::WriteFile(dir.Path(name + ".ext"), ext);
  if (is_csr) {
    testing::WriteFile(csr, csr_or_key);
  } else {
    Shell("openssl req -new -key '" + csr_or_key + "' -subj '" + subject + "' -out '" + csr + "'");
  }
  Shell("openssl x509 -req -in '" + csr + "' -CA '" + PkiPath("ca/intermediate.pem") +
        "' -CAkey '" + PkiPath("ca/intermediate.key.pem") + "' -set_serial 0x" +
        std::to_string(1000 + name.size()) + " -days 2 -extfile '" + dir.Path(name + ".ext") +
        "' -out '" + leaf + "' 2>&1");
  return leaf;
}

// leaf + the test intermediate, for nginx's ssl_certificate.
std::string WithIntermediate(const testing::TempDir& dir, const std::string& name,
                             const std::string& leaf) {
  const std::string out = dir.Path(name + ".chain.pem");
  testing::WriteFile(out,
                     testing::ReadFile(leaf) + testing::ReadFile(PkiPath("ca/intermediate.pem")));
  return out;
}

std::unique_ptr<NginxServer> StartNginx(NginxConfig config) {
  config.verify_client = NginxVerifyClient::kOn;
  auto nginx = std::make_unique<NginxServer>(std::move(config));
  EXPECT_TRUE(nginx->Start()) << nginx->start_error();
  return nginx;
}

constexpr size_t kBigBody = 64 * 1024;
constexpr const char* kWildcardHost = "api.wsstep.localhost";  // curl: *.localhost is loopback

// The origins a suite shares: nginx asking for a client certificate issued under the
// test root, each with one server certificate.
struct Origins {
  testing::TempDir dir{"wsstep-coverage-"};
  std::unique_ptr<NginxServer> good;         // server/localhost; also /big (64 KiB)
  std::unique_ptr<NginxServer> self_signed;  // server/self-signed
  std::unique_ptr<NginxServer> expired;      // server/expired (+ intermediate)
  std::unique_ptr<NginxServer> wrong_name;   // SAN DNS:wrong.example only
  std::unique_ptr<NginxServer> tls12;        // TLS 1.2 only
  std::unique_ptr<NginxServer> wildcard;     // SAN DNS:api.wsstep.localhost

  Origins() {
    NginxConfig good_config;
    good_config.responses.emplace_back("/big", std::string(kBigBody, 'x'));
    good = StartNginx(good_config);
    NginxConfig self_config;
    self_config.cert_file = PkiPath("server/self-signed.pem");
    self_config.key_file = PkiPath("server/self-signed.key.pem");
    self_signed = StartNginx(self_config);
    NginxConfig expired_config;
    expired_config.cert_file = WithIntermediate(dir, "expired", PkiPath("server/expired.pem"));
    expired_config.key_file = PkiPath("server/expired.key.pem");
    expired = StartNginx(expired_config);
    NginxConfig wrong_config;
    wrong_config.cert_file = WithIntermediate(dir, "wrong", PkiPath("server/wrong-name.pem"));
    wrong_config.key_file = PkiPath("server/wrong-name.key.pem");
    wrong_name = StartNginx(wrong_config);
    NginxConfig tls12_config;
    tls12_config.protocols = "TLSv1.2";
    tls12 = StartNginx(tls12_config);
    NginxConfig wildcard_config;
    wildcard_config.cert_file = WithIntermediate(
        dir, "wildcard",
        IssueByIntermediate(dir, "wildcard", PkiPath("server/localhost.key.pem"), false,
                            std::string("/O=wsstep tests/CN=") + kWildcardHost,
                            std::string("subjectAltName=DNS:") + kWildcardHost +
                                "\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"));
    wildcard_config.key_file = PkiPath("server/localhost.key.pem");
    wildcard = StartNginx(wildcard_config);
  }
};

std::string Url(const NginxServer& nginx, const std::string& host, const std::string& path) {
  return "https://" + host + ":" + std::to_string(nginx.port()) + path;
}

class InterfaceCoverageTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    engine_ = new MockEngine();
    if (!engine_->Start()) setup_error_ = engine_->start_error();
    origins_ = new Origins();
  }
  static void TearDownTestSuite() {
    const auto exit_code = engine_->Stop();
    if (exit_code != 0) ADD_FAILURE() << "the plugin did not exit 0";
    delete engine_;
    delete origins_;
  }
  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }

  static MockEngine& engine() { return *engine_; }
  static Origins& origins() { return *origins_; }

  v1::Certificate MustCreate(const v1::CreateCertificateRequest& request) {
    auto r = engine_->Create(request);
    EXPECT_TRUE(r.ok()) << request.certificate().name() << ": " << r.status.error_message();
    return r.response.certificate();
  }
  // A key pair (client/rsa unless told) and the test trust bundle, both bound to
  // host:port@environment.
  v1::Certificate Identity(const std::string& name, const std::string& host, uint32_t port,
                           const std::string& environment,
                           const std::string& cert = "client/rsa.pem",
                           const std::string& key = "client/rsa.key.pem") {
    MustCreate(
        TrustStoreFromFile(name + "-trust", "trust/bundle.pem", {{host, port, environment}}));
    return MustCreate(KeyPairFromFiles(name, cert, key, {{host, port, environment}}));
  }
  v1::StepOutcome Run(const v1::RestStep& step, const std::string& environment,
                      const CallOptions& options = {}) {
    auto r = engine_->Rest(step, environment, options);
    EXPECT_TRUE(r.ok()) << r.status.error_message();
    return r.response.outcome();
  }
  // The step succeeded and the origin's echo saw `cert` (a PEM path).
  void ExpectPresented(const v1::StepOutcome& o, const std::string& cert) {
    ASSERT_TRUE(o.has_http()) << o.error().code() << ": " << o.error().message();
    EXPECT_EQ(o.http().status(), 200);
    EXPECT_EQ(NginxEcho::Parse(o.http().body()).client_fingerprint, Fp(cert));
  }
  v1::StepError ExpectFailure(const v1::StepOutcome& o, const std::string& code) {
    EXPECT_TRUE(o.has_error()) << "expected " << code << ", got HTTP " << o.http().status();
    EXPECT_EQ(o.error().code(), code) << o.error().message();
    return o.error();
  }

  static inline MockEngine* engine_ = nullptr;
  static inline Origins* origins_ = nullptr;
  static inline std::string setup_error_;
};

TEST_F(InterfaceCoverageTest, CombinedPemDerCertificateAndDerTrustStoreArePresentedAndTrusted) {
  const uint32_t port = origins().good->port();
  // Certificate, intermediate and key in one PEM, no separate key.
  v1::CreateCertificateRequest combined;
  combined.mutable_certificate()->set_name("combined");
  combined.mutable_certificate()->set_type(v1::CERTIFICATE_TYPE_KEY_PAIR);
  *combined.mutable_certificate()->add_bindings() = [&] {
    v1::Binding b;
    b.set_host("localhost");
    b.set_port(port);
    b.set_environment("combined");
    return b;
  }();
  combined.mutable_material()->set_content(testing::ReadFile(PkiPath("client/rsa.combined.pem")));
  combined.mutable_material()->set_content_name("rsa.combined.pem");
  const v1::Certificate c = MustCreate(combined);
  EXPECT_TRUE(c.has_private_key());
  EXPECT_EQ(c.chain_subjects_size(), 2);
  MustCreate(
      TrustStoreFromFile("combined-trust", "trust/bundle.pem", {{"localhost", port, "combined"}}));
  const auto o = Run(GetStep(Url(*origins().good, "localhost", "/echo")), "combined");
  ExpectPresented(o, PkiPath("client/rsa.pem"));
  EXPECT_EQ(o.tls().client_certificate().certificate_id(), c.id());

  // DER certificate, DER PKCS#8 key; the server trusted through the root alone, in DER.
  const v1::Certificate der = MustCreate(KeyPairFromFiles(
      "der", "client/rsa.cert.der", "client/rsa.key.der", {{"localhost", port, "der"}}));
  EXPECT_EQ(der.source_format(), v1::SOURCE_FORMAT_DER);
  const v1::Certificate root =
      MustCreate(TrustStoreFromFile("der-root", "ca/root.der", {{"localhost", port, "der"}}));
  EXPECT_EQ(root.source_format(), v1::SOURCE_FORMAT_DER);
  ASSERT_EQ(root.trusted_size(), 1);
  EXPECT_EQ(root.trusted(0).subject(), "CN=wsstep Test Root CA,O=wsstep tests");
  const auto d = Run(GetStep(Url(*origins().good, "localhost", "/echo")), "der");
  ExpectPresented(d, PkiPath("client/rsa.pem"));
  EXPECT_EQ(d.tls().client_certificate().certificate_id(), der.id());
}

TEST_F(InterfaceCoverageTest, ASelfSignedServerIsTrustedByBindingItsOwnCertificate) {
  const auto& nginx = *origins().self_signed;
  MustCreate(KeyPairFromFiles("self-client", "client/rsa.pem", "client/rsa.key.pem",
                              {{"localhost", nginx.port(), ""}}));
  const auto before = Run(GetStep(Url(nginx, "localhost", "/echo")), "");
  EXPECT_EQ(ExpectFailure(before, "SERVER_CERT_UNTRUSTED").side(), v1::ERROR_SIDE_SERVER);

  MustCreate(TrustStoreFromFile("self-server", "server/self-signed.pem",
                                {{"localhost", nginx.port(), ""}}));
  ExpectPresented(Run(GetStep(Url(nginx, "localhost", "/echo")), ""), PkiPath("client/rsa.pem"));
}

TEST_F(InterfaceCoverageTest, AMobileProvisioningProfileIsStoredWithTheProfilesOwnExpiry) {
  v1::CreateCertificateRequest r;
  r.mutable_certificate()->set_name("ios-profile");
  r.mutable_certificate()->set_type(v1::CERTIFICATE_TYPE_MOBILE_PROVISIONING);
  r.mutable_material()->set_content(testing::ReadFile(PkiPath("mobile/profile.mobileprovision")));
  r.mutable_material()->set_content_name("profile.mobileprovision");
  const v1::Certificate p = MustCreate(r);
  EXPECT_EQ(p.source_format(), v1::SOURCE_FORMAT_MOBILE_PROVISION);
  // Its developer certificate (client/rsa) is among the certificates it shows.
  std::vector<std::string> fingerprints = {p.certificate().sha256_fingerprint()};
  for (const auto& t : p.trusted()) fingerprints.push_back(t.sha256_fingerprint());
  EXPECT_THAT(fingerprints, ::testing::Contains(Fp(PkiPath("client/rsa.pem"))));
  // The profile expires in 90 days, its developer certificate in 365.
  EXPECT_THAT(p.days_remaining(), ::testing::AllOf(::testing::Ge(88), ::testing::Le(90)));
  EXPECT_EQ(p.status(), v1::CERTIFICATE_STATUS_VALID);
  EXPECT_TRUE(p.attributes().contains("profile_expires"));
  v1::GetCertificateRequest get;
  get.set_name("IOS-PROFILE");
  auto got = engine().Get(get);
  ASSERT_TRUE(got.ok()) << got.status.error_message();
  EXPECT_EQ(got.response.certificate().id(), p.id());
}

TEST_F(InterfaceCoverageTest, WildcardAndDefaultPortBindings) {
  const auto& nginx = *origins().wildcard;
  const uint32_t port = nginx.port();
  Identity("wildcard", "*.wsstep.localhost", port, "");
  ExpectPresented(Run(GetStep(Url(nginx, kWildcardHost, "/echo")), ""), PkiPath("client/rsa.pem"));
  // One label only; and an exact binding beats the wildcard.
  v1::ResolveCertificateRequest deeper;
  deeper.set_host("a.api.wsstep.localhost");
  deeper.set_port(port);
  auto none = engine().Resolve(deeper);
  ASSERT_TRUE(none.ok()) << none.status.error_message();
  EXPECT_EQ(none.response.error().code(), "CERTIFICATE_NOT_FOUND");
  Identity("exact", kWildcardHost, port, "", "client/second.pem", "client/second.key.pem");
  ExpectPresented(Run(GetStep(Url(nginx, kWildcardHost, "/echo")), ""),
                  PkiPath("client/second.pem"));

  // Port 0 in a binding is 443: chosen for port 443, not for another port.
  const v1::Certificate d =
      MustCreate(KeyPairFromFiles("default-port", "client/rsa.pem", "client/rsa.key.pem",
                                  {{"api.default-port.example", 0, ""}}));
  ASSERT_EQ(d.bindings_size(), 1);
  EXPECT_EQ(d.bindings(0).port(), 443u);
  v1::ResolveCertificateRequest at443;
  at443.set_host("API.Default-Port.example.");
  at443.set_port(443);
  auto chosen = engine().Resolve(at443);
  ASSERT_TRUE(chosen.ok()) << chosen.status.error_message();
  EXPECT_EQ(chosen.response.chosen().id(), d.id());
  at443.set_port(0);  // the request's default port too
  EXPECT_EQ(engine().Resolve(at443).response.chosen().id(), d.id());
  at443.set_port(8443);
  EXPECT_EQ(engine().Resolve(at443).response.error().code(), "CERTIFICATE_NOT_FOUND");
}

TEST_F(InterfaceCoverageTest, SniOverridePinningAndMinimumTlsVersion) {
  // The URL names an address; tls_server_name is the name sent, verified and resolved.
  const auto& wrong = *origins().wrong_name;
  Identity("sni", "wrong.example", wrong.port(), "sni");
  v1::RestStep sni = GetStep(Url(wrong, "127.0.0.1", "/echo"));
  sni.mutable_tls()->set_tls_server_name("wrong.example");
  const auto o = Run(sni, "sni");
  ExpectPresented(o, PkiPath("client/rsa.pem"));
  EXPECT_EQ(o.tls().server_name(), "wrong.example");

  // The server's own key is the pin; another key's is PIN_MISMATCH.
  const auto& good = *origins().good;
  Identity("pinned", "localhost", good.port(), "pin");
  v1::RestStep pinned = GetStep(Url(good, "localhost", "/echo"));
  pinned.mutable_tls()->set_pinned_public_key(SpkiPin(PkiPath("server/localhost.pem")));
  ExpectPresented(Run(pinned, "pin"), PkiPath("client/rsa.pem"));
  pinned.mutable_tls()->set_pinned_public_key(SpkiPin(PkiPath("client/rsa.pem")));
  EXPECT_EQ(ExpectFailure(Run(pinned, "pin"), "PIN_MISMATCH").side(), v1::ERROR_SIDE_SERVER);

  // A TLS 1.2-only server: fine at minimum 1.2, a handshake failure at minimum 1.3.
  const auto& tls12 = *origins().tls12;
  Identity("tls12", "localhost", tls12.port(), "");
  v1::RestStep min = GetStep(Url(tls12, "localhost", "/echo"));
  min.mutable_tls()->set_min_tls_version(v1::TLS_VERSION_1_2);
  const auto at12 = Run(min, "");
  ExpectPresented(at12, PkiPath("client/rsa.pem"));
  EXPECT_EQ(at12.tls().protocol(), "TLSv1.2");
  min.mutable_tls()->set_min_tls_version(v1::TLS_VERSION_1_3);
  ExpectFailure(Run(min, ""), "TLS_HANDSHAKE_FAILED");
}

TEST_F(InterfaceCoverageTest, EachTransportFailureHasItsCatalogCodeAndSide) {
  const auto& expired = *origins().expired;
  Identity("to-expired", "localhost", expired.port(), "");
  EXPECT_EQ(
      ExpectFailure(Run(GetStep(Url(expired, "localhost", "/echo")), ""), "SERVER_CERT_EXPIRED")
          .side(),
      v1::ERROR_SIDE_SERVER);

  const auto& wrong = *origins().wrong_name;
  Identity("to-wrong-name", "localhost", wrong.port(), "");
  const auto mismatch =
      ExpectFailure(Run(GetStep(Url(wrong, "localhost", "/echo")), ""), "HOSTNAME_MISMATCH");
  EXPECT_EQ(mismatch.side(), v1::ERROR_SIDE_SERVER);
  EXPECT_THAT(mismatch.detail().at("sans"), HasSubstr("wrong.example"));

  // Resolution happens first: a certificate is bound to each of these targets.
  Identity("to-nowhere", "no-such-host.invalid", 443, "");
  EXPECT_EQ(ExpectFailure(Run(GetStep("https://no-such-host.invalid/"), ""), "DNS_FAILURE").side(),
            v1::ERROR_SIDE_NETWORK);
  const uint16_t closed = testing::PickFreeLoopbackPort();
  Identity("to-closed", "localhost", closed, "");
  EXPECT_EQ(ExpectFailure(Run(GetStep("https://localhost:" + std::to_string(closed) + "/"), ""),
                          "CONNECTION_REFUSED")
                .side(),
            v1::ERROR_SIDE_NETWORK);
}

TEST_F(InterfaceCoverageTest, TheResponseSizeLimitIsTheStepsOrThePluginsLimit) {
  const auto& good = *origins().good;
  Identity("big", "localhost", good.port(), "big");
  v1::RestStep step = GetStep(Url(good, "localhost", "/big"));
  step.set_max_response_bytes(1024);
  const auto too_large = ExpectFailure(Run(step, "big"), "RESPONSE_TOO_LARGE");
  EXPECT_EQ(too_large.side(), v1::ERROR_SIDE_SERVER);
  step.set_max_response_bytes(0);  // the plugin's limit, far above 64 KiB
  const auto whole = Run(step, "big");
  ASSERT_TRUE(whole.has_http()) << whole.error().message();
  EXPECT_EQ(whole.http().body().size(), kBigBody);
}

TEST_F(InterfaceCoverageTest, ValidateStepSaysVerificationOnButNoCertificateIsBound) {
  v1::ValidateStepRequest validate;
  *validate.mutable_rest() = GetStep("https://nothing-bound.example:8443/pay");
  validate.set_environment("production");
  auto checked = engine().Validate(validate);
  ASSERT_TRUE(checked.ok()) << checked.status.error_message();
  EXPECT_FALSE(checked.response.valid());
  ASSERT_EQ(checked.response.diagnostics_size(), 1) << checked.response.DebugString();
  const auto& d = checked.response.diagnostics(0);
  EXPECT_EQ(d.severity(), v1::SEVERITY_ERROR);
  EXPECT_EQ(d.code(), "CERTIFICATE_NOT_FOUND");
  EXPECT_EQ(d.field_path(), "tls.ssl_verification");
  EXPECT_THAT(d.summary(), HasSubstr("verification on, but "));
  EXPECT_THAT(d.summary(), HasSubstr("nothing-bound.example:8443"));
  EXPECT_THAT(d.summary(), HasSubstr("production"));
  // Without verification the store is not consulted: nothing to say.
  validate.mutable_rest()->mutable_tls()->set_ssl_verification(false);
  auto off = engine().Validate(validate);
  ASSERT_TRUE(off.ok()) << off.status.error_message();
  EXPECT_TRUE(off.response.valid()) << off.response.DebugString();
}

TEST_F(InterfaceCoverageTest, AGeneratedKeyWithItsAttachedCertificateIsPresented) {
  const auto& good = *origins().good;
  MustCreate(
      TrustStoreFromFile("csr-trust", "trust/bundle.pem", {{"localhost", good.port(), "csr"}}));
  v1::GenerateKeyAndCsrRequest gen;
  gen.mutable_certificate()->set_name("generated");
  v1::Binding* b = gen.mutable_certificate()->add_bindings();
  b->set_host("localhost");
  b->set_port(good.port());
  b->set_environment("csr");
  gen.set_key_algorithm(v1::KEY_ALGORITHM_RSA_2048);
  gen.mutable_subject()->set_common_name("generated.wsstep.test");
  gen.mutable_subject()->set_organization("wsstep tests");
  auto generated = engine().GenerateKeyAndCsr(gen);
  ASSERT_TRUE(generated.ok()) << generated.status.error_message();
  EXPECT_EQ(generated.response.certificate().status(), v1::CERTIFICATE_STATUS_PENDING_CERTIFICATE);
  // Pending: nothing to present yet.
  ExpectFailure(Run(GetStep(Url(good, "localhost", "/echo")), "csr"), "CERTIFICATE_NOT_FOUND");

  testing::TempDir dir("wsstep-coverage-csr-");
  const std::string issued =
      IssueByIntermediate(dir, "generated", generated.response.csr_pem(), true, "",
                          "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n");
  v1::AttachCertificateRequest attach;
  attach.set_id(generated.response.certificate().id());
  attach.set_certificate(testing::ReadFile(issued));
  attach.set_content_name("generated.pem");
  auto attached = engine().Attach(attach);
  ASSERT_TRUE(attached.ok()) << attached.status.error_message();
  // Issued for 2 days: within the 30 warning days and the 7 urgent ones.
  EXPECT_EQ(attached.response.certificate().status(), v1::CERTIFICATE_STATUS_EXPIRING_SOON);
  EXPECT_EQ(attached.response.certificate().notification_level(), v1::NOTIFICATION_LEVEL_URGENT);
  const auto o = Run(GetStep(Url(good, "localhost", "/echo")), "csr");
  ExpectPresented(o, issued);
  EXPECT_EQ(o.tls().client_certificate().certificate_id(), attach.id());
}

TEST_F(InterfaceCoverageTest, UpdateRevokeAndDeleteTakeEffectForTheNextStep) {
  const auto& good = *origins().good;
  const std::string url = Url(good, "localhost", "/echo");
  const v1::Certificate rotating = Identity("rotating", "localhost", good.port(), "life");
  ExpectPresented(Run(GetStep(url), "life"), PkiPath("client/rsa.pem"));
  // New material under the same id.
  v1::UpdateCertificateRequest update;
  update.mutable_certificate()->set_id(rotating.id());
  const auto second = KeyPairFromFiles("x", "client/second.pem", "client/second.key.pem", {});
  *update.mutable_material() = second.material();
  auto updated = engine().Update(update);
  ASSERT_TRUE(updated.ok()) << updated.status.error_message();
  EXPECT_EQ(updated.response.certificate().version(), rotating.version() + 1);
  ExpectPresented(Run(GetStep(url), "life"), PkiPath("client/second.pem"));
  // Revoked: never chosen again.
  update.clear_material();
  update.mutable_certificate()->set_revoked(true);
  update.mutable_update_mask()->add_paths("revoked");
  ASSERT_TRUE(engine().Update(update).ok());
  ExpectFailure(Run(GetStep(url), "life"), "CERTIFICATE_NOT_FOUND");

  // Delete: refused while in use (naming the workflow and step), then forced.
  const v1::Certificate used = Identity("in-use", "localhost", good.port(), "life2");
  CallOptions who;
  who.workflow_id = "wf-pay";
  who.step_id = "charge";
  ExpectPresented(Run(GetStep(url), "life2", who), PkiPath("client/rsa.pem"));
  v1::DeleteCertificateRequest del;
  del.set_name("in-use");
  auto refused = engine().Delete(del);
  ASSERT_EQ(refused.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << refused.status.error_message();
  EXPECT_EQ(refused.details.reason, "FAILED_PRECONDITION");
  EXPECT_THAT(
      refused.status.error_message(),
      HasSubstr("'in-use' was used in the last 7 days by: localhost:" +
                std::to_string(good.port()) + "@life2 workflow wf-pay step charge (1 uses"));
  ExpectPresented(Run(GetStep(url), "life2", who), PkiPath("client/rsa.pem"));  // still there
  del.set_force(true);
  auto deleted = engine().Delete(del);
  ASSERT_TRUE(deleted.ok()) << deleted.status.error_message();
  EXPECT_EQ(deleted.response.certificate().id(), used.id());
  ASSERT_EQ(deleted.response.users_size(), 1);
  EXPECT_EQ(deleted.response.users(0).workflow_id(), "wf-pay");
  EXPECT_EQ(deleted.response.users(0).uses(), 2);
  ExpectFailure(Run(GetStep(url), "life2"), "CERTIFICATE_NOT_FOUND");
  // No check asked for: an unused entry goes at once, a missing one is NOT_FOUND.
  v1::DeleteCertificateRequest trust;
  trust.set_name("in-use-trust");
  trust.set_in_use_days(-1);
  EXPECT_TRUE(engine().Delete(trust).ok());
  EXPECT_EQ(engine().Delete(trust).status.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(InterfaceCoverageTest, WatchEventsListPendingAndAcknowledge) {
  // Due at once: within its (long) warning window.
  v1::CreateCertificateRequest expiring =
      KeyPairFromFiles("expiring", "client/ec256.pem", "client/ec256.key.pem", {});
  auto* n = expiring.mutable_certificate()->mutable_notifications();
  n->set_enabled(true);
  n->set_warning_days(3650);
  n->set_urgent_days(10);
  n->set_alert_ref("ops-mail");
  const v1::Certificate e = MustCreate(expiring);

  v1::WatchEventsRequest request;
  request.set_include_pending(true);
  auto watch = engine().OpenWatch(request);
  // Pending notifications come first (other tests' entries may be due too).
  std::optional<v1::ExpiryNotification> found;
  for (int i = 0; i < 20 && !found; ++i) {
    auto event = engine().ReadEvent(watch);
    ASSERT_TRUE(event.has_value()) << "the stream ended";
    ASSERT_TRUE(event->has_notification()) << event->DebugString();
    if (event->notification().certificate().id() == e.id()) found = event->notification();
  }
  ASSERT_TRUE(found.has_value());
  const v1::ExpiryNotification note = *found;
  EXPECT_EQ(note.alert_ref(), "ops-mail");
  EXPECT_EQ(note.level(), v1::NOTIFICATION_LEVEL_WARNING);
  EXPECT_GT(note.days_remaining(), 10);

  // Live: a change arrives on the open stream.
  MustCreate(KeyPairFromFiles("watched", "client/ec384.pem", "client/ec384.key.pem", {}));
  std::optional<v1::WatchEventsResponse> change;
  for (int i = 0; i < 20 && !change; ++i) {
    auto event = engine().ReadEvent(watch);
    ASSERT_TRUE(event.has_value()) << "the stream ended";
    if (event->has_change()) change = event;
  }
  ASSERT_TRUE(change.has_value());
  EXPECT_EQ(change->change().type(), v1::CHANGE_TYPE_CREATED);
  EXPECT_EQ(change->change().certificate().name(), "watched");
  EXPECT_EQ(change->change().actor(), "mock-engine");  // the x-wsstep-actor of the Create
  watch.context->TryCancel();

  auto pending = engine().PendingNotifications();
  ASSERT_TRUE(pending.ok()) << pending.status.error_message();
  auto ids = [](const v1::ListPendingNotificationsResponse& r) {
    std::vector<std::string> out;
    for (const auto& p : r.notifications()) out.push_back(p.id());
    return out;
  };
  EXPECT_THAT(ids(pending.response), ::testing::Contains(note.id()));
  ASSERT_TRUE(engine().Acknowledge(note.id()).ok());
  EXPECT_THAT(ids(engine().PendingNotifications().response),
              ::testing::Not(::testing::Contains(note.id())));
  EXPECT_EQ(engine().Acknowledge("no-such-notification").status.error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::ListAuditEventsRequest audit;
  audit.set_certificate_id(e.id());
  audit.add_actions(v1::AUDIT_ACTION_NOTIFY);
  audit.add_actions(v1::AUDIT_ACTION_ACKNOWLEDGE);
  auto events = engine().Audit(audit);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events.response.events_size(), 2) << events.response.DebugString();
  EXPECT_EQ(events.response.events(0).action(), v1::AUDIT_ACTION_ACKNOWLEDGE);
  EXPECT_EQ(events.response.events(1).action(), v1::AUDIT_ACTION_NOTIFY);
}

// The same rows with the commands an administrator types, against `wsstep serve`.
class InterfaceCoverageCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    socket_ = e2e::StartServeForCli(server_, work_);
    ASSERT_FALSE(socket_.empty());
  }
  void TearDown() override { server_.Stop(SIGTERM, std::chrono::seconds(20)); }

  testing::CommandResult Wsstep(std::vector<std::string> args) {
    std::vector<std::string> argv = {WSSTEP_BINARY, "--plugin", "unix://" + socket_};
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::RunCommand(argv);
  }
  void MustRun(std::vector<std::string> args) {
    auto r = Wsstep(args);
    EXPECT_EQ(r.exit_code, 0) << r.output;
  }
  // `wsstep --json call rest ...` that failed: the catalog code, exit 1.
  std::string FailedCode(std::vector<std::string> args) {
    args.insert(args.begin(), {"--json", "call", "rest"});
    auto r = Wsstep(args);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    auto j = nlohmann::json::parse(r.output, nullptr, false);
    if (j.is_discarded() || !j.contains("error")) return "not an error: " + r.output;
    return j["error"]["code"];
  }

  testing::TempDir work_{"wsstep-coverage-cli-"};
  testing::ChildProcess server_;
  std::string socket_;
};

TEST_F(InterfaceCoverageCliTest, ImportsOfEveryFormAndTheCallFlagsReachTheOrigin) {
  NginxConfig config;
  auto good = StartNginx(config);
  NginxConfig self_config;
  self_config.cert_file = PkiPath("server/self-signed.pem");
  self_config.key_file = PkiPath("server/self-signed.key.pem");
  auto self_signed = StartNginx(self_config);
  NginxConfig tls12_config;
  tls12_config.protocols = "TLSv1.2";
  auto tls12 = StartNginx(tls12_config);
  const std::string p = std::to_string(good->port()), ps = std::to_string(self_signed->port()),
                    p12 = std::to_string(tls12->port());

  MustRun({"cert", "import", "--name", "combined", "--type", "key-pair", "--file",
           PkiPath("client/rsa.combined.pem"), "--bind", "localhost:" + p + "@combined", "--bind",
           "localhost:" + ps});
  MustRun({"cert", "import", "--name", "der", "--type", "key-pair", "--file",
           PkiPath("client/rsa.cert.der"), "--key-file", PkiPath("client/rsa.key.der"), "--bind",
           "localhost:" + p + "@der", "--bind", "localhost:" + p12});
  MustRun({"cert", "import", "--name", "root-der", "--type", "TRUST_STORE", "--file",
           PkiPath("ca/root.der"), "--bind", "localhost:" + p + "@combined", "--bind",
           "localhost:" + p + "@der", "--bind", "localhost:" + p12});
  MustRun({"cert", "import", "--name", "self-server", "--type", "trust-store", "--file",
           PkiPath("server/self-signed.pem"), "--bind", "localhost:" + ps});
  const std::string want = Fp(PkiPath("client/rsa.pem"));
  for (const auto& [url, env] : {std::pair{"https://localhost:" + p + "/echo", "combined"},
                                 std::pair{"https://localhost:" + p + "/echo", "der"},
                                 std::pair{"https://localhost:" + ps + "/echo", "default"}}) {
    auto r = Wsstep({"call", "rest", "--url", url, "-e", env});
    ASSERT_EQ(r.exit_code, 0) << url << "@" << env << ": " << r.output;
    EXPECT_EQ(NginxEcho::Parse(r.output).client_fingerprint, want) << r.output;
  }

  // --pin, --min-tls, --tls-server-name.
  const std::string url = "https://localhost:" + p + "/echo";
  EXPECT_EQ(Wsstep({"call", "rest", "--url", url, "-e", "der", "--pin",
                    SpkiPin(PkiPath("server/localhost.pem"))})
                .exit_code,
            0);
  EXPECT_EQ(FailedCode({"--url", url, "-e", "der", "--pin", SpkiPin(PkiPath("client/rsa.pem"))}),
            "PIN_MISMATCH");
  const std::string url12 = "https://localhost:" + p12 + "/echo";
  EXPECT_EQ(Wsstep({"call", "rest", "--url", url12, "--min-tls", "1.2"}).exit_code, 0);
  EXPECT_EQ(FailedCode({"--url", url12, "--min-tls", "1.3"}), "TLS_HANDSHAKE_FAILED");
  // 127.0.0.1 in the URL, localhost the name: resolved and verified as localhost.
  auto sni = Wsstep({"call", "rest", "--url", "https://127.0.0.1:" + ps + "/echo",
                     "--tls-server-name", "localhost"});
  ASSERT_EQ(sni.exit_code, 0) << sni.output;
  EXPECT_EQ(NginxEcho::Parse(sni.output).client_fingerprint, want);

  // The network failures, by code.
  MustRun({"cert", "import", "--name", "nowhere", "--type", "key-pair", "--file",
           PkiPath("client/rsa.combined.pem"), "--bind", "no-such-host.invalid"});
  EXPECT_EQ(FailedCode({"--url", "https://no-such-host.invalid/"}), "DNS_FAILURE");
  const std::string closed = std::to_string(testing::PickFreeLoopbackPort());
  MustRun({"cert", "update", "nowhere", "--bind", "localhost:" + closed});
  EXPECT_EQ(FailedCode({"--url", "https://localhost:" + closed + "/"}), "CONNECTION_REFUSED");
}

}  // namespace
}  // namespace wsstep::mock_engine

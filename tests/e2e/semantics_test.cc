// What the contract says the plugin does, checked through the real binary (launched by
// the mock engine over the go-plugin handshake) against in-process TLS servers that
// record what they received:
// - the step's ssl_verification toggle: on, the store's client certificate and bound
//   trust; off, a plain HTTPS call (no client certificate, the system CAs only, whatever
//   trust is bound to the host).
// - revocation is final: an UpdateCertificate that would un-revoke or re-enable a revoked
//   entry is refused, and nothing about it is audited.
// - CERTIFICATE_NOT_FOUND is the store's side, whichever way it comes about.
// - a PKCS#12 made by keytool that lists each CA twice: stored and sent once each, in
//   order from the leaf up.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "tests/mock_engine/mock_engine.h"
#include "tests/support/pki.h"
#include "tests/support/process.h"
#include "tests/support/tls_server.h"

namespace wsstep::mock_engine {
namespace {

using testing::PkiPath;
using testing::TlsServer;
using testing::TlsServerConfig;

// A TLS server on 127.0.0.1 for localhost with `cert` (a leaf issued by the test
// intermediate), asking for a client certificate issued under the test root.
std::unique_ptr<TlsServer> StartServer(const std::string& cert, const std::string& key,
                                       testing::ClientAuth client_auth) {
  TlsServerConfig config;
  config.cert_file = PkiPath(cert);
  config.key_file = PkiPath(key);
  config.chain_file = PkiPath("ca/intermediate.pem");
  config.client_auth = client_auth;
  config.client_ca_file = PkiPath("trust/bundle.pem");
  auto server = std::make_unique<TlsServer>(std::move(config));
  EXPECT_TRUE(server->Start()) << server->start_error();
  return server;
}

std::string UrlOf(const TlsServer& server) {
  return "https://localhost:" + std::to_string(server.port()) + "/toggle";
}

v1::RestStep Step(const std::string& url, bool ssl_verification) {
  v1::RestStep step = GetStep(url);
  step.mutable_tls()->set_ssl_verification(ssl_verification);
  return step;
}

std::vector<std::string> WarningCodes(const v1::StepOutcome& outcome) {
  std::vector<std::string> codes;
  for (const auto& w : outcome.warnings()) codes.push_back(w.code());
  return codes;
}

class SemanticsTest : public ::testing::Test {
 protected:
  void TearDown() override { EXPECT_EQ(engine_.Stop(), 0) << "plugin exit code"; }

  v1::Certificate MustCreate(const v1::CreateCertificateRequest& request) {
    auto r = engine_.Create(request);
    EXPECT_TRUE(r.ok()) << request.certificate().name() << ": " << r.status.error_message();
    return r.response.certificate();
  }

  v1::StepOutcome Run(const v1::RestStep& step, const std::string& environment = "") {
    auto r = engine_.Rest(step, environment);
    EXPECT_TRUE(r.ok()) << r.status.error_message();
    return r.response.outcome();
  }

  MockEngine engine_;
};

// The server's certificate has expired. Its CA is bound to the host as a trust store, so
// with verification on the chain is trusted and the expiry is what fails. Off, that trust
// store does not count: the chain is not trusted by the system CAs, and no client
// certificate is offered, although one is bound and the server asks for it.
TEST_F(SemanticsTest, VerificationOffIgnoresTheTrustBoundToTheHostAndSendsNoCertificate) {
  ASSERT_TRUE(engine_.Start()) << engine_.start_error();
  auto server =
      StartServer("server/expired.pem", "server/expired.key.pem", testing::ClientAuth::kOptional);
  const uint32_t port = server->port();
  MustCreate(TrustStoreFromFile("test-ca", "trust/bundle.pem", {{"localhost", port, ""}}));
  MustCreate(KeyPairFromFiles("client-rsa", "client/rsa.pem", "client/rsa.key.pem",
                              {{"localhost", port, ""}}));

  const v1::StepOutcome on = Run(Step(UrlOf(*server), true));
  ASSERT_TRUE(on.has_error());
  EXPECT_EQ(on.error().code(), "SERVER_CERT_EXPIRED") << on.error().message();
  EXPECT_EQ(on.error().side(), v1::ERROR_SIDE_SERVER);

  const v1::StepOutcome off = Run(Step(UrlOf(*server), false));
  ASSERT_TRUE(off.has_error());
  EXPECT_EQ(off.error().code(), "SERVER_CERT_UNTRUSTED") << off.error().message();
  EXPECT_EQ(off.error().side(), v1::ERROR_SIDE_SERVER);
  EXPECT_EQ(off.error().detail().at("subject"), "CN=localhost,O=wsstep tests");

  // Off and verify_peer off too (allowed outside protected environments): the call goes
  // through with its warning, and still without a client certificate.
  v1::RestStep unverified = Step(UrlOf(*server), false);
  unverified.mutable_tls()->mutable_verify_peer()->set_value(false);
  const v1::StepOutcome through = Run(unverified);
  ASSERT_TRUE(through.has_http()) << through.error().message();
  EXPECT_EQ(through.http().status(), 200);
  EXPECT_THAT(
      WarningCodes(through),
      ::testing::UnorderedElementsAre("VERIFY_PEER_DISABLED", "CLIENT_CERT_REQUESTED_NONE_SENT"));
  EXPECT_FALSE(through.tls().has_client_certificate());

  // The server never saw the bound certificate: one request, anonymous.
  ASSERT_EQ(server->requests().size(), 1u);
  EXPECT_EQ(server->requests()[0].client_cert_fingerprint, "");
  EXPECT_EQ(server->requests()[0].request.target, "/toggle");
}

// The plugin's system CAs are the test root here (OpenSSL's SSL_CERT_FILE, read by the
// plugin process). A trust store bound to the host holds only an unrelated root and is
// private-trust-only: with verification on it replaces the system CAs, so the server is
// untrusted; off, it is not consulted and the system CAs trust the server.
TEST_F(SemanticsTest, VerificationOffKeepsTheSystemCasWhenABoundTrustStoreIsPrivateOnly) {
  testing::TempDir no_ca_dir("wsstep-no-ca-dir-");
  ASSERT_TRUE(engine_.Start(
      {{"SSL_CERT_FILE", PkiPath("trust/bundle.pem")}, {"SSL_CERT_DIR", no_ca_dir.path()}}))
      << engine_.start_error();
  auto server = StartServer("server/localhost.pem", "server/localhost.key.pem",
                            testing::ClientAuth::kOptional);
  const uint32_t port = server->port();
  v1::CreateCertificateRequest other =
      TrustStoreFromFile("other-ca-only", "trust/other-bundle.pem", {{"localhost", port, ""}});
  other.mutable_certificate()->set_private_trust_only(true);
  MustCreate(other);
  const v1::Certificate client = MustCreate(KeyPairFromFiles(
      "client-rsa", "client/rsa.pem", "client/rsa.key.pem", {{"localhost", port, ""}}));

  const v1::StepOutcome on = Run(Step(UrlOf(*server), true));
  ASSERT_TRUE(on.has_error());
  EXPECT_EQ(on.error().code(), "SERVER_CERT_UNTRUSTED") << on.error().message();
  EXPECT_EQ(server->request_count(), 0u);

  const v1::StepOutcome off = Run(Step(UrlOf(*server), false));
  ASSERT_TRUE(off.has_http()) << off.error().code() << ": " << off.error().message();
  EXPECT_EQ(off.http().status(), 200);
  EXPECT_FALSE(off.tls().has_client_certificate());
  EXPECT_TRUE(off.tls().client_certificate_requested());
  EXPECT_THAT(WarningCodes(off), ::testing::ElementsAre("CLIENT_CERT_REQUESTED_NONE_SENT"));
  ASSERT_EQ(server->requests().size(), 1u);
  EXPECT_EQ(server->requests()[0].client_cert_fingerprint, "");

  // The same private-only store with the server's own CA beside it: on, the bound trust
  // and the bound certificate are used, as before.
  MustCreate(TrustStoreFromFile("test-ca", "trust/bundle.pem", {{"localhost", port, ""}}));
  server->Clear();
  const v1::StepOutcome bound = Run(Step(UrlOf(*server), true));
  ASSERT_TRUE(bound.has_http()) << bound.error().code() << ": " << bound.error().message();
  EXPECT_EQ(bound.tls().client_certificate().certificate_id(), client.id());
  ASSERT_EQ(server->requests().size(), 1u);
  EXPECT_EQ(server->requests()[0].client_cert_fingerprint,
            testing::Sha256FingerprintOfPemFile(PkiPath("client/rsa.pem")));
}

// Off with private_trust_only would trust nothing: refused at design time and at run
// time, naming the field, before anything is sent.
TEST_F(SemanticsTest, PrivateTrustOnlyWithVerificationOffIsInvalidStepConfig) {
  ASSERT_TRUE(engine_.Start()) << engine_.start_error();
  auto server =
      StartServer("server/localhost.pem", "server/localhost.key.pem", testing::ClientAuth::kNone);
  v1::RestStep step = Step(UrlOf(*server), false);
  step.mutable_tls()->set_private_trust_only(true);

  const v1::StepOutcome run = Run(step);
  ASSERT_TRUE(run.has_error());
  EXPECT_EQ(run.error().code(), "INVALID_STEP_CONFIG");
  EXPECT_EQ(run.error().detail().at("field"), "tls.private_trust_only");
  EXPECT_EQ(run.error().message(),
            "tls.private_trust_only: trusting only the bound trust stores requires "
            "tls.ssl_verification");

  v1::ValidateStepRequest validate;
  *validate.mutable_rest() = step;
  auto checked = engine_.Validate(validate);
  ASSERT_TRUE(checked.ok()) << checked.status.error_message();
  ASSERT_EQ(checked.response.diagnostics_size(), 1);
  EXPECT_EQ(checked.response.diagnostics(0).code(), "INVALID_STEP_CONFIG");
  EXPECT_EQ(checked.response.diagnostics(0).field_path(), "tls.private_trust_only");
  EXPECT_EQ(server->connection_count(), 0u);
}

v1::UpdateCertificateRequest SetFlag(const std::string& id, const std::string& flag, bool value) {
  v1::UpdateCertificateRequest r;
  r.mutable_certificate()->set_id(id);
  if (flag == "revoked") r.mutable_certificate()->set_revoked(value);
  if (flag == "disabled") r.mutable_certificate()->set_disabled(value);
  r.mutable_update_mask()->add_paths(flag);
  return r;
}

// Revoked is final (PRODUCT.md §1): UpdateCertificate may not withdraw a revocation nor
// enable a revoked entry. The refusal is FAILED_PRECONDITION naming the entry, the entry
// is unchanged, and the audit log holds nothing about the attempt.
TEST_F(SemanticsTest, ARevokedEntryCannotBeUnrevokedOrEnabledOverGrpc) {
  ASSERT_TRUE(engine_.Start()) << engine_.start_error();
  const v1::Certificate bank = MustCreate(KeyPairFromFiles(
      "bank", "client/rsa.pem", "client/rsa.key.pem", {{"api.bank.example", 443, ""}}));
  auto revoked = engine_.Update(SetFlag(bank.id(), "revoked", true));
  ASSERT_TRUE(revoked.ok()) << revoked.status.error_message();
  auto disabled = engine_.Update(SetFlag(bank.id(), "disabled", true));
  ASSERT_TRUE(disabled.ok()) << disabled.status.error_message();
  v1::ListAuditEventsRequest audit;
  audit.set_certificate_id(bank.id());
  auto before = engine_.Audit(audit);
  ASSERT_TRUE(before.ok()) << before.status.error_message();
  ASSERT_EQ(before.response.events_size(), 3);  // create, revoke, disable

  auto unrevoke = engine_.Update(SetFlag(bank.id(), "revoked", false));
  EXPECT_EQ(unrevoke.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  const std::string hint =
      " (Import the renewed certificate as a new entry and bind it where this one was bound; "
      "delete the revoked entry when it is no longer needed.)";
  EXPECT_EQ(
      unrevoke.status.error_message(),
      "certificate 'bank' is revoked, and revocation is final: it cannot be un-revoked" + hint);
  EXPECT_EQ(unrevoke.details.reason, "FAILED_PRECONDITION");
  EXPECT_EQ(unrevoke.details.metadata.at("certificate"), "bank");
  EXPECT_EQ(unrevoke.details.metadata.at("field"), "certificate.revoked");

  auto enable = engine_.Update(SetFlag(bank.id(), "disabled", false));
  EXPECT_EQ(enable.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(
      enable.status.error_message(),
      "certificate 'bank' is revoked, and revocation is final: it cannot be enabled again" + hint);
  EXPECT_EQ(enable.details.metadata.at("field"), "certificate.disabled");

  v1::GetCertificateRequest get;
  get.set_id(bank.id());
  auto after = engine_.Get(get);
  ASSERT_TRUE(after.ok()) << after.status.error_message();
  EXPECT_TRUE(after.response.certificate().revoked());
  EXPECT_TRUE(after.response.certificate().disabled());
  EXPECT_EQ(after.response.certificate().update_time().seconds(),
            disabled.response.certificate().update_time().seconds());
  auto audited = engine_.Audit(audit);
  ASSERT_TRUE(audited.ok()) << audited.status.error_message();
  EXPECT_EQ(audited.response.events_size(), 3);
}

// CERTIFICATE_NOT_FOUND says ERROR_SIDE_STORE, as ErrorCode documents it ("certificate
// resolution (store side)"), for each way a step gets it.
TEST_F(SemanticsTest, CertificateNotFoundIsTheStoresSide) {
  ASSERT_TRUE(engine_.Start()) << engine_.start_error();
  const std::string url = "https://localhost:9/none";  // nothing is ever sent
  MustCreate(KeyPairFromFiles("elsewhere", "client/rsa.pem", "client/rsa.key.pem",
                              {{"api.bank.example", 443, ""}}));
  MustCreate(TrustStoreFromFile("only-trust", "trust/bundle.pem", {}));
  const v1::Certificate off = MustCreate(
      KeyPairFromFiles("switched-off", "client/second.pem", "client/second.key.pem", {}));
  ASSERT_TRUE(engine_.Update(SetFlag(off.id(), "disabled", true)).ok());

  struct Case {
    std::string certificate;  // the step's tls.certificate
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"",
            "SSL Certificate Not Found: no client certificate is bound to localhost:9 in "
            "environment default"},
           {"missing", "no certificate named 'missing'"},
           {"elsewhere",
            "certificate 'elsewhere' is bound to api.bank.example:443 (default), not to "
            "localhost:9 (default)"},
           {"only-trust",
            "certificate 'only-trust' has no private key, so it cannot be presented as a client "
            "certificate"},
           {"switched-off", "certificate 'switched-off' is disabled"}}) {
    v1::RestStep step = GetStep(url);
    step.mutable_tls()->set_certificate(c.certificate);
    const v1::StepOutcome outcome = Run(step);
    ASSERT_TRUE(outcome.has_error()) << c.certificate;
    EXPECT_EQ(outcome.error().code(), "CERTIFICATE_NOT_FOUND") << c.certificate;
    EXPECT_EQ(outcome.error().side(), v1::ERROR_SIDE_STORE) << c.certificate;
    EXPECT_EQ(outcome.error().message(), c.message) << c.certificate;
  }
}

// The subjects `openssl pkcs12 -info` lists, bag by bag, as openssl prints them.
std::vector<std::string> BagSubjects(const std::string& p12, const std::string& password) {
  auto r = testing::RunCommand(
      {"openssl", "pkcs12", "-info", "-nokeys", "-in", p12, "-passin", "pass:" + password});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::vector<std::string> subjects;
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("subject=", 0) == 0) subjects.push_back(line.substr(8));
  }
  return subjects;
}

// The subject of a PKI certificate as `openssl x509 -subject` prints it (as BagSubjects).
std::string OpensslSubject(const std::string& rel) {
  auto r = testing::RunCommand({"openssl", "x509", "-in", PkiPath(rel), "-noout", "-subject"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::string line = r.output.substr(r.output.find('=') + 1);
  while (!line.empty() && line.back() == '\n') line.pop_back();
  return line;
}

// A key entry with its chain plus the root and the intermediate as trusted entries, made
// the way an administrator makes it (openssl, then keytool -importcert and
// -importkeystore): the PKCS#12 lists leaf, intermediate, root, root, intermediate.
std::string KeytoolPkcs12WithRepeatedCas(const testing::TempDir& dir, const std::string& pass) {
  const std::string cas = dir.Path("cas.pem");
  testing::WriteFile(cas, testing::ReadFile(PkiPath("ca/intermediate.pem")) +
                              testing::ReadFile(PkiPath("ca/root.pem")));
  const std::string source = dir.Path("source.p12"), work = dir.Path("work.p12"),
                    out = dir.Path("keytool.p12");
  auto must = [](const std::vector<std::string>& argv) {
    auto r = testing::RunCommand(argv);
    EXPECT_EQ(r.exit_code, 0) << argv[0] << " " << argv[1] << ": " << r.output;
  };
  must({"openssl", "pkcs12", "-export", "-in", PkiPath("client/rsa.pem"), "-inkey",
        PkiPath("client/rsa.key.pem"), "-certfile", cas, "-name", "client", "-passout",
        "pass:" + pass, "-out", source});
  // -XX:-UsePerfData: no hsperfdata_<user> in /tmp.
  const std::vector<std::string> keytool = {"keytool", "-J-XX:-UsePerfData"};
  auto run_keytool = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = keytool;
    argv.insert(argv.end(), args.begin(), args.end());
    must(argv);
  };
  run_keytool({"-importkeystore", "-noprompt", "-srckeystore", source, "-srcstoretype", "PKCS12",
               "-srcstorepass", pass, "-destkeystore", work, "-deststoretype", "PKCS12",
               "-deststorepass", pass});
  run_keytool({"-importcert", "-noprompt", "-alias", "root", "-file", PkiPath("ca/root.pem"),
               "-keystore", work, "-storetype", "PKCS12", "-storepass", pass});
  run_keytool({"-importcert", "-noprompt", "-alias", "ca", "-file", PkiPath("ca/intermediate.pem"),
               "-keystore", work, "-storetype", "PKCS12", "-storepass", pass});
  run_keytool({"-importkeystore", "-noprompt", "-srckeystore", work, "-srcstoretype", "PKCS12",
               "-srcstorepass", pass, "-destkeystore", out, "-deststoretype", "PKCS12",
               "-deststorepass", pass});
  return out;
}

// The stored chain and the chain the server receives hold each certificate once, leaf
// first and then each issuer, although the file lists the CAs twice.
TEST_F(SemanticsTest, AKeytoolPkcs12ListingItsCasTwiceIsStoredAndSentWithEachOnce) {
  ASSERT_TRUE(engine_.Start()) << engine_.start_error();
  testing::TempDir dir("wsstep-keytool-chain-");
  const std::string pass = "keytool chain pass";
  const std::string p12 = KeytoolPkcs12WithRepeatedCas(dir, pass);
  const std::string leaf = "CN=rsa,O=wsstep tests";
  const std::string intermediate = "CN=wsstep Test Intermediate CA,O=wsstep tests";
  const std::string root = "CN=wsstep Test Root CA,O=wsstep tests";
  const std::string leaf_bag = OpensslSubject("client/rsa.pem");
  const std::string intermediate_bag = OpensslSubject("ca/intermediate.pem");
  const std::string root_bag = OpensslSubject("ca/root.pem");
  ASSERT_THAT(BagSubjects(p12, pass), ::testing::ElementsAre(leaf_bag, intermediate_bag, root_bag,
                                                             root_bag, intermediate_bag));

  // A server that trusts only the root: it needs the intermediate from us.
  TlsServerConfig config;
  config.cert_file = PkiPath("server/localhost.chain.pem");
  config.key_file = PkiPath("server/localhost.key.pem");
  config.client_auth = testing::ClientAuth::kRequired;
  config.client_ca_file = PkiPath("ca/root.pem");
  TlsServer server(std::move(config));
  ASSERT_TRUE(server.Start()) << server.start_error();
  const uint32_t port = server.port();

  v1::CreateCertificateRequest create;
  create.mutable_certificate()->set_name("keytool-client");
  create.mutable_certificate()->set_type(v1::CERTIFICATE_TYPE_PKCS12);
  v1::Binding* b = create.mutable_certificate()->add_bindings();
  b->set_host("localhost");
  b->set_port(port);
  create.mutable_material()->set_content(testing::ReadFile(p12));
  create.mutable_material()->set_content_name("keytool.p12");
  create.mutable_material()->mutable_password()->set_value(pass);
  const v1::Certificate stored = MustCreate(create);
  EXPECT_THAT(stored.chain_subjects(), ::testing::ElementsAre(leaf, intermediate, root));
  EXPECT_EQ(stored.key_alias(), "client");
  MustCreate(TrustStoreFromFile("test-ca", "trust/bundle.pem", {{"localhost", port, ""}}));

  const v1::StepOutcome outcome = Run(GetStep("https://localhost:" + std::to_string(port) + "/"));
  ASSERT_TRUE(outcome.has_http()) << outcome.error().code() << ": " << outcome.error().message();
  EXPECT_EQ(outcome.tls().client_certificate().certificate_id(), stored.id());
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].client_cert_subject, leaf);
  EXPECT_THAT(server.requests()[0].client_chain_subjects,
              ::testing::ElementsAre(intermediate, root));
}

}  // namespace
}  // namespace wsstep::mock_engine

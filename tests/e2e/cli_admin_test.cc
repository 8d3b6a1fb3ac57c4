// The administrator's commands against a running `wsstep serve`, as typed: update
// (rebind, notifications, new material), disable/enable, revoke (final, confirmed),
// export (PEM and DER, compared with openssl), csr create/show + attach (signed by a real
// CA with openssl), audit, usage ("in use by"), delete refusing an entry in use,
// notifications list/ack, master-key rotate; each with its --json and exit code, and
// every failure in the one error shape.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "tests/e2e/e2e_util.h"
#include "tests/support/pki.h"
#include "tests/support/process.h"

namespace wsstep::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class CliAdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    socket_ = StartServeForCli(server_, work_);
    ASSERT_FALSE(socket_.empty());
  }
  void TearDown() override { server_.Stop(SIGTERM, std::chrono::seconds(20)); }

  testing::CommandResult Wsstep(std::vector<std::string> args, testing::EnvList env = {}) {
    std::vector<std::string> argv = {WSSTEP_BINARY, "--plugin", "unix://" + socket_};
    argv.insert(argv.end(), args.begin(), args.end());
    env.push_back({"P12_PASSWORD", std::string(testing::pki::kP12Password)});
    return testing::RunCommand(argv, env);
  }
  // `wsstep --json ...`: the exit code and the one JSON document it printed.
  nlohmann::json Json(std::vector<std::string> args, int want_exit) {
    args.insert(args.begin(), "--json");
    auto r = Wsstep(args);
    EXPECT_EQ(r.exit_code, want_exit) << r.output;
    auto j = nlohmann::json::parse(r.output, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not one JSON document: " << r.output;
    return j;
  }
  void ImportClient(const std::string& name, const std::string& bind) {
    auto r = Wsstep({"cert", "import", "--name", name, "--type", "key-pair", "--file",
                     testing::PkiPath("client/rsa.chain.pem"), "--key-file",
                     testing::PkiPath("client/rsa.key.pem"), "--bind", bind});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }

  testing::TempDir work_{"wsstep-cli-admin-test-"};
  testing::ChildProcess server_;
  std::string socket_;
};

// The one error shape: code, message, hint, side, detail always; status, method and
// fieldViolations for refused requests.
void ExpectErrorShape(const nlohmann::json& j, const std::string& code, bool refused) {
  ASSERT_TRUE(j.contains("error")) << j.dump();
  const auto& e = j["error"];
  EXPECT_EQ(e["code"], code) << j.dump();
  for (const char* k : {"message", "hint", "side", "detail"}) EXPECT_TRUE(e.contains(k)) << k;
  for (const char* k : {"status", "method", "fieldViolations"}) {
    EXPECT_EQ(e.contains(k), refused) << k << ": " << j.dump();
  }
}

TEST_F(CliAdminTest, UpdateRebindsRenamesAndChangesNotifications) {
  ImportClient("bank", "api.bank.example@production");
  auto r = Wsstep({"cert", "update", "bank", "--bind", "api.bank.example:8443@sandbox", "--bind",
                   "[::1]:9443", "--warning-days", "60", "--urgent-days", "14", "--weekly",
                   "--alert-ref", "ops-mail"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("bound to:      api.bank.example:8443@sandbox"));
  EXPECT_THAT(r.output, HasSubstr("bound to:      [::1]:9443@default"));
  EXPECT_THAT(r.output, Not(HasSubstr("@production")));
  EXPECT_THAT(r.output, HasSubstr("notifications: 60 days before expiry, weekly, urgent (daily) "
                                  "14 days before, alert ops-mail"));

  auto j = Json({"cert", "update", "bank", "--rename", "bank-2026", "--notifications", "OFF"}, 0);
  EXPECT_EQ(j["certificate"]["name"], "bank-2026");
  EXPECT_FALSE(j["certificate"]["notifications"].value("enabled", false));
  EXPECT_EQ(j["certificate"]["notifications"]["warningDays"], 60);
  EXPECT_EQ(j["certificate"]["notifications"]["urgentDays"], 14);
  // The urgent window is at most the warning one: a narrower warning window narrows it,
  // a wider urgent one is refused naming the field.
  auto narrowed = Json({"cert", "update", "bank-2026", "--warning-days", "5"}, 0);
  EXPECT_EQ(narrowed["certificate"]["notifications"]["urgentDays"], 5);
  auto wide = Json({"cert", "update", "bank-2026", "--urgent-days", "6"}, 4);
  ExpectErrorShape(wide, "INVALID_ARGUMENT", true);
  EXPECT_THAT(wide["error"]["message"].get<std::string>(),
              HasSubstr("notifications.urgent_days: must be between 0 and warning_days (5)"));

  // Nothing to change is a usage error; an unknown entry is refused (NOT_FOUND, exit 4).
  ExpectErrorShape(Json({"cert", "update", "bank-2026"}, 2), "INVALID_ARGUMENT", false);
  ExpectErrorShape(Json({"cert", "update", "nope", "--description", "x"}, 4), "NOT_FOUND", true);
}

TEST_F(CliAdminTest, UpdateWithAFileReplacesTheMaterialAndKeepsTheId) {
  ImportClient("bank", "api.bank.example@production");
  auto before = Json({"cert", "show", "bank"}, 0);
  auto after =
      Json({"cert", "update", "bank", "--file", testing::PkiPath("client/second.chain.pem"),
            "--key-file", testing::PkiPath("client/second.key.pem")},
           0);
  EXPECT_EQ(after["certificate"]["id"], before["certificate"]["id"]);
  EXPECT_NE(after["certificate"]["certificate"]["sha256Fingerprint"],
            before["certificate"]["certificate"]["sha256Fingerprint"]);
  EXPECT_EQ(after["certificate"]["version"], "2");
  // A key that does not belong to the certificate: refused, catalog code, nothing changed.
  auto bad = Json({"cert", "update", "bank", "--file", testing::PkiPath("client/rsa.chain.pem"),
                   "--key-file", testing::PkiPath("client/second.key.pem")},
                  4);
  ExpectErrorShape(bad, "KEY_CERT_MISMATCH", true);
  EXPECT_EQ(Json({"cert", "show", "bank"}, 0)["certificate"]["version"], "2");
}

TEST_F(CliAdminTest, DisableEnableAndRevokeIsFinal) {
  ImportClient("bank", "api.bank.example@production");
  auto d = Wsstep({"cert", "disable", "BANK"});  // names are case-insensitive
  ASSERT_EQ(d.exit_code, 0) << d.output;
  EXPECT_THAT(d.output, HasSubstr("status:        DISABLED"));
  EXPECT_EQ(Json({"cert", "enable", "bank"}, 0)["certificate"]["status"],
            "CERTIFICATE_STATUS_VALID");

  auto unconfirmed = Wsstep({"cert", "revoke", "bank"});
  EXPECT_EQ(unconfirmed.exit_code, 2) << unconfirmed.output;
  EXPECT_THAT(unconfirmed.output,
              HasSubstr("revoking 'bank' is final (it cannot be enabled again); add --yes"));
  EXPECT_EQ(Json({"cert", "show", "bank"}, 0)["certificate"]["status"], "CERTIFICATE_STATUS_VALID");

  auto revoked = Wsstep({"cert", "revoke", "bank", "--yes"});
  ASSERT_EQ(revoked.exit_code, 0) << revoked.output;
  EXPECT_THAT(revoked.output, HasSubstr("status:        REVOKED"));
  auto again = Json({"cert", "enable", "bank"}, 4);
  ExpectErrorShape(again, "FAILED_PRECONDITION", false);
  EXPECT_THAT(again["error"]["message"].get<std::string>(),
              HasSubstr("'bank' is revoked, and revocation is final: it cannot be enabled"));
  // Disabled, then an attempt to clear it: the store refuses too.
  ASSERT_EQ(Wsstep({"cert", "disable", "bank"}).exit_code, 0);
  EXPECT_EQ(Json({"cert", "show", "bank"}, 0)["certificate"]["status"],
            "CERTIFICATE_STATUS_DISABLED");
}

TEST_F(CliAdminTest, ExportWritesTheLeafAndChainAsOpensslReadsThem) {
  ImportClient("bank", "api.bank.example@production");
  const std::string pem = work_.Path("bank.pem");
  auto r = Wsstep({"cert", "export", "bank", "--out", pem});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Leaf then chain, each once: what rsa.chain.pem holds.
  auto ours = testing::RunCommand({"openssl", "crl2pkcs7", "-nocrl", "-certfile", pem});
  auto theirs = testing::RunCommand(
      {"openssl", "crl2pkcs7", "-nocrl", "-certfile", testing::PkiPath("client/rsa.chain.pem")});
  ASSERT_EQ(ours.exit_code, 0) << ours.output;
  EXPECT_EQ(ours.output, theirs.output);
  EXPECT_THAT(ReadFile(pem), Not(HasSubstr("PRIVATE KEY")));

  // DER: one certificate, so the leaf only; byte for byte what openssl makes of the leaf.
  auto many = Wsstep({"cert", "export", "bank", "--format", "DER", "--out", work_.Path("x.der")});
  EXPECT_EQ(many.exit_code, 2) << many.output;
  EXPECT_THAT(many.output, HasSubstr("certificates and DER holds one"));
  const std::string der = work_.Path("bank.der");
  ASSERT_EQ(
      Wsstep({"cert", "export", "bank", "--format", "der", "--leaf-only", "--out", der}).exit_code,
      0);
  auto want = testing::RunCommand({"openssl", "x509", "-in", testing::PkiPath("client/rsa.pem"),
                                   "-outform", "DER", "-out", work_.Path("want.der")});
  ASSERT_EQ(want.exit_code, 0) << want.output;
  EXPECT_EQ(ReadFile(der), ReadFile(work_.Path("want.der")));

  auto j = Json({"cert", "export", "bank"}, 0);
  EXPECT_GE(j["der"].size(), 2u);
  EXPECT_EQ(j["subjects"][0], j["certificate"]["certificate"]["subject"]);
  ExpectErrorShape(Json({"cert", "export", "nope"}, 4), "NOT_FOUND", true);
}

TEST_F(CliAdminTest, CsrCreateShowThenAttachWhatTheCaSigned) {
  const std::string csr = work_.Path("new.csr");
  auto made =
      Wsstep({"cert", "csr", "create", "bank-2027", "--cn", "payments.example.org", "--san",
              "payments.example.org", "--org", "Example Org", "--country", "DE", "--key-algorithm",
              "EC-P384", "--bind", "api.bank.example@production", "--out", csr});
  ASSERT_EQ(made.exit_code, 0) << made.output;
  EXPECT_THAT(made.output, HasSubstr("wsstep cert attach bank-2027 --file"));
  auto parsed =
      testing::RunCommand({"openssl", "req", "-in", csr, "-noout", "-subject", "-verify"});
  ASSERT_EQ(parsed.exit_code, 0) << parsed.output;
  EXPECT_THAT(parsed.output, HasSubstr("CN = payments.example.org"));

  // The CSR again, identical, until the certificate is attached.
  auto shown = Wsstep({"cert", "csr", "show", "bank-2027"});
  ASSERT_EQ(shown.exit_code, 0) << shown.output;
  EXPECT_EQ(shown.output, ReadFile(csr));
  EXPECT_EQ(Json({"cert", "show", "bank-2027"}, 0)["certificate"]["status"],
            "CERTIFICATE_STATUS_PENDING_CERTIFICATE");

  // A real CA signs it; attach makes the entry usable.
  const std::string issued = work_.Path("issued.pem");
  auto signed_ = testing::RunCommand(
      {"openssl", "x509", "-req", "-in", csr, "-CA", testing::PkiPath("ca/intermediate.pem"),
       "-CAkey", testing::PkiPath("ca/intermediate.key.pem"), "-CAcreateserial", "-CAserial",
       work_.Path("ca.srl"), "-days", "90", "-out", issued});
  ASSERT_EQ(signed_.exit_code, 0) << signed_.output;
  auto attached = Wsstep({"cert", "attach", "bank-2027", "--file", issued});
  ASSERT_EQ(attached.exit_code, 0) << attached.output;
  EXPECT_THAT(attached.output, HasSubstr("subject:       CN=payments.example.org"));
  EXPECT_THAT(attached.output, Not(HasSubstr("PENDING_CERTIFICATE")));
  // No CSR once attached.
  ExpectErrorShape(Json({"cert", "csr", "show", "bank-2027"}, 4), "NOT_FOUND", true);
  ExpectErrorShape(Json({"cert", "csr", "create", "x", "--cn", "a", "--key-algorithm", "dsa"}, 2),
                   "INVALID_ARGUMENT", false);
}

TEST_F(CliAdminTest, UsageAuditAndDeleteOfAnEntryInUse) {
  // Port 1 on loopback: nobody listens, so the step fails CONNECTION_REFUSED after the
  // store chose (and recorded) the certificate.
  ImportClient("bank", "127.0.0.1:1");
  auto step = Wsstep({"--workflow-id", "wf-7", "--step-id", "pay", "call", "rest", "--url",
                      "https://127.0.0.1:1/"});
  EXPECT_EQ(step.exit_code, 1) << step.output;

  auto usage = Wsstep({"cert", "usage", "bank"});
  ASSERT_EQ(usage.exit_code, 0) << usage.output;
  EXPECT_THAT(usage.output, HasSubstr("'bank' in use by (last 30 days):"));
  EXPECT_THAT(usage.output, ::testing::ContainsRegex(
                                "127\\.0\\.0\\.1:1@default +wf-7 +pay +1 .*CONNECTION_REFUSED"));
  auto uj = Json({"cert", "usage", "bank", "--days", "3"}, 0);
  EXPECT_EQ(uj["days"], 3);
  ASSERT_EQ(uj["users"].size(), 1u);
  EXPECT_EQ(uj["users"][0]["workflowId"], "wf-7");
  EXPECT_EQ(uj["users"][0]["uses"], "1");

  auto audit = Json({"cert", "audit", "bank", "--action", "USE"}, 0);
  ASSERT_EQ(audit["events"].size(), 1u);
  EXPECT_EQ(audit["events"][0]["stepId"], "pay");
  auto all = Wsstep({"cert", "audit", "--action", "create", "--action", "use", "--days", "1"});
  ASSERT_EQ(all.exit_code, 0) << all.output;
  EXPECT_THAT(all.output, ::testing::ContainsRegex("CREATE +bank "));
  EXPECT_THAT(all.output, ::testing::ContainsRegex("USE +bank .*127\\.0\\.0\\.1:1@default"));
  ExpectErrorShape(Json({"cert", "audit", "--action", "viewed"}, 2), "INVALID_ARGUMENT", false);

  // Used within 7 days: the plugin refuses the delete naming who, changes nothing;
  // --force deletes and says who was using it.
  auto refused = Wsstep({"cert", "delete", "bank", "--yes"});
  EXPECT_EQ(refused.exit_code, 4) << refused.output;
  EXPECT_THAT(refused.output, HasSubstr("FAILED_PRECONDITION"));
  EXPECT_THAT(refused.output, HasSubstr("'bank' was used in the last 7 days by:"));
  EXPECT_THAT(refused.output, HasSubstr("127.0.0.1:1@default workflow wf-7 step pay (1 uses"));
  EXPECT_EQ(Wsstep({"cert", "show", "bank"}).exit_code, 0);
  auto forced = Wsstep({"cert", "delete", "bank", "--yes", "--force"});
  EXPECT_EQ(forced.exit_code, 0) << forced.output;
  EXPECT_THAT(forced.output, HasSubstr("deleted bank"));
  EXPECT_THAT(forced.output,
              HasSubstr("was in use by: 127.0.0.1:1@default workflow wf-7 step pay"));
}

TEST_F(CliAdminTest, NotificationsListAndAck) {
  // Within its warning days (3650 of them), a certificate is due for a notification at once.
  auto r = Wsstep({"cert", "import", "--name", "old", "--file", testing::PkiPath("client/rsa.pem"),
                   "--key-file", testing::PkiPath("client/rsa.key.pem"), "--warning-days", "3650",
                   "--alert-ref", "ops-mail"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto listed = Json({"notifications", "list"}, 0);
  ASSERT_EQ(listed["notifications"].size(), 1u) << listed.dump();
  const std::string id = listed["notifications"][0]["id"];
  EXPECT_EQ(listed["notifications"][0]["alertRef"], "ops-mail");
  auto text = Wsstep({"notifications", "list"});
  EXPECT_THAT(text.output, ::testing::ContainsRegex(id + " +old +[0-9]+ "));

  auto ack = Wsstep({"notifications", "ack", id});
  ASSERT_EQ(ack.exit_code, 0) << ack.output;
  EXPECT_THAT(ack.output, HasSubstr("acknowledged " + id));
  EXPECT_TRUE(
      Json({"notifications", "list"}, 0).value("notifications", nlohmann::json::array()).empty());
  ExpectErrorShape(Json({"notifications", "ack", "nope"}, 4), "NOT_FOUND", true);
  // Handing it over and the acknowledgement are audited: NOTIFY once (the text list
  // the same day adds none), then ACKNOWLEDGE.
  auto audit = Json({"cert", "audit", "old", "--action", "notify", "--action", "acknowledge"}, 0);
  ASSERT_EQ(audit["events"].size(), 2u) << audit.dump();
  EXPECT_EQ(audit["events"][0]["action"], "AUDIT_ACTION_ACKNOWLEDGE");
  EXPECT_EQ(audit["events"][1]["action"], "AUDIT_ACTION_NOTIFY");
}

// Two levels: WARNING within --warning-days, URGENT within --urgent-days (escalation over
// days, which needs a clock, is proven in core/notifications_test.cc).
TEST_F(CliAdminTest, NotificationsHaveAWarningAndAnUrgentLevel) {
  for (const auto& [name, urgent] : {std::pair{"warned", "0"}, std::pair{"urgent", "3650"}}) {
    auto r = Wsstep({"cert", "import", "--name", name, "--file", testing::PkiPath("client/rsa.pem"),
                     "--key-file", testing::PkiPath("client/rsa.key.pem"), "--warning-days", "3650",
                     "--urgent-days", urgent, "--weekly"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  auto shown = Wsstep({"cert", "show", "urgent"});
  EXPECT_THAT(shown.output, HasSubstr("level:         URGENT"));
  auto listed = Json({"notifications", "list"}, 0);
  ASSERT_EQ(listed["notifications"].size(), 2u) << listed.dump();
  std::map<std::string, std::string> level, id;
  for (const auto& n : listed["notifications"]) {
    level[n["certificate"]["name"]] = n["level"];
    id[n["certificate"]["name"]] = n["id"];
    EXPECT_EQ(n["certificate"]["notificationLevel"], n["level"]);
  }
  EXPECT_EQ(level["warned"], "NOTIFICATION_LEVEL_WARNING");
  EXPECT_EQ(level["urgent"], "NOTIFICATION_LEVEL_URGENT");
  auto text = Wsstep({"notifications", "list"});
  EXPECT_THAT(text.output, ::testing::ContainsRegex("warned +[0-9]+ +WARNING "));
  EXPECT_THAT(text.output, ::testing::ContainsRegex("urgent +[0-9]+ +URGENT "));

  // The level is the entry's, in list too, and moves with its settings.
  auto updated = Json({"cert", "update", "warned", "--urgent-days", "3650"}, 0);
  EXPECT_EQ(updated["certificate"]["notificationLevel"], "NOTIFICATION_LEVEL_URGENT");
  auto quiet = Json({"cert", "update", "warned", "--warning-days", "1"}, 0);
  EXPECT_FALSE(quiet["certificate"].contains("notificationLevel")) << quiet.dump();
  EXPECT_EQ(quiet["certificate"]["notifications"]["urgentDays"], 1);
}

// Every client command with --json, in one session: its exit code (0 ok, 1 the step,
// resolution or test failed, 2 usage, 4 refused) and exactly one JSON document on
// stdout, failures in the one error shape.
TEST_F(CliAdminTest, EveryClientCommandAnswersOneJsonDocumentWithItsExitCode) {
  ImportClient("bank", "127.0.0.1:1");
  const std::string pem = testing::PkiPath("client/rsa.pem");
  struct Row {
    std::vector<std::string> args;
    int exit_code;
    std::string error_code;  // "" on success
  };
  const std::vector<Row> rows = {
      {{"cert", "list"}, 0, ""},
      {{"cert", "list", "--status", "revoked"}, 0, ""},
      {{"cert", "show", "bank"}, 0, ""},
      {{"cert", "show", "nope"}, 4, "NOT_FOUND"},
      {{"cert", "resolve", "127.0.0.1:1"}, 0, ""},
      {{"cert", "resolve", "nothing.example:443", "-e", "production"}, 1, "CERTIFICATE_NOT_FOUND"},
      {{"cert", "update", "bank", "--description", "pays"}, 0, ""},
      {{"cert", "disable", "bank"}, 0, ""},
      {{"cert", "enable", "bank"}, 0, ""},
      {{"cert", "export", "bank"}, 0, ""},
      {{"cert", "csr", "create", "pending", "--cn", "pending.example"}, 0, ""},
      {{"cert", "csr", "show", "pending"}, 0, ""},
      {{"cert", "attach", "pending", "--file", pem}, 4, "KEY_CERT_MISMATCH"},
      {{"cert", "audit", "bank"}, 0, ""},
      {{"cert", "usage", "bank"}, 0, ""},
      {{"cert", "revoke", "nope", "--yes"}, 4, "NOT_FOUND"},
      {{"cert", "delete", "bank"}, 2, "INVALID_ARGUMENT"},
      {{"notifications", "list"}, 0, ""},
      {{"notifications", "ack", "nope"}, 4, "NOT_FOUND"},
      {{"call", "rest", "--url", "https://127.0.0.1:1/"}, 1, "CONNECTION_REFUSED"},
      {{"call", "soap", "--endpoint", "https://127.0.0.1:1/", "--operation", "Ping"},
       1,
       "CONNECTION_REFUSED"},
      {{"test-connection", "127.0.0.1:1"}, 1, "CONNECTION_REFUSED"},
      {{"cert", "import", "--name", "x", "--file", work_.Path("missing.pem")},
       2,
       "INVALID_ARGUMENT"},
      {{"master-key", "rotate"}, 0, ""},
      {{"cert", "delete", "pending", "--yes"}, 0, ""},
  };
  for (const Row& row : rows) {
    std::string line;
    for (const auto& a : row.args) line += a + " ";
    SCOPED_TRACE(line);
    auto j = Json(row.args, row.exit_code);
    if (row.error_code.empty()) {
      EXPECT_FALSE(j.contains("error")) << j.dump();
    } else {
      ASSERT_TRUE(j.contains("error")) << j.dump();
      EXPECT_EQ(j["error"]["code"], row.error_code) << j.dump();
      for (const char* k : {"message", "hint", "side"}) EXPECT_TRUE(j["error"].contains(k)) << k;
    }
  }
}

TEST_F(CliAdminTest, MasterKeyRotateReplacesTheKeyFileAndKeysStillWork) {
  ImportClient("bank", "api.bank.example@production");
  const std::string key_file = work_.Path("data/master.key");
  const std::string old_key = ReadFile(key_file);
  auto j = Json({"master-key", "rotate"}, 0);
  EXPECT_NE(j["keyId"], j["previousKeyId"]);
  EXPECT_EQ(j["keyFile"], key_file);
  EXPECT_NE(ReadFile(key_file), old_key);
  EXPECT_EQ(j.dump().find(ReadFile(key_file).substr(0, 20)), std::string::npos)
      << "the key itself is never printed";
  // Rotated keys still open: export needs no key, a rotation again does.
  auto audit = Json({"cert", "audit", "--action", "rotate-master-key"}, 0);
  ASSERT_EQ(audit["events"].size(), 1u);
  // A given key must be base64 of 32 bytes.
  const std::string bad = work_.Path("bad.key");
  std::ofstream(bad) << "not a key\n";
  ExpectErrorShape(Json({"master-key", "rotate", "--new-key-file", bad}, 2), "INVALID_ARGUMENT",
                   false);
}

TEST_F(CliAdminTest, UploadInputsAreCheckedBeforeSendingAndNamed) {
  const std::string empty = work_.Path("empty.pem");
  std::ofstream(empty).close();
  auto e = Wsstep({"cert", "import", "--name", "x", "--type", "trust-store", "--file", empty});
  EXPECT_EQ(e.exit_code, 2) << e.output;
  EXPECT_THAT(e.output, HasSubstr("--file " + empty + ": the file is empty"));
  auto dir =
      Wsstep({"cert", "import", "--name", "x", "--type", "trust-store", "--file", work_.Path("")});
  EXPECT_EQ(dir.exit_code, 2) << dir.output;
  EXPECT_THAT(dir.output, HasSubstr(": is a directory, not a file"));
  // A file of `bytes` bytes that is no certificate at all.
  auto filled = [&](const std::string& name, size_t bytes) {
    const std::string path = work_.Path(name);
    std::ofstream(path, std::ios::binary) << std::string(bytes, 'A');
    return path;
  };
  const std::string big = filled("big.pem", 20 << 20);
  auto j = Json({"cert", "import", "--name", "x", "--type", "trust-store", "--file", big}, 2);
  ExpectErrorShape(j, "INVALID_ARGUMENT", false);
  EXPECT_THAT(j["error"]["message"].get<std::string>(),
              HasSubstr("the file is 20.0 MiB; the plugin accepts uploads up to 15.9 MiB"));
  EXPECT_THAT(j.dump(), Not(HasSubstr("RESOURCE_EXHAUSTED")));
  // Smaller than a gRPC message but larger than the store takes: the plugin refuses it,
  // naming the file, and audits the refusal.
  const std::string five = filled("five.pem", 5 << 20);
  auto f = Json({"cert", "import", "--name", "five", "--type", "trust-store", "--file", five}, 4);
  ExpectErrorShape(f, "INVALID_CERTIFICATE_FORMAT", true);
  EXPECT_THAT(f["error"]["message"].get<std::string>(),
              HasSubstr("five.pem: the upload is larger than 4 MiB"));
  auto refused = Json({"cert", "audit", "--action", "import-failure"}, 0);
  ASSERT_EQ(refused["events"].size(), 1u) << refused.dump();
  EXPECT_EQ(refused["events"][0]["certificateName"], "five");
  EXPECT_EQ(refused["events"][0]["outcome"], "INVALID_CERTIFICATE_FORMAT");
  EXPECT_THAT(refused["events"][0]["message"].get<std::string>(),
              HasSubstr("five.pem: the upload is larger than 4 MiB"));

  // Bindings: a URL, an IDN, bare and bracketed IPv6.
  auto url = Wsstep({"cert", "import", "--name", "x", "--type", "trust-store", "--file",
                     testing::PkiPath("trust/bundle.pem"), "--bind", "https://api.example/x"});
  EXPECT_EQ(url.exit_code, 2);
  EXPECT_THAT(url.output, HasSubstr("binding 'https://api.example/x' is a URL; give host:port"));
  auto idn = Wsstep({"cert", "import", "--name", "idn", "--type", "trust-store", "--file",
                     testing::PkiPath("trust/bundle.pem"), "--bind",
                     "b\xC3\xBC"
                     "cher.example",
                     "--bind", "::1", "--bind", "[::1]:8443@prod"});
  ASSERT_EQ(idn.exit_code, 0) << idn.output;
  EXPECT_THAT(idn.output, HasSubstr("bound to:      xn--bcher-kva.example:443@default"));
  EXPECT_THAT(idn.output, HasSubstr("bound to:      [::1]:443@default"));
  EXPECT_THAT(idn.output, HasSubstr("bound to:      [::1]:8443@prod"));
  // Nothing named x was imported by any refusal.
  ExpectErrorShape(Json({"cert", "show", "x"}, 4), "NOT_FOUND", true);
}

// A JKS whose key password differs from the store password, given without it: the
// refusal is about the key password, and says which flag gives it.
TEST_F(CliAdminTest, AJksWithoutItsKeyPasswordNamesTheFlag) {
  testing::EnvList env = {{"STORE_PASS", std::string(testing::pki::kStorePassword)},
                          {"KEY_PASS", std::string(testing::pki::kJksKeyPassword)}};
  std::vector<std::string> args = {"--json",
                                   "cert",
                                   "import",
                                   "--name",
                                   "jks",
                                   "--file",
                                   testing::PkiPath("jks/client.jks"),
                                   "--password-env",
                                   "STORE_PASS"};
  auto r = Wsstep(args, env);
  EXPECT_EQ(r.exit_code, 4) << r.output;
  auto j = nlohmann::json::parse(r.output, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.output;
  ExpectErrorShape(j, "WRONG_PASSWORD", true);
  EXPECT_EQ(j["error"]["fieldViolations"][0]["field"], "material.key_password") << r.output;
  EXPECT_THAT(
      j["error"]["hint"].get<std::string>(),
      HasSubstr("On the command line: --key-password-env VAR or --key-password-file FILE."));
  args.insert(args.end(), {"--key-password-env", "KEY_PASS"});
  auto ok = Wsstep(args, env);
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
}

// The same certificate under a second name is stored, with a warning naming the first;
// a second entry of the same name is refused, and both refusals of uploads are audited.
TEST_F(CliAdminTest, TheSameCertificateTwiceWarnsAndRefusalsAreAudited) {
  ImportClient("bank", "api.bank.example@production");
  auto twice = Wsstep({"cert", "import", "--name", "bank-copy", "--file",
                       testing::PkiPath("client/rsa.chain.pem"), "--key-file",
                       testing::PkiPath("client/rsa.key.pem")});
  ASSERT_EQ(twice.exit_code, 0) << twice.output;
  EXPECT_THAT(twice.output,
              HasSubstr("warning: DUPLICATE_CERTIFICATE: this certificate (SHA-256 "));
  EXPECT_THAT(twice.output, HasSubstr("...) is already stored as 'bank'"));
  EXPECT_THAT(twice.output, Not(HasSubstr("warning: WARNING")));

  auto dup = Json({"cert", "import", "--name", "BANK", "--type", "trust-store", "--file",
                   testing::PkiPath("trust/bundle.pem")},
                  4);
  ExpectErrorShape(dup, "DUPLICATE_NAME", true);
  auto failures = Json({"cert", "audit", "--action", "import-failure"}, 0);
  ASSERT_EQ(failures["events"].size(), 1u) << failures.dump();
  EXPECT_EQ(failures["events"][0]["outcome"], "DUPLICATE_NAME");
  EXPECT_EQ(failures["events"][0]["certificateName"], "BANK");
}

// -k in a protected environment is refused as such, before any certificate is looked
// for (none is bound here), and the failed step keeps the one shape with its response.
TEST_F(CliAdminTest, InsecureInProductionIsTheProtectedEnvironmentRefusal) {
  auto r =
      Wsstep({"--json", "call", "rest", "--url", "https://127.0.0.1:1/", "-k", "-e", "production"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  auto j = nlohmann::json::parse(r.output, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.output;
  ExpectErrorShape(j, "INVALID_STEP_CONFIG", false);
  EXPECT_THAT(j["error"]["message"].get<std::string>(),
              HasSubstr("cannot be turned off in the protected environment \"production\""));
  EXPECT_EQ(j["outcome"]["error"]["code"], "INVALID_STEP_CONFIG");  // the response, too
  auto text = Wsstep({"call", "rest", "--url", "https://127.0.0.1:1/", "-k", "-e", "production"});
  EXPECT_THAT(text.output, HasSubstr("wsstep: INVALID_STEP_CONFIG: "));
  EXPECT_THAT(text.output, HasSubstr("  side: CONFIGURATION"));
}

// A provisioning profile (ExpirationDate in 90 days, developer certificate valid for a
// year): status, days left, EXPIRES and notifications follow the profile.
TEST_F(CliAdminTest, AProvisioningProfileExpiresWhenTheProfileDoes) {
  auto j = Json({"cert", "import", "--name", "ios", "--file",
                 testing::PkiPath("mobile/profile.mobileprovision"), "--warning-days", "100"},
                0);
  const auto& c = j["certificate"];
  const std::string expires = c["attributes"]["profile_expires"];
  EXPECT_EQ(c["status"], "CERTIFICATE_STATUS_EXPIRING_SOON") << j.dump();
  const int days = std::stoi(c["daysRemaining"].get<std::string>());
  EXPECT_GE(days, 88);
  EXPECT_LE(days, 90);
  auto listed = Wsstep({"cert", "list"});
  EXPECT_THAT(listed.output,
              ::testing::ContainsRegex("ios +MOBILE_PROVISIONING +EXPIRING_SOON +" + expires))
      << listed.output;
  auto due = Json({"notifications", "list"}, 0);
  ASSERT_EQ(due["notifications"].size(), 1u) << due.dump();
  EXPECT_EQ(due["notifications"][0]["daysRemaining"], c["daysRemaining"]);
}

TEST_F(CliAdminTest, UsageErrorsAndAnUnreachablePluginKeepTheShape) {
  ExpectErrorShape(Json({"cert", "list", "--no-such-flag"}, 2), "INVALID_ARGUMENT", false);
  auto gone = testing::RunCommand(
      {WSSTEP_BINARY, "--plugin", "unix://" + work_.Path("none.sock"), "--json", "cert", "list"});
  EXPECT_EQ(gone.exit_code, 3) << gone.output;
  auto j = nlohmann::json::parse(gone.output, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << gone.output;
  ExpectErrorShape(j, "UNAVAILABLE", false);
  EXPECT_EQ(j["error"]["side"], "NETWORK");
  auto text = testing::RunCommand(
      {WSSTEP_BINARY, "--plugin", "unix://" + work_.Path("none.sock"), "cert", "list"});
  EXPECT_EQ(text.exit_code, 3);
  EXPECT_THAT(text.output, HasSubstr("wsstep: UNAVAILABLE: cannot reach the plugin at unix://"));
  EXPECT_THAT(text.output, HasSubstr("  hint: start it with `wsstep serve`"));
  EXPECT_THAT(text.output, HasSubstr("  side: NETWORK"));
}

}  // namespace
}  // namespace wsstep::e2e

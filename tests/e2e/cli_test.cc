// The `wsstep` command line against a running `wsstep serve`, as an administrator types
// it: enum values in any case (the README's own `--type PKCS12`, `cert list`'s TYPE and
// STATUS columns copied back), unknown values named with the accepted ones, and one data
// directory served by one plugin; `cert list` and `cert show` give a trust store's
// expiry; `serve --print-config` names the master key in use.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/e2e/e2e_util.h"
#include "tests/support/pki.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace wsstep::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    socket_ = StartServeForCli(server_, work_);
    ASSERT_FALSE(socket_.empty());
  }
  void TearDown() override { server_.Stop(SIGTERM, std::chrono::seconds(20)); }

  // `wsstep --plugin unix://... <args>`, with the PKCS#12 password in P12_PASSWORD.
  testing::CommandResult Wsstep(std::vector<std::string> args) {
    std::vector<std::string> argv = {WSSTEP_BINARY, "--plugin", "unix://" + socket_};
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::RunCommand(argv, {{"P12_PASSWORD", std::string(testing::pki::kP12Password)}});
  }

  testing::TempDir work_{"wsstep-cli-test-"};
  testing::ChildProcess server_;
  std::string socket_;
};

TEST_F(CliTest, TheReadmesImportRunsAsWrittenAndEnumsTakeAnyCase) {
  // README quick start: --type PKCS12, upper case.
  auto imported = Wsstep({"cert", "import", "--name", "bank", "--type", "PKCS12", "--file",
                          testing::PkiPath("p12/rsa-modern.p12"), "--password-env", "P12_PASSWORD",
                          "--bind", "api.bank.example:443@production"});
  ASSERT_EQ(imported.exit_code, 0) << imported.output;
  EXPECT_THAT(imported.output, HasSubstr("imported:"));
  auto trust = Wsstep({"cert", "import", "--name", "partners", "--type", "Trust-Store", "--file",
                       testing::PkiPath("trust/bundle.pem")});
  ASSERT_EQ(trust.exit_code, 0) << trust.output;

  // What `cert list` prints in its TYPE and STATUS columns, given back, and lower case.
  for (const char* type : {"PKCS12", "pkcs12", "Pkcs12"}) {
    auto listed = Wsstep({"cert", "list", "--type", type});
    ASSERT_EQ(listed.exit_code, 0) << type << ": " << listed.output;
    EXPECT_THAT(listed.output, HasSubstr("bank")) << type;
    EXPECT_THAT(listed.output, Not(HasSubstr("partners"))) << type;
  }
  for (const char* type : {"TRUST_STORE", "trust-store"}) {
    auto listed = Wsstep({"cert", "list", "--type", type});
    ASSERT_EQ(listed.exit_code, 0) << type << ": " << listed.output;
    EXPECT_THAT(listed.output, HasSubstr("partners")) << type;
    EXPECT_THAT(listed.output, Not(HasSubstr("bank"))) << type;
  }
  for (const char* status : {"VALID", "valid", "expiring-soon", "EXPIRED"}) {
    auto listed = Wsstep({"cert", "list", "--status", status});
    EXPECT_EQ(listed.exit_code, 0) << status << ": " << listed.output;
  }
}

TEST_F(CliTest, AnUnknownValueIsNamedWithTheOnesAccepted) {
  auto bad_type = Wsstep({"cert", "import", "--name", "x", "--type", "pfx", "--file",
                          testing::PkiPath("p12/rsa-modern.p12")});
  EXPECT_NE(bad_type.exit_code, 0);
  EXPECT_THAT(bad_type.output, HasSubstr("--type 'pfx' is unknown (key-pair, pkcs12, "
                                         "trust-store, java-keystore, mobile-provisioning)"));
  EXPECT_THAT(bad_type.output, Not(HasSubstr("cannot be guessed")));
  auto list_type = Wsstep({"cert", "list", "--type", "unspecified"});
  EXPECT_NE(list_type.exit_code, 0);
  EXPECT_THAT(list_type.output, HasSubstr("--type 'unspecified' is unknown"));
  auto list_status = Wsstep({"cert", "list", "--status", "fine"});
  EXPECT_NE(list_status.exit_code, 0);
  EXPECT_THAT(list_status.output, HasSubstr("--status 'fine' is unknown"));
  // Nothing was imported by any of them.
  auto listed = Wsstep({"cert", "list"});
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_THAT(listed.output, Not(HasSubstr(" x ")));
}

// Without --yes, delete says what would go, about an entry that exists.
TEST_F(CliTest, DeleteWithoutYesNamesWhatWouldGoAndAnUnknownNameIsNotFound) {
  ASSERT_EQ(Wsstep({"cert", "import", "--name", "bank", "--type", "pkcs12", "--file",
                    testing::PkiPath("p12/rsa-modern.p12"), "--password-env", "P12_PASSWORD"})
                .exit_code,
            0);
  ASSERT_EQ(Wsstep({"cert", "import", "--name", "partners", "--type", "trust-store", "--file",
                    testing::PkiPath("trust/bundle.pem")})
                .exit_code,
            0);
  auto nope = Wsstep({"cert", "delete", "nope"});
  EXPECT_NE(nope.exit_code, 0);
  EXPECT_THAT(nope.output, HasSubstr("NOT_FOUND")) << nope.output;
  EXPECT_THAT(nope.output, Not(HasSubstr("destroyed"))) << nope.output;
  auto keyed = Wsstep({"cert", "delete", "bank"});
  EXPECT_NE(keyed.exit_code, 0);
  EXPECT_THAT(keyed.output, HasSubstr("deleting 'bank' is irreversible (its private key is "
                                      "destroyed); add --yes to confirm"));
  auto trust = Wsstep({"cert", "delete", "partners"});
  EXPECT_NE(trust.exit_code, 0);
  EXPECT_THAT(trust.output, HasSubstr("deleting 'partners' is irreversible; add --yes to confirm"));
  // Nothing went: both are still listed, and --yes deletes.
  auto listed = Wsstep({"cert", "list"});
  EXPECT_THAT(listed.output, HasSubstr("bank"));
  EXPECT_THAT(listed.output, HasSubstr("partners"));
  auto deleted = Wsstep({"cert", "delete", "partners", "--yes"});
  EXPECT_EQ(deleted.exit_code, 0) << deleted.output;
  EXPECT_THAT(deleted.output, HasSubstr("deleted partners"));
}

TEST_F(CliTest, ASecondServeOnTheSameDataDirectoryExitsAtOnceNamingTheFirst) {
  // Same data directory, another socket: it must not start, and must not take over.
  const std::string other = work_.Path("other.sock");
  const auto started = std::chrono::steady_clock::now();
  auto second =
      testing::RunCommand({WSSTEP_BINARY, "serve", "--listen", "unix://" + other},
                          {{"WSSTEP_DATA_DIR", work_.Path("data")}}, std::chrono::seconds(20));
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
  EXPECT_EQ(second.exit_code, 1) << second.output;
  EXPECT_THAT(second.output, HasSubstr(work_.Path("data") +
                                       ": the data directory is in use by another wsstep "
                                       "process (pid " +
                                       std::to_string(server_.pid()) + ")"));
  struct stat st {};
  EXPECT_NE(::stat(other.c_str(), &st), 0) << "the second one never listened";
  // The first one still serves.
  auto listed = Wsstep({"cert", "list"});
  EXPECT_EQ(listed.exit_code, 0) << listed.output;
}

// "2036-11-20T10:00:00Z": the expiry of a PKI certificate as the CLI prints times.
std::string NotAfter(const std::string& rel) {
  auto r = testing::RunCommand({"openssl", "x509", "-in", testing::PkiPath(rel), "-noout",
                                "-enddate", "-dateopt", "iso_8601"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // "notAfter=2036-11-20 10:00:00Z"
  std::string date = r.output.substr(r.output.find('=') + 1, 20);
  date[10] = 'T';
  return date;
}

// A trust store's EXPIRES is the earliest expiry among its certificates (the one that
// governs its status), not "-".
TEST_F(CliTest, ATrustStoreExpiresWhenItsFirstCertificateDoes) {
  auto imported = Wsstep({"cert", "import", "--name", "partners", "--type", "trust-store", "--file",
                          testing::PkiPath("trust/bundle.pem")});
  ASSERT_EQ(imported.exit_code, 0) << imported.output;
  const std::string earliest = std::min(NotAfter("ca/root.pem"), NotAfter("ca/intermediate.pem"));

  auto listed = Wsstep({"cert", "list"});
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_THAT(listed.output,
              ::testing::ContainsRegex("partners +TRUST_STORE +VALID +" + earliest + " "))
      << listed.output;

  auto shown = Wsstep({"cert", "show", "partners"});
  ASSERT_EQ(shown.exit_code, 0) << shown.output;
  EXPECT_THAT(shown.output, HasSubstr("expires:       " + earliest + " ("));
  EXPECT_THAT(shown.output, HasSubstr(" days; the first of its certificates to expire)"));
}

// The JSON `wsstep serve --print-config` prints.
nlohmann::json PrintConfig(const testing::TempDir& dir, std::vector<std::string> flags,
                           testing::EnvList env) {
  std::vector<std::string> argv = {WSSTEP_BINARY, "serve", "--print-config"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  env.push_back({"WSSTEP_DATA_DIR", dir.Path("data")});
  auto r = testing::RunCommand(argv, env);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return nlohmann::json::parse(r.output.substr(r.output.find('{')));
}

// --print-config says which master key the store will use: the file (by default
// <data_dir>/master.key), or WSSTEP_MASTER_KEY, and never the key itself.
TEST(CliPrintConfigTest, NamesTheMasterKeyInUse) {
  testing::TempDir dir("wsstep-print-config-");
  auto by_default = PrintConfig(dir, {}, {});
  EXPECT_EQ(by_default["master_key_file"], dir.Path("data") + "/master.key");
  EXPECT_EQ(by_default["master_key_source"], "file");
  EXPECT_EQ(by_default["master_key_from_environment"], false);

  auto flag = PrintConfig(dir, {"--master-key-file", dir.Path("keys/wsstep.key")}, {});
  EXPECT_EQ(flag["master_key_file"], dir.Path("keys/wsstep.key"));
  EXPECT_EQ(flag["master_key_source"], "file");

  const std::string key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
  auto env = PrintConfig(dir, {}, {{"WSSTEP_MASTER_KEY", key}});
  EXPECT_EQ(env["master_key_file"], "");
  EXPECT_EQ(env["master_key_source"], "WSSTEP_MASTER_KEY");
  EXPECT_EQ(env["master_key_from_environment"], true);
  EXPECT_EQ(env.dump().find(key), std::string::npos);
  // Printing the configuration creates nothing: no data directory, no key file.
  struct stat st {};
  EXPECT_NE(::stat(dir.Path("data").c_str(), &st), 0);
}

}  // namespace
}  // namespace wsstep::e2e

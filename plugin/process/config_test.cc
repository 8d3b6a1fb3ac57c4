// Configuration layering: flags > environment > file > defaults, and errors naming the input.
#include "plugin/process/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <map>

namespace wsstep::plugin {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/" + name + "-" + std::to_string(::getpid());
}

TEST(ConfigTest, DefaultsWithoutAnyLayer) {
  auto c = LoadConfig({}, FixedEnvironment({{"HOME", "/home/ann"}}));
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->data_dir, "/home/ann/.local/share/wsstep");
  EXPECT_EQ(c->listen, "unix:///home/ann/.local/share/wsstep/wsstep.sock");
  EXPECT_THAT(c->protected_environments, ElementsAre("production"));
  EXPECT_EQ(c->limits.max_in_flight_steps, 256);
  EXPECT_EQ(c->log_level, LogLevel::kInfo);
  EXPECT_FALSE(c->master_key.has_value());
}

TEST(ConfigTest, FlagsBeatEnvironmentWhichBeatsTheFile) {
  const std::string file = TempPath("config.json");
  {
    std::ofstream out(file);
    out << R"({"data_dir": "/from/file", "listen": "127.0.0.1:7000",
               "protected_environments": ["prod", "live"],
               "limits": {"max_in_flight_steps": 7, "max_body_bytes": 1000},
               "shutdown_grace": "3s", "log_level": "debug"})";
  }
  ConfigLayer flags;
  flags.listen = "unix:///from/flags.sock";
  auto c = LoadConfig(flags, FixedEnvironment({{"WSSTEP_CONFIG", file},
                                               {"WSSTEP_DATA_DIR", "/from/env"},
                                               {"WSSTEP_LISTEN", "127.0.0.1:8000"},
                                               {"WSSTEP_MAX_IN_FLIGHT_STEPS", "9"}}));
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->config_file, file);
  EXPECT_EQ(c->data_dir, "/from/env");              // env over file
  EXPECT_EQ(c->listen, "unix:///from/flags.sock");  // flags over env
  EXPECT_EQ(c->limits.max_in_flight_steps, 9);      // env over file
  EXPECT_EQ(c->limits.max_body_bytes, 1000);        // file over default
  EXPECT_THAT(c->protected_environments, ElementsAre("prod", "live"));
  EXPECT_EQ(c->shutdown_grace, std::chrono::seconds(3));
  EXPECT_EQ(c->log_level, LogLevel::kDebug);
  ::unlink(file.c_str());
}

TEST(ConfigTest, MaxChunkedBodyBytesIs4GiBByDefaultAndNeverBelowMaxBodyBytes) {
  auto d = LoadConfig({}, FixedEnvironment({{"HOME", "/h"}}));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->limits.max_chunked_body_bytes, int64_t{4} << 30);
  EXPECT_EQ(d->Describe()["limits"]["max_chunked_body_bytes"], int64_t{4} << 30);
  auto file = LayerFromJson(R"({"limits": {"max_chunked_body_bytes": 1073741824}})", "c.json");
  ASSERT_TRUE(file.ok()) << file.error().ToString();
  EXPECT_EQ(file->max_chunked_body_bytes, int64_t{1} << 30);
  auto env = LoadConfig(
      {}, FixedEnvironment({{"WSSTEP_MAX_CHUNKED_BODY_BYTES", "20000000"}, {"HOME", "/h"}}));
  ASSERT_TRUE(env.ok()) << env.error().ToString();
  EXPECT_EQ(env->limits.max_chunked_body_bytes, 20000000);
  auto low =
      LoadConfig({}, FixedEnvironment({{"WSSTEP_MAX_CHUNKED_BODY_BYTES", "1000"}, {"HOME", "/h"}}));
  ASSERT_FALSE(low.ok());
  EXPECT_THAT(low.error().message, HasSubstr("max_chunked_body_bytes must be at least "
                                             "max_body_bytes (8388608); got 1000"));
}

TEST(ConfigTest, MaxInFlightPerOriginIsOffByDefaultAndNeverNegative) {
  auto d = LoadConfig({}, FixedEnvironment({{"HOME", "/h"}}));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->limits.max_in_flight_per_origin, 0);
  EXPECT_EQ(d->Describe()["limits"]["max_in_flight_per_origin"], 0);

  auto file = LayerFromJson(R"({"limits": {"max_in_flight_per_origin": 32}})", "c.json");
  ASSERT_TRUE(file.ok()) << file.error().ToString();
  EXPECT_EQ(file->max_in_flight_per_origin, 32);
  ConfigLayer flags;
  flags.max_in_flight_per_origin = 4;
  auto flagged = LoadConfig(
      flags, FixedEnvironment({{"WSSTEP_MAX_IN_FLIGHT_PER_ORIGIN", "8"}, {"HOME", "/h"}}));
  ASSERT_TRUE(flagged.ok()) << flagged.error().ToString();
  EXPECT_EQ(flagged->limits.max_in_flight_per_origin, 4);  // flags over env
  auto env =
      LoadConfig({}, FixedEnvironment({{"WSSTEP_MAX_IN_FLIGHT_PER_ORIGIN", "8"}, {"HOME", "/h"}}));
  ASSERT_TRUE(env.ok()) << env.error().ToString();
  EXPECT_EQ(env->limits.max_in_flight_per_origin, 8);

  auto negative =
      LoadConfig({}, FixedEnvironment({{"WSSTEP_MAX_IN_FLIGHT_PER_ORIGIN", "-1"}, {"HOME", "/h"}}));
  ASSERT_FALSE(negative.ok());
  EXPECT_THAT(negative.error().message, HasSubstr("max_in_flight_per_origin"));
  EXPECT_THAT(negative.error().message, HasSubstr("-1"));
}

TEST(ConfigTest, SpinWaitComesFromFileOrEnvironmentWithinItsBounds) {
  auto d = LoadConfig({}, FixedEnvironment({{"HOME", "/h"}}));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->spin_wait, std::chrono::microseconds(250));
  EXPECT_EQ(d->Describe()["spin_wait_us"], 250);

  auto file = LayerFromJson(R"({"spin_wait_us": 0})", "c.json");
  ASSERT_TRUE(file.ok()) << file.error().ToString();
  EXPECT_EQ(file->spin_wait_us, 0);
  auto env = LoadConfig({}, FixedEnvironment({{"WSSTEP_SPIN_WAIT_US", "1000"}, {"HOME", "/h"}}));
  ASSERT_TRUE(env.ok()) << env.error().ToString();
  EXPECT_EQ(env->spin_wait, std::chrono::microseconds(1000));

  auto big = LoadConfig({}, FixedEnvironment({{"WSSTEP_SPIN_WAIT_US", "10001"}, {"HOME", "/h"}}));
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code, Code::kInvalidArgument);
  EXPECT_THAT(big.error().message,
              HasSubstr("spin_wait_us must be between 0 (never spin) and 10000 (got 10001)"));
  auto negative = LoadConfig({}, FixedEnvironment({{"WSSTEP_SPIN_WAIT_US", "-1"}, {"HOME", "/h"}}));
  ASSERT_FALSE(negative.ok());
  auto words = LoadConfig({}, FixedEnvironment({{"WSSTEP_SPIN_WAIT_US", "fast"}, {"HOME", "/h"}}));
  ASSERT_FALSE(words.ok());
  EXPECT_EQ(words.error().message, "WSSTEP_SPIN_WAIT_US: 'fast' is not an integer");
  auto typed = LayerFromJson(R"({"spin_wait_us": "250"})", "c.json");
  ASSERT_FALSE(typed.ok());
  EXPECT_THAT(typed.error().message, HasSubstr("\"spin_wait_us\" has the wrong type"));
}

TEST(ConfigTest, EmptyProtectedEnvironmentsVariableProtectsNone) {
  auto c =
      LoadConfig({}, FixedEnvironment({{"WSSTEP_PROTECTED_ENVIRONMENTS", ""}, {"HOME", "/h"}}));
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->protected_environments.empty());
}

TEST(ConfigTest, MetricsAreOffUntilAnAddressIsGiven) {
  auto off = LoadConfig({}, FixedEnvironment({{"HOME", "/h"}}));
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(off->metrics_listen, "");
  EXPECT_EQ(off->Describe()["metrics_listen"], "");

  auto file = LayerFromJson(R"({"metrics_listen": "127.0.0.1:9464"})", "c.json");
  ASSERT_TRUE(file.ok()) << file.error().ToString();
  EXPECT_EQ(file->metrics_listen, "127.0.0.1:9464");
  auto on =
      LoadConfig({}, FixedEnvironment({{"WSSTEP_METRICS_LISTEN", "[::1]:9464"}, {"HOME", "/h"}}));
  ASSERT_TRUE(on.ok()) << on.error().ToString();
  EXPECT_EQ(on->metrics_listen, "[::1]:9464");

  // Set but empty turns off what a config file turned on.
  const std::string path = TempPath("metrics.json");
  {
    std::ofstream out(path);
    out << R"({"metrics_listen": "127.0.0.1:9464"})";
  }
  auto cleared = LoadConfig(
      {},
      FixedEnvironment({{"WSSTEP_CONFIG", path}, {"WSSTEP_METRICS_LISTEN", ""}, {"HOME", "/h"}}));
  ::unlink(path.c_str());
  ASSERT_TRUE(cleared.ok()) << cleared.error().ToString();
  EXPECT_EQ(cleared->metrics_listen, "");

  auto unix_socket = LoadConfig(
      {}, FixedEnvironment({{"WSSTEP_METRICS_LISTEN", "unix:///run/m.sock"}, {"HOME", "/h"}}));
  ASSERT_FALSE(unix_socket.ok());
  EXPECT_EQ(unix_socket.error().message,
            "metrics_listen: 'unix:///run/m.sock' is not host:port (Prometheus scrapes over TCP), "
            "e.g. 127.0.0.1:9464");
  auto port = LoadConfig(
      {}, FixedEnvironment({{"WSSTEP_METRICS_LISTEN", "127.0.0.1:99999"}, {"HOME", "/h"}}));
  ASSERT_FALSE(port.ok());
  EXPECT_THAT(port.error().message, HasSubstr("metrics_listen: "));
  EXPECT_THAT(port.error().message, HasSubstr("99999"));
}

TEST(ConfigTest, TheStoreIsSqliteUnlessAPostgresConnectionStringIsGiven) {
  auto sqlite = LoadConfig({}, FixedEnvironment({{"WSSTEP_DATA_DIR", "/d"}}));
  ASSERT_TRUE(sqlite.ok());
  EXPECT_EQ(sqlite->store, "");
  EXPECT_EQ(sqlite->Describe()["store"], "sqlite:/d/store.db");

  // The password is used, never shown.
  auto pg = LoadConfig(
      {}, FixedEnvironment({{"WSSTEP_DATA_DIR", "/d"},
                            {"WSSTEP_STORE", "postgresql://wsstep:pw-s3cret@db:5433/inventory"}}));
  ASSERT_TRUE(pg.ok()) << pg.error().ToString();
  EXPECT_EQ(pg->store, "postgresql://wsstep:pw-s3cret@db:5433/inventory");
  EXPECT_EQ(pg->Describe()["store"], "postgresql://wsstep@db:5433/inventory");
  EXPECT_THAT(pg->Describe().dump(), Not(HasSubstr("pw-s3cret")));

  auto file = LayerFromJson(R"({"store": "host=db dbname=w"})", "c.json");
  ASSERT_TRUE(file.ok()) << file.error().ToString();
  EXPECT_EQ(file->store, "host=db dbname=w");

  auto bad = LoadConfig(
      {}, FixedEnvironment({{"WSSTEP_STORE", "mysql://u:pw-s3cret@db/w"}, {"HOME", "/h"}}));
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.error().message, HasSubstr("store: not a PostgreSQL connection string"));
  EXPECT_THAT(bad.error().ToString(), Not(HasSubstr("pw-s3cret")));
}

TEST(ConfigTest, ErrorsNameTheInput) {
  auto unknown = LayerFromJson(R"({"lissten": "x"})", "wsstep.json");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, Code::kInvalidArgument);
  EXPECT_EQ(unknown.error().message, "wsstep.json: unknown key \"lissten\"");

  auto typed = LayerFromJson(R"({"allow_remote": "yes"})", "c.json");
  ASSERT_FALSE(typed.ok());
  EXPECT_THAT(typed.error().message, HasSubstr("\"allow_remote\" has the wrong type"));

  auto key = LayerFromJson(R"({"master_key": "abc"})", "c.json");
  ASSERT_FALSE(key.ok());
  EXPECT_THAT(key.error().message, HasSubstr("not accepted in a config file"));

  auto env = LoadConfig({}, FixedEnvironment({{"WSSTEP_MAX_BODY_BYTES", "lots"}}));
  ASSERT_FALSE(env.ok());
  EXPECT_EQ(env.error().message, "WSSTEP_MAX_BODY_BYTES: 'lots' is not an integer");

  auto level = LoadConfig({}, FixedEnvironment({{"WSSTEP_LOG_LEVEL", "loud"}}));
  ASSERT_FALSE(level.ok());
  EXPECT_THAT(level.error().message, HasSubstr("log level 'loud'"));

  auto master = LoadConfig({}, FixedEnvironment({{"WSSTEP_MASTER_KEY", "dG9vIHNob3J0"}}));
  ASSERT_FALSE(master.ok());
  EXPECT_EQ(master.error().code, Code::kMasterKeyError);
  EXPECT_THAT(master.error().message, HasSubstr("WSSTEP_MASTER_KEY"));
}

TEST(ConfigTest, MasterKeyFromEnvironmentIsDecodedAndNeverDescribed) {
  const std::string b64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";  // bytes 0..31
  auto c = LoadConfig({}, FixedEnvironment({{"WSSTEP_MASTER_KEY", b64}, {"HOME", "/h"}}));
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  ASSERT_TRUE(c->master_key.has_value());
  EXPECT_EQ(c->master_key->bytes().size(), 32u);
  const std::string described = c->Describe().dump();
  EXPECT_THAT(described, HasSubstr("\"master_key_from_environment\":true"));
  EXPECT_THAT(described, ::testing::Not(HasSubstr(b64)));
  EXPECT_EQ(c->Describe()["master_key_source"], "WSSTEP_MASTER_KEY");
  EXPECT_EQ(c->Describe()["master_key_file"], "");  // no file is read
}

// Describe names the key file the store will read, not "" for the default.
TEST(ConfigTest, DescribeNamesTheMasterKeyFileInUse) {
  auto by_default = LoadConfig({}, FixedEnvironment({{"WSSTEP_DATA_DIR", "/var/lib/wsstep/"}}));
  ASSERT_TRUE(by_default.ok()) << by_default.error().ToString();
  EXPECT_EQ(by_default->master_key_file, "");
  EXPECT_EQ(by_default->Describe()["master_key_file"], "/var/lib/wsstep/master.key");
  EXPECT_EQ(by_default->Describe()["master_key_source"], "file");

  ConfigLayer flags;
  flags.master_key_file = "/etc/wsstep/master.key";
  auto given = LoadConfig(flags, FixedEnvironment({{"WSSTEP_DATA_DIR", "/var/lib/wsstep"}}));
  ASSERT_TRUE(given.ok()) << given.error().ToString();
  EXPECT_EQ(given->Describe()["master_key_file"], "/etc/wsstep/master.key");
}

TEST(ConfigTest, ParseDuration) {
  EXPECT_EQ(*ParseDuration("10", "x"), std::chrono::seconds(10));
  EXPECT_EQ(*ParseDuration("250ms", "x"), std::chrono::milliseconds(250));
  EXPECT_EQ(*ParseDuration("2m", "x"), std::chrono::minutes(2));
  EXPECT_FALSE(ParseDuration("2h", "x").ok());
  EXPECT_FALSE(ParseDuration("soon", "x").ok());
}

}  // namespace
}  // namespace wsstep::plugin

namespace wsstep::plugin {
namespace {

TEST(ProxyConfigTest, NoProxyByDefaultAndTheEnvironmentsVariablesAreIgnored) {
  auto c = LoadConfig({}, FixedEnvironment({{"HOME", "/home/ann"},
                                            {"https_proxy", "http://proxy.corp:3128"},
                                            {"ALL_PROXY", "http://other.corp:8080"},
                                            {"no_proxy", "internal.corp"}}));
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->proxy.url, "");
  EXPECT_TRUE(c->proxy.no_proxy.empty());
  EXPECT_EQ(c->proxy.password, nullptr);
}

TEST(ProxyConfigTest, FromEnvironmentTakesHttpsProxyWithItsCredentialsAndNoProxy) {
  auto c = LoadConfig({}, FixedEnvironment({{"HOME", "/home/ann"},
                                            {"WSSTEP_PROXY_FROM_ENVIRONMENT", "true"},
                                            {"https_proxy", "http://bob:p%40ss@proxy.corp:3128/"},
                                            {"ALL_PROXY", "http://other.corp:8080"},
                                            {"NO_PROXY", "internal.corp, 10.0.0.5"}}));
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->proxy.url, "http://proxy.corp:3128");
  EXPECT_EQ(c->proxy.username, "bob");
  ASSERT_NE(c->proxy.password, nullptr);
  EXPECT_EQ(c->proxy.password->view(), "p@ss");
  EXPECT_THAT(c->proxy.no_proxy, ElementsAre("internal.corp", "10.0.0.5"));
  EXPECT_EQ(c->proxy.source, "https_proxy");
  // Never the password in what the plugin prints.
  const std::string described = c->Describe().dump();
  EXPECT_THAT(described, Not(HasSubstr("p@ss")));
  EXPECT_THAT(described, HasSubstr("proxy.corp:3128"));
}

TEST(ProxyConfigTest, FileEnvironmentAndFlagsLayerAsEverySetting) {
  const std::string file = TempPath("proxy-config.json");
  const std::string secret = TempPath("proxy-password");
  {
    std::ofstream out(secret);
    out << "s3cret\n";
  }
  {
    std::ofstream out(file);
    out << R"({"proxy": {"url": "proxy.corp:3128", "username": "svc", "password_file": ")" << secret
        << R"(", "no_proxy": [".internal.corp"]}})";
  }
  auto c = LoadConfig({}, FixedEnvironment({{"WSSTEP_CONFIG", file}}));
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->proxy.url, "http://proxy.corp:3128");
  EXPECT_EQ(c->proxy.username, "svc");
  ASSERT_NE(c->proxy.password, nullptr);
  EXPECT_EQ(c->proxy.password->view(), "s3cret");
  EXPECT_THAT(c->proxy.no_proxy, ElementsAre(".internal.corp"));
  EXPECT_THAT(c->Describe().dump(), Not(HasSubstr("s3cret")));

  // Set but empty in the environment: no proxy, whatever the file says.
  auto off = LoadConfig({}, FixedEnvironment({{"WSSTEP_CONFIG", file}, {"WSSTEP_PROXY", ""}}));
  ASSERT_TRUE(off.ok()) << off.error().ToString();
  EXPECT_EQ(off->proxy.url, "");
  EXPECT_EQ(off->proxy.password, nullptr);

  ConfigLayer flags;
  flags.proxy_url = "http://flag.corp:8080";
  auto flagged = LoadConfig(
      flags, FixedEnvironment({{"WSSTEP_CONFIG", file}, {"WSSTEP_PROXY", "http://env.corp:1"}}));
  ASSERT_TRUE(flagged.ok()) << flagged.error().ToString();
  EXPECT_EQ(flagged->proxy.url, "http://flag.corp:8080");
  ::unlink(file.c_str());
  ::unlink(secret.c_str());
}

TEST(ConfigTest, Http2IsOfferedUnlessTurnedOff) {
  auto on = LoadConfig({}, FixedEnvironment({{"HOME", "/home/ann"}}));
  ASSERT_TRUE(on.ok());
  EXPECT_TRUE(on->offer_http2);
  auto off = LoadConfig({}, FixedEnvironment({{"HOME", "/home/ann"}, {"WSSTEP_HTTP2", "false"}}));
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off->offer_http2);
  EXPECT_EQ(off->Describe()["http2"], false);
  auto file = LayerFromJson(R"({"http2": false})", "c.json");
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file->offer_http2, false);
}

TEST(ProxyConfigTest, AStoredCredentialIsNamedInsteadOfAUserAndPassword) {
  auto file =
      LayerFromJson(R"({"proxy": {"url": "proxy.corp:3128", "credential": "corp"}})", "c.json");
  ASSERT_TRUE(file.ok()) << file.error().ToString();
  EXPECT_EQ(file->proxy_credential, "corp");
  auto c = LoadConfig({}, FixedEnvironment({{"WSSTEP_PROXY", "http://proxy.corp:3128"},
                                            {"WSSTEP_PROXY_CREDENTIAL", "corp"}}));
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->proxy.credential, "corp");
  EXPECT_EQ(c->proxy.password, nullptr);
  EXPECT_EQ(c->Describe()["proxy"]["credential"], "corp");

  auto both = LoadConfig({}, FixedEnvironment({{"WSSTEP_PROXY", "http://proxy.corp:3128"},
                                               {"WSSTEP_PROXY_CREDENTIAL", "corp"},
                                               {"WSSTEP_PROXY_USERNAME", "svc"}}));
  ASSERT_FALSE(both.ok());
  EXPECT_THAT(both.error().message, HasSubstr("proxy.credential: names the store's proxy "
                                              "credential, so proxy.username and the proxy "
                                              "password must not be set too"));
  // Without a proxy it has no use, like a user and password.
  auto none = LoadConfig({}, FixedEnvironment({{"WSSTEP_PROXY_CREDENTIAL", "corp"}}));
  ASSERT_TRUE(none.ok()) << none.error().ToString();
  EXPECT_EQ(none->proxy.credential, "");
}

TEST(ProxyConfigTest, BadProxySettingsNameTheInput) {
  auto socks = LoadConfig({}, FixedEnvironment({{"WSSTEP_PROXY", "socks5://p:1080"}}));
  ASSERT_FALSE(socks.ok());
  EXPECT_THAT(socks.error().message, HasSubstr("not an http proxy"));
  auto password = LayerFromJson(R"({"proxy": {"password": "x"}})", "c.json");
  ASSERT_FALSE(password.ok());
  EXPECT_THAT(password.error().message, HasSubstr("password_file"));
  auto unknown = LayerFromJson(R"({"proxy": {"port": 1}})", "c.json");
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(unknown.error().message, HasSubstr("proxy.port"));
  auto list = LoadConfig(
      {}, FixedEnvironment({{"WSSTEP_PROXY", "p:1"}, {"WSSTEP_NO_PROXY", "10.0.0.0/8"}}));
  ASSERT_FALSE(list.ok());
  EXPECT_THAT(list.error().message, HasSubstr("10.0.0.0/8"));
}

}  // namespace
}  // namespace wsstep::plugin

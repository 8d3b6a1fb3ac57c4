// Step conversion: proto step configs become the engine's typed steps.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "plugin/adapters/step_convert.h"

#include <set>

#include "plugin/adapters/proto_convert.h"

namespace wsstep::plugin {
namespace {

v1::RestStep OAuth2RestStep(v1::OAuth2ClientCredentials::ClientAuthentication method) {
  v1::RestStep step;
  step.set_url("https://api.example.test/x");
  auto* o = step.mutable_auth()->mutable_oauth2_client_credentials();
  o->set_token_url("https://auth.example.test/token");
  o->set_client_id("c");
  o->set_client_secret("s");
  o->set_client_authentication(method);
  return step;
}

TEST(PluginStepConvertTest, OAuth2ClientAuthenticationReachesTheEngine) {
  using P = v1::OAuth2ClientCredentials;
  const std::pair<P::ClientAuthentication, rest::OAuth2ClientAuth> cases[] = {
      {P::CLIENT_AUTHENTICATION_UNSPECIFIED, rest::OAuth2ClientAuth::kUnspecified},
      {P::CLIENT_AUTHENTICATION_CLIENT_SECRET_BASIC, rest::OAuth2ClientAuth::kClientSecretBasic},
      {P::CLIENT_AUTHENTICATION_CLIENT_SECRET_POST, rest::OAuth2ClientAuth::kClientSecretPost},
      {P::CLIENT_AUTHENTICATION_TLS_CLIENT_AUTH, rest::OAuth2ClientAuth::kTlsClientAuth},
  };
  for (const auto& [proto, engine] : cases) {
    auto s = RestStepFromProto(OAuth2RestStep(proto), "", StepLimits{});
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    const auto* oauth = std::get_if<rest::OAuth2ClientCredentials>(&s->auth);
    ASSERT_NE(oauth, nullptr);
    EXPECT_EQ(oauth->client_authentication, engine) << proto;
    EXPECT_EQ(oauth->client_secret.view(), "s");
  }
}

TEST(PluginStepConvertTest, UnknownOAuth2ClientAuthenticationIsInvalidStepConfig) {
  auto s = RestStepFromProto(
      OAuth2RestStep(static_cast<v1::OAuth2ClientCredentials::ClientAuthentication>(9)), "",
      StepLimits{});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Code::kInvalidStepConfig);
  EXPECT_EQ(s.error().detail.at("field"), "auth.oauth2_client_credentials.client_authentication");
}

// Without the toggle a step trusts the system CAs only; "only the bound trust stores"
// would trust nothing at all, so the two together are a mistake, named before any call.
TEST(PluginStepConvertTest, PrivateTrustOnlyWithoutSslVerificationIsInvalidStepConfig) {
  v1::RestStep step;
  step.set_url("https://api.example.test/x");
  step.mutable_tls()->set_private_trust_only(true);
  auto off = RestStepFromProto(step, "", StepLimits{});
  ASSERT_FALSE(off.ok());
  EXPECT_EQ(off.error().code, Code::kInvalidStepConfig);
  EXPECT_EQ(off.error().detail.at("field"), "tls.private_trust_only");
  EXPECT_EQ(off.error().message,
            "tls.private_trust_only: trusting only the bound trust stores requires "
            "tls.ssl_verification");

  step.mutable_tls()->set_ssl_verification(true);
  auto on = RestStepFromProto(step, "", StepLimits{});
  ASSERT_TRUE(on.ok()) << on.error().ToString();
  EXPECT_TRUE(on->tls.private_trust_only);
}

TEST(PluginStepConvertTest, SoapRawBodyAndHeaderBlocksAreBoundedByMaxBodyBytes) {
  StepLimits limits;
  limits.max_body_bytes = 100;
  v1::SoapStep step;
  step.set_endpoint("https://soap.example.test/ws");
  step.set_raw_body(std::string(60, 'b'));
  step.add_header_blocks(std::string(40, 'h'));  // exactly at the limit: fine
  auto at_limit = SoapStepFromProto(step, limits);
  ASSERT_TRUE(at_limit.ok()) << at_limit.error().ToString();
  EXPECT_EQ(at_limit->header_blocks.size(), 1u);

  step.add_header_blocks("<x/>");  // the second block takes the envelope over
  auto over = SoapStepFromProto(step, limits);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().code, Code::kInvalidStepConfig);
  EXPECT_EQ(over.error().detail.at("field"), "header_blocks[1]");
  EXPECT_EQ(over.error().detail.at("limit"), "100");
  EXPECT_EQ(over.error().message,
            "header_blocks[1]: with raw_body and the blocks before it, 104 bytes, above the "
            "plugin's max_body_bytes of 100");

  step.clear_header_blocks();
  step.set_raw_body(std::string(101, 'b'));
  auto big_body = SoapStepFromProto(step, limits);
  ASSERT_FALSE(big_body.ok());
  EXPECT_EQ(big_body.error().code, Code::kInvalidStepConfig);
  EXPECT_EQ(big_body.error().detail.at("field"), "raw_body");
  EXPECT_EQ(big_body.error().message, "raw_body: 101 bytes, above the plugin's max_body_bytes of 100");
}

// Every warning the plugin gives has its own proto value, and Diagnostic.code is that
// value's name: engine warnings, the import warning, and APPLICATION_REFUSED.
TEST(PluginStepConvertTest, EveryWarningHasItsOwnProtoValueAndName) {
  std::set<v1::WarningCode> produced;
  for (rest::WarningCode code : rest::kAllWarningCodes) {
    const v1::WarningCode proto = ToProtoWarningCode(code);
    EXPECT_NE(proto, v1::WARNING_CODE_UNSPECIFIED) << rest::WarningName(code);
    EXPECT_EQ(WarningCodeName(proto), rest::WarningName(code));
    EXPECT_TRUE(produced.insert(proto).second) << rest::WarningName(code);
  }
  // core reports import warnings as catalog codes: only CHAIN_INCOMPLETE is one.
  for (int c = static_cast<int>(Code::kOk); c <= static_cast<int>(Code::kInternal); ++c) {
    const Code code = static_cast<Code>(c);
    const v1::WarningCode proto = ImportWarningCode(code);
    if (code != Code::kChainIncomplete) {
      EXPECT_EQ(proto, v1::WARNING_CODE_UNSPECIFIED) << CodeName(code);
      continue;
    }
    EXPECT_EQ(WarningCodeName(proto), CodeName(code));
    EXPECT_TRUE(produced.insert(proto).second);
  }
  rest::RestResult refused;
  refused.status = 403;
  refused.application_refused = true;
  refused.application_refused_message = "TLS succeeded, the application refused: HTTP 403";
  v1::StepOutcome outcome;
  FillHttpOutcome(std::move(refused), 0, "", &outcome);
  ASSERT_EQ(outcome.warnings_size(), 1);
  EXPECT_EQ(outcome.warnings(0).severity(), v1::SEVERITY_INFO);
  EXPECT_EQ(outcome.warnings(0).code(), "APPLICATION_REFUSED");
  produced.insert(outcome.warnings(0).warning_code());

  // The store backend's own import warning: the same certificate under a second name
  // (StoreBackend::Create; tests/e2e/cli_admin_test.cc sees it through the binary).
  EXPECT_TRUE(produced.insert(v1::WARNING_CODE_DUPLICATE_CERTIFICATE).second);

  // ... and nothing in the proto is left without a source.
  const auto* values = v1::WarningCode_descriptor();
  for (int i = 0; i < values->value_count(); ++i) {
    const auto proto = static_cast<v1::WarningCode>(values->value(i)->number());
    if (proto == v1::WARNING_CODE_UNSPECIFIED) continue;
    EXPECT_EQ(produced.count(proto), 1u) << values->value(i)->name() << " has no source";
  }
}

TEST(PluginStepConvertTest, WarningsCarryTheirCodeNameAndField) {
  rest::TlsOptions tls;
  tls.verify_peer = false;
  std::vector<rest::Warning> warnings = rest::TlsOptionWarnings(tls);
  warnings.push_back(rest::ClientCertificateNotSent("api.example.test", 443, true));
  google::protobuf::RepeatedPtrField<v1::Diagnostic> out;
  FillWarnings(warnings, &out);
  ASSERT_EQ(out.size(), 2);
  EXPECT_EQ(out[0].severity(), v1::SEVERITY_WARNING);
  EXPECT_EQ(out[0].warning_code(), v1::WARNING_CODE_VERIFY_PEER_DISABLED);
  EXPECT_EQ(out[0].code(), "VERIFY_PEER_DISABLED");
  EXPECT_EQ(out[0].field_path(), "tls.verify_peer");
  EXPECT_EQ(out[0].summary(), warnings[0].message);
  EXPECT_EQ(out[1].warning_code(), v1::WARNING_CODE_CLIENT_CERT_REQUESTED_NONE_SENT);
  EXPECT_EQ(out[1].code(), "CLIENT_CERT_REQUESTED_NONE_SENT");
  EXPECT_EQ(out[1].field_path(), "");
}

}  // namespace
}  // namespace wsstep::plugin

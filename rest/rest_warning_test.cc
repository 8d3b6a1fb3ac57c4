// Warnings are values: each code has its own name and field, and the message is built in
// one place for every caller.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "rest/step.h"
#include "rest/warning.h"

namespace wsstep::rest {
namespace {

TEST(WarningTest, EveryCodeHasItsOwnName) {
  std::set<std::string_view> names;
  for (WarningCode code : kAllWarningCodes) {
    std::string_view name = WarningName(code);
    EXPECT_FALSE(name.empty());
    EXPECT_NE(name, "UNKNOWN_WARNING");
    EXPECT_TRUE(names.insert(name).second) << name;
  }
  EXPECT_EQ(WarningName(WarningCode::kVerifyPeerDisabled), "VERIFY_PEER_DISABLED");
  EXPECT_EQ(WarningName(WarningCode::kVerifyHostDisabled), "VERIFY_HOST_DISABLED");
  EXPECT_EQ(WarningName(WarningCode::kClientCertRequestedNoneSent),
            "CLIENT_CERT_REQUESTED_NONE_SENT");
}

TEST(WarningTest, VerificationOffWarnsOnItsField) {
  TlsOptions tls;
  EXPECT_TRUE(TlsOptionWarnings(tls).empty());

  tls.verify_peer = false;
  tls.verify_host = false;
  auto warnings = TlsOptionWarnings(tls);
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_EQ(warnings[0].code, WarningCode::kVerifyPeerDisabled);
  EXPECT_EQ(warnings[0].message,
            "verify_peer is off: the server's certificate is not checked, anyone on the path "
            "can impersonate it");
  EXPECT_EQ(WarningField(warnings[0].code), "tls.verify_peer");
  EXPECT_EQ(warnings[1].code, WarningCode::kVerifyHostDisabled);
  EXPECT_EQ(warnings[1].message, "verify_host is off: a certificate for any host name is accepted");
  EXPECT_EQ(WarningField(warnings[1].code), "tls.verify_host");

  tls.verify_peer = true;
  warnings = TlsOptionWarnings(tls);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].code, WarningCode::kVerifyHostDisabled);
}

TEST(WarningTest, ClientCertificateNotSentNamesTheHostAndWhatToDo) {
  Warning on = ClientCertificateNotSent("api.example.test", 8443, true);
  EXPECT_EQ(on.code, WarningCode::kClientCertRequestedNoneSent);
  EXPECT_EQ(on.message,
            "the server asked for a client certificate and none was presented: bind one to "
            "api.example.test:8443");
  EXPECT_EQ(WarningField(on.code), "");

  Warning off = ClientCertificateNotSent("api.example.test", 443, false);
  EXPECT_EQ(off.message,
            "the server asked for a client certificate and none was presented: bind one to "
            "api.example.test:443 and switch on SSL certificate verification");
}

}  // namespace
}  // namespace wsstep::rest

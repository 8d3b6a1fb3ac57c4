#include "core/model.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/notifications.h"
#include "core/x509_info.h"

namespace wsstep::core {
namespace {

EntryMetadata EntryValidBetween(UnixSeconds nb, UnixSeconds na) {
  EntryMetadata e;
  e.certificate = CertificateInfo{};
  e.certificate->not_before = nb;
  e.certificate->not_after = na;
  return e;
}

TEST(Model, StatusFollowsDatesAndFlags) {
  const UnixSeconds day = 86400;
  auto e = EntryValidBetween(100 * day, 200 * day);
  EXPECT_EQ(StatusAt(e, 99 * day), CertStatus::kNotYetValid);
  EXPECT_EQ(StatusAt(e, 150 * day), CertStatus::kValid);
  EXPECT_EQ(StatusAt(e, 175 * day), CertStatus::kExpiringSoon);  // 25 days < 30
  EXPECT_EQ(StatusAt(e, 200 * day + 1), CertStatus::kExpired);
  e.revoked = true;
  EXPECT_EQ(StatusAt(e, 150 * day), CertStatus::kRevoked);
  e.disabled = true;
  EXPECT_EQ(StatusAt(e, 150 * day), CertStatus::kDisabled);
}

TEST(Model, DaysRemainingFloors) {
  auto e = EntryValidBetween(0, 10 * 86400);
  EXPECT_EQ(DaysRemaining(e, 0), 10);
  EXPECT_EQ(DaysRemaining(e, 1), 9);
  EXPECT_EQ(DaysRemaining(e, 10 * 86400 + 1), -1);
}

// A provisioning profile lives as long as its own ExpirationDate says, whatever its
// developer certificates: status, days left and notifications follow the profile.
TEST(Model, AProvisioningProfileFollowsItsOwnExpirationDate) {
  const UnixSeconds day = 86400;
  EntryMetadata e;
  e.type = EntryType::kMobileProvisioning;
  e.trusted.push_back(CertificateInfo{});
  e.trusted.back().not_before = 0;
  e.trusted.back().not_after = 900 * day;  // the developer certificate lasts far longer
  e.attributes["profile_created"] = FormatUtc(100 * day);
  e.attributes["profile_expires"] = FormatUtc(200 * day);
  EXPECT_EQ(StatusAt(e, 50 * day), CertStatus::kNotYetValid);
  EXPECT_EQ(StatusAt(e, 150 * day), CertStatus::kValid);
  EXPECT_EQ(StatusAt(e, 190 * day), CertStatus::kExpiringSoon);
  EXPECT_EQ(DaysRemaining(e, 190 * day), 10);
  EXPECT_EQ(StatusAt(e, 201 * day), CertStatus::kExpired);
  EXPECT_FALSE(NotificationDue(e, 150 * day));
  EXPECT_TRUE(NotificationDue(e, 190 * day));
  // Without the attributes (an entry stored before they existed), the certificates govern.
  e.attributes.clear();
  EXPECT_EQ(DaysRemaining(e, 190 * day), 710);
}

TEST(Model, NamesRoundTrip) {
  EXPECT_EQ(EntryTypeFromName(EntryTypeName(EntryType::kJavaKeystore)), EntryType::kJavaKeystore);
  EXPECT_EQ(SourceFormatFromName("JCEKS"), SourceFormat::kJceks);
  EXPECT_EQ(CodeFromName(CodeName(Code::kClientCertRejected)), Code::kClientCertRejected);
  EXPECT_EQ(CodeName(Code::kCertificateNotFound), "CERTIFICATE_NOT_FOUND");
  EXPECT_EQ(NormalizeHost("API.Example.COM."), "api.example.com");
}

}  // namespace
}  // namespace wsstep::core

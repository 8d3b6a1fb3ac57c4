#include "core/model.h"

#include <gtest/gtest.h>

#include "core/error.h"

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

TEST(Model, NamesRoundTrip) {
  EXPECT_EQ(EntryTypeFromName(EntryTypeName(EntryType::kJavaKeystore)), EntryType::kJavaKeystore);
  EXPECT_EQ(SourceFormatFromName("JCEKS"), SourceFormat::kJceks);
  EXPECT_EQ(CodeFromName(CodeName(Code::kClientCertRejected)), Code::kClientCertRejected);
  EXPECT_EQ(CodeName(Code::kCertificateNotFound), "CERTIFICATE_NOT_FOUND");
  EXPECT_EQ(NormalizeHost("API.Example.COM."), "api.example.com");
}

}  // namespace
}  // namespace wsstep::core

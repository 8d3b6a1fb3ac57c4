#include "core/error.h"

#include <gtest/gtest.h>

#include <string>

namespace wsstep {
namespace {

Result<std::string> Failing() {
  return Error(Code::kWrongPassword, "client.p12: wrong password", "Check the password.");
}

TEST(ResultTest, ValueOfAnErrorAbortsNamingTheErrorInEveryBuild) {
  // NDEBUG or not: the death happens because value() checks, not because assert() does.
  EXPECT_DEATH(
      { [[maybe_unused]] const std::string& v = Failing().value(); },
      "Result::value\\(\\) called on an error: WRONG_PASSWORD: client.p12: wrong password");
}

TEST(ResultTest, ConstAndMovedValueOfAnErrorAbortToo) {
  const Result<std::string> failed = Failing();
  EXPECT_DEATH({ [[maybe_unused]] const std::string& v = failed.value(); }, "WRONG_PASSWORD");
  EXPECT_DEATH({ [[maybe_unused]] std::string v = *Failing(); }, "WRONG_PASSWORD");
  EXPECT_DEATH({ [[maybe_unused]] size_t n = Failing()->size(); }, "WRONG_PASSWORD");
}

TEST(ResultTest, ValueOfASuccessIsTheValue) {
  Result<std::string> r = std::string("ok");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value(), "ok");
  EXPECT_EQ(r.code(), Code::kOk);
  EXPECT_TRUE(r.status().ok());
}

TEST(StatusTest, CarriesTheCodeAndSaysOkWhenOk) {
  Status ok;
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.ToString(), "OK");
  Status failed = Error(Code::kStorageError, "store.db: disk full");
  EXPECT_EQ(failed.code(), Code::kStorageError);
  EXPECT_EQ(failed.ToString(), "STORAGE_ERROR: store.db: disk full");
  failed.IgnoreError();  // compiles: the decision to drop a Status is written down
}

TEST(CodeNameTest, EveryNameRoundTrips) {
  // kProxyRefused is the last code: a new one goes after it, and here.
  for (int c = static_cast<int>(Code::kOk); c <= static_cast<int>(Code::kProxyRefused); ++c) {
    const Code code = static_cast<Code>(c);
    EXPECT_EQ(CodeFromName(CodeName(code)), code) << CodeName(code);
  }
  EXPECT_EQ(CodeFromName("NO_SUCH_CODE"), Code::kInternal);
}

TEST(SideNameTest, ProxyHasItsOwnSide) {
  EXPECT_EQ(SideName(Side::kProxy), "PROXY");
  EXPECT_EQ(CodeName(Code::kProxyAuthRequired), "PROXY_AUTH_REQUIRED");
  EXPECT_EQ(CodeFromName("PROXY_UNREACHABLE"), Code::kProxyUnreachable);
  EXPECT_EQ(CodeFromName("PROXY_REFUSED"), Code::kProxyRefused);
}

}  // namespace
}  // namespace wsstep

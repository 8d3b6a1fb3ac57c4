#include "core/store/validation.h"

#include <gtest/gtest.h>

namespace wsstep::core {
namespace {

void ExpectInvalid(const Status& s, std::string_view field) {
  ASSERT_EQ(s.code(), Code::kInvalidArgument) << s.ToString();
  EXPECT_EQ(s.error().detail.at("field"), field);
  EXPECT_TRUE(s.error().message.starts_with(std::string(field) + ": ")) << s.error().message;
}

TEST(StoreValidationTest, Names) {
  EXPECT_TRUE(ValidateName("Bank Client").ok());
  EXPECT_TRUE(ValidateName(std::string(kMaxNameLength, 'n')).ok());
  EXPECT_TRUE(ValidateName("\xc3\xa9t\xc3\xa9").ok());  // UTF-8 is fine
  ExpectInvalid(ValidateName(""), "name");
  ExpectInvalid(ValidateName(std::string(kMaxNameLength + 1, 'n')), "name");
  ExpectInvalid(ValidateName(" padded"), "name");
  ExpectInvalid(ValidateName("padded "), "name");
  ExpectInvalid(ValidateName("tab\there"), "name");
  ExpectInvalid(ValidateName("del\x7f"), "name");
}

TEST(StoreValidationTest, DescriptionAndNotifications) {
  EXPECT_TRUE(ValidateDescription(std::string(kMaxDescriptionLength, 'd')).ok());
  ExpectInvalid(ValidateDescription(std::string(kMaxDescriptionLength + 1, 'd')), "description");
  NotificationSettings n;
  n.warning_days = 3650;
  EXPECT_TRUE(ValidateNotifications(n).ok());
  n.warning_days = -1;
  ExpectInvalid(ValidateNotifications(n), "notifications.warning_days");
  n.warning_days = 3651;
  ExpectInvalid(ValidateNotifications(n), "notifications.warning_days");
  // The urgent window lies within the warning one.
  n.warning_days = 10;
  n.urgent_days = 10;
  EXPECT_TRUE(ValidateNotifications(n).ok());
  n.urgent_days = 0;
  EXPECT_TRUE(ValidateNotifications(n).ok());
  n.urgent_days = 11;
  ExpectInvalid(ValidateNotifications(n), "notifications.urgent_days");
  n.urgent_days = -1;
  ExpectInvalid(ValidateNotifications(n), "notifications.urgent_days");
}

TEST(StoreValidationTest, BindingsAreNormalizedAndDeduplicated) {
  std::vector<Binding> b = {{" API.Example.COM. ", 0, ""},
                            {"api.example.com", 443, "default"},
                            {"*.example.com", 8443, "sandbox"}};
  ASSERT_TRUE(NormalizeBindings(b, EntryType::kKeyPair).ok());
  EXPECT_EQ(b, (std::vector<Binding>{{"api.example.com", 443, "default"},
                                     {"*.example.com", 8443, "sandbox"}}));
}

TEST(StoreValidationTest, BindingsThatAreNotHostsNameTheField) {
  auto check = [](std::string host, std::string_view field) {
    std::vector<Binding> b = {{"ok.example.com", 443, "default"}, {std::move(host), 443, ""}};
    ExpectInvalid(NormalizeBindings(b, EntryType::kKeyPair), field);
  };
  check("", "bindings[1].host");
  check("*.", "bindings[1].host");
  check(".example.com", "bindings[1].host");
  check("a.*.example.com", "bindings[1].host");  // a wildcard only as the first label
  check("host name", "bindings[1].host");
  check("api.example.com:8443", "bindings[1].host");  // the port has its own field
  std::vector<Binding> ipv6 = {{"[::1]", 443, ""}};
  EXPECT_TRUE(NormalizeBindings(ipv6, EntryType::kKeyPair).ok());
  std::vector<Binding> env = {{"a.example.com", 443, "prod\nuction"}};
  ExpectInvalid(NormalizeBindings(env, EntryType::kKeyPair), "bindings[0].environment");
}

TEST(StoreValidationTest, MobileProvisioningProfilesCannotBeBound) {
  std::vector<Binding> b = {{"a.example.com", 443, ""}};
  ExpectInvalid(NormalizeBindings(b, EntryType::kMobileProvisioning), "bindings");
  std::vector<Binding> none;
  EXPECT_TRUE(NormalizeBindings(none, EntryType::kMobileProvisioning).ok());
}

TEST(StoreValidationTest, PageSizes) {
  EXPECT_EQ(PageSize(0).value(), kDefaultPageSize);
  EXPECT_EQ(PageSize(1).value(), 1u);
  EXPECT_EQ(PageSize(kMaxPageSize).value(), kMaxPageSize);
  ExpectInvalid(PageSize(kMaxPageSize + 1).status(), "page_size");
}

TEST(StoreValidationTest, ErrorsNameWhatWasAskedFor) {
  Error nf = NotFound("bank");
  EXPECT_EQ(nf.code, Code::kNotFound);
  EXPECT_EQ(nf.detail.at("certificate"), "bank");
  Error dup = DuplicateName("BANK", "bank");
  EXPECT_EQ(dup.code, Code::kDuplicateName);
  EXPECT_EQ(dup.message, "name: a certificate named 'bank' already exists");
  EXPECT_EQ(dup.detail.at("name"), "BANK");
}

}  // namespace
}  // namespace wsstep::core

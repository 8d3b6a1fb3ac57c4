// Text leaving the process is valid UTF-8.
#include "plugin/process/utf8.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace wsstep::plugin {
namespace {

TEST(StatusMapTest, ValidUtf8KeepsWellFormedTextAndReplacesEveryOtherByte) {
  EXPECT_EQ(ValidUtf8("plain ascii"), "plain ascii");
  EXPECT_EQ(ValidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  const std::string r = "\xef\xbf\xbd";
  EXPECT_EQ(ValidUtf8("caf\xe9"), "caf" + r);               // Latin-1
  EXPECT_EQ(ValidUtf8("\xc0\xaf"), r + r);                  // overlong '/'
  EXPECT_EQ(ValidUtf8("\xed\xa0\x80"), r + r + r);          // a UTF-16 surrogate
  EXPECT_EQ(ValidUtf8("\xf4\x90\x80\x80"), r + r + r + r);  // above U+10FFFF
  EXPECT_EQ(ValidUtf8("a\xe2\x82"), "a" + r + r);           // cut short
  EXPECT_EQ(ValidUtf8(std::string("\x00\xff", 2)), std::string("\x00", 1) + r);
}

TEST(StatusMapTest, TakeValidUtf8KeepsAValidStringsBufferAndRepairsLikeValidUtf8) {
  const std::string r = "\xef\xbf\xbd";
  for (std::string t : {std::string("plain ascii"), std::string("caf\xe9"), std::string("\xc0\xaf"),
                        std::string("\xed\xa0\x80"), std::string("a\xe2\x82"),
                        std::string("\x00\xff", 2), std::string("caf\xc3\xa9 \xf0\x9f\x98\x80")}) {
    const std::string expected = ValidUtf8(t);
    EXPECT_EQ(TakeValidUtf8(std::string(t)), expected);
  }
  std::string valid(200, 'x');
  valid += "\xe2\x82\xac";  // beyond the small-string buffer: the heap block moves along
  const char* block = valid.data();
  const std::string taken = TakeValidUtf8(std::move(valid));
  EXPECT_EQ(taken.data(), block);
  EXPECT_EQ(taken.size(), 203u);
}

}  // namespace
}  // namespace wsstep::plugin

#include "core/store/codec.h"

#include <gtest/gtest.h>

#include <set>

namespace wsstep::core {
namespace {

TEST(CodecTest, ListsRoundTripWithEmptyAndBinaryItems) {
  const std::vector<std::string> items = {"", "a", std::string(200, 'x'), std::string("\0\xff", 2)};
  EXPECT_EQ(DecodeList(EncodeList(items)), items);
  EXPECT_EQ(EncodeList({}), "");
  EXPECT_TRUE(DecodeList("").empty());
  // A 200-byte item needs a two-byte length.
  EXPECT_EQ(EncodeList({std::string(200, 'x')}).size(), 202u);
}

TEST(CodecTest, DecodingStopsAtTheFirstMalformedItem) {
  std::string good = EncodeList({"one", "two"});
  // A length longer than what follows.
  EXPECT_EQ(DecodeList(good + "\x05" + "ab"), (std::vector<std::string>{"one", "two"}));
  // A varint that never ends.
  EXPECT_EQ(DecodeList(good + "\x80\x80"), (std::vector<std::string>{"one", "two"}));
}

TEST(CodecTest, MapsRoundTripInKeyOrder) {
  const std::map<std::string, std::string> m = {{"team", "T1"}, {"app_id", "x.y"}, {"", "empty"}};
  EXPECT_EQ(DecodeMap(EncodeMap(m)), m);
  EXPECT_EQ(EncodeMap(m), EncodeList({"", "empty", "app_id", "x.y", "team", "T1"}));
  // A key without its value is dropped.
  EXPECT_EQ(DecodeMap(EncodeList({"k", "v", "lonely"})),
            (std::map<std::string, std::string>{{"k", "v"}}));
}

TEST(CodecTest, HexRoundTripsAndRefusesWhatItDoesNotWrite) {
  EXPECT_EQ(Hex(std::string("\x00\x0f\xa0\xff", 4)), "000fa0ff");
  EXPECT_EQ(Unhex("000fa0ff"), std::string("\x00\x0f\xa0\xff", 4));
  EXPECT_EQ(Unhex(""), std::string());
  EXPECT_FALSE(Unhex("abc").has_value());  // odd length
  EXPECT_FALSE(Unhex("0G").has_value());   // not hex
  EXPECT_FALSE(Unhex("0A").has_value());   // upper case is never written
}

TEST(CodecTest, AsciiLowerLeavesOtherBytesAlone) {
  EXPECT_EQ(AsciiLower("Bank CLIENT-1"), "bank client-1");
  EXPECT_EQ(AsciiLower("\xc3\x89t\xc3\xa9"), "\xc3\x89t\xc3\xa9");  // "Été": not ASCII
}

TEST(CodecTest, EntryIdsAreFifteenHexDigitsAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string id = NewEntryId();
    ASSERT_EQ(id.size(), 15u);
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

}  // namespace
}  // namespace wsstep::core

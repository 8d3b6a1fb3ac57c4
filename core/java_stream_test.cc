// Java's encodings as key stores carry them: bounded big-endian reads, modified UTF-8,
// and skipping one serialized object stream.
#include "core/java_stream.h"

#include <gtest/gtest.h>

#include <string>

namespace wsstep::core::java {
namespace {

TEST(JavaStreamTest, DataReaderReadsBigEndianAndNeverPastTheEnd) {
  const std::string bytes(
      "\xFE\xED\xFE\xED\x00\x03"
      "abc\x01",
      10);
  DataReader r(bytes);
  uint32_t magic = 0;
  std::string_view text;
  uint16_t more = 0;
  ASSERT_TRUE(r.U32(magic));
  EXPECT_EQ(magic, 0xFEEDFEEDu);
  ASSERT_TRUE(r.Utf(text));
  EXPECT_EQ(text, "abc");
  EXPECT_EQ(r.remaining(), 1u);
  EXPECT_FALSE(r.U16(more)) << "one byte left, two asked";
  EXPECT_EQ(r.offset(), 9u) << "a failed read consumes nothing";
}

TEST(JavaStreamTest, ModifiedUtf8BecomesStandardUtf8) {
  std::string out;
  // NUL is written as C0 80; U+1F600 as two 3-byte surrogates (D83D DE00).
  ASSERT_TRUE(ModifiedUtf8ToUtf8(std::string("a\xC0\x80"
                                             "b\xED\xA0\xBD\xED\xB8\x80"),
                                 out));
  EXPECT_EQ(out, std::string("a\0b\xF0\x9F\x98\x80", 7));
  // A lone surrogate becomes U+FFFD.
  ASSERT_TRUE(ModifiedUtf8ToUtf8("\xED\xA0\xBD", out));
  EXPECT_EQ(out, "\xEF\xBF\xBD");
}

TEST(JavaStreamTest, SkipsOneSerializedObjectAndRefusesOtherBytes) {
  // Stream header (AC ED 00 05) and TC_NULL, then one byte that belongs to the container.
  const std::string stream("\xAC\xED\x00\x05\x70\x42", 6);
  DataReader r(stream);
  ASSERT_TRUE(SkipSerializedObject(r));
  EXPECT_EQ(r.offset(), 5u);

  const std::string not_java("\xAC\xED\x00\x04\x70", 5);
  DataReader bad(not_java);
  EXPECT_FALSE(SkipSerializedObject(bad)) << "version 4 is not a Java object stream";
  const std::string truncated("\xAC\xED\x00\x05\x73", 5);  // TC_OBJECT with nothing after
  DataReader cut(truncated);
  EXPECT_FALSE(SkipSerializedObject(cut));
}

}  // namespace
}  // namespace wsstep::core::java

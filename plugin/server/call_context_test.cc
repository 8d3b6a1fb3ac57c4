// W3C traceparent parsing and the spans a call makes.
#include "plugin/server/call_context.h"

#include <gtest/gtest.h>

#include <regex>
#include <set>

namespace wsstep::plugin {
namespace {

constexpr std::string_view kValid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(TraceparentTest, AValidHeaderGivesItsParts) {
  const TraceContext t = ParseTraceparent(kValid, "rojo=1");
  ASSERT_TRUE(t.valid());
  EXPECT_EQ(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(t.parent_span_id, "00f067aa0ba902b7");
  EXPECT_EQ(t.flags, "01");
  EXPECT_EQ(t.state, "rojo=1");
  EXPECT_TRUE(t.span_id.empty());
  // A later version may append fields; they are ignored.
  EXPECT_TRUE(
      ParseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz", "").valid());
}

TEST(TraceparentTest, AnythingElseIsNoTrace) {
  for (const std::string& bad :
       {std::string(""), std::string("00"), std::string(kValid) + "-extra",  // v00: exactly 55
        std::string("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        std::string("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
        std::string("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        std::string("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
        std::string("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        std::string("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g"),
        std::string("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x")}) {
    EXPECT_FALSE(ParseTraceparent(bad, "").valid()) << bad;
  }
}

TEST(TraceparentTest, AChildCarriesOurSpanInTheHostsTrace) {
  TraceContext t = ParseTraceparent(kValid, "");
  t.span_id = NewSpanId();
  EXPECT_EQ(t.ChildTraceparent(), "00-4bf92f3577b34da6a3ce929d0e0e4736-" + t.span_id.str() + "-01");
  std::set<std::string> ids;
  for (int i = 0; i < 100; ++i) {
    const std::string id = NewSpanId().str();
    EXPECT_TRUE(std::regex_match(id, std::regex("[0-9a-f]{16}"))) << id;
    EXPECT_NE(id, "0000000000000000");
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 100u);
}

}  // namespace
}  // namespace wsstep::plugin

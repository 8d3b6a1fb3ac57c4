// SameOrigin (engine_internal.h) answers exactly what comparing UrlParts::Origin() does,
// for every pair of URLs as ParseHttpUrl reads them.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "rest/engine_internal.h"
#include "rest/http_text.h"

namespace wsstep::rest {
namespace {

TEST(SameOriginTest, AgreesWithComparingTheOriginText) {
  const std::vector<std::string> urls = {
      "https://api.example/a",   "https://api.example:443/b", "https://api.example:8443/",
      "http://api.example:443/", "https://API.example/",      "https://other.example/",
      "https://[::1]/",          "https://[::1]:443/x",       "https://[::2]/",
      "https://127.0.0.1/",      "http://api.example/",
  };
  std::vector<UrlParts> all;
  for (const auto& url : urls) {
    auto parts = ParseHttpUrl(url);
    ASSERT_TRUE(parts.ok()) << url << ": " << parts.error().ToString();
    all.push_back(*parts);
  }
  for (const auto& a : all) {
    for (const auto& b : all) {
      EXPECT_EQ(SameOrigin(a, b), a.Origin() == b.Origin()) << a.Origin() << " vs " << b.Origin();
    }
  }
  EXPECT_TRUE(SameOrigin(all[0], all[1]));   // the default port written or not
  EXPECT_TRUE(SameOrigin(all[6], all[7]));   // an IPv6 host, bracketed in the URL
  EXPECT_FALSE(SameOrigin(all[0], all[2]));  // another port
  EXPECT_FALSE(SameOrigin(all[0], all[3]));  // another scheme
}

}  // namespace
}  // namespace wsstep::rest

// SameOrigin (engine_internal.h) answers exactly what comparing UrlParts::Origin() does.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "rest/engine_internal.h"

namespace wsstep::rest {
namespace {

UrlParts Parts(std::string scheme, std::string host, uint16_t port, bool ipv6 = false) {
  UrlParts p;
  p.scheme = std::move(scheme);
  p.host = std::move(host);
  p.port = port;
  p.host_is_ip = ipv6;
  p.host_is_ipv6 = ipv6;
  return p;
}

TEST(SameOriginTest, AgreesWithComparingTheOriginText) {
  const std::vector<UrlParts> all = {
      Parts("https", "api.example", 443), Parts("https", "api.example", 8443),
      Parts("http", "api.example", 443),  Parts("https", "other.example", 443),
      Parts("https", "::1", 443, true),   Parts("https", "[::1]", 443),
      Parts("https", "::2", 443, true),   Parts("https", "[::1", 443),
      Parts("https", "127.0.0.1", 443),   Parts("https", "", 443),
  };
  for (const auto& a : all) {
    for (const auto& b : all) {
      EXPECT_EQ(SameOrigin(a, b), a.Origin() == b.Origin()) << a.Origin() << " vs " << b.Origin();
    }
  }
  EXPECT_TRUE(SameOrigin(Parts("https", "api.example", 443), Parts("https", "api.example", 443)));
  EXPECT_FALSE(SameOrigin(Parts("https", "api.example", 443), Parts("https", "api.example", 444)));
}

}  // namespace
}  // namespace wsstep::rest

// What one request sends never reaches the next: a request without header lines of its
// own sends a list shared by every such request (rest/transfer.cc, BareRequestHeaders),
// and requests reuse easy handles and kept-alive connections. The origin sees exactly
// each step's own lines.
#include <gtest/gtest.h>

#include <future>
#include <vector>

#include "rest/engine.h"
#include "rest/rest_test_util.h"

namespace wsstep::rest {
namespace {

using testing::ClientAuth;
using namespace testutil;

TEST(HeaderReuseTest, EachRequestSendsExactlyItsOwnHeaderLines) {
  auto server =
      std::make_unique<testing::TlsServer>(ServerConfig("localhost", ClientAuth::kRequired));
  ASSERT_TRUE(server->Start()) << server->start_error();
  // One event loop: every step borrows the same easy handle and connection in turn.
  EngineOptions options;
  options.workers = 1;
  RestEngine engine(std::move(options));
  const core::CallCredentials creds = Creds("rsa");

  RestStep with_lines = Get(server->BaseUrl() + "/first");
  with_lines.method = "POST";
  with_lines.headers = {{"X-Trace", "abc"}};
  with_lines.auth = BearerAuth{SecretBytes(std::string_view("tok-first"))};
  with_lines.body = "{}";
  with_lines.content_type = "application/json";
  auto first = engine.Execute(std::move(with_lines), creds, Soon());
  ASSERT_TRUE(first.ok()) << first.error().ToString();

  // Bare GETs, one after the other and then several at once (all sending the shared list).
  auto bare = engine.Execute(Get(server->BaseUrl() + "/bare"), creds, Soon());
  ASSERT_TRUE(bare.ok()) << bare.error().ToString();
  EXPECT_TRUE(bare->tls.connection_reused);
  std::vector<std::promise<Result<RestResult>>> done(4);
  for (auto& d : done) {
    engine.Submit(Get(server->BaseUrl() + "/together"), creds, Soon(), CancelToken(),
                  [&d](Result<RestResult> r) { d.set_value(std::move(r)); });
  }
  for (auto& d : done) {
    auto r = d.get_future().get();
    ASSERT_TRUE(r.ok()) << r.error().ToString();
  }

  // A bare POST with a body: the shared list is what keeps libcurl from labelling the
  // body application/x-www-form-urlencoded and from asking for 100-continue (a 2 MiB
  // body would otherwise send Expect).
  RestStep bare_post = Get(server->BaseUrl() + "/bare-post");
  bare_post.method = "POST";
  bare_post.body = std::string(2 << 20, 'b');
  auto posted = engine.Execute(std::move(bare_post), creds, Soon());
  ASSERT_TRUE(posted.ok()) << posted.error().ToString();

  // A step with lines of its own after them sends those, and nothing of the first step's.
  RestStep other = Get(server->BaseUrl() + "/other");
  other.headers = {{"X-Other", "1"}};
  auto last = engine.Execute(std::move(other), creds, Soon());
  ASSERT_TRUE(last.ok()) << last.error().ToString();

  auto recs = server->requests();
  ASSERT_EQ(recs.size(), 8u);
  const auto& sent_first = recs[0].request;
  EXPECT_EQ(sent_first.Header("X-Trace"), "abc");
  EXPECT_EQ(sent_first.Header("Authorization"), "Bearer tok-first");
  EXPECT_EQ(sent_first.Header("Content-Type"), "application/json");
  for (size_t i = 1; i < 6; ++i) {
    const auto& req = recs[i].request;
    EXPECT_EQ(req.method, "GET") << i;
    EXPECT_FALSE(req.HasHeader("X-Trace")) << i;
    EXPECT_FALSE(req.HasHeader("Authorization")) << i;
    EXPECT_FALSE(req.HasHeader("Content-Type")) << i;
    EXPECT_FALSE(req.HasHeader("Expect")) << i;
    EXPECT_FALSE(req.HasHeader("X-Other")) << i;
    EXPECT_EQ(recs[i].client_cert_fingerprint, creds.identity->fingerprint) << i;
  }
  const auto& sent_post = recs[6].request;
  EXPECT_EQ(sent_post.method, "POST");
  EXPECT_EQ(sent_post.body.size(), size_t{2} << 20);
  EXPECT_FALSE(sent_post.HasHeader("Content-Type"));
  EXPECT_FALSE(sent_post.HasHeader("Expect"));
  EXPECT_FALSE(sent_post.HasHeader("X-Trace"));
  EXPECT_EQ(recs[6].client_cert_fingerprint, creds.identity->fingerprint);
  const auto& sent_last = recs[7].request;
  EXPECT_EQ(sent_last.Header("X-Other"), "1");
  EXPECT_FALSE(sent_last.HasHeader("X-Trace"));
  EXPECT_FALSE(sent_last.HasHeader("Authorization"));
  EXPECT_FALSE(sent_last.HasHeader("Content-Type"));
  EXPECT_FALSE(sent_last.HasHeader("Expect"));
}

}  // namespace
}  // namespace wsstep::rest

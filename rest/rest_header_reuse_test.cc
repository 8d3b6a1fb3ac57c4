// What one request sends never reaches the next: a request without header lines of its
// own sends a list shared by every such request, a request with lines of its own sends
// them ahead of the shared lines it does not set itself (rest/transfer.cc,
// curl::HeaderList), and requests reuse easy handles and kept-alive connections. The
// origin sees exactly each step's own lines.
#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <string>
#include <vector>

#include "rest/curl_handles.h"
#include "rest/engine.h"
#include "rest/http_text.h"
#include "rest/rest_test_util.h"

namespace wsstep::rest {
namespace {

using testing::ClientAuth;
using namespace testutil;

// One event loop: every step borrows the same easy handle and connection in turn.
class HeaderReuseTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server->Start()) << server->start_error(); }
  static EngineOptions OneLoop() {
    EngineOptions options;
    options.workers = 1;
    return options;
  }

  std::unique_ptr<testing::TlsServer> server =
      std::make_unique<testing::TlsServer>(ServerConfig("localhost", ClientAuth::kRequired));
  RestEngine engine{OneLoop()};
  const core::CallCredentials creds = Creds("rsa");
};

TEST_F(HeaderReuseTest, EachRequestSendsExactlyItsOwnHeaderLines) {
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

size_t CountHeader(const testing::ServerRequest& req, const std::string& name) {
  return static_cast<size_t>(
      std::count_if(req.headers.begin(), req.headers.end(),
                    [&](const auto& h) { return EqualsIgnoreCase(h.first, name); }));
}

// Each way a request's own lines meet the shared ones: its own Content-Type line (then
// only "Expect:" is appended), the step's content type, or neither (then "Content-Type:"
// too). 2 MiB bodies: libcurl would label each x-www-form-urlencoded and ask for
// 100-continue unless the list says otherwise.
TEST_F(HeaderReuseTest, OwnLinesAreFollowedByTheSharedLinesTheyDoNotSet) {
  auto post = [&](const std::string& path) {
    RestStep step = Get(server->BaseUrl() + path);
    step.method = "POST";
    step.body = std::string(2 << 20, 'p');
    return step;
  };

  RestStep designer_type = post("/designer-type");
  designer_type.headers = {{"X-A", "1"}, {"Content-Type", "text/plain"}, {"X-Empty", ""}};
  designer_type.auth = BearerAuth{SecretBytes(std::string_view("tok-a"))};
  designer_type.content_type = "application/json";  // the designer's line wins
  RestStep step_type = post("/step-type");
  step_type.headers = {{"X-B", "2"}};
  step_type.content_type = "application/xml";
  RestStep no_type = post("/no-type");
  no_type.headers = {{"X-C", "3"}};
  for (RestStep* step : {&designer_type, &step_type, &no_type}) {
    auto r = engine.Execute(std::move(*step), creds, Soon());
    ASSERT_TRUE(r.ok()) << r.error().ToString();
  }

  auto recs = server->requests();
  ASSERT_EQ(recs.size(), 3u);
  for (const auto& rec : recs) {
    EXPECT_EQ(rec.request.body.size(), size_t{2} << 20);
    EXPECT_FALSE(rec.request.HasHeader("Expect")) << rec.request.target;
    EXPECT_EQ(rec.client_cert_fingerprint, creds.identity->fingerprint);
  }
  const auto& a = recs[0].request;
  EXPECT_EQ(a.Header("X-A"), "1");
  EXPECT_TRUE(a.HasHeader("X-Empty"));
  EXPECT_EQ(a.Header("X-Empty"), "");
  EXPECT_EQ(a.Header("Authorization"), "Bearer tok-a");
  EXPECT_EQ(CountHeader(a, "Content-Type"), 1u);
  EXPECT_EQ(a.Header("Content-Type"), "text/plain");
  const auto& b = recs[1].request;
  EXPECT_EQ(b.Header("X-B"), "2");
  EXPECT_EQ(CountHeader(b, "Content-Type"), 1u);
  EXPECT_EQ(b.Header("Content-Type"), "application/xml");
  EXPECT_FALSE(b.HasHeader("X-A"));
  EXPECT_FALSE(b.HasHeader("Authorization"));
  const auto& c = recs[2].request;
  EXPECT_EQ(c.Header("X-C"), "3");
  EXPECT_FALSE(c.HasHeader("Content-Type"));
  EXPECT_FALSE(c.HasHeader("X-B"));
}

std::vector<std::string> Lines(const curl_slist* list) {
  std::vector<std::string> out;
  for (; list != nullptr; list = list->next) out.emplace_back(list->data);
  return out;
}

TEST(HeaderListTest, LinesInOrderThenTheTail) {
  char tail_text[] = "Expect:";
  curl_slist tail{tail_text, nullptr};
  curl::HeaderList empty;
  EXPECT_EQ(empty.Link(&tail), &tail);
  EXPECT_EQ(empty.Link(nullptr), nullptr);

  curl::HeaderList list;
  list.Reserve(3, 20);
  list.Add("X-One", "1");
  list.Add("X-Empty", "");
  // A NUL ends a line where curl_slist_append would have ended it.
  list.Add("X-Cut", std::string_view("ab\0cd", 5));
  EXPECT_EQ(Lines(list.Link(&tail)),
            (std::vector<std::string>{"X-One: 1", "X-Empty;", "X-Cut: ab", "Expect:"}));
  EXPECT_EQ(Lines(list.Link(nullptr)),
            (std::vector<std::string>{"X-One: 1", "X-Empty;", "X-Cut: ab"}));

  // Lines beyond what was reserved (none here) move the text: every line is still whole.
  curl::HeaderList grown;
  std::vector<std::string> expected;
  for (int i = 0; i < 20; ++i) {
    const std::string name = "X-Line-" + std::to_string(i);
    const std::string value(static_cast<size_t>(10 * i + 1), static_cast<char>('a' + i));
    grown.Add(name, value);
    expected.push_back(name + ": " + value);
  }
  expected.push_back("Expect:");
  EXPECT_EQ(Lines(grown.Link(&tail)), expected);
}

}  // namespace
}  // namespace wsstep::rest

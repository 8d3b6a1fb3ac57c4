// Large bodies in chunks on ExecuteSteps (StepCall.response_body_chunks,
// request_body_chunks), end to end: the real binary behind the mock engine, a real nginx
// serving a generated 200 MiB file over mTLS, and in-process mTLS origins that stream a
// huge chunked body or digest what they were sent. The host checks the exact bytes (count
// and SHA-256), the certificate the origin saw, and the plugin's resident memory (VmHWM)
// while hundreds of megabytes go through it; a host that stops reading must hold the origin
// back instead of filling the plugin; failures mid-body and bad chunks from the host get
// errors naming the call, and the stream goes on.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>

#include "tests/e2e/e2e_util.h"
#include "tests/mock_engine/mock_engine.h"
#include "tests/support/nginx.h"
#include "tests/support/pki.h"
#include "tests/support/process.h"
#include "tests/support/tls_server.h"
#include "tests/support/wait.h"

namespace wsstep::e2e {
namespace {

using mock_engine::MockEngine;
using ::testing::HasSubstr;
using testing::NginxConfig;
using testing::NginxServer;
using testing::NginxVerifyClient;
using testing::PkiPath;

constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint64_t kBigBytes = 200 * kMiB;  // the generated file nginx serves
constexpr uint64_t kUploadBytes = 50 * kMiB;
constexpr int64_t kGrowthLimitKib = 64 * 1024;  // what the plugin may grow by
#ifdef WSSTEP_TEST_UNDER_ASAN
// ASan's quarantine keeps freed chunk buffers for a while (256 MiB by default).
constexpr int64_t kSanitizerAllowanceKib = 320 * 1024;
#else
constexpr int64_t kSanitizerAllowanceKib = 0;
#endif

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  void Update(std::string_view bytes) { EVP_DigestUpdate(ctx_, bytes.data(), bytes.size()); }
  std::string Hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_, md, &n);
    std::string hex;
    for (unsigned int i = 0; i < n; ++i) {
      char b[3];
      std::snprintf(b, sizeof b, "%02x", md[i]);
      hex += b;
    }
    return hex;
  }

 private:
  EVP_MD_CTX* ctx_;
};

// Pseudo-random bytes, the same for the same seed: a body whose every byte matters (a
// chunk out of order or repeated changes the digest).
class ByteSource {
 public:
  explicit ByteSource(uint64_t seed) : state_(seed) {}
  std::string Next(size_t n) {
    std::string out(n, '\0');
    for (size_t i = 0; i < n; ++i) {
      state_ ^= state_ << 13;
      state_ ^= state_ >> 7;
      state_ ^= state_ << 17;
      out[i] = static_cast<char>(state_ >> 24);
    }
    return out;
  }

 private:
  uint64_t state_;
};

// Writes `bytes` pseudo-random bytes to `path`; returns their SHA-256.
std::string GenerateFile(const std::string& path, uint64_t bytes) {
  std::ofstream out(path, std::ios::binary);
  ByteSource source(0x5eed);
  Sha256 digest;
  for (uint64_t left = bytes; left > 0;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(left, kMiB));
    const std::string block = source.Next(n);
    out.write(block.data(), static_cast<std::streamsize>(n));
    digest.Update(block);
    left -= n;
  }
  return digest.Hex();
}

std::string HugeBodyDigest(uint64_t bytes) {  // TlsServer's huge bodies are 'x' bytes
  Sha256 digest;
  const std::string block(kMiB, 'x');
  for (uint64_t left = bytes; left > 0;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(left, block.size()));
    digest.Update(std::string_view(block).substr(0, n));
    left -= n;
  }
  return digest.Hex();
}

// What the host received for one call: its chunks checked as they came, and its result.
struct Received {
  uint64_t bytes = 0;
  size_t chunks = 0;
  size_t largest_chunk = 0;
  bool offsets_in_order = true;
  bool last = false;
  bool chunk_after_last = false;
  bool chunk_after_result = false;
  std::optional<v1::HttpResult> head;
  std::optional<v1::StepCallResult> result;
  Sha256 digest;
};

// Takes what one message holds for `calls` (other calls' chunks are counted as strays).
void Take(const v1::ExecuteStepsResponse& message, std::map<uint64_t, Received>& calls) {
  for (const auto& chunk : message.body_chunks()) {
    Received& r = calls[chunk.call_id()];
    if (r.result) r.chunk_after_result = true;
    if (r.last) r.chunk_after_last = true;
    if (chunk.offset() != static_cast<int64_t>(r.bytes)) r.offsets_in_order = false;
    if (chunk.has_head()) r.head = chunk.head();
    r.digest.Update(chunk.data());
    r.bytes += chunk.data().size();
    r.largest_chunk = std::max(r.largest_chunk, chunk.data().size());
    ++r.chunks;
    r.last = r.last || chunk.last();
  }
  for (const auto& result : message.results()) calls[result.call_id()].result = result;
}

// Reads until `id` has its result (or the stream ends).
void ReadUntilResult(mock_engine::StepStream& stream, uint64_t id,
                     std::map<uint64_t, Received>& calls) {
  while (!calls[id].result) {
    auto message = stream.Read();
    if (!message) return;
    Take(*message, calls);
  }
}

class BodyChunksTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir("wsstep-bodies-");
    big_path_ = dir_->Path("big.bin");
    big_digest_ = GenerateFile(big_path_, kBigBytes);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  void SetUp() override {
    NginxConfig config;
    config.verify_client = NginxVerifyClient::kOn;
    config.extra_server_directives = "location = /big.bin { alias " + big_path_ + "; }\n";
    nginx_ = std::make_unique<NginxServer>(config);
    ASSERT_TRUE(nginx_->Start()) << nginx_->start_error();
    origin_ = std::make_unique<testing::TlsServer>(
        MtlsOriginConfig([](const testing::ServerRequest& req) {
          testing::ServerResponse r;
          if (req.target == "/huge" || req.target == "/4mib") {
            r.huge_body_bytes = req.target == "/huge" ? kBigBytes : 4 * kMiB;
            r.chunked = true;  // no Content-Length: the client must count
          } else if (req.target == "/upload") {
            Sha256 digest;
            digest.Update(req.body);
            r.body = "sha256=" + digest.Hex() + " bytes=" + std::to_string(req.body.size());
          } else {
            r.body = "small " + req.target;
          }
          return r;
        }));
    ASSERT_TRUE(origin_->Start()) << origin_->start_error();
    std::vector<std::pair<std::string, std::string>> env = {{"WSSTEP_LOG_LEVEL", "info"}};
    env.insert(env.end(), extra_env_.begin(), extra_env_.end());
    ASSERT_TRUE(engine_.Start(env)) << engine_.start_error();
    const std::vector<mock_engine::Bind> binds = {{"localhost", nginx_->port(), ""},
                                                  {"localhost", origin_->port(), ""}};
    auto trust =
        engine_.Create(mock_engine::TrustStoreFromFile("trust", "trust/bundle.pem", binds));
    ASSERT_TRUE(trust.ok()) << trust.status.error_message();
    auto id = engine_.Create(
        mock_engine::KeyPairFromFiles("id", "client/rsa.pem", "client/rsa.key.pem", binds));
    ASSERT_TRUE(id.ok()) << id.status.error_message();
    identity_ = id.response.certificate();
    fingerprint_ = testing::Sha256FingerprintOfPemFile(PkiPath("client/rsa.pem"));
  }
  void TearDown() override {
    EXPECT_EQ(engine_.Stop(), 0);
    origin_->Stop();
    nginx_->Stop();
  }

  std::string NginxUrl(const std::string& path) const { return nginx_->base_url() + path; }
  std::string OriginUrl(const std::string& path) const {
    return "https://localhost:" + std::to_string(origin_->port()) + path;
  }
  static v1::StepCall ChunkedGet(uint64_t id, const std::string& url) {
    v1::StepCall c;
    c.set_call_id(id);
    c.set_step_id("bodies-" + std::to_string(id));
    *c.mutable_rest()->mutable_step() = mock_engine::GetStep(url);
    c.set_response_body_chunks(true);
    return c;
  }
  static v1::StepCall Upload(uint64_t id, const std::string& url, int64_t declared) {
    v1::StepCall c;
    c.set_call_id(id);
    v1::RestStep* step = c.mutable_rest()->mutable_step();
    *step = mock_engine::GetStep(url);
    step->set_method("POST");
    step->set_content_type("application/octet-stream");
    c.set_request_body_chunks(true);
    c.set_request_body_bytes(declared);
    return c;
  }
  static bool Send(mock_engine::StepStream& stream, const v1::StepCall& call) {
    v1::ExecuteStepsRequest request;
    *request.add_calls() = call;
    return stream.Send(request);
  }
  int64_t PluginHwmKib() { return VmHwmKib(engine_.process().pid()).value_or(-1); }
  // A first step through the same path, so that what every step needs once (the engine's
  // loops, the partition, TLS) is in the baseline.
  void WarmUp() {
    auto warm = engine_.Rest(mock_engine::GetStep(NginxUrl("/echo")));
    ASSERT_TRUE(warm.ok()) << warm.status.error_message();
    ASSERT_TRUE(warm.response.outcome().has_http()) << warm.response.outcome().error().message();
  }

  static testing::TempDir* dir_;
  static std::string big_path_;
  static std::string big_digest_;
  std::unique_ptr<NginxServer> nginx_;
  std::unique_ptr<testing::TlsServer> origin_;
  MockEngine engine_;
  v1::Certificate identity_;
  std::string fingerprint_;
  std::vector<std::pair<std::string, std::string>> extra_env_;  // set by a derived fixture
};

// The plugin's gRPC messages at their smallest (64 KiB): chunks must shrink to fit.
class BodyChunksSmallMessagesTest : public BodyChunksTest {
 protected:
  BodyChunksSmallMessagesTest() {
    extra_env_ = {{"WSSTEP_MAX_MESSAGE_BYTES", "65536"}, {"WSSTEP_MAX_BODY_BYTES", "32768"}};
  }
};

testing::TempDir* BodyChunksTest::dir_ = nullptr;
std::string BodyChunksTest::big_path_;
std::string BodyChunksTest::big_digest_;

TEST_F(BodyChunksTest, A200MiBResponseComesInChunksWithItsExactBytesAndBoundedPluginMemory) {
  WarmUp();
  const int64_t hwm_before = PluginHwmKib();
  auto stream = engine_.OpenSteps(Opts("stream", std::chrono::seconds(120)));
  ASSERT_TRUE(Send(*stream, ChunkedGet(1, NginxUrl("/big.bin"))));
  std::map<uint64_t, Received> calls;
  ReadUntilResult(*stream, 1, calls);
  stream->CloseSend();
  EXPECT_FALSE(stream->Read().has_value());
  EXPECT_TRUE(stream->Finish().ok());
  const int64_t hwm_after = PluginHwmKib();

  Received& r = calls[1];
  ASSERT_TRUE(r.result.has_value());
  ASSERT_EQ(r.result->code(), 0) << r.result->message();
  const v1::StepOutcome& outcome = r.result->rest().outcome();
  ASSERT_TRUE(outcome.has_http()) << outcome.error().code() << ": " << outcome.error().message();
  EXPECT_EQ(outcome.http().status(), 200);
  EXPECT_TRUE(outcome.http().body_chunked());
  EXPECT_EQ(outcome.http().body_bytes(), static_cast<int64_t>(kBigBytes));
  EXPECT_TRUE(outcome.http().body().empty());
  EXPECT_EQ(outcome.tls().client_certificate().certificate_id(), identity_.id());
  // The bytes, exactly: count, order and content.
  EXPECT_EQ(r.bytes, kBigBytes);
  EXPECT_EQ(r.digest.Hex(), big_digest_);
  EXPECT_TRUE(r.offsets_in_order);
  EXPECT_TRUE(r.last);
  EXPECT_FALSE(r.chunk_after_last);
  EXPECT_FALSE(r.chunk_after_result);
  EXPECT_LE(r.largest_chunk, 256 * 1024u);
  ASSERT_TRUE(r.head.has_value());
  EXPECT_EQ(r.head->status(), 200);
  EXPECT_TRUE(r.head->body().empty());
  // nginx required and saw the bound client certificate.
  auto log = nginx_->AccessLog(2);
  ASSERT_GE(log.size(), 2u);
  EXPECT_EQ(log.back().uri, "/big.bin");
  EXPECT_EQ(log.back().status, 200);
  EXPECT_EQ(log.back().client_fingerprint, fingerprint_);
  // The step's log line gives the size that went through.
  EXPECT_THAT(FinishedLineOf(engine_, "bodies-1"), HasSubstr(std::to_string(kBigBytes)));
  const int64_t growth = hwm_after - hwm_before;
  std::cout << "[figures] 200 MiB response in " << r.chunks << " chunks: plugin VmHWM "
            << hwm_before << " KiB before, " << hwm_after << " KiB after, growth " << growth
            << " KiB (limit " << kGrowthLimitKib + kSanitizerAllowanceKib << " KiB)\n";
  EXPECT_LT(growth, kGrowthLimitKib + kSanitizerAllowanceKib);
}

TEST_F(BodyChunksTest, OverHttp2TheBodyComesInChunksTooAndPausesOnlyItsOwnStream) {
  // An h2 origin: a paused transfer is one stream of a connection other steps share.
  NginxConfig config;
  config.verify_client = NginxVerifyClient::kOn;
  config.http2 = true;
  config.extra_server_directives = "location = /big.bin { alias " + big_path_ + "; }\n";
  NginxServer h2(config);
  ASSERT_TRUE(h2.Start()) << h2.start_error();
  const std::vector<mock_engine::Bind> binds = {{"localhost", h2.port(), "h2"}};
  ASSERT_TRUE(
      engine_.Create(mock_engine::TrustStoreFromFile("trust-h2", "trust/bundle.pem", binds)).ok());
  ASSERT_TRUE(engine_
                  .Create(mock_engine::KeyPairFromFiles("id-h2", "client/rsa.pem",
                                                        "client/rsa.key.pem", binds))
                  .ok());
  auto stream = engine_.OpenSteps(Opts("stream", std::chrono::seconds(120)));
  v1::StepCall big = ChunkedGet(1, h2.base_url() + "/big.bin");
  big.mutable_rest()->set_environment("h2");
  v1::StepCall small = ChunkedGet(2, h2.base_url() + "/echo");
  small.mutable_rest()->set_environment("h2");
  v1::ExecuteStepsRequest request;
  *request.add_calls() = big;
  *request.add_calls() = small;
  ASSERT_TRUE(stream->Send(request));
  std::map<uint64_t, Received> calls;
  ReadUntilResult(*stream, 1, calls);
  ReadUntilResult(*stream, 2, calls);
  stream->CloseSend();
  EXPECT_FALSE(stream->Read().has_value());
  EXPECT_TRUE(stream->Finish().ok());
  Received& r = calls[1];
  ASSERT_TRUE(r.result.has_value());
  const v1::StepOutcome& outcome = r.result->rest().outcome();
  ASSERT_TRUE(outcome.has_http()) << outcome.error().code() << ": " << outcome.error().message();
  EXPECT_EQ(outcome.tls().http_version(), "HTTP/2");
  EXPECT_EQ(r.bytes, kBigBytes);
  EXPECT_EQ(r.digest.Hex(), big_digest_);
  EXPECT_TRUE(r.offsets_in_order);
  EXPECT_TRUE(r.last);
  ASSERT_TRUE(calls[2].result.has_value());
  EXPECT_EQ(calls[2].result->rest().outcome().http().status(), 200);
  EXPECT_TRUE(calls[2].last);
}

TEST_F(BodyChunksTest, AHostThatStopsReadingHoldsTheOriginBackAndLosesNothing) {
  WarmUp();
  const int64_t hwm_before = PluginHwmKib();
  auto stream = engine_.OpenSteps(Opts("stream", std::chrono::seconds(120)));
  v1::StepCall call = ChunkedGet(1, OriginUrl("/huge"));
  call.set_chunk_bytes(64 * 1024);
  ASSERT_TRUE(Send(*stream, call));
  std::map<uint64_t, Received> calls;
  // The first chunk, then the host reads nothing: the origin must come to a halt well
  // before the end of its body (the plugin pauses the transfer; TCP does the rest).
  while (calls[1].chunks == 0 && !calls[1].result) {
    auto message = stream->Read();
    ASSERT_TRUE(message.has_value());
    Take(*message, calls);
  }
  uint64_t seen = 0;
  int unchanged = 0;
  ASSERT_TRUE(testing::WaitUntil("the origin stops sending while the host reads nothing", [&] {
    const uint64_t now = origin_->huge_body_bytes_sent();
    unchanged = now == seen ? unchanged + 1 : 0;
    seen = now;
    return unchanged >= 25 || now >= kBigBytes;
  }));
  const int64_t hwm_paused = PluginHwmKib();
  std::cout << "[figures] host not reading: the origin got " << seen / 1024 << " KiB out of "
            << kBigBytes / 1024 << " KiB; plugin VmHWM growth " << hwm_paused - hwm_before
            << " KiB\n";
  EXPECT_LT(seen, 64 * kMiB) << "the plugin kept taking the body while the host read nothing";
  EXPECT_LT(hwm_paused - hwm_before, kGrowthLimitKib + kSanitizerAllowanceKib);
  // The host reads again: everything comes, in order.
  ReadUntilResult(*stream, 1, calls);
  Received& r = calls[1];
  ASSERT_TRUE(r.result.has_value());
  ASSERT_TRUE(r.result->rest().outcome().has_http())
      << r.result->rest().outcome().error().message();
  EXPECT_EQ(r.bytes, kBigBytes);
  EXPECT_EQ(r.digest.Hex(), HugeBodyDigest(kBigBytes));
  EXPECT_TRUE(r.offsets_in_order);
  EXPECT_TRUE(r.last);
  EXPECT_LE(r.largest_chunk, 64 * 1024u);
  EXPECT_EQ(r.result->rest().outcome().http().body_bytes(), static_cast<int64_t>(kBigBytes));
  EXPECT_LT(PluginHwmKib() - hwm_before, kGrowthLimitKib + kSanitizerAllowanceKib);
  stream->CloseSend();
  EXPECT_FALSE(stream->Read().has_value());
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(BodyChunksTest, MaxResponseBytesExceededMidBodyIsResponseTooLargeAndNothingMoreComes) {
  auto stream = engine_.OpenSteps();
  v1::StepCall call = ChunkedGet(1, OriginUrl("/huge"));
  call.mutable_rest()->mutable_step()->set_max_response_bytes(3 * kMiB);
  call.set_chunk_bytes(64 * 1024);
  ASSERT_TRUE(Send(*stream, call));
  std::map<uint64_t, Received> calls;
  ReadUntilResult(*stream, 1, calls);
  // The stream goes on: another call after it, and nothing more of call 1 meanwhile.
  ASSERT_TRUE(Send(*stream, ChunkedGet(2, OriginUrl("/small"))));
  ReadUntilResult(*stream, 2, calls);
  stream->CloseSend();
  while (auto message = stream->Read()) Take(*message, calls);
  EXPECT_TRUE(stream->Finish().ok());

  Received& r = calls[1];
  ASSERT_TRUE(r.result.has_value());
  EXPECT_EQ(r.result->code(), 0) << r.result->message();
  const v1::StepOutcome& outcome = r.result->rest().outcome();
  ASSERT_TRUE(outcome.has_error());
  EXPECT_EQ(outcome.error().error_code(), v1::ERROR_CODE_RESPONSE_TOO_LARGE);
  EXPECT_THAT(outcome.error().message(), HasSubstr("3145728"));
  EXPECT_LE(r.bytes, 3 * kMiB);
  EXPECT_FALSE(r.last) << "a body cut short never gets its last chunk";
  EXPECT_FALSE(r.chunk_after_result);
  EXPECT_TRUE(r.offsets_in_order);
  ASSERT_TRUE(calls[2].result.has_value());
  EXPECT_TRUE(calls[2].result->rest().outcome().has_http());
}

TEST_F(BodyChunksTest, A50MiBUploadInChunksReachesTheOriginExactlyWithTheBoundCertificate) {
  WarmUp();
  const int64_t hwm_before = PluginHwmKib();
  auto stream = engine_.OpenSteps(Opts("stream", std::chrono::seconds(120)));
  // Call 1: length unknown (Transfer-Encoding: chunked); call 2: declared (Content-Length).
  ASSERT_TRUE(Send(*stream, Upload(1, OriginUrl("/upload"), 0)));
  ByteSource source(42);
  Sha256 sent;
  constexpr size_t kChunk = 256 * 1024;
  for (uint64_t offset = 0; offset < kUploadBytes; offset += kChunk) {
    v1::ExecuteStepsRequest request;
    v1::BodyChunk* chunk = request.add_body_chunks();
    chunk->set_call_id(1);
    chunk->set_offset(static_cast<int64_t>(offset));
    chunk->set_data(source.Next(kChunk));
    chunk->set_last(offset + kChunk >= kUploadBytes);
    sent.Update(chunk->data());
    ASSERT_TRUE(stream->Send(request));
  }
  const std::string declared_body = source.Next(5 * kMiB + 3);
  v1::ExecuteStepsRequest second;
  *second.add_calls() = Upload(2, OriginUrl("/upload"), static_cast<int64_t>(declared_body.size()));
  v1::BodyChunk* a = second.add_body_chunks();
  a->set_call_id(2);
  a->set_data(declared_body.substr(0, 3 * kMiB));
  v1::BodyChunk* b = second.add_body_chunks();
  b->set_call_id(2);
  b->set_offset(3 * kMiB);
  b->set_data(declared_body.substr(3 * kMiB));
  b->set_last(true);
  ASSERT_TRUE(stream->Send(second));
  std::map<uint64_t, Received> calls;
  ReadUntilResult(*stream, 1, calls);
  ReadUntilResult(*stream, 2, calls);
  stream->CloseSend();
  EXPECT_FALSE(stream->Read().has_value());
  EXPECT_TRUE(stream->Finish().ok());
  const int64_t hwm_after = PluginHwmKib();

  Sha256 declared_digest;
  declared_digest.Update(declared_body);
  const std::map<uint64_t, std::string> expected = {
      {1, "sha256=" + sent.Hex() + " bytes=" + std::to_string(kUploadBytes)},
      {2, "sha256=" + declared_digest.Hex() + " bytes=" + std::to_string(declared_body.size())}};
  for (const auto& [id, body] : expected) {
    SCOPED_TRACE(id);
    ASSERT_TRUE(calls[id].result.has_value());
    ASSERT_EQ(calls[id].result->code(), 0) << calls[id].result->message();
    const v1::StepOutcome& outcome = calls[id].result->rest().outcome();
    ASSERT_TRUE(outcome.has_http()) << outcome.error().message();
    EXPECT_EQ(outcome.http().status(), 200);
    EXPECT_EQ(outcome.http().body(), body) << "the origin got other bytes than the host sent";
    EXPECT_EQ(outcome.tls().client_certificate().certificate_id(), identity_.id());
  }
  // What the origin saw: the bound certificate, and each framing.
  std::map<std::string, const testing::RequestRecord*> by_framing;
  const auto requests = origin_->requests();
  for (const auto& rec : requests) {
    if (rec.request.target != "/upload") continue;
    EXPECT_EQ(rec.client_cert_fingerprint, fingerprint_);
    by_framing[rec.request.HasHeader("Content-Length") ? "length" : "chunked"] = &rec;
  }
  ASSERT_EQ(by_framing.size(), 2u);
  EXPECT_EQ(by_framing["chunked"]->request.Header("Transfer-Encoding"), "chunked");
  EXPECT_EQ(by_framing["length"]->request.Header("Content-Length"),
            std::to_string(declared_body.size()));
  std::cout << "[figures] 50 MiB upload in chunks: plugin VmHWM growth " << hwm_after - hwm_before
            << " KiB\n";
  EXPECT_LT(hwm_after - hwm_before, kGrowthLimitKib + kSanitizerAllowanceKib);
}

TEST_F(BodyChunksTest, BadBodyChunksGetAnErrorNamingTheCallAndTheStreamGoesOn) {
  auto stream = engine_.OpenSteps();
  std::map<uint64_t, Received> calls;
  auto expect_refused = [&](uint64_t id, grpc::StatusCode code, const std::string& why) {
    ReadUntilResult(*stream, id, calls);
    ASSERT_TRUE(calls[id].result.has_value()) << id;
    EXPECT_EQ(calls[id].result->code(), static_cast<int>(code)) << calls[id].result->message();
    EXPECT_THAT(calls[id].result->message(), HasSubstr("call " + std::to_string(id)));
    EXPECT_THAT(calls[id].result->message(), HasSubstr(why));
  };
  // A chunk for a call that does not exist.
  v1::ExecuteStepsRequest stray;
  v1::BodyChunk* chunk = stray.add_body_chunks();
  chunk->set_call_id(99);
  chunk->set_data("zz");
  ASSERT_TRUE(stream->Send(stray));
  expect_refused(99, grpc::StatusCode::INVALID_ARGUMENT, "not a running call");
  // More bytes than declared.
  v1::ExecuteStepsRequest more;
  *more.add_calls() = Upload(2, OriginUrl("/upload"), 10);
  chunk = more.add_body_chunks();
  chunk->set_call_id(2);
  chunk->set_data("0123456789X");
  ASSERT_TRUE(stream->Send(more));
  expect_refused(2, grpc::StatusCode::INVALID_ARGUMENT, "more body bytes than request_body_bytes");
  // A chunk after the last one.
  v1::ExecuteStepsRequest after;
  *after.add_calls() = Upload(3, OriginUrl("/upload"), 0);
  chunk = after.add_body_chunks();
  chunk->set_call_id(3);
  chunk->set_data("abc");
  chunk->set_last(true);
  chunk = after.add_body_chunks();
  chunk->set_call_id(3);
  chunk->set_data("def");
  ASSERT_TRUE(stream->Send(after));
  expect_refused(3, grpc::StatusCode::INVALID_ARGUMENT, "after the one with `last`");
  // A body that never ends before the call's deadline.
  v1::ExecuteStepsRequest unfinished;
  v1::StepCall* call = unfinished.add_calls();
  *call = Upload(4, OriginUrl("/upload"), 0);
  call->mutable_timeout()->set_seconds(1);
  chunk = unfinished.add_body_chunks();
  chunk->set_call_id(4);
  chunk->set_data("partial");
  ASSERT_TRUE(stream->Send(unfinished));
  expect_refused(4, grpc::StatusCode::DEADLINE_EXCEEDED, "did not end");
  // Chunk options a call cannot have.
  v1::StepCall soap;
  soap.set_call_id(5);
  soap.mutable_soap()->mutable_step()->set_endpoint(OriginUrl("/soap"));
  soap.mutable_soap()->mutable_step()->set_raw_body("<x/>");
  soap.set_response_body_chunks(true);
  ASSERT_TRUE(Send(*stream, soap));
  expect_refused(5, grpc::StatusCode::INVALID_ARGUMENT, "response_body_chunks is for REST calls");
  v1::StepCall tiny = ChunkedGet(6, OriginUrl("/small"));
  tiny.set_chunk_bytes(10);
  ASSERT_TRUE(Send(*stream, tiny));
  expect_refused(6, grpc::StatusCode::INVALID_ARGUMENT, "chunk_bytes");
  v1::StepCall both = Upload(7, OriginUrl("/upload"), 0);
  both.mutable_rest()->mutable_step()->set_body("inline");
  ASSERT_TRUE(Send(*stream, both));
  expect_refused(7, grpc::StatusCode::INVALID_ARGUMENT, "the step's body must be empty");
  // Nothing else changed: a good upload and a plain call on the same stream.
  v1::ExecuteStepsRequest good;
  *good.add_calls() = Upload(8, OriginUrl("/upload"), 0);
  chunk = good.add_body_chunks();
  chunk->set_call_id(8);
  chunk->set_data("hello");
  chunk->set_last(true);
  ASSERT_TRUE(stream->Send(good));
  ASSERT_TRUE(Send(*stream, ChunkedGet(9, OriginUrl("/small"))));
  ReadUntilResult(*stream, 8, calls);
  ReadUntilResult(*stream, 9, calls);
  stream->CloseSend();
  EXPECT_FALSE(stream->Read().has_value());
  EXPECT_TRUE(stream->Finish().ok());
  Sha256 hello;
  hello.Update("hello");
  ASSERT_TRUE(calls[8].result.has_value());
  EXPECT_EQ(calls[8].result->rest().outcome().http().body(), "sha256=" + hello.Hex() + " bytes=5");
  ASSERT_TRUE(calls[9].result.has_value());
  // A small 2xx body comes as one last chunk.
  EXPECT_EQ(calls[9].result->rest().outcome().http().status(), 200);
  EXPECT_TRUE(calls[9].result->rest().outcome().http().body_chunked());
  EXPECT_EQ(calls[9].bytes, std::string("small /small").size());
  EXPECT_TRUE(calls[9].last);
}

TEST_F(BodyChunksTest, CancellingMidBodyStopsTheTransferAndTheStreamGoesOn) {
  std::map<uint64_t, Received> calls;
  {
    auto stream = engine_.OpenSteps();
    ASSERT_TRUE(Send(*stream, ChunkedGet(1, OriginUrl("/huge"))));
    while (calls[1].chunks == 0 && !calls[1].result) {
      auto message = stream->Read();
      ASSERT_TRUE(message.has_value());
      Take(*message, calls);
    }
    v1::ExecuteStepsRequest cancel;
    cancel.add_cancel_call_ids(1);
    ASSERT_TRUE(stream->Send(cancel));
    ReadUntilResult(*stream, 1, calls);
    ASSERT_TRUE(calls[1].result.has_value());
    const v1::StepOutcome& outcome = calls[1].result->rest().outcome();
    ASSERT_TRUE(outcome.has_error());
    EXPECT_EQ(outcome.error().error_code(), v1::ERROR_CODE_CANCELLED);
    EXPECT_FALSE(calls[1].last);
    EXPECT_LT(calls[1].bytes, kBigBytes);
    // The transfer stopped: its connection to the origin is gone.
    EXPECT_TRUE(origin_->WaitForOpenConnectionsAtMost(0));
    ASSERT_TRUE(Send(*stream, ChunkedGet(2, OriginUrl("/small"))));
    ReadUntilResult(*stream, 2, calls);
    ASSERT_TRUE(calls[2].result.has_value());
    EXPECT_TRUE(calls[2].result->rest().outcome().has_http());
    stream->CloseSend();
    while (auto message = stream->Read()) Take(*message, calls);
    EXPECT_TRUE(stream->Finish().ok());
  }
  // The host cancels the whole stream mid-body: the transfer stops too.
  calls.clear();
  auto stream = engine_.OpenSteps();
  ASSERT_TRUE(Send(*stream, ChunkedGet(3, OriginUrl("/huge"))));
  while (calls[3].chunks == 0) {
    auto message = stream->Read();
    ASSERT_TRUE(message.has_value());
    Take(*message, calls);
  }
  stream->Cancel();
  while (stream->Read()) {
  }
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(origin_->WaitForOpenConnectionsAtMost(0));
  auto after = engine_.Rest(mock_engine::GetStep(OriginUrl("/small")));
  ASSERT_TRUE(after.ok()) << after.status.error_message();
  EXPECT_EQ(after.response.outcome().http().body(), "small /small");
}

TEST_F(BodyChunksTest, AUnaryCallWithABodyLargerThanItsLimitIsTooLargeAndSaysToAskForChunks) {
  auto info = engine_.Info();
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(engine_.Has("body-chunks"));
  EXPECT_EQ(info.response.limits().max_chunked_body_bytes(), int64_t{4} << 30);
  auto reply = engine_.Rest(mock_engine::GetStep(NginxUrl("/big.bin")));
  ASSERT_TRUE(reply.ok()) << reply.status.error_message();
  const v1::StepOutcome& outcome = reply.response.outcome();
  ASSERT_TRUE(outcome.has_error());
  EXPECT_EQ(outcome.error().error_code(), v1::ERROR_CODE_RESPONSE_TOO_LARGE);
  EXPECT_THAT(outcome.error().message(), HasSubstr("ExecuteSteps"));
  EXPECT_THAT(outcome.error().message(), HasSubstr("response_body_chunks"));
  EXPECT_THAT(outcome.error().message(),
              HasSubstr(std::to_string(info.response.limits().max_body_bytes())));
}

}  // namespace
}  // namespace wsstep::e2e

namespace wsstep::e2e {
namespace {

TEST_F(BodyChunksSmallMessagesTest, ChunksShrinkToFitTheMessageLimit) {
  auto stream = engine_.OpenSteps();
  ASSERT_TRUE(Send(*stream, ChunkedGet(1, OriginUrl("/4mib"))));  // asks for 256 KiB chunks
  std::map<uint64_t, Received> calls;
  ReadUntilResult(*stream, 1, calls);
  stream->CloseSend();
  EXPECT_FALSE(stream->Read().has_value());
  EXPECT_TRUE(stream->Finish().ok());
  Received& r = calls[1];
  ASSERT_TRUE(r.result.has_value());
  ASSERT_TRUE(r.result->rest().outcome().has_http())
      << r.result->rest().outcome().error().message();
  EXPECT_EQ(r.bytes, 4 * kMiB);
  EXPECT_EQ(r.digest.Hex(), HugeBodyDigest(4 * kMiB));
  EXPECT_TRUE(r.last);
  EXPECT_LE(r.largest_chunk, 16 * 1024u);
}

}  // namespace
}  // namespace wsstep::e2e

namespace wsstep::e2e {
namespace {

std::string FileDigest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  Sha256 digest;
  std::string block(kMiB, '\0');
  while (in.read(block.data(), static_cast<std::streamsize>(block.size())) || in.gcount() > 0) {
    digest.Update(std::string_view(block.data(), static_cast<size_t>(in.gcount())));
  }
  return digest.Hex();
}

// `wsstep call rest --output FILE` streams the body into FILE over ExecuteSteps in chunks:
// a body larger than a gRPC message (24 MiB against the 16 MiB limit) arrives whole and
// exact, with the bound certificate at nginx; the unary call refuses it; an error page
// still lands in the file whole; nothing is left behind as FILE.part.
TEST(BodyChunksCliTest, CallRestOutputStreamsABodyLargerThanAMessageIntoTheFile) {
  testing::TempDir work("wsstep-bodies-cli-");
  const std::string big = work.Path("big.bin");
  const std::string big_digest = GenerateFile(big, 24 * kMiB);
  NginxConfig config;
  config.verify_client = NginxVerifyClient::kOn;
  config.extra_server_directives = "location = /big.bin { alias " + big + "; }\n";
  NginxServer nginx(config);
  ASSERT_TRUE(nginx.Start()) << nginx.start_error();

  testing::ChildProcess server;
  const std::string socket = StartServeWithRsaIdentity(server, work, nginx.port());
  ASSERT_FALSE(socket.empty());
  auto wsstep = [&](const std::vector<std::string>& args) { return RunCli(socket, args); };
  const std::string url = nginx.base_url() + "/big.bin";

  auto whole = wsstep({"call", "rest", "--url", url});
  EXPECT_EQ(whole.exit_code, 1) << whole.output.substr(0, 2000);
  EXPECT_THAT(whole.output, HasSubstr("RESPONSE_TOO_LARGE"));

  nginx.ClearAccessLog();
  const std::string out = work.Path("statement.bin");
  auto streamed = wsstep({"call", "rest", "--url", url, "--output", out});
  ASSERT_EQ(streamed.exit_code, 0) << streamed.output.substr(0, 2000);
  EXPECT_THAT(streamed.output, HasSubstr("HTTP 200\n"));
  EXPECT_THAT(streamed.output,
              HasSubstr("wrote " + std::to_string(24 * kMiB) + " bytes to " + out + "\n"));
  EXPECT_EQ(FileDigest(out), big_digest);
  EXPECT_FALSE(std::filesystem::exists(out + ".part"));
  auto log = nginx.AccessLog(1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].client_fingerprint,
            testing::Sha256FingerprintOfPemFile(PkiPath("client/rsa.pem")));

  // An error page is no chunked body: it comes whole and is written as the unary call does.
  const std::string page = work.Path("page.html");
  auto missing = wsstep({"call", "rest", "--url", nginx.base_url() + "/nothing", "-o", page});
  EXPECT_EQ(missing.exit_code, 0) << missing.output;
  EXPECT_THAT(missing.output, HasSubstr("HTTP 404\n"));
  EXPECT_EQ(testing::ReadFile(page), "not found\n");  // the test nginx's 404 page
  EXPECT_FALSE(std::filesystem::exists(page + ".part"));
  server.Stop(SIGTERM, std::chrono::seconds(20));
}

}  // namespace
}  // namespace wsstep::e2e

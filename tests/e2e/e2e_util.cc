#include "tests/e2e/e2e_util.h"
#include "tests/support/wait.h"

#include <sys/stat.h>

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "core/ossl.h"
#include "tests/support/pki.h"
#include "tests/support/wait.h"

namespace wsstep::e2e {

struct ConcurrentRestCalls::Call {
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::ExecuteRestStepResponse>> reader;
  CallResult result;
};

ConcurrentRestCalls::ConcurrentRestCalls(std::shared_ptr<grpc::Channel> channel)
    : stub_(v1::StepPluginService::NewStub(std::move(channel))),
      drainer_([this] { Drain(); }) {}

ConcurrentRestCalls::~ConcurrentRestCalls() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& c : calls_) {
      if (!c->result.done) c->ctx.TryCancel();
    }
  }
  // Cancelled calls complete promptly; the bound keeps a broken channel from hanging.
  (void)WaitAll(std::chrono::seconds(30));
  cq_.Shutdown();
  drainer_.join();
}

size_t ConcurrentRestCalls::Start(const v1::ExecuteRestStepRequest& request,
                                  const std::string& step_id,
                                  std::chrono::milliseconds deadline) {
  std::lock_guard<std::mutex> lock(mu_);
  auto call = std::make_unique<Call>();
  call->ctx.set_deadline(std::chrono::system_clock::now() + deadline);
  call->ctx.AddMetadata("x-wsstep-step-id", step_id);
  call->ctx.AddMetadata("x-wsstep-workflow-id", "wf-e2e");
  call->result.started = Clock::now();
  call->reader = stub_->PrepareAsyncExecuteRestStep(&call->ctx, request, &cq_);
  call->reader->StartCall();
  call->reader->Finish(&call->result.response, &call->result.status, call.get());
  calls_.push_back(std::move(call));
  return calls_.size() - 1;
}

void ConcurrentRestCalls::Cancel(size_t index) {
  std::lock_guard<std::mutex> lock(mu_);
  calls_.at(index)->ctx.TryCancel();
}

void ConcurrentRestCalls::Drain() {
  void* tag = nullptr;
  bool ok = false;
  while (cq_.Next(&tag, &ok)) {
    std::lock_guard<std::mutex> lock(mu_);
    auto* call = static_cast<Call*>(tag);
    call->result.finished = Clock::now();
    call->result.done = true;
    ++finished_;
    cv_.notify_all();
  }
}

bool ConcurrentRestCalls::WaitFinished(size_t count, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return finished_ >= count; });
}

size_t ConcurrentRestCalls::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return calls_.size();
}

size_t ConcurrentRestCalls::finished() const {
  std::lock_guard<std::mutex> lock(mu_);
  return finished_;
}

CallResult ConcurrentRestCalls::result(size_t index) const {
  std::lock_guard<std::mutex> lock(mu_);
  return calls_.at(index)->result;
}

namespace {

std::optional<int64_t> ProcStatusKib(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      std::istringstream fields(line.substr(key.size() + 1));
      int64_t kib = 0;
      if (fields >> kib) return kib;
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<int64_t> VmRssKib(pid_t pid) { return ProcStatusKib(pid, "VmRSS"); }
std::optional<int64_t> VmHwmKib(pid_t pid) { return ProcStatusKib(pid, "VmHWM"); }

std::function<testing::ServerResponse(const testing::ServerRequest&)> Gate::Handler() {
  return [this](const testing::ServerRequest& request) {
    ++arrived_;
    {
      std::unique_lock<std::mutex> lock(mu_);
      ++waiting_;
      cv_.notify_all();
      // Bounded: a forgotten gate must not hang the server's Stop() for long.
      cv_.wait_for(lock, std::chrono::seconds(50), [this] { return open_; });
      --waiting_;
    }
    testing::ServerResponse r;
    r.body = "released " + request.target;
    return r;
  };
}

void Gate::Open() {
  std::lock_guard<std::mutex> lock(mu_);
  open_ = true;
  cv_.notify_all();
}

bool Gate::WaitForWaiting(int n, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return waiting_.load() >= n; });
}

testing::TlsServerConfig MtlsOriginConfig(
    std::function<testing::ServerResponse(const testing::ServerRequest&)> handler) {
  testing::TlsServerConfig config;
  config.cert_file = testing::PkiPath("server/localhost.chain.pem");
  config.key_file = testing::PkiPath("server/localhost.key.pem");
  config.client_auth = testing::ClientAuth::kRequired;
  config.client_ca_file = testing::PkiPath("trust/bundle.pem");
  config.handler = std::move(handler);
  return config;
}

v1::Certificate ImportRsaIdentity(mock_engine::MockEngine& engine, uint32_t port) {
  auto trust = engine.Create(mock_engine::TrustStoreFromFile("trust", "trust/bundle.pem", {{"localhost", port, ""}}));
  EXPECT_TRUE(trust.ok()) << "trust: " << trust.status.error_message();
  auto id = engine.Create(mock_engine::KeyPairFromFiles("id", "client/rsa.pem", "client/rsa.key.pem",
                                                        {{"localhost", port, ""}}));
  EXPECT_TRUE(id.ok()) << "id: " << id.status.error_message();
  return id.response.certificate();
}

std::string NestedXml(const std::string& tag, int depth) {
  std::string xml;
  for (int i = 0; i < depth; ++i) xml += "<" + tag + ">";
  xml += "x";
  for (int i = 0; i < depth; ++i) xml += "</" + tag + ">";
  return xml;
}

mock_engine::Secret KeyNumberSecret(const std::string& pki_rel) {
  return KeyNumberSecretFromPem("private key number of " + pki_rel,
                                testing::ReadFile(testing::PkiPath(pki_rel)));
}

mock_engine::Secret KeyNumberSecretFromPem(const std::string& label, const std::string& pem) {
  mock_engine::Secret s;
  s.label = label;
  auto bio = ossl::MemoryBio(pem);
  ossl::EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) throw std::runtime_error(label + ": not a readable private key");
  std::vector<std::string> numbers;
  for (const char* param : {OSSL_PKEY_PARAM_RSA_D, OSSL_PKEY_PARAM_RSA_FACTOR1,
                            OSSL_PKEY_PARAM_RSA_FACTOR2, OSSL_PKEY_PARAM_PRIV_KEY}) {
    BIGNUM* bn = nullptr;
    if (EVP_PKEY_get_bn_param(key.get(), param, &bn) == 1 && bn != nullptr) {
      std::string bytes(static_cast<size_t>(BN_num_bytes(bn)), '\0');
      BN_bn2bin(bn, reinterpret_cast<unsigned char*>(bytes.data()));
      BN_clear_free(bn);
      numbers.push_back(std::move(bytes));
    }
  }
  // Ed25519 keeps its private key as an octet string, not a number.
  unsigned char raw[64];
  size_t raw_len = sizeof(raw);
  if (numbers.empty() && EVP_PKEY_get_raw_private_key(key.get(), raw, &raw_len) == 1) {
    numbers.emplace_back(reinterpret_cast<char*>(raw), raw_len);
    OPENSSL_cleanse(raw, sizeof(raw));
  }
  ossl::ClearErrors();
  if (numbers.empty()) throw std::runtime_error(label + ": no private number found");
  constexpr size_t kWindow = 16;
  for (const auto& n : numbers) {
    for (size_t off = 0; off + kWindow <= n.size(); off += kWindow) {
      s.needles.push_back(n.substr(off, kWindow));
    }
  }
  return s;
}

std::vector<std::string> Leaks(const std::string& where, const std::string& text,
                               const std::vector<mock_engine::Secret>& secrets) {
  return mock_engine::ScanForSecrets(where, text, secrets);
}

std::string StartServeForCli(testing::ChildProcess& server, const testing::TempDir& work) {
  const std::string socket = work.Path("w.sock");
  if (!server.Start({WSSTEP_BINARY, "serve", "--listen", "unix://" + socket},
                    work.Path("serve.log"), {{"WSSTEP_DATA_DIR", work.Path("data")}})) {
    ADD_FAILURE() << "wsstep serve did not start: " << server.error();
    return "";
  }
  if (!testing::WaitUntil("wsstep serve listens on " + socket, [&] {
        struct stat st {};
        return ::stat(socket.c_str(), &st) == 0;
      })) {
    return "";
  }
  return socket;
}

testing::CommandResult RunCli(const std::string& socket, const std::vector<std::string>& args,
                              const testing::EnvList& env) {
  std::vector<std::string> argv = {WSSTEP_BINARY, "--plugin", "unix://" + socket};
  argv.insert(argv.end(), args.begin(), args.end());
  return testing::RunCommand(argv, env);
}

std::string StartServeWithRsaIdentity(testing::ChildProcess& server, const testing::TempDir& work,
                                      uint32_t port) {
  const std::string socket = StartServeForCli(server, work);
  if (socket.empty()) return "";
  const std::string bind = "localhost:" + std::to_string(port);
  auto trust = RunCli(socket, {"cert", "import", "--name", "trust", "--type", "trust-store",
                               "--file", testing::PkiPath("trust/bundle.pem"), "--bind", bind});
  auto id = RunCli(socket, {"cert", "import", "--name", "id", "--type", "key-pair", "--file",
                            testing::PkiPath("client/rsa.pem"), "--key-file",
                            testing::PkiPath("client/rsa.key.pem"), "--bind", bind});
  EXPECT_EQ(trust.exit_code, 0) << trust.output;
  EXPECT_EQ(id.exit_code, 0) << id.output;
  return trust.exit_code == 0 && id.exit_code == 0 ? socket : "";
}

std::string FinishedLineOf(mock_engine::MockEngine& engine, const std::string& step_id) {
  std::string line;
  EXPECT_TRUE(testing::WaitUntil("the plugin logs the step " + step_id, [&] {
    std::istringstream in(engine.StderrText());
    for (std::string l; std::getline(in, l);) {
      if (l.find("\"@message\":\"step finished\"") != std::string::npos &&
          l.find("\"step_id\":\"" + step_id + "\"") != std::string::npos) {
        line = l;
        return true;
      }
    }
    return false;
  }));
  return line;
}

}  // namespace wsstep::e2e

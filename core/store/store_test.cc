#include "core/store/store.h"

#include <gtest/gtest.h>
#include <openssl/x509.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "core/store/codec.h"
#include "core/store/storage_testing.h"
#include "core/store/store_testing.h"
#include "tests/support/postgres.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

// Requests and filters are written as designated initializers; GCC 12 would ask for
// every field of them.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace wsstep::core {
namespace {

using namespace wsstep::core::testing;  // NOLINT

constexpr std::string_view kKeyPassword = ::wsstep::testing::pki::kKeyPassword;

const Binding kApi{"api.example.test", 443, "production"};

// Runs on both storage backends: SQLite in the data directory, and PostgreSQL in a
// scratch database of the shared test server.
class StoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kPostgres) {
      pg_ = std::make_unique<::wsstep::testing::ScratchDatabase>();
      ASSERT_TRUE(pg_->ok()) << pg_->error();
      TestPostgresConnInfo() = pg_->conninfo();
    }
    Open();
  }
  void TearDown() override {
    store_.reset();  // before its database is dropped
    TestPostgresConnInfo().clear();
  }
  bool OnSqlite() const { return GetParam() == Backend::kSqlite; }
  // Options for a second, separate store in `dir`: on PostgreSQL in a database of its own
  // (the same one on every call of a test).
  StoreOptions OtherStoreOptions(const std::string& dir) {
    StoreOptions o = OptionsFor(dir, clock_);
    if (!OnSqlite()) {
      if (!other_pg_) other_pg_ = std::make_unique<::wsstep::testing::ScratchDatabase>();
      EXPECT_TRUE(other_pg_->ok()) << other_pg_->error();
      o.storage = PostgresStorageFactory(other_pg_->conninfo());
    }
    return o;
  }

  void Open() {
    store_.reset();
    auto s = CertificateStore::Open(OptionsFor(dir_.path(), clock_));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }

  EntryMetadata MustCreate(CreateRequest r, std::vector<Error>* warnings = nullptr) {
    auto e = store_->Create(std::move(r), {"alice"}, warnings);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return e.ok() ? *e : EntryMetadata{};
  }

  std::vector<AuditEvent> Audit(AuditFilter f = {}) {
    EXPECT_TRUE(store_->Flush().ok());
    auto page = store_->ListAudit(f);
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    return page.ok() ? page->events : std::vector<AuditEvent>{};
  }

  std::unique_ptr<::wsstep::testing::ScratchDatabase> pg_;
  std::unique_ptr<::wsstep::testing::ScratchDatabase> other_pg_;
  TempDir dir_;
  TestClock clock_;
  std::unique_ptr<CertificateStore> store_;
};

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres), BackendName);

// ---- Create / Get ----

TEST_P(StoreTest, CreateKeyPairDescribesAndPersists) {
  EntryMetadata e = MustCreate(KeyPairRequest("Bank Client", "rsa", {kApi}));
  EXPECT_EQ(e.id.size(), 15u);
  EXPECT_EQ(e.name, "Bank Client");
  EXPECT_EQ(e.type, EntryType::kKeyPair);
  ASSERT_TRUE(e.certificate.has_value());
  EXPECT_EQ(e.certificate->subject, "CN=rsa,O=wsstep tests");
  EXPECT_TRUE(e.has_private_key);
  EXPECT_FALSE(e.has_password);
  EXPECT_EQ(e.version, 1u);
  EXPECT_EQ(e.created_at, clock_.now->load());
  EXPECT_EQ(e.bindings, std::vector<Binding>{kApi});

  auto by_id = store_->Get(e.id);
  ASSERT_TRUE(by_id.ok());
  ExpectSameEntry(*by_id, e);
  auto by_name = store_->Get("bank CLIENT");
  ASSERT_TRUE(by_name.ok());
  EXPECT_EQ(by_name->id, e.id);

  Open();  // everything survives a restart
  auto again = store_->Get(e.id);
  ASSERT_TRUE(again.ok());
  ExpectSameEntry(*again, e);
  EXPECT_EQ(store_->size(), 1u);
}

TEST_P(StoreTest, EveryEntryTypeRoundTrips) {
  std::vector<EntryMetadata> made;
  made.push_back(MustCreate(KeyPairRequest("pem", "ec256")));
  made.push_back(
      MustCreate(FileRequest("p12", EntryType::kPkcs12, "p12/rsa-modern.p12", kP12Password)));
  EXPECT_TRUE(made.back().has_password);
  EXPECT_EQ(made.back().source_format, SourceFormat::kPkcs12);
  made.push_back(MustCreate(TrustRequest("trust", "trust/bundle.pem")));
  EXPECT_EQ(made.back().trusted.size(), 2u);
  CreateRequest jks = FileRequest("jks", EntryType::kJavaKeystore, "jks/client.jks",
                                  ::wsstep::testing::pki::kStorePassword);
  jks.material.key_password = SecretBytes(::wsstep::testing::pki::kJksKeyPassword);
  made.push_back(MustCreate(std::move(jks)));
  made.push_back(MustCreate(
      FileRequest("profile", EntryType::kMobileProvisioning, "mobile/profile.mobileprovision")));

  Open();
  for (const auto& e : made) {
    auto got = store_->Get(e.id);
    ASSERT_TRUE(got.ok()) << e.name;
    ExpectSameEntry(*got, e);
  }
}

TEST_P(StoreTest, DuplicateNameIsCaseInsensitive) {
  MustCreate(KeyPairRequest("Bank", "rsa"));
  auto dup = store_->Create(KeyPairRequest("bANK", "ec256"), {"alice"}, nullptr);
  ASSERT_EQ(dup.code(), Code::kDuplicateName);
  EXPECT_EQ(dup.error().message, "name: a certificate named 'Bank' already exists");
  EXPECT_EQ(store_->size(), 1u);

  // Within one batch as well, and nothing of the batch is kept.
  std::vector<CreateRequest> batch;
  batch.push_back(KeyPairRequest("x", "rsa"));
  batch.push_back(KeyPairRequest("X", "ec256"));
  EXPECT_EQ(store_->CreateMany(std::move(batch), {"alice"}, nullptr).code(), Code::kDuplicateName);
  EXPECT_EQ(store_->size(), 1u);
}

TEST_P(StoreTest, InvalidInputNamesTheField) {
  auto r = KeyPairRequest("", "rsa");
  EXPECT_EQ(store_->Create(std::move(r), {}, nullptr).error().message, "name: required");
  r = KeyPairRequest("ok", "rsa", {{"*.*.example.com", 443, "default"}});
  auto bad_host = store_->Create(std::move(r), {}, nullptr);
  ASSERT_EQ(bad_host.code(), Code::kInvalidArgument);
  EXPECT_EQ(bad_host.error().detail.at("field"), "bindings[0].host");
  r = KeyPairRequest("ok", "rsa", {{"api.example.com:8443", 443, "default"}});
  auto with_port = store_->Create(std::move(r), {}, nullptr);
  ASSERT_EQ(with_port.code(), Code::kInvalidArgument);
  EXPECT_NE(with_port.error().message.find("bindings[0].port"), std::string::npos);
  EXPECT_EQ(store_->size(), 0u);
}

TEST_P(StoreTest, BindingsAreNormalized) {
  EntryMetadata e = MustCreate(
      KeyPairRequest("n", "rsa", {{"API.Example.TEST.", 0, ""}, {"api.example.test", 443, ""}}));
  ASSERT_EQ(e.bindings.size(), 1u);
  EXPECT_EQ(e.bindings[0], (Binding{"api.example.test", 443, "default"}));
}

// ---- Import failures ----

TEST_P(StoreTest, ImportFailureIsAuditedWithoutSecrets) {
  auto r = store_->Create(
      FileRequest("p12", EntryType::kPkcs12, "p12/rsa-modern.p12", "wrong secret pw"),
      {"bob", "step-1", "wf-1"}, nullptr);
  ASSERT_EQ(r.code(), Code::kWrongPassword);
  EXPECT_EQ(store_->size(), 0u);

  auto events = Audit({.action = AuditAction::kImportFailure});
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].actor, "bob");
  EXPECT_EQ(events[0].entry_name, "p12");
  EXPECT_EQ(events[0].code, "WRONG_PASSWORD");
  EXPECT_EQ(events[0].step_id, "step-1");
  EXPECT_EQ(events[0].detail.find("wrong secret pw"), std::string::npos);
}

// An empty upload and a taken name are refused before parsing, and audited like the
// refusals the parser makes.
TEST_P(StoreTest, EmptyUploadAndDuplicateNameAreAudited) {
  MustCreate(KeyPairRequest("bank", "rsa"));
  CreateRequest empty;
  empty.name = "empty";
  empty.type = EntryType::kTrustStore;
  empty.material.content_name = "partners.pem";
  auto r = store_->Create(std::move(empty), {"bob"}, nullptr);
  ASSERT_EQ(r.code(), Code::kInvalidCertificateFormat);
  EXPECT_EQ(r.error().message, "partners.pem: the file is empty");
  ASSERT_EQ(store_->Create(KeyPairRequest("BANK", "ec256"), {"bob"}, nullptr).code(),
            Code::kDuplicateName);
  auto events = Audit({.action = AuditAction::kImportFailure});
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].entry_name, "BANK");  // newest first
  EXPECT_EQ(events[0].code, "DUPLICATE_NAME");
  EXPECT_EQ(events[1].entry_name, "empty");
  EXPECT_EQ(events[1].code, "INVALID_CERTIFICATE_FORMAT");
  EXPECT_EQ(store_->size(), 1u);
}

// ---- Secrets at rest ----

// Every byte the store wrote must be free of the key and passwords: on SQLite the main
// file and the WAL; on PostgreSQL the whole database as pg_dump writes it (BYTEA in hex,
// so each needle is looked for in hex too).
void ExpectNoneIn(const std::string& dir, const std::vector<std::string>& needles) {
  std::vector<std::string> files = {dir + "/store.db", dir + "/store.db-wal"};
  std::vector<std::string> wanted = needles;
  if (const std::string& pg = TestPostgresConnInfo(); !pg.empty()) {
    const std::string dump = dir + "/pg_dump.sql";
    const auto r = ::wsstep::testing::RunCommand(
        {"/usr/lib/postgresql/15/bin/pg_dump", "--data-only", "-f", dump, pg});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    files = {dump};
    for (const auto& n : needles) wanted.push_back(Hex(n));
  }
  for (const std::string& path : files) {
    if (!std::filesystem::exists(path)) continue;
    std::string bytes = ReadFile(path);
    ASSERT_GT(bytes.size(), 0u) << path;
    for (const auto& n : wanted) {
      ASSERT_FALSE(n.empty());
      EXPECT_EQ(bytes.find(n), std::string::npos)
          << path << " holds a secret (" << n.size() << " bytes)";
    }
  }
  if (!TestPostgresConnInfo().empty()) std::filesystem::remove(dir + "/pg_dump.sql");
}

TEST_P(StoreTest, NothingSecretIsStoredInClear) {
  CreateRequest enc = KeyPairRequest("enc", "rsa", {kApi});
  enc.material.key = ReadSecret(Pki("client/rsa.key.pkcs8-aes.pem"));
  enc.material.password = SecretBytes(kKeyPassword);
  EntryMetadata e = MustCreate(std::move(enc));
  EXPECT_TRUE(e.has_password);
  MustCreate(FileRequest("p12", EntryType::kPkcs12, "p12/ec256.p12", kP12Password));
  // Used once, so the key was decrypted in memory too.
  ASSERT_TRUE(store_->ResolveForCall({"api.example.test", 443, "production"}).ok());

  std::string key_der = ReadFile(Pki("client/rsa.key.der"));
  std::string key_pem = ReadFile(Pki("client/rsa.key.pem"));
  std::string ec_pem = ReadFile(Pki("client/ec256.key.pem"));
  // A line from the middle of each PEM body.
  auto middle_line = [](const std::string& pem) {
    size_t a = pem.find('\n', pem.size() / 2);
    size_t b = pem.find('\n', a + 1);
    return pem.substr(a + 1, b - a - 1);
  };
  std::vector<std::string> needles = {
      key_der.substr(0, 64),     key_der.substr(key_der.size() / 2, 64),
      middle_line(key_pem),      middle_line(ec_pem),
      std::string(kP12Password), std::string(kKeyPassword)};
  ExpectNoneIn(dir_.path(), needles);
  store_.reset();  // checkpoint into the main file
  ExpectNoneIn(dir_.path(), needles);

  struct stat st;
  if (OnSqlite()) {
    ASSERT_EQ(stat(dir_.Path("store.db").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
  }
  ASSERT_EQ(stat(dir_.Path("master.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// ---- Resolution ----

TEST_P(StoreTest, ResolveForCallReturnsCachedIdentityAndTrust) {
  CreateRequest with_chain = KeyPairRequest("client", "rsa", {kApi});
  with_chain.material.content = ReadSecret(Pki("client/rsa.chain.pem"));
  EntryMetadata id = MustCreate(std::move(with_chain));
  MustCreate(TrustRequest("trust", "trust/bundle.pem", {kApi}));
  ResolveRequest req{"API.example.test.", 443, "production"};
  auto a = store_->ResolveForCall(req);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_NE(a->credentials.identity, nullptr);
  EXPECT_EQ(a->chosen_id(), id.id);
  EXPECT_EQ(a->credentials.identity->fingerprint, id.certificate->sha256_fingerprint);
  EXPECT_EQ(X509_check_private_key(a->credentials.identity->leaf.get(),
                                   a->credentials.identity->key.get()),
            1);
  EXPECT_EQ(a->credentials.identity->chain.size(), 1u);
  ASSERT_NE(a->credentials.trust, nullptr);
  EXPECT_EQ(a->credentials.trust->certs.size(), 2u);
  EXPECT_FALSE(a->credentials.private_trust_only);

  auto b = store_->ResolveForCall(req);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->credentials.identity.get(), a->credentials.identity.get());  // cached
  EXPECT_EQ(b->credentials.trust.get(), a->credentials.trust.get());

  // After a restart the identity is rebuilt from the sealed key on first use.
  std::string fp = a->credentials.identity->fingerprint;
  a = b = Error(Code::kInternal, "reset");
  Open();
  auto c = store_->ResolveForCall(req);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->credentials.identity->fingerprint, fp);
  EXPECT_EQ(X509_check_private_key(c->credentials.identity->leaf.get(),
                                   c->credentials.identity->key.get()),
            1);
  EXPECT_EQ(c->credentials.trust->certs.size(), 2u);
}

TEST_P(StoreTest, TwoTrustEntriesAreMergedOnce) {
  MustCreate(KeyPairRequest("client", "rsa", {kApi}));
  MustCreate(TrustRequest("t1", "trust/bundle.pem", {kApi}));
  CreateRequest t2 = TrustRequest("t2", "trust/other-bundle.pem", {kApi});
  t2.private_trust_only = true;
  MustCreate(std::move(t2));
  auto a = store_->ResolveForCall({"api.example.test", 443, "production"});
  ASSERT_TRUE(a.ok());
  ASSERT_NE(a->credentials.trust, nullptr);
  EXPECT_EQ(a->credentials.trust->certs.size(), 3u);
  EXPECT_EQ(a->credentials.trust->entry_ids.size(), 2u);
  EXPECT_TRUE(a->credentials.private_trust_only);
  auto b = store_->ResolveForCall({"api.example.test", 443, "production"});
  EXPECT_EQ(a->credentials.trust.get(), b->credentials.trust.get());
}

TEST_P(StoreTest, NotFoundAndExplain) {
  auto none = store_->ResolveForCall({"nowhere.test", 443, "default"});
  ASSERT_EQ(none.code(), Code::kCertificateNotFound);
  EXPECT_FALSE(none.error().detail.at("explanation").empty());
  auto trust_only = store_->ResolveForCall({"nowhere.test", 443, "default"}, false);
  ASSERT_TRUE(trust_only.ok());
  EXPECT_EQ(trust_only->credentials.identity, nullptr);
  EXPECT_EQ(trust_only->credentials.trust, nullptr);

  EntryMetadata e = MustCreate(KeyPairRequest("client", "rsa", {kApi}));
  auto ex = store_->Explain({"api.example.test", 443, "production"});
  ASSERT_TRUE(ex.ok()) << ex.status().ToString();
  EXPECT_EQ(ex->chosen_id(), e.id);
  EXPECT_EQ(ex->credentials.identity, nullptr);  // Explain loads no key
  EXPECT_FALSE(ex->resolution.explanation.empty());
  UpdateRequest u;
  u.disabled = true;
  ASSERT_TRUE(store_->Update(e.id, std::move(u), {}, nullptr).ok());
  auto disabled = store_->Explain({"api.example.test", 443, "production"});
  ASSERT_EQ(disabled.code(), Code::kCertificateNotFound);
  EXPECT_NE(disabled.error().detail.at("explanation").find("disabled"), std::string::npos)
      << disabled.error().detail.at("explanation");
}

TEST_P(StoreTest, RotationKeepsInFlightIdentity) {
  EntryMetadata e = MustCreate(KeyPairRequest("client", "rsa", {kApi}));
  ResolveRequest req{"api.example.test", 443, "production"};
  auto before = store_->ResolveForCall(req);
  ASSERT_TRUE(before.ok());

  UpdateRequest u;
  u.material.emplace();
  u.material->content = ReadSecret(Pki("client/second.pem"));
  u.material->key = ReadSecret(Pki("client/second.key.pem"));
  auto updated = store_->Update(e.id, std::move(u), {"alice"}, nullptr);
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  EXPECT_EQ(updated->version, 2u);
  EXPECT_EQ(updated->certificate->subject, "CN=wsstep client B,O=wsstep tests");

  auto after = store_->ResolveForCall(req);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->credentials.identity->version, 2u);
  EXPECT_EQ(after->credentials.identity->fingerprint, updated->certificate->sha256_fingerprint);
  // The call that started earlier still holds a complete, usable old identity.
  EXPECT_EQ(before->credentials.identity->version, 1u);
  EXPECT_EQ(before->credentials.identity->fingerprint, e.certificate->sha256_fingerprint);
  EXPECT_EQ(X509_check_private_key(before->credentials.identity->leaf.get(),
                                   before->credentials.identity->key.get()),
            1);
  EXPECT_EQ(before->resolution.identity->version, 1u);  // its snapshot is alive too

  Open();
  auto reopened = store_->ResolveForCall(req);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(reopened->credentials.identity->fingerprint, updated->certificate->sha256_fingerprint);
}

TEST_P(StoreTest, ConcurrentCallsDuringUpdatesAlwaysGetAMatchingIdentity) {
  EntryMetadata e = MustCreate(KeyPairRequest("client", "rsa", {kApi}));
  std::atomic<bool> stop{false};
  std::atomic<int> calls{0}, bad{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      while (!stop) {
        auto r = store_->ResolveForCall({"api.example.test", 443, "production"});
        if (!r.ok() || r->credentials.identity == nullptr ||
            X509_check_private_key(r->credentials.identity->leaf.get(),
                                   r->credentials.identity->key.get()) != 1 ||
            r->credentials.identity->version != r->resolution.identity->version) {
          ++bad;
        }
        ++calls;
      }
    });
  }
  for (int i = 0; i < 6; ++i) {
    UpdateRequest u;
    u.material.emplace();
    const char* base = i % 2 == 0 ? "second" : "rsa";
    u.material->content = ReadSecret(Pki(std::string("client/") + base + ".pem"));
    u.material->key = ReadSecret(Pki(std::string("client/") + base + ".key.pem"));
    ASSERT_TRUE(store_->Update(e.id, std::move(u), {"alice"}, nullptr).ok());
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_GT(calls.load(), 0);
  EXPECT_EQ(bad.load(), 0);
}

// ---- Update / Delete ----

TEST_P(StoreTest, UpdateFieldsAndFlags) {
  EntryMetadata e = MustCreate(KeyPairRequest("client", "rsa", {kApi}));
  clock_.Advance(60);
  UpdateRequest u;
  u.name = "renamed";
  u.description = "for the bank";
  u.disabled = true;
  auto r = store_->Update("CLIENT", std::move(u), {"carol"}, nullptr);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->name, "renamed");
  EXPECT_EQ(r->version, 1u);  // no material change
  EXPECT_EQ(r->updated_at, e.created_at + 60);
  EXPECT_EQ(StatusAt(*r, store_->Now()), CertStatus::kDisabled);
  EXPECT_EQ(store_->ResolveForCall({"api.example.test", 443, "production"}).code(),
            Code::kCertificateNotFound);
  EXPECT_EQ(store_->Get("client").code(), Code::kNotFound);

  auto events = Audit({.entry_id = e.id, .action = AuditAction::kUpdate});
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].actor, "carol");
  EXPECT_EQ(events[0].detail, "name, description, disabled");
  EXPECT_EQ(events[0].entry_name, "renamed");

  UpdateRequest enable;
  enable.disabled = false;
  enable.bindings = std::vector<Binding>{{"other.test", 8443, "sandbox"}};
  ASSERT_TRUE(store_->Update(e.id, std::move(enable), {"carol"}, nullptr).ok());
  EXPECT_TRUE(store_->ResolveForCall({"other.test", 8443, "sandbox"}).ok());
  EXPECT_FALSE(store_->ResolveForCall({"api.example.test", 443, "production"}).ok());

  Open();
  auto got = store_->Get(e.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->name, "renamed");
  EXPECT_FALSE(got->disabled);
  EXPECT_EQ(got->bindings, (std::vector<Binding>{{"other.test", 8443, "sandbox"}}));
}

TEST_P(StoreTest, UpdateToTakenNameOrBadMaterialChangesNothing) {
  MustCreate(KeyPairRequest("a", "rsa"));
  EntryMetadata b = MustCreate(KeyPairRequest("b", "ec256"));
  UpdateRequest u;
  u.name = "A";
  EXPECT_EQ(store_->Update(b.id, std::move(u), {}, nullptr).code(), Code::kDuplicateName);
  UpdateRequest m;
  m.material.emplace();
  m.material->content = ReadSecret(Pki("client/rsa.pem"));
  m.material->key = ReadSecret(Pki("client/ec256.key.pem"));
  EXPECT_EQ(store_->Update(b.id, std::move(m), {}, nullptr).code(), Code::kKeyCertMismatch);
  auto got = store_->Get(b.id);
  ExpectSameEntry(*got, b);
  EXPECT_EQ(store_->Update("nope", UpdateRequest{}, {}, nullptr).code(), Code::kNotFound);
}

// Revoked is final: neither withdrawing the revocation nor enabling a revoked, disabled
// entry is allowed; the refusal names the entry, changes nothing and audits nothing.
TEST_P(StoreTest, ARevokedEntryCannotBeUnrevokedOrEnabled) {
  EntryMetadata e = MustCreate(KeyPairRequest("bank", "rsa", {kApi}));
  UpdateRequest revoke;
  revoke.revoked = true;
  revoke.disabled = true;
  ASSERT_TRUE(store_->Update(e.id, std::move(revoke), {"carol"}, nullptr).ok());
  auto revoked = store_->Get(e.id);
  ASSERT_TRUE(revoked.ok());
  const size_t audited = Audit({.entry_id = e.id}).size();

  UpdateRequest unrevoke;
  unrevoke.revoked = false;
  auto refused = store_->Update("bank", std::move(unrevoke), {"carol"}, nullptr);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(refused.error().message,
            "certificate 'bank' is revoked, and revocation is final: it cannot be un-revoked");
  EXPECT_EQ(refused.error().detail.at("certificate"), "bank");
  EXPECT_EQ(refused.error().detail.at("field"), "revoked");

  UpdateRequest enable;
  enable.disabled = false;
  enable.description = "back in use";
  enable.material.emplace();  // refused before it is even read
  enable.material->content = ReadSecret(Pki("client/second.pem"));
  enable.material->key = ReadSecret(Pki("client/second.key.pem"));
  refused = store_->Update(e.id, std::move(enable), {"carol"}, nullptr);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(refused.error().message,
            "certificate 'bank' is revoked, and revocation is final: it cannot be enabled again");
  EXPECT_EQ(refused.error().detail.at("field"), "disabled");

  ExpectSameEntry(*store_->Get(e.id), *revoked);
  EXPECT_EQ(Audit({.entry_id = e.id}).size(), audited);
  EXPECT_EQ(store_->ResolveForCall({"api.example.test", 443, "production"}).code(),
            Code::kCertificateNotFound);

  // What leaves it revoked is still allowed: a new description, the flags as they are.
  UpdateRequest describe;
  describe.description = "revoked by the CA on 2026-01-05";
  describe.revoked = true;
  describe.disabled = true;
  auto described = store_->Update(e.id, std::move(describe), {"carol"}, nullptr);
  ASSERT_TRUE(described.ok()) << described.status().ToString();
  EXPECT_EQ(StatusAt(*described, store_->Now()), CertStatus::kDisabled);
  EXPECT_TRUE(described->revoked);
}

TEST_P(StoreTest, DeleteIsAuditedAndPermanent) {
  EntryMetadata e = MustCreate(KeyPairRequest("client", "rsa", {kApi}));
  ASSERT_TRUE(store_->ResolveForCall({"api.example.test", 443, "production"}).ok());
  ASSERT_TRUE(store_->Delete("client", {"dave"}).ok());
  EXPECT_EQ(store_->Get(e.id).code(), Code::kNotFound);
  EXPECT_EQ(store_->Delete(e.id, {"dave"}).code(), Code::kNotFound);
  EXPECT_EQ(store_->ResolveForCall({"api.example.test", 443, "production"}).code(),
            Code::kCertificateNotFound);
  auto events = Audit({.entry_id = e.id});
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].action, AuditAction::kDelete);
  EXPECT_EQ(events[0].actor, "dave");
  EXPECT_EQ(events[0].entry_name, "client");
  EXPECT_EQ(events[1].action, AuditAction::kCreate);
  Open();
  EXPECT_EQ(store_->Get(e.id).code(), Code::kNotFound);
  EXPECT_EQ(store_->size(), 0u);
  // The name is free again.
  MustCreate(KeyPairRequest("client", "rsa"));
}

// ---- List ----

TEST_P(StoreTest, ListFiltersAndPages) {
  MustCreate(KeyPairRequest("delta", "rsa", {{"*.example.test", 443, "production"}}));
  MustCreate(KeyPairRequest("Alpha", "ec256", {kApi}));
  MustCreate(KeyPairRequest("charlie", "ec384", {{"other.test", 8443, "sandbox"}}));
  MustCreate(TrustRequest("bravo", "trust/bundle.pem", {kApi}));
  MustCreate(KeyPairRequest("echo", "ed25519"));

  auto all = store_->List({});
  ASSERT_TRUE(all.ok());
  std::vector<std::string> names;
  for (const auto& e : all->entries) names.push_back(e.name);
  EXPECT_EQ(names, (std::vector<std::string>{"Alpha", "bravo", "charlie", "delta", "echo"}));
  EXPECT_EQ(all->total_size, 5u);
  EXPECT_TRUE(all->next_page_token.empty());

  // Paging by two.
  std::vector<std::string> paged;
  ListFilter f;
  f.page_size = 2;
  for (int i = 0; i < 5; ++i) {
    auto page = store_->List(f);
    ASSERT_TRUE(page.ok());
    EXPECT_EQ(page->total_size, 5u);
    for (const auto& e : page->entries) paged.push_back(e.name);
    if (page->next_page_token.empty()) break;
    f.page_token = page->next_page_token;
  }
  EXPECT_EQ(paged, names);

  auto host = store_->List({.host = "API.example.test"});
  names.clear();
  for (const auto& e : host->entries) names.push_back(e.name);
  EXPECT_EQ(names, (std::vector<std::string>{"Alpha", "bravo", "delta"}));  // delta: wildcard
  auto trust = store_->List({.type = EntryType::kTrustStore});
  ASSERT_EQ(trust->entries.size(), 1u);
  EXPECT_EQ(trust->entries[0].name, "bravo");
  auto env = store_->List({.port = 8443, .environment = "sandbox"});
  ASSERT_EQ(env->entries.size(), 1u);
  EXPECT_EQ(env->entries[0].name, "charlie");
  auto sub = store_->List({.name_contains = "HA"});
  ASSERT_EQ(sub->entries.size(), 2u);  // Alpha, charlie
  auto valid = store_->List({.status = CertStatus::kValid});
  EXPECT_EQ(valid->total_size, 5u);
  EXPECT_EQ(store_->List({.page_token = "zz"}).code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->List({.page_size = 5000}).code(), Code::kInvalidArgument);
}

// ---- Use records and audit ----

TEST_P(StoreTest, RecordUseCountsAndAudits) {
  EntryMetadata e = MustCreate(KeyPairRequest("client", "rsa", {kApi}));
  ResolveRequest req{"api.example.test", 443, "production"};
  clock_.Advance(5);
  for (int i = 0; i < 3; ++i) {
    store_->RecordUse(e.id, req, {"engine", "step-" + std::to_string(i), "wf-9"},
                      i == 2 ? "CLIENT_CERT_REJECTED" : "OK");
  }
  store_->RecordUse("", {"plain.test", 443, "default"}, {"engine", "s", "w"}, "OK");
  auto got = store_->Get(e.id);
  EXPECT_EQ(got->use_count, 3u);  // visible before any flush
  EXPECT_EQ(got->last_used_at, clock_.now->load());

  auto uses = Audit({.action = AuditAction::kUse, .workflow_id = "wf-9"});
  ASSERT_EQ(uses.size(), 3u);
  EXPECT_EQ(uses[0].step_id, "step-2");  // newest first
  EXPECT_EQ(uses[0].outcome, "CLIENT_CERT_REJECTED");
  EXPECT_EQ(uses[0].host, "api.example.test");
  EXPECT_EQ(uses[0].port, 443);
  EXPECT_EQ(uses[0].environment, "production");
  EXPECT_EQ(uses[0].entry_name, "client");
  EXPECT_EQ(uses[0].entry_id, e.id);

  // An update does not reset the counters; a restart keeps them.
  UpdateRequest u;
  u.description = "x";
  ASSERT_TRUE(store_->Update(e.id, std::move(u), {}, nullptr).ok());
  EXPECT_EQ(store_->Get(e.id)->use_count, 3u);
  Open();
  EXPECT_EQ(store_->Get(e.id)->use_count, 3u);
  EXPECT_EQ(store_->Get(e.id)->last_used_at, clock_.now->load());
}

TEST_P(StoreTest, UseRecordsAreFlushedInTheBackground) {
  store_.reset();
  StoreOptions o = OptionsFor(dir_.path(), clock_);
  o.use_flush_interval = std::chrono::milliseconds(20);
  store_ = std::move(CertificateStore::Open(std::move(o))).value();
  EntryMetadata e = MustCreate(KeyPairRequest("client", "rsa", {kApi}));
  store_->RecordUse(e.id, {"api.example.test", 443, "production"}, {"engine"}, "OK");
  // The flusher thread tells nobody when it wrote: look at what it writes. No Flush()
  // here, so the row can only come from the background.
  EXPECT_TRUE(::wsstep::testing::WaitUntil("the flusher wrote the use record", [&] {
    auto page = store_->ListAudit({.action = AuditAction::kUse});
    return page.ok() && page->events.size() == 1;
  }));
}

TEST_P(StoreTest, AuditPagingAndFilters) {
  for (int i = 0; i < 7; ++i) {
    MustCreate(KeyPairRequest("c" + std::to_string(i), "ec256"));
    clock_.Advance(10);
  }
  std::vector<int64_t> seqs;
  AuditFilter f;
  f.page_size = 3;
  for (int i = 0; i < 5; ++i) {
    auto page = store_->ListAudit(f);
    ASSERT_TRUE(page.ok());
    for (const auto& ev : page->events) seqs.push_back(ev.sequence);
    if (page->next_page_token.empty()) break;
    f.page_token = page->next_page_token;
  }
  ASSERT_EQ(seqs.size(), 7u);
  EXPECT_TRUE(std::is_sorted(seqs.rbegin(), seqs.rend()));
  UnixSeconds start = clock_.now->load() - 70;
  auto window = store_->ListAudit({.since = start + 20, .until = start + 40});
  ASSERT_EQ(window->events.size(), 2u);
  EXPECT_EQ(window->events[0].entry_name, "c3");
  EXPECT_EQ(store_->ListAudit({.actor = "nobody"})->events.size(), 0u);
  EXPECT_EQ(store_->ListAudit({.page_token = "abc"}).code(), Code::kInvalidArgument);
}

// ---- Notifications ----

TEST_P(StoreTest, NotificationsAreDueUntilAcknowledgedAcrossRestarts) {
  CreateRequest r = KeyPairRequest("client", "rsa");
  r.notifications.warning_days = 30;
  r.notifications.alert_ref = "alert-7";
  EntryMetadata e = MustCreate(std::move(r));
  EXPECT_TRUE(store_->DueNotifications().empty());
  // Move to 10 days before expiry.
  *clock_.now = e.certificate->not_after - 10 * 86400;
  auto due = store_->DueNotifications();
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].entry_id, e.id);
  EXPECT_EQ(due[0].alert_ref, "alert-7");
  EXPECT_EQ(due[0].days_remaining, 10);
  ASSERT_TRUE(store_->AcknowledgeNotification(e.id, clock_.now->load()).ok());
  EXPECT_TRUE(store_->DueNotifications().empty());
  Open();
  EXPECT_TRUE(store_->DueNotifications().empty());
  EXPECT_EQ(store_->Get(e.id)->last_notified_at, clock_.now->load());
  clock_.Advance(86400);
  EXPECT_EQ(store_->DueNotifications().size(), 1u);
  EXPECT_EQ(store_->AcknowledgeNotification("nope", 1).code(), Code::kNotFound);
}

// ---- CHAIN_INCOMPLETE ----

TEST_P(StoreTest, ChainIncompleteCountsBoundTrustStores) {
  std::vector<Error> warnings;
  CreateRequest leaf_only = KeyPairRequest("leaf", "rsa", {kApi});
  leaf_only.material.content = ReadSecret(Pki("client/rsa.leaf-only.pem"));
  MustCreate(std::move(leaf_only), &warnings);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].code, Code::kChainIncomplete);

  MustCreate(TrustRequest("trust", "trust/bundle.pem", {kApi}));
  warnings.clear();
  CreateRequest again = KeyPairRequest("leaf2", "rsa", {kApi});
  again.material.content = ReadSecret(Pki("client/rsa.leaf-only.pem"));
  MustCreate(std::move(again), &warnings);
  EXPECT_TRUE(warnings.empty()) << warnings[0].ToString();
}

// ---- Change events ----

TEST_P(StoreTest, WaitForChangesStreamsCreateUpdateDelete) {
  uint64_t start = store_->LatestChangeSequence();
  EXPECT_TRUE(store_->WaitForChanges(start, std::chrono::milliseconds(1)).empty());
  std::vector<ChangeEvent> seen;
  std::thread watcher([&] {
    uint64_t after = start;
    while (seen.size() < 3) {
      // A safety bound, not a pace: each change wakes the wait at once.
      auto events = store_->WaitForChanges(after, ::wsstep::testing::kWaitBound);
      if (events.empty()) break;
      for (auto& ev : events) {
        after = ev.sequence;
        seen.push_back(ev);
      }
    }
  });
  EntryMetadata e = MustCreate(KeyPairRequest("c", "ec256"));
  UpdateRequest u;
  u.revoked = true;
  ASSERT_TRUE(store_->Update(e.id, std::move(u), {}, nullptr).ok());
  ASSERT_TRUE(store_->Delete(e.id, {}).ok());
  watcher.join();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].kind, ChangeKind::kCreated);
  EXPECT_EQ(seen[1].kind, ChangeKind::kUpdated);
  EXPECT_EQ(seen[2].kind, ChangeKind::kDeleted);
  EXPECT_EQ(seen[2].entry_id, e.id);
  EXPECT_EQ(seen[2].sequence, start + 3);
}

// ---- Key generation ----

TEST_P(StoreTest, GenerateKeyThenAttachTheIssuedCertificate) {
  KeyGenerationRequest g;
  g.name = "generated";
  g.bindings = {kApi};
  g.csr.common_name = "generated.example.test";
  auto gen = store_->GenerateKeyAndCsr(std::move(g), {"alice"});
  ASSERT_TRUE(gen.ok()) << gen.status().ToString();
  EXPECT_TRUE(gen->entry.pending_certificate);
  EXPECT_EQ(gen->entry.attributes.at("key_algorithm"), "RSA");
  EXPECT_EQ(StatusAt(gen->entry, store_->Now()), CertStatus::kPendingCertificate);
  EXPECT_NE(gen->csr_pem.find("BEGIN CERTIFICATE REQUEST"), std::string::npos);
  EXPECT_EQ(store_->GetCsr(gen->entry.id).value(), gen->csr_pem);
  EXPECT_EQ(store_->ResolveForCall({"api.example.test", 443, "production"}).code(),
            Code::kCertificateNotFound);

  // Sign the CSR with the test intermediate CA.
  TempDir work;
  WriteFile(work.Path("req.csr"), gen->csr_pem);
  auto signed_by_ca = ::wsstep::testing::RunCommand(
      {"openssl", "x509", "-req", "-in", work.Path("req.csr"), "-CA", Pki("ca/intermediate.pem"),
       "-CAkey", Pki("ca/intermediate.key.pem"), "-CAcreateserial", "-days", "30", "-out",
       work.Path("cert.pem")});
  ASSERT_EQ(signed_by_ca.exit_code, 0) << signed_by_ca.output;
  *clock_.now = std::time(nullptr) + 1;  // the certificate is valid from when it was signed

  // A certificate for another key is refused.
  auto wrong = store_->AttachCertificate(gen->entry.id, ReadSecret(Pki("client/rsa.pem")),
                                         "rsa.pem", {"alice"}, nullptr);
  EXPECT_EQ(wrong.code(), Code::kKeyCertMismatch);

  std::vector<Error> warnings;
  auto attached = store_->AttachCertificate(gen->entry.id, ReadSecret(work.Path("cert.pem")),
                                            "cert.pem", {"alice"}, &warnings);
  ASSERT_TRUE(attached.ok()) << attached.status().ToString();
  EXPECT_FALSE(attached->pending_certificate);
  EXPECT_EQ(attached->version, 2u);
  EXPECT_NE(attached->certificate->subject.find("generated.example.test"), std::string::npos);
  EXPECT_EQ(store_->GetCsr(gen->entry.id).code(), Code::kNotFound);
  auto call = store_->ResolveForCall({"api.example.test", 443, "production"});
  ASSERT_TRUE(call.ok()) << call.status().ToString();
  EXPECT_EQ(call->chosen_id(), gen->entry.id);
  Open();
  call = store_->ResolveForCall({"api.example.test", 443, "production"});
  ASSERT_TRUE(call.ok()) << call.status().ToString();
  EXPECT_EQ(X509_check_private_key(call->credentials.identity->leaf.get(),
                                   call->credentials.identity->key.get()),
            1);
  auto events = Audit({.entry_id = gen->entry.id});
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events[0].action, AuditAction::kAttachCertificate);
  EXPECT_EQ(events.back().action, AuditAction::kGenerateKey);
}

// ---- Master key ----

TEST_P(StoreTest, KeyFromOptionsIsNeverWrittenAndMustMatch) {
  TempDir other;
  StoreOptions o = OtherStoreOptions(other.path());
  o.master_key =
      MasterKey::FromBase64("a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=", "WSSTEP_MASTER_KEY")
          .value();
  std::string id;
  {
    auto s = CertificateStore::Open(std::move(o));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    id = (*s)->master_key_id();
    ASSERT_TRUE((*s)->Create(KeyPairRequest("c", "rsa", {kApi}), {}, nullptr).ok());
  }
  EXPECT_FALSE(std::filesystem::exists(other.Path("master.key")));
  // Without the key: refused, and no key file is made up.
  auto missing = CertificateStore::Open(OtherStoreOptions(other.path()));
  ASSERT_EQ(missing.code(), Code::kMasterKeyError);
  EXPECT_NE(missing.error().message.find("written with master key id " + id), std::string::npos)
      << missing.error().ToString();
  EXPECT_FALSE(std::filesystem::exists(other.Path("master.key")));
}

TEST_P(StoreTest, RotateMasterKeyReencryptsAndSurvivesRestart) {
  EntryMetadata e = MustCreate(KeyPairRequest("client", "rsa", {kApi}));
  ResolveRequest req{"api.example.test", 443, "production"};
  std::string old_id = store_->master_key_id();
  std::string old_blob_file = ReadFile(dir_.Path("master.key"));
  auto fresh = MasterKey::Generate();
  std::string new_id = fresh->id();
  ASSERT_TRUE(store_->RotateMasterKey(std::move(fresh).value(), {"admin"}).ok());
  EXPECT_EQ(store_->master_key_id(), new_id);
  EXPECT_FALSE(std::filesystem::exists(dir_.Path("master.key.new")));
  EXPECT_EQ(MasterKey::LoadFile(dir_.Path("master.key"))->id(), new_id);
  EXPECT_TRUE(store_->ResolveForCall(req).ok());
  auto rot = Audit({.action = AuditAction::kRotateMasterKey});
  ASSERT_EQ(rot.size(), 1u);
  EXPECT_EQ(rot[0].detail, "master key " + old_id + " replaced by " + new_id +
                               "; 1 keys and 0 proxy credentials re-encrypted");

  Open();
  EXPECT_EQ(store_->master_key_id(), new_id);
  auto call = store_->ResolveForCall(req);
  ASSERT_TRUE(call.ok()) << call.status().ToString();
  EXPECT_EQ(call->credentials.identity->fingerprint, e.certificate->sha256_fingerprint);

  // The old key no longer opens the store.
  store_.reset();
  WriteFile(dir_.Path("master.key"), old_blob_file);
  auto old = CertificateStore::Open(OptionsFor(dir_.path(), clock_));
  ASSERT_EQ(old.code(), Code::kMasterKeyError);
  EXPECT_EQ(old.error().message, "the master key (id " + old_id +
                                     ") does not match the key this store was written with (id " +
                                     new_id + ")");
}

// ---- Proxy credentials ----

TEST_P(StoreTest, ProxyCredentialsAreSetListedDeletedAndAudited) {
  bool created = false;
  auto set = store_->SetProxyCredential("Corp-Proxy", "svc-wsstep", SecretBytes("s3cret-Pw"),
                                        {"alice"}, &created);
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_TRUE(created);
  EXPECT_EQ(set->name, "Corp-Proxy");
  EXPECT_EQ(set->created_at, clock_.now->load());

  auto login = store_->ProxyCredential("corp-proxy");  // names are case-insensitive
  ASSERT_TRUE(login.ok()) << login.status().ToString();
  EXPECT_EQ(login->username, "svc-wsstep");
  EXPECT_EQ(login->password->view(), "s3cret-Pw");

  // Set again under another spelling: the same credential, its first spelling kept.
  clock_.now->fetch_add(60);
  ASSERT_TRUE(
      store_->SetProxyCredential("CORP-PROXY", "svc-2", SecretBytes("n3w-Pw"), {"bob"}, &created)
          .ok());
  EXPECT_FALSE(created);
  auto listed = store_->ListProxyCredentials();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].name, "Corp-Proxy");
  EXPECT_EQ(listed[0].username, "svc-2");
  EXPECT_EQ(listed[0].updated_at, listed[0].created_at + 60);
  EXPECT_EQ(store_->ProxyCredential("Corp-Proxy")->password->view(), "n3w-Pw");

  // Reopened: opened again from storage under the master key.
  Open();
  login = store_->ProxyCredential("Corp-Proxy");
  ASSERT_TRUE(login.ok()) << login.status().ToString();
  EXPECT_EQ(login->username, "svc-2");
  EXPECT_EQ(login->password->view(), "n3w-Pw");

  ASSERT_TRUE(store_->DeleteProxyCredential("corp-PROXY", {"carol"}).ok());
  EXPECT_TRUE(store_->ListProxyCredentials().empty());
  auto gone = store_->ProxyCredential("Corp-Proxy");
  ASSERT_EQ(gone.code(), Code::kNotFound);
  EXPECT_EQ(gone.error().message, "no proxy credential named \"Corp-Proxy\" in the store");
  EXPECT_EQ(store_->DeleteProxyCredential("corp-proxy", {"carol"}).code(), Code::kNotFound);
  Open();
  EXPECT_TRUE(store_->ListProxyCredentials().empty());

  auto sets = Audit({.action = AuditAction::kSetProxyCredential});
  ASSERT_EQ(sets.size(), 2u);
  EXPECT_EQ(sets[0].actor, "bob");
  EXPECT_EQ(sets[0].entry_name, "Corp-Proxy");
  EXPECT_EQ(sets[0].detail, "user svc-wsstep -> svc-2, password set");
  EXPECT_EQ(sets[1].detail, "created, user svc-wsstep");
  auto deletes = Audit({.action = AuditAction::kDeleteProxyCredential});
  ASSERT_EQ(deletes.size(), 1u);
  EXPECT_EQ(deletes[0].actor, "carol");
  EXPECT_EQ(deletes[0].detail, "user svc-2");
}

TEST_P(StoreTest, BadProxyCredentialsAreRefusedNamingTheFieldAndChangeNothing) {
  struct Case {
    std::string name, user, password, field;
  };
  const std::string pw = "Pw-7dQ9-secret";
  const std::vector<Case> cases = {
      {"", "u", pw, "name"},
      {std::string(201, 'n'), "u", pw, "name"},
      {"bad\nname", "u", pw, "name"},
      {"p", "", pw, "username"},
      {"p", "dom:user", pw, "username"},
      {"p", "user\r\nX-Injected: 1", pw, "username"},
      {"p", std::string(257, 'u'), pw, "username"},
      {"p", "u", "", "password"},
      {"p", "u", "pass\r\nword", "password"},
      {"p", "u", std::string("pa\0ss", 5), "password"},
      {"p", "u", std::string(1025, 'x'), "password"},
  };
  for (const auto& c : cases) {
    auto r =
        store_->SetProxyCredential(c.name, c.user, SecretBytes(c.password), {"alice"}, nullptr);
    ASSERT_EQ(r.code(), Code::kInvalidArgument) << c.field;
    EXPECT_EQ(r.error().message.substr(0, c.field.size() + 1), c.field + ":")
        << r.error().ToString();
    if (c.password.size() > 4) {
      EXPECT_EQ(r.error().ToString().find(c.password), std::string::npos);
    }
  }
  EXPECT_TRUE(store_->ListProxyCredentials().empty());
  EXPECT_TRUE(Audit({.action = AuditAction::kSetProxyCredential}).empty());
}

TEST_P(StoreTest, ProxyPasswordsAreSealedAndSurviveAMasterKeyRotation) {
  const std::string password = "Pr0xy-Password-Needle-7f3a";
  ASSERT_TRUE(
      store_->SetProxyCredential("corp", "svc", SecretBytes(password), {"alice"}, nullptr).ok());
  ExpectNoneIn(dir_.path(), {password});

  auto fresh = MasterKey::Generate();
  const std::string new_id = fresh->id();
  ASSERT_TRUE(store_->RotateMasterKey(std::move(fresh).value(), {"admin"}).ok());
  auto rot = Audit({.action = AuditAction::kRotateMasterKey});
  ASSERT_EQ(rot.size(), 1u);
  EXPECT_NE(rot[0].detail.find("; 0 keys and 1 proxy credentials re-encrypted"), std::string::npos)
      << rot[0].detail;
  EXPECT_EQ(store_->ProxyCredential("corp")->password->view(), password);

  Open();  // only the new key is at hand now
  EXPECT_EQ(store_->master_key_id(), new_id);
  auto login = store_->ProxyCredential("corp");
  ASSERT_TRUE(login.ok()) << login.status().ToString();
  EXPECT_EQ(login->password->view(), password);
  for (const auto& ev : Audit()) EXPECT_EQ(ev.detail.find(password), std::string::npos);
  store_.reset();  // checkpoint into the main file
  ExpectNoneIn(dir_.path(), {password});
}

TEST_P(StoreTest, InterruptedRotationIsCompletedOrDiscardedAtOpen) {
  EntryMetadata e = MustCreate(KeyPairRequest("client", "rsa", {kApi}));
  ResolveRequest req{"api.example.test", 443, "production"};
  std::string old_key = ReadFile(dir_.Path("master.key"));
  std::string old_id = store_->master_key_id();
  // Crash before the transaction: a master.key.new the store never used.
  auto unused = MasterKey::Generate();
  ASSERT_TRUE(unused->WriteFile(dir_.Path("master.key.new")).ok());
  Open();
  EXPECT_EQ(store_->master_key_id(), old_id);
  EXPECT_FALSE(std::filesystem::exists(dir_.Path("master.key.new")));
  ASSERT_TRUE(store_->ResolveForCall(req).ok());

  // Crash after the commit, before the rename: the new key is still in master.key.new.
  auto fresh = MasterKey::Generate();
  std::string new_id = fresh->id();
  ASSERT_TRUE(store_->RotateMasterKey(std::move(fresh).value(), {}).ok());
  std::string new_key = ReadFile(dir_.Path("master.key"));
  store_.reset();
  WriteFile(dir_.Path("master.key.new"), new_key);
  WriteFile(dir_.Path("master.key"), old_key);
  Open();
  EXPECT_EQ(store_->master_key_id(), new_id);
  EXPECT_FALSE(std::filesystem::exists(dir_.Path("master.key.new")));
  EXPECT_EQ(MasterKey::LoadFile(dir_.Path("master.key"))->id(), new_id);
  EXPECT_TRUE(store_->ResolveForCall(req).ok());
  (void)e;
}

// ---- Read-only ----

TEST_P(StoreTest, ReadOnlyStoreServesReadsAndRefusesChanges) {
  if (!OnSqlite())
    GTEST_SKIP() << "SQLite only: a read-only store is a SQLite file opened read-only";
  EntryMetadata e = MustCreate(KeyPairRequest("client", "rsa", {kApi}));
  store_.reset();
  StoreOptions o = OptionsFor(dir_.path(), clock_);
  o.read_only = true;
  auto ro = CertificateStore::Open(std::move(o));
  ASSERT_TRUE(ro.ok()) << ro.status().ToString();
  CertificateStore& s = **ro;
  EXPECT_TRUE(s.read_only());
  EXPECT_TRUE(s.Get(e.id).ok());
  auto call = s.ResolveForCall({"api.example.test", 443, "production"});
  ASSERT_TRUE(call.ok()) << call.status().ToString();
  EXPECT_EQ(call->credentials.identity->fingerprint, e.certificate->sha256_fingerprint);
  auto created = s.Create(KeyPairRequest("new", "ec256"), {}, nullptr);
  ASSERT_EQ(created.code(), Code::kStorageError);
  EXPECT_NE(created.error().message.find("read-only"), std::string::npos);
  EXPECT_EQ(s.Delete(e.id, {}).code(), Code::kStorageError);
  s.RecordUse(e.id, {"api.example.test", 443, "production"}, {}, "OK");  // silently skipped
  EXPECT_TRUE(s.ListAudit({}).ok());
}

#define CHILD_CHECK(cond, code)                                \
  do {                                                         \
    if (!(cond)) {                                             \
      std::fprintf(stderr, "child check failed: %s\n", #cond); \
      return code;                                             \
    }                                                          \
  } while (0)

// Get and ResolveForCall (including the first, decrypting, use of an entry) work; every
// change is a STORAGE_ERROR. Returns 0 or the number of the failed check.
int ExpectServesReadsRefusesWrites(CertificateStore& s, const EntryMetadata& e,
                                   CreateRequest attempt) {
  CHILD_CHECK(s.Get(e.id).ok(), 10);
  auto call = s.ResolveForCall({"api.example.test", 443, "production"});
  if (!call.ok()) std::fprintf(stderr, "%s\n", call.status().ToString().c_str());
  CHILD_CHECK(call.ok(), 11);
  CHILD_CHECK(call->credentials.identity != nullptr, 12);
  CHILD_CHECK(call->credentials.identity->fingerprint == e.certificate->sha256_fingerprint, 13);
  auto created = s.Create(std::move(attempt), {}, nullptr);
  if (!created.ok()) std::fprintf(stderr, "create: %s\n", created.status().ToString().c_str());
  CHILD_CHECK(created.code() == Code::kStorageError, 14);
  CHILD_CHECK(created.error().message.find(s.data_dir()) != std::string::npos, 15);
  UpdateRequest u;
  u.disabled = true;
  CHILD_CHECK(s.Update(e.id, std::move(u), {}, nullptr).code() == Code::kStorageError, 16);
  CHILD_CHECK(s.Delete(e.id, {}).code() == Code::kStorageError, 17);
  CHILD_CHECK(s.size() == 1, 18);
  CHILD_CHECK(s.ResolveForCall({"api.example.test", 443, "production"}).ok(), 19);
  return 0;
}

TEST_P(StoreTest, ReadOnlyDataDirectoryIsDetected) {
  if (!OnSqlite()) GTEST_SKIP() << "SQLite only: the permissions of SQLite's data directory";
  EntryMetadata e = MustCreate(KeyPairRequest("client", "rsa", {kApi}));
  store_.reset();
  // Root ignores permission bits: the child drops to "nobody", owner of the directory.
  const bool root = ::geteuid() == 0;
  if (root) {
    for (const auto& f : std::filesystem::directory_iterator(dir_.path())) {
      ASSERT_EQ(::chown(f.path().c_str(), 65534, 65534), 0);
    }
    ASSERT_EQ(::chown(dir_.path().c_str(), 65534, 65534), 0);
  }
  for (const auto& f : std::filesystem::directory_iterator(dir_.path())) {
    ASSERT_EQ(::chmod(f.path().c_str(), 0400), 0);
  }
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0500), 0);
  CreateRequest attempt = KeyPairRequest("new", "ec256");  // keys are readable by root only
  int rc = RunInChild([&] {
    if (root && (::setgid(65534) != 0 || ::setuid(65534) != 0)) return 2;
    auto s = CertificateStore::Open(OptionsFor(dir_.path(), clock_));
    if (!s.ok()) std::fprintf(stderr, "open: %s\n", s.status().ToString().c_str());
    CHILD_CHECK(s.ok(), 3);
    CHILD_CHECK((*s)->read_only(), 4);
    return ExpectServesReadsRefusesWrites(**s, e, std::move(attempt));
  });
  ::chmod(dir_.path().c_str(), 0700);
  EXPECT_EQ(rc, 0);
}

TEST_P(StoreTest, FullDiskFailsChangesAndKeepsServing) {
  if (!OnSqlite()) GTEST_SKIP() << "SQLite only: a full disk under SQLite's file";
  EntryMetadata e = MustCreate(KeyPairRequest("client", "rsa", {kApi}));
  store_.reset();
  CreateRequest attempt = KeyPairRequest("new", "ec256");
  int rc = RunInChild([&] {
    auto s = CertificateStore::Open(OptionsFor(dir_.path(), clock_));
    CHILD_CHECK(s.ok(), 3);
    // From here on no file may grow: what a full disk looks like to SQLite.
    ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {1, 1};
    CHILD_CHECK(::setrlimit(RLIMIT_FSIZE, &lim) == 0, 4);
    return ExpectServesReadsRefusesWrites(**s, e, std::move(attempt));
  });
  EXPECT_EQ(rc, 0);
  Open();  // and the store is intact afterwards
  auto got = store_->Get(e.id);
  ASSERT_TRUE(got.ok());
  ExpectSameEntry(*got, e);
  EXPECT_EQ(store_->size(), 1u);
}

// ---- The storage seam ----

// Nothing of the store reaches past core/store/storage.h: on another backend (here the
// in-memory one of the tests) every change and read works, and no SQLite file appears.
TEST(StoreStorageTest, TheStoreRunsOnAnyStorageBackend) {
  TempDir dir;
  TestClock clock;
  StoreOptions o = OptionsFor(dir.path(), clock);
  o.storage = [](const StorageOpenRequest&) -> Result<std::unique_ptr<Storage>> {
    return std::unique_ptr<Storage>(std::make_unique<MemoryStorage>());
  };
  auto opened = CertificateStore::Open(std::move(o));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  CertificateStore& s = **opened;
  auto e = s.Create(KeyPairRequest("client", "rsa", {kApi}), {"alice"}, nullptr);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  auto call = s.ResolveForCall({"api.example.test", 443, "production"});
  ASSERT_TRUE(call.ok()) << call.status().ToString();
  EXPECT_EQ(call->chosen_id(), e->id);
  s.RecordUse(e->id, {"api.example.test", 443, "production"}, {"engine"}, "OK");
  ASSERT_TRUE(s.Flush().ok());
  UpdateRequest u;
  u.description = "changed";
  ASSERT_TRUE(s.Update(e->id, std::move(u), {"alice"}, nullptr).ok());
  EXPECT_EQ(s.Get(e->id)->use_count, 1u);
  ASSERT_TRUE(s.RotateMasterKey(MasterKey::Generate().value(), {"alice"}).ok());
  ASSERT_TRUE(s.Delete(e->id, {"alice"}).ok());
  auto audit = s.ListAudit({});
  ASSERT_TRUE(audit.ok());
  ASSERT_EQ(audit->events.size(), 5u);
  EXPECT_EQ(audit->events.front().action, AuditAction::kDelete);
  EXPECT_FALSE(std::filesystem::exists(dir.Path("store.db")));
}

// ---- Startup at scale ----

// Fills `dir` with a store of `n` + 2 entries: a key pair bound to api.example.test (the
// seed) and a trust store made through the API, and `n` clones of the seed's metadata
// rows made in SQL (each its own id, name and host; no key material, which startup does
// not read). Returns the seed.
EntryMetadata MakeLargeStore(const std::string& dir, const TestClock& clock, int n) {
  EntryMetadata seed;
  {
    auto s = CertificateStore::Open(OptionsFor(dir, clock));
    EXPECT_TRUE(s.ok());
    seed = (*s)->Create(KeyPairRequest("seed", "rsa", {kApi}), {}, nullptr).value();
    EXPECT_TRUE((*s)->Create(TrustRequest("trust", "trust/bundle.pem", {kApi}), {}, nullptr).ok());
  }
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open((dir + "/store.db").c_str(), &db), SQLITE_OK);
  std::string sql = R"sql(
BEGIN;
CREATE TEMP TABLE n AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < @N) SELECT x FROM c;
INSERT INTO entries SELECT printf('%015x', x), name || '-' || x, name_key || '-' || x, description, type,
  source_format, key_alias, has_private_key, has_password, private_trust_only, disabled, revoked,
  pending_certificate, created_at, updated_at, last_used_at, use_count, version, save_seq + x + 10,
  notify_enabled, notify_warning_days, notify_frequency, notify_alert_ref, last_notified_at,
  chain_subjects, attributes, notify_urgent_days FROM entries, n WHERE id = '@ID';
INSERT INTO bindings SELECT printf('%015x', x), ordinal, 'h' || x || '.example.test', port, environment
  FROM bindings, n WHERE entry_id = '@ID';
INSERT INTO certificates SELECT printf('%015x', x), role, ordinal, subject, issuer, serial, not_before,
  not_after, sans, key_algorithm, key_bits, curve, sha256_fingerprint, is_ca
  FROM certificates, n WHERE entry_id = '@ID';
COMMIT;
)sql";
  for (size_t p; (p = sql.find("@ID")) != std::string::npos;) sql.replace(p, 3, seed.id);
  sql.replace(sql.find("@N"), 2, std::to_string(n));
  char* err = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << err;
  sqlite3_free(err);
  sqlite3_close(db);
  return seed;
}

// 100,000 entries open and resolve correctly. Their speed (PRODUCT.md §5) is the
// benchmark harness's job (tests/bench, store phase). The test runs the store as
// `wsstep serve` does, with no tunables from outside.
TEST(StoreScaleTest, HundredThousandEntriesOpenAndResolve) {
  TempDir dir;
  TestClock clock;
  EntryMetadata seed = MakeLargeStore(dir.path(), clock, 100'000);
  // CPU time of this thread: the machine running the tests may be busy with others.
  auto cpu_ms = [] {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
  };
  auto t0 = std::chrono::steady_clock::now();
  double c0 = cpu_ms();
  auto s = CertificateStore::Open(OptionsFor(dir.path(), clock));
  double cpu = cpu_ms() - c0;
  double wall =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->size(), 100'002u);
  // Speed is measured by the benchmark harness, not asserted here (a loaded machine would
  // make this test flaky); the figure is printed for the record.
  std::printf("open with 100002 entries: %.0f ms CPU, %.0f ms wall\n", cpu, wall);
  auto call = (*s)->ResolveForCall({"api.example.test", 443, "production"});
  ASSERT_TRUE(call.ok()) << call.status().ToString();
  EXPECT_EQ(call->chosen_id(), seed.id);
  ASSERT_NE(call->credentials.trust, nullptr);
  auto page = (*s)->List({.host = "h77.example.test"});
  ASSERT_EQ(page->entries.size(), 1u);
  EXPECT_EQ(page->entries[0].name, "seed-77");
  EXPECT_EQ(page->entries[0].certificate, seed.certificate);
  EXPECT_EQ(page->entries[0].bindings[0].host, "h77.example.test");
  // Save order survives: the clones come after the seed.
  EXPECT_EQ((*s)->snapshot()->entries().front()->id, seed.id);
  EXPECT_EQ((*s)->snapshot()->entries().back()->name, "seed-100000");
}

}  // namespace
}  // namespace wsstep::core

#include "core/jks.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/ossl.h"

namespace wsstep::core {
namespace {

namespace fs = std::filesystem;

constexpr char kStorePass[] = "store pass \xE2\x98\x83";  // "store pass ☃"
constexpr char kKeyPass[] = "jks key pass";
constexpr char kTrustPass[] = "trust pass";

std::optional<SecretBytes> Pw(std::string_view s) { return SecretBytes(s); }

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Big-endian writers for hand-made key stores: the shapes keytool no longer writes
// (version 1, empty passwords) and malformed ones.
std::string U16(uint16_t v) { return {static_cast<char>(v >> 8), static_cast<char>(v)}; }
std::string U32(uint32_t v) {
  return U16(static_cast<uint16_t>(v >> 16)) + U16(static_cast<uint16_t>(v));
}
std::string U64(uint64_t v) {
  return U32(static_cast<uint32_t>(v >> 32)) + U32(static_cast<uint32_t>(v));
}
std::string Utf(std::string_view s) {
  return U16(static_cast<uint16_t>(s.size())) + std::string(s);
}
std::string Header(uint32_t magic, uint32_t version, uint32_t count) {
  return U32(magic) + U32(version) + U32(count);
}
std::string TrustedEntry(std::string_view alias, std::string_view der, bool v2 = true) {
  return U32(2) + Utf(alias) + U64(1700000000000) + (v2 ? Utf("X.509") : "") +
         U32(static_cast<uint32_t>(der.size())) + std::string(der);
}
// Appends the integrity digest for a password given as its UTF-16BE bytes.
std::string Seal(std::string body, std::string_view password_utf16be) {
  unsigned char md[20];
  unsigned int len = 0;
  ossl::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_DigestInit_ex(ctx.get(), EVP_sha1(), nullptr);
  EVP_DigestUpdate(ctx.get(), password_utf16be.data(), password_utf16be.size());
  EVP_DigestUpdate(ctx.get(), "Mighty Aphrodite", 16);
  EVP_DigestUpdate(ctx.get(), body.data(), body.size());
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  return body + std::string(reinterpret_cast<char*>(md), len);
}
// UTF-16BE of an ASCII string.
std::string AsciiUtf16(std::string_view s) {
  std::string out;
  for (char c : s) out += std::string{'\0', c};
  return out;
}

ossl::X509Ptr Cert(std::string_view der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  return ossl::X509Ptr(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
}

// The decrypted key is the private half of the certificate's public key.
void ExpectKeyMatches(const JavaKeystoreEntry& e) {
  ASSERT_TRUE(e.is_private_key);
  ASSERT_FALSE(e.cert_chain_der.empty());
  const unsigned char* p = e.pkcs8_der.data();
  ossl::Pkcs8InfoPtr info(
      d2i_PKCS8_PRIV_KEY_INFO(nullptr, &p, static_cast<long>(e.pkcs8_der.size())));
  ASSERT_NE(info, nullptr) << e.alias;
  ossl::EvpPkeyPtr key(EVP_PKCS82PKEY(info.get()));
  ASSERT_NE(key, nullptr) << e.alias;
  ossl::X509Ptr cert = Cert(e.cert_chain_der.front());
  ASSERT_NE(cert, nullptr) << e.alias;
  EXPECT_EQ(EVP_PKEY_eq(key.get(), X509_get0_pubkey(cert.get())), 1) << e.alias;
}

const JavaKeystoreEntry* Find(const JavaKeystore& ks, std::string_view alias) {
  for (const auto& e : ks.entries) {
    if (e.alias == alias) return &e;
  }
  return nullptr;
}

// keytool commands for the fixtures: JKS and JCEKS stores with an RSA and an EC key entry
// under a non-ASCII store password and a different key password, a JCEKS secret key, the
// exported leaf certificates, and a trusted-certificate-only JKS. 11 keytool runs of
// ~0.5-1.5 s each, in two parallel chains.
std::string FixtureScript() {
  return std::string("SP='") + kStorePass + "'\nKP='" + kKeyPass + "'\nTP='" + kTrustPass + "'\n" +
         // No hsperfdata_<user> in /tmp (the JVM writes it there whatever TMPDIR says).
         R"(keytool() { command keytool -J-XX:-UsePerfData "$@"; }
gen() {  # store type alias keytool-options...
  s=$1; t=$2; a=$3; shift 3
  keytool -genkeypair -keystore "$s" -storetype "$t" -storepass "$SP" -keypass "$KP" \
    -alias "$a" -dname "CN=$a $t test" -validity 30 "$@"
}
export_cert() {  # store type alias out
  keytool -exportcert -keystore "$1" -storetype "$2" -storepass "$SP" -alias "$3" -file "$4"
}
( set -e
  gen s.jks JKS rsa -keyalg RSA -keysize 2048
  gen s.jks JKS ec -keyalg EC -groupname secp256r1
  export_cert s.jks JKS rsa jks-rsa.der
  export_cert s.jks JKS ec jks-ec.der
  keytool -importcert -noprompt -keystore t.jks -storetype JKS -storepass "$TP" -alias ca \
    -file jks-rsa.der
) > jks.log 2>&1 &
JKS=$!
( set -e
  gen s.jceks JCEKS rsa -keyalg RSA -keysize 2048
  gen s.jceks JCEKS ec -keyalg EC -groupname secp384r1
  keytool -genseckey -keystore s.jceks -storetype JCEKS -storepass "$SP" -keypass "$KP" \
    -alias secret -keyalg AES -keysize 128
  export_cert s.jceks JCEKS rsa jceks-rsa.der
  export_cert s.jceks JCEKS ec jceks-ec.der
) > jceks.log 2>&1 &
JCEKS=$!
wait $JKS || { cat jks.log; exit 1; }
wait $JCEKS || { cat jceks.log; exit 1; }
touch complete
)";
}

constexpr const char* kFixtureFiles[] = {"s.jks",   "t.jks",         "jks-rsa.der", "jks-ec.der",
                                         "s.jceks", "jceks-rsa.der", "jceks-ec.der"};

// Fixture sets are reused for a week (the certificates are valid for 30 days).
constexpr auto kFixtureMaxAge = std::chrono::hours(24 * 7);

bool FixturesFresh(const fs::path& dir) {
  std::error_code ec;
  const auto written = fs::last_write_time(dir / "complete", ec);
  return !ec && fs::file_time_type::clock::now() - written < kFixtureMaxAge;
}

// Where generated fixtures are kept: the build tree (WSSTEP_BINARY_DIR, else beside this
// test binary). Empty when neither is known: then each run makes and removes its own.
fs::path FixtureCacheDir() {
  if (const char* binary_dir = std::getenv("WSSTEP_BINARY_DIR")) {
    return fs::path(binary_dir) / "test_fixtures" / "jks";
  }
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe.parent_path() / "test_fixtures" / "jks";
}

class JavaKeystoreTest : public ::testing::Test {
 protected:
  // ctest runs every test in its own process, so the generated set is kept in the build
  // tree and shared between processes (and runs) for a while.
  static void SetUpTestSuite() {
    if (std::system("command -v keytool >/dev/null 2>&1") != 0) {
      skip_ = "keytool is not installed";
      return;
    }
    std::error_code ec;
    const fs::path cache = FixtureCacheDir();
    if (!cache.empty() && FixturesFresh(cache)) {
      Load(cache);
      return;
    }
    const fs::path parent = cache.empty() ? fs::temp_directory_path() : cache.parent_path();
    fs::create_directories(parent, ec);
    std::string tmpl = (parent / "jks_XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      setup_error_ = "mkdtemp failed in " + parent.string();
      return;
    }
    const fs::path work = tmpl;
    std::ofstream(work / "make.sh") << FixtureScript();
    const std::string cmd =
        "cd '" + work.string() + "' && LANG=C.UTF-8 LC_ALL=C.UTF-8 sh make.sh > make.log 2>&1";
    if (std::system(cmd.c_str()) != 0) {
      setup_error_ = "keytool failed: " + ReadFile(work / "make.log");
    } else {
      Load(work);
    }
    if (cache.empty() || !setup_error_.empty()) {
      fs::remove_all(work, ec);
      return;
    }
    // Publish by rename, so a concurrent test process sees a complete set or none. A
    // stale set is moved aside first; if another process published meanwhile, keep theirs.
    if (fs::exists(cache, ec)) {
      const fs::path stale = work.string() + ".stale";
      fs::rename(cache, stale, ec);
      fs::remove_all(stale, ec);
    }
    fs::rename(work, cache, ec);
    if (ec) fs::remove_all(work, ec);
  }

  static void Load(const fs::path& dir) {
    for (const char* name : kFixtureFiles) {
      std::string bytes = ReadFile(dir / name);
      if (bytes.empty()) setup_error_ = "fixture " + (dir / name).string() + " is missing";
      fixtures_[name] = std::move(bytes);
    }
  }

  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
  }

  static std::string Fixture(const std::string& name) { return fixtures_.at(name); }

  static inline std::map<std::string, std::string> fixtures_;
  static inline std::string skip_;
  static inline std::string setup_error_;
};

TEST(JavaKeystoreMagic, DetectsBothFormats) {
  bool jceks = true;
  EXPECT_TRUE(LooksLikeJavaKeystore(std::string("\xFE\xED\xFE\xED\0\0\0\2", 8), &jceks));
  EXPECT_FALSE(jceks);
  EXPECT_TRUE(LooksLikeJavaKeystore("\xCE\xCE\xCE\xCE", &jceks));
  EXPECT_TRUE(jceks);
  EXPECT_TRUE(LooksLikeJavaKeystore("\xCE\xCE\xCE\xCE", nullptr));
  EXPECT_FALSE(LooksLikeJavaKeystore("\xFE\xED\xFE", nullptr));
  EXPECT_FALSE(LooksLikeJavaKeystore("", nullptr));
  EXPECT_FALSE(LooksLikeJavaKeystore("\x30\x82\x0a\x00", nullptr));  // PKCS#12 / DER
}

TEST(JavaKeystoreMagic, NotAKeyStoreIsInvalidFormat) {
  auto r = ParseJavaKeystore("Bag Attributes\n    friendlyName: client\n", "client.pem", Pw("x"),
                             std::nullopt);
  ASSERT_EQ(r.code(), Code::kInvalidCertificateFormat);
  EXPECT_EQ(r.error().message.rfind("client.pem: ", 0), 0u) << r.error().message;
  EXPECT_EQ(r.error().detail.at("offset"), "0");
}

TEST_F(JavaKeystoreTest, JksKeyEntriesDecryptWithTheirKeyPassword) {
  auto r = ParseJavaKeystore(Fixture("s.jks"), "s.jks", Pw(kStorePass), Pw(kKeyPass));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_FALSE(r->jceks);
  ASSERT_EQ(r->entries.size(), 2u);
  const int64_t now_ms = static_cast<int64_t>(time(nullptr)) * 1000;
  for (const auto& [alias, der_file] : {std::pair{"rsa", "jks-rsa.der"}, {"ec", "jks-ec.der"}}) {
    const JavaKeystoreEntry* e = Find(*r, alias);
    ASSERT_NE(e, nullptr) << alias;
    EXPECT_TRUE(e->is_private_key);
    ASSERT_EQ(e->cert_chain_der.size(), 1u);
    EXPECT_EQ(e->cert_chain_der[0], Fixture(der_file)) << alias;
    EXPECT_TRUE(e->trusted_cert_der.empty());
    EXPECT_GT(e->created_ms, now_ms - 8 * 86400 * 1000LL);  // fixtures live a week
    EXPECT_LE(e->created_ms, now_ms + 1000);
    ExpectKeyMatches(*e);
  }
}

TEST_F(JavaKeystoreTest, JceksKeyEntriesDecryptAndSecretKeysAreSkipped) {
  auto r = ParseJavaKeystore(Fixture("s.jceks"), "s.jceks", Pw(kStorePass), Pw(kKeyPass));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_TRUE(r->jceks);
  ASSERT_EQ(r->entries.size(), 2u);  // "secret" is not listed
  for (const auto& [alias, der_file] :
       {std::pair{"rsa", "jceks-rsa.der"}, {"ec", "jceks-ec.der"}}) {
    const JavaKeystoreEntry* e = Find(*r, alias);
    ASSERT_NE(e, nullptr) << alias;
    ASSERT_EQ(e->cert_chain_der.size(), 1u);
    EXPECT_EQ(e->cert_chain_der[0], Fixture(der_file)) << alias;
    ExpectKeyMatches(*e);
  }
}

TEST_F(JavaKeystoreTest, TrustedCertificateStoreNeedsNoKeyPassword) {
  auto r = ParseJavaKeystore(Fixture("t.jks"), "t.jks", Pw(kTrustPass), std::nullopt);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ASSERT_EQ(r->entries.size(), 1u);
  const auto& e = r->entries[0];
  EXPECT_EQ(e.alias, "ca");
  EXPECT_FALSE(e.is_private_key);
  EXPECT_TRUE(e.pkcs8_der.empty());
  EXPECT_TRUE(e.cert_chain_der.empty());
  EXPECT_EQ(e.trusted_cert_der, Fixture("jks-rsa.der"));
}

TEST_F(JavaKeystoreTest, WrongStorePassword) {
  for (const char* name : {"s.jks", "s.jceks"}) {
    // "store pass" without the snowman: the non-ASCII character must count.
    auto r = ParseJavaKeystore(Fixture(name), name, Pw("store pass "), Pw(kKeyPass));
    ASSERT_EQ(r.code(), Code::kWrongPassword) << name;
    EXPECT_EQ(r.error().message, std::string(name) + ": wrong key store password");
  }
}

TEST_F(JavaKeystoreTest, WrongKeyPasswordNamesTheEntry) {
  for (const char* name : {"s.jks", "s.jceks"}) {
    auto r = ParseJavaKeystore(Fixture(name), name, Pw(kStorePass), Pw("jks key pas"));
    ASSERT_EQ(r.code(), Code::kWrongPassword) << name;
    const std::string alias = r.error().detail.at("alias");
    EXPECT_TRUE(alias == "rsa" || alias == "ec") << alias;
    EXPECT_EQ(r.error().message,
              std::string(name) + ": wrong key password for entry '" + alias + "'");
  }
}

TEST_F(JavaKeystoreTest, WithoutKeyPasswordTheStorePasswordIsTried) {
  // The keys use a different password, so the store password alone cannot open them.
  auto r = ParseJavaKeystore(Fixture("s.jks"), "s.jks", Pw(kStorePass), std::nullopt);
  ASSERT_EQ(r.code(), Code::kWrongPassword);
  EXPECT_NE(r.error().message.find("wrong key password for entry '"), std::string::npos);
}

TEST_F(JavaKeystoreTest, MissingStorePasswordIsPasswordRequired) {
  for (const char* name : {"s.jks", "s.jceks", "t.jks"}) {
    auto r = ParseJavaKeystore(Fixture(name), name, std::nullopt, Pw(kKeyPass));
    ASSERT_EQ(r.code(), Code::kPasswordRequired) << name;
    EXPECT_EQ(r.error().message.rfind(std::string(name) + ": ", 0), 0u);
  }
}

TEST_F(JavaKeystoreTest, TruncatedAtEveryOffsetIsInvalidFormat) {
  for (const char* name : {"s.jks", "s.jceks", "t.jks"}) {
    const std::string bytes = Fixture(name);
    for (size_t n = 0; n < bytes.size(); ++n) {
      auto r = ParseJavaKeystore(std::string_view(bytes).substr(0, n), name, Pw(kStorePass),
                                 Pw(kKeyPass));
      ASSERT_EQ(r.code(), Code::kInvalidCertificateFormat) << name << " cut at " << n;
      ASSERT_EQ(r.error().message.rfind(std::string(name) + ": ", 0), 0u);
      ASSERT_LE(std::stoul(r.error().detail.at("offset")), n);
    }
  }
}

TEST_F(JavaKeystoreTest, ModifiedBytesFailTheIntegrityCheck) {
  for (const auto& [name, der_file] :
       {std::pair{"s.jks", "jks-rsa.der"}, {"s.jceks", "jceks-rsa.der"}}) {
    const std::string original = Fixture(name);
    const size_t cert_at = original.find(Fixture(der_file));
    ASSERT_NE(cert_at, std::string::npos);
    std::string flipped = original;
    flipped[cert_at + 100] ^= 0x01;  // inside the certificate's signed body
    auto r = ParseJavaKeystore(flipped, name, Pw(kStorePass), Pw(kKeyPass));
    EXPECT_EQ(r.code(), Code::kWrongPassword) << name;
    flipped = original;
    flipped[original.size() - 1] ^= 0x80;  // the digest itself
    r = ParseJavaKeystore(flipped, name, Pw(kStorePass), Pw(kKeyPass));
    EXPECT_EQ(r.code(), Code::kWrongPassword) << name;
  }
}

// The first entry of a keytool-written v2 store: its alias and protected-key blob.
std::pair<std::string, std::string> FirstKeyEntry(const std::string& v2) {
  size_t at = 12 + 4;  // header, tag
  const size_t alias_len = (static_cast<uint8_t>(v2[at]) << 8) | static_cast<uint8_t>(v2[at + 1]);
  std::string alias = v2.substr(at + 2, alias_len);
  at += 2 + alias_len + 8;
  size_t blob_len = 0;
  for (int i = 0; i < 4; ++i) blob_len = (blob_len << 8) | static_cast<uint8_t>(v2[at + i]);
  return {alias, v2.substr(at + 4, blob_len)};
}

TEST_F(JavaKeystoreTest, VersionOneWithEmptyStorePassword) {
  // keytool writes neither version 1 nor empty passwords; build one from keytool's parts.
  auto [alias, blob] = FirstKeyEntry(Fixture("s.jks"));
  const std::string leaf = Fixture("jks-" + alias + ".der");
  const std::string body = Header(0xFEEDFEED, 1, 2) + U32(1) + Utf(alias) + U64(1600000000123) +
                           U32(static_cast<uint32_t>(blob.size())) + blob + U32(1) +
                           U32(static_cast<uint32_t>(leaf.size())) + leaf +
                           TrustedEntry("ca", Fixture("jks-ec.der"), /*v2=*/false);
  const std::string v1 = Seal(body, "");
  auto r = ParseJavaKeystore(v1, "v1.jks", Pw(""), Pw(kKeyPass));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ASSERT_EQ(r->entries.size(), 2u);
  EXPECT_EQ(r->entries[0].alias, alias);
  EXPECT_EQ(r->entries[0].created_ms, 1600000000123);
  EXPECT_EQ(r->entries[0].cert_chain_der, std::vector<std::string>{leaf});
  ExpectKeyMatches(r->entries[0]);
  EXPECT_EQ(r->entries[1].alias, "ca");
  EXPECT_EQ(r->entries[1].trusted_cert_der, Fixture("jks-ec.der"));

  // Empty is a password, distinct from none.
  EXPECT_EQ(ParseJavaKeystore(v1, "v1.jks", std::nullopt, Pw(kKeyPass)).code(),
            Code::kPasswordRequired);
  EXPECT_EQ(ParseJavaKeystore(v1, "v1.jks", Pw(" "), Pw(kKeyPass)).code(), Code::kWrongPassword);

  // JCEKS also reads keys under the JKS protector (the JDK's JCEKS accepts both).
  std::string as_jceks = body;
  as_jceks.replace(0, 4, U32(0xCECECECE));
  r = ParseJavaKeystore(Seal(as_jceks, ""), "v1.jceks", Pw(""), Pw(kKeyPass));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_TRUE(r->jceks);
  ExpectKeyMatches(r->entries[0]);
}

TEST_F(JavaKeystoreTest, KeyPasswordFallsBackToStorePassword) {
  // A store whose key is protected by the store password, opened with an unrelated key
  // password given: both are tried.
  auto [alias, blob] = FirstKeyEntry(Fixture("s.jks"));
  const std::string leaf = Fixture("jks-" + alias + ".der");
  const std::string store = Seal(Header(0xFEEDFEED, 2, 1) + U32(1) + Utf(alias) + U64(0) +
                                     U32(static_cast<uint32_t>(blob.size())) + blob + U32(1) +
                                     Utf("X.509") + U32(static_cast<uint32_t>(leaf.size())) + leaf,
                                 AsciiUtf16(kKeyPass));
  auto r = ParseJavaKeystore(store, "k.jks", Pw(kKeyPass), Pw("something else"));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ExpectKeyMatches(r->entries[0]);
  r = ParseJavaKeystore(store, "k.jks", Pw(kKeyPass), std::nullopt);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
}

TEST_F(JavaKeystoreTest, PasswordsAreUtf16CodeUnits) {
  const std::string body = Header(0xFEEDFEED, 2, 1) + TrustedEntry("ca", Fixture("jks-rsa.der"));
  // U+1F600 is a surrogate pair in Java's char[].
  const std::string astral("\0p\xD8\x3D\xDE\x00", 6);
  auto r = ParseJavaKeystore(Seal(body, astral), "a.jks", Pw("p\xF0\x9F\x98\x80"), std::nullopt);
  EXPECT_TRUE(r.ok()) << r.error().ToString();
  // Bytes that are not UTF-8 count as Latin-1 characters.
  const std::string latin1("\0\xFF\0\xFE\0a", 6);
  r = ParseJavaKeystore(Seal(body, latin1), "l.jks",
                        Pw("\xFF\xFE"
                           "a"),
                        std::nullopt);
  EXPECT_TRUE(r.ok()) << r.error().ToString();
  // U+00E9 as UTF-8 is one char, not two Latin-1 ones.
  r = ParseJavaKeystore(Seal(body, std::string("\0\xE9", 2)), "e.jks", Pw("\xC3\xA9"),
                        std::nullopt);
  EXPECT_TRUE(r.ok()) << r.error().ToString();
}

TEST_F(JavaKeystoreTest, AliasesAreConvertedFromModifiedUtf8) {
  // "é" then U+1F600 written by writeUTF as two 3-byte surrogates.
  const std::string alias = "\xC3\xA9\xED\xA0\xBD\xED\xB8\x80";
  const std::string body = Header(0xFEEDFEED, 2, 1) + TrustedEntry(alias, Fixture("jks-rsa.der"));
  auto r = ParseJavaKeystore(Seal(body, AsciiUtf16("pw")), "m.jks", Pw("pw"), std::nullopt);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->entries[0].alias, "\xC3\xA9\xF0\x9F\x98\x80");
}

TEST_F(JavaKeystoreTest, MalformedContainersAreInvalidFormat) {
  const std::string cert = Fixture("jks-rsa.der");
  const std::string pw = AsciiUtf16("pw");
  struct Case {
    const char* what;
    std::string body;
  };
  const std::vector<Case> cases = {
      {"version 3", Header(0xFEEDFEED, 3, 0)},
      {"version 0", Header(0xFEEDFEED, 0, 0)},
      {"unknown tag", Header(0xFEEDFEED, 2, 1) + U32(4) + Utf("x") + U64(0)},
      {"secret key in JKS", Header(0xFEEDFEED, 2, 1) + U32(3) + Utf("x") + U64(0)},
      {"too many entries", Header(0xFEEDFEED, 2, 10001)},
      {"entry count beyond data", Header(0xFEEDFEED, 2, 2) + TrustedEntry("ca", cert)},
      {"certificate type", Header(0xFEEDFEED, 2, 1) + U32(2) + Utf("x") + U64(0) + Utf("PGP") +
                               U32(static_cast<uint32_t>(cert.size())) + cert},
      {"certificate garbage", Header(0xFEEDFEED, 2, 1) + TrustedEntry("ca", "not a certificate")},
      {"certificate with trailing bytes",
       Header(0xFEEDFEED, 2, 1) + TrustedEntry("ca", cert + "x")},
      {"huge certificate length",
       Header(0xFEEDFEED, 2, 1) + U32(2) + Utf("x") + U64(0) + Utf("X.509") + U32(0xFFFFFFFF)},
      {"bad modified UTF-8 alias", Header(0xFEEDFEED, 2, 1) + TrustedEntry("\xC3", cert)},
      {"chain too long",
       Header(0xFEEDFEED, 2, 1) + U32(1) + Utf("k") + U64(0) + U32(0) + U32(1000)},
      {"key not EncryptedPrivateKeyInfo",
       Header(0xFEEDFEED, 2, 1) + U32(1) + Utf("k") + U64(0) + U32(3) + "abc" + U32(0)},
      {"secret key garbage", Header(0xCECECECE, 2, 1) + U32(3) + Utf("s") + U64(0) +
                                 std::string("\xAC\xED\x00\x05\x73\x99", 6)},
      {"secret key wrong stream magic", Header(0xCECECECE, 2, 1) + U32(3) + Utf("s") + U64(0) +
                                            std::string("\xAC\xEE\x00\x05\x70", 5)},
  };
  for (const Case& c : cases) {
    auto r = ParseJavaKeystore(Seal(c.body, pw), "bad.jks", Pw("pw"), Pw("pw"));
    ASSERT_EQ(r.code(), Code::kInvalidCertificateFormat) << c.what;
    EXPECT_EQ(r.error().message.rfind("bad.jks: ", 0), 0u) << c.what;
    EXPECT_NE(r.error().message.find("offset"), std::string::npos) << c.what;
    EXPECT_EQ(r.error().detail.count("offset"), 1u) << c.what;
  }
  // A JCEKS secret-key entry whose object is a plain null skips cleanly.
  auto r = ParseJavaKeystore(Seal(Header(0xCECECECE, 2, 1) + U32(3) + Utf("s") + U64(0) +
                                      std::string("\xAC\xED\x00\x05\x70", 5),
                                  pw),
                             "ok.jceks", Pw("pw"), std::nullopt);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_TRUE(r->entries.empty());
}

// Random corruption of the body, re-sealed so it gets past the integrity check and into
// the entry, key and serialized-object parsers. Any outcome but a crash (or a hang) is
// fine as long as it is one of the documented codes.
void FuzzResealed(const std::string& original, std::string_view store_utf16be,
                  std::string_view store_pass, int rounds, uint32_t seed) {
  std::mt19937 rng(seed);
  const size_t body_size = original.size() - 20;
  const std::set<Code> allowed = {Code::kOk, Code::kInvalidCertificateFormat, Code::kWrongPassword,
                                  Code::kUnsupportedAlgorithm};
  for (int i = 0; i < rounds; ++i) {
    std::string body = original.substr(0, body_size);
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int f = 0; f < flips; ++f) {
      body[rng() % body_size] = static_cast<char>(rng());
    }
    if (rng() % 8 == 0) body.resize(rng() % body_size);
    auto r = ParseJavaKeystore(Seal(body, store_utf16be), "fuzz", Pw(store_pass), Pw(kKeyPass));
    ASSERT_TRUE(allowed.count(r.code())) << r.error().ToString();
  }
}

// keytool's serialized SealedObject of the JCEKS secret key: from the stream magic to the
// end of its second algorithm-name string (the last field written).
std::string SecretKeyObject(const std::string& jceks) {
  const size_t start = jceks.find("\xAC\xED\x00\x05");
  const std::string_view alg = "PBEWithMD5AndTripleDES";
  const size_t first = jceks.find(alg, start);
  const size_t second = jceks.find(alg, first + alg.size());
  if (start == std::string::npos || second == std::string::npos) return {};
  return jceks.substr(start, second + alg.size() - start);
}

TEST_F(JavaKeystoreTest, SecretKeyObjectIsSkippedExactly) {
  const std::string object = SecretKeyObject(Fixture("s.jceks"));
  ASSERT_FALSE(object.empty());
  const std::string body = Header(0xCECECECE, 2, 3) + U32(3) + Utf("s1") + U64(0) + object +
                           TrustedEntry("ca", Fixture("jks-rsa.der")) + U32(3) + Utf("s2") +
                           U64(0) + object;
  auto r = ParseJavaKeystore(Seal(body, AsciiUtf16("pw")), "sk.jceks", Pw("pw"), std::nullopt);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ASSERT_EQ(r->entries.size(), 1u);
  EXPECT_EQ(r->entries[0].alias, "ca");
  // One byte short of the object is malformed, not a misread of what follows.
  const std::string short_body =
      Header(0xCECECECE, 2, 1) + U32(3) + Utf("s1") + U64(0) + object.substr(0, object.size() - 1);
  EXPECT_EQ(
      ParseJavaKeystore(Seal(short_body, AsciiUtf16("pw")), "sk.jceks", Pw("pw"), std::nullopt)
          .code(),
      Code::kInvalidCertificateFormat);
}

TEST_F(JavaKeystoreTest, CorruptedContentNeverCrashes) {
  const std::string store_utf16be = AsciiUtf16("store pass ") + "\x26\x03";  // U+2603
  FuzzResealed(Fixture("s.jks"), store_utf16be, kStorePass, 3000, 1);
  FuzzResealed(Fixture("t.jks"), AsciiUtf16(kTrustPass), kTrustPass, 1000, 2);
  // Each JCEKS key costs 2 x 200,000 MD5 rounds per password tried: few rounds on the
  // real store, many on a store holding only the secret key's serialized object.
  FuzzResealed(Fixture("s.jceks"), store_utf16be, kStorePass, 12, 3);
  const std::string secret_only = Header(0xCECECECE, 2, 2) + U32(3) + Utf("s") + U64(0) +
                                  SecretKeyObject(Fixture("s.jceks")) +
                                  TrustedEntry("ca", Fixture("jks-ec.der"));
  FuzzResealed(Seal(secret_only, store_utf16be), store_utf16be, kStorePass, 3000, 4);
}

}  // namespace
}  // namespace wsstep::core

#include "core/csr.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace wsstep::core {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A scratch directory removed with everything in it when the test ends.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "wsstep-csr-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(std::string_view name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

void WriteFile(const std::string& path, std::string_view text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs an openssl command line in `dir`; returns its exit status, output in `log`.
int Openssl(const TempDir& dir, const std::string& args, std::string* log = nullptr) {
  const std::string out = dir / "openssl.log";
  const std::string cmd =
      "cd '" + (dir / "") + "' && openssl " + args + " </dev/null >'" + out + "' 2>&1";
  int rc = std::system(cmd.c_str());
  if (log != nullptr) *log = ReadFile(out);
  return rc;
}

ossl::X509ReqPtr ParseCsr(const std::string& pem) {
  auto bio = ossl::MemoryBio(pem);
  return ossl::X509ReqPtr(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
}

ossl::X509Ptr ReadCertificate(const std::string& path) {
  const std::string pem = ReadFile(path);
  auto bio = ossl::MemoryBio(pem);
  return ossl::X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

ossl::EvpPkeyPtr KeyOf(const GeneratedCsr& g) {
  const unsigned char* p = g.key_pkcs8_der.data();
  return ossl::EvpPkeyPtr(
      d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(g.key_pkcs8_der.size())));
}

std::string SubjectLine(X509_NAME* name) {
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::vector<std::string> DnsNamesOf(X509_REQ* req) {
  std::vector<std::string> out;
  STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req);
  auto* names =
      static_cast<GENERAL_NAMES*>(X509V3_get_d2i(exts, NID_subject_alt_name, nullptr, nullptr));
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  ossl::GeneralNamesPtr owned(names);
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* gen = sk_GENERAL_NAME_value(names, i);
    if (gen->type != GEN_DNS) continue;
    const ASN1_IA5STRING* s = gen->d.dNSName;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
  }
  return out;
}

CsrRequest FullRequest() {
  CsrRequest r;
  r.common_name = "client.example.com";
  r.organization = "Bücher & Söhne GmbH";
  r.organizational_unit = "Integrations";
  r.country = "de";
  r.state = "Berlin";
  r.locality = "Berlin";
  r.email = "ops@example.com";
  r.dns_names = {"client.example.com", "*.clients.example.com"};
  return r;
}

struct KeyCase {
  std::string algorithm;
  int bits;
  std::string curve;
  int want_type;     // EVP_PKEY_RSA, EVP_PKEY_EC, EVP_PKEY_ED25519
  int want_bits;     // EVP_PKEY_get_bits
  int want_sig_nid;  // signature algorithm of the CSR
};

TEST(Csr, EveryKeyTypeMakesAVerifiableRequest) {
  const std::vector<KeyCase> cases = {
      {"RSA", 2048, "", EVP_PKEY_RSA, 2048, NID_sha256WithRSAEncryption},
      {"rsa", 3072, "", EVP_PKEY_RSA, 3072, NID_sha256WithRSAEncryption},
      {"RSA", 4096, "", EVP_PKEY_RSA, 4096, NID_sha256WithRSAEncryption},
      {"EC", 2048, "P-256", EVP_PKEY_EC, 256, NID_ecdsa_with_SHA256},
      {"EC", 0, "P-384", EVP_PKEY_EC, 384, NID_ecdsa_with_SHA256},
      {"ec", 521, "", EVP_PKEY_EC, 521, NID_ecdsa_with_SHA256},   // curve from key_bits
      {"EC", 2048, "", EVP_PKEY_EC, 256, NID_ecdsa_with_SHA256},  // default P-256
      {"Ed25519", 0, "", EVP_PKEY_ED25519, 256, NID_ED25519},
  };
  TempDir dir;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.algorithm + " " + std::to_string(c.bits) + " " + c.curve);
    CsrRequest r = FullRequest();
    r.key_algorithm = c.algorithm;
    r.key_bits = c.bits;
    r.curve = c.curve;
    auto g = GenerateKeyAndCsr(r);
    ASSERT_TRUE(g.ok()) << g.error().ToString();
    EXPECT_THAT(g->csr_pem, HasSubstr("-----BEGIN CERTIFICATE REQUEST-----"));

    auto req = ParseCsr(g->csr_pem);
    ASSERT_TRUE(req);
    EVP_PKEY* pub = X509_REQ_get0_pubkey(req.get());
    ASSERT_NE(pub, nullptr);
    EXPECT_EQ(X509_REQ_verify(req.get(), pub), 1);
    EXPECT_EQ(X509_REQ_get_signature_nid(req.get()), c.want_sig_nid);
    EXPECT_EQ(EVP_PKEY_get_base_id(pub), c.want_type);
    EXPECT_EQ(EVP_PKEY_get_bits(pub), c.want_bits);
    EXPECT_EQ(SubjectLine(X509_REQ_get_subject_name(req.get())),
              "emailAddress=ops@example.com,CN=client.example.com,OU=Integrations,"
              "O=Bücher & Söhne GmbH,L=Berlin,ST=Berlin,C=DE");
    EXPECT_EQ(DnsNamesOf(req.get()),
              (std::vector<std::string>{"client.example.com", "*.clients.example.com"}));

    // The returned key is the CSR's key, as unencrypted PKCS#8.
    auto key = KeyOf(*g);
    ASSERT_TRUE(key);
    EXPECT_EQ(EVP_PKEY_eq(key.get(), pub), 1);

    // And the openssl command line agrees the request is well formed and signed.
    WriteFile(dir / "req.pem", g->csr_pem);
    std::string log;
    EXPECT_EQ(Openssl(dir, "req -verify -noout -in req.pem", &log), 0) << log;
    EXPECT_THAT(log, HasSubstr("verify OK"));
  }
}

TEST(Csr, MinimalRequestHasOnlyTheCommonName) {
  CsrRequest r;
  r.common_name = "svc";
  r.key_algorithm = "EC";
  auto g = GenerateKeyAndCsr(r);
  ASSERT_TRUE(g.ok()) << g.error().ToString();
  auto req = ParseCsr(g->csr_pem);
  ASSERT_TRUE(req);
  EXPECT_EQ(SubjectLine(X509_REQ_get_subject_name(req.get())), "CN=svc");
  EXPECT_TRUE(DnsNamesOf(req.get()).empty());
  STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req.get());
  EXPECT_EQ(exts == nullptr ? 0 : sk_X509_EXTENSION_num(exts), 0);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
}

TEST(Csr, IssuedCertificateMustMatchThePendingKey) {
  TempDir dir;
  std::string log;
  ASSERT_EQ(Openssl(dir,
                    "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
                    "-out ca.pem -subj '/CN=wsstep csr test CA' -days 2",
                    &log),
            0)
      << log;

  auto issue = [&](const GeneratedCsr& g, const std::string& stem) {
    WriteFile(dir / (stem + ".csr"), g.csr_pem);
    std::string out;
    EXPECT_EQ(Openssl(dir,
                      "x509 -req -in " + stem +
                          ".csr -CA ca.pem -CAkey ca.key -CAcreateserial "
                          "-days 1 -copy_extensions copy -out " +
                          stem + ".pem",
                      &out),
              0)
        << out;
    return ReadCertificate(dir / (stem + ".pem"));
  };

  CsrRequest r = FullRequest();
  auto mine = GenerateKeyAndCsr(r);
  ASSERT_TRUE(mine.ok()) << mine.error().ToString();
  r.key_algorithm = "Ed25519";
  auto other = GenerateKeyAndCsr(r);
  ASSERT_TRUE(other.ok()) << other.error().ToString();
  r.key_algorithm = "EC";
  auto other_ec = GenerateKeyAndCsr(r);
  ASSERT_TRUE(other_ec.ok()) << other_ec.error().ToString();

  auto my_cert = issue(*mine, "mine");
  auto other_cert = issue(*other, "other");
  auto other_ec_cert = issue(*other_ec, "other-ec");
  ASSERT_TRUE(my_cert && other_cert && other_ec_cert);
  // The CA copied the requested SANs: the extension request was well formed.
  EXPECT_EQ(X509_get_ext_by_NID(my_cert.get(), NID_subject_alt_name, -1) >= 0, true);

  EXPECT_TRUE(CheckCertificateMatchesKey(my_cert.get(), mine->key_pkcs8_der, "client-1").ok());
  EXPECT_TRUE(CheckCertificateMatchesKey(other_cert.get(), other->key_pkcs8_der).ok());

  for (X509* wrong : {other_cert.get(), other_ec_cert.get()}) {
    Status st = CheckCertificateMatchesKey(wrong, mine->key_pkcs8_der, "client-1");
    ASSERT_EQ(st.code(), Code::kKeyCertMismatch);
    EXPECT_EQ(st.error().message, "the certificate does not match the pending key of 'client-1'");
    EXPECT_EQ(st.error().detail.at("entry"), "client-1");
  }
  EXPECT_EQ(CheckCertificateMatchesKey(my_cert.get(), other_ec->key_pkcs8_der, "x").code(),
            Code::kKeyCertMismatch);
  EXPECT_EQ(CheckCertificateMatchesKey(nullptr, mine->key_pkcs8_der, "x").code(),
            Code::kInvalidArgument);
  EXPECT_EQ(
      CheckCertificateMatchesKey(my_cert.get(), SecretBytes(std::string_view("junk")), "x").code(),
      Code::kInvalidCertificateFormat);
}

TEST(Csr, InvalidInputNamesTheField) {
  struct Row {
    std::string title;
    void (*change)(CsrRequest&);
    std::string field;
    std::string message;  // exact
  };
  const std::vector<Row> rows = {
      {"no common name", [](CsrRequest& r) { r.common_name.clear(); }, "common_name",
       "common_name is required"},
      {"common name too long", [](CsrRequest& r) { r.common_name = std::string(65, 'a'); },
       "common_name", "common_name is 65 characters long: at most 64 are allowed"},
      {"country of three letters", [](CsrRequest& r) { r.country = "DEU"; }, "country",
       "country must be a two-letter ISO 3166 code such as \"DE\", not 'DEU'"},
      {"country with a digit", [](CsrRequest& r) { r.country = "D1"; }, "country",
       "country must be a two-letter ISO 3166 code such as \"DE\", not 'D1'"},
      {"organization with a newline", [](CsrRequest& r) { r.organization = "Evil\nCorp"; },
       "organization", "organization must be UTF-8 text without control characters"},
      {"locality not UTF-8", [](CsrRequest& r) { r.locality = "M\xfcnchen"; }, "locality",
       "locality must be UTF-8 text without control characters"},
      {"unit too long", [](CsrRequest& r) { r.organizational_unit = std::string(65, 'u'); },
       "organizational_unit", "organizational_unit is 65 characters long: at most 64 are allowed"},
      {"state too long", [](CsrRequest& r) { r.state = std::string(129, 's'); }, "state",
       "state is 129 characters long: at most 128 are allowed"},
      {"email without @", [](CsrRequest& r) { r.email = "ops.example.com"; }, "email",
       "email 'ops.example.com' is not an ASCII address like name@example.com"},
      {"empty DNS name",
       [](CsrRequest& r) {
         r.dns_names = {"ok.example", ""};
       },
       "dns_names",
       "dns_names entry 2 '' is not a host name (letters, digits, hyphens, dots; optionally "
       "starting with \"*.\")"},
      {"DNS name with a space", [](CsrRequest& r) { r.dns_names = {"a b.example"}; }, "dns_names",
       ""},
      {"DNS name with an empty label", [](CsrRequest& r) { r.dns_names = {"a..example"}; },
       "dns_names", ""},
      {"DNS name wildcard in the middle", [](CsrRequest& r) { r.dns_names = {"a.*.example"}; },
       "dns_names", ""},
      {"DNS label of 64", [](CsrRequest& r) { r.dns_names = {std::string(64, 'a') + ".example"}; },
       "dns_names", ""},
      {"unknown algorithm", [](CsrRequest& r) { r.key_algorithm = "DSA"; }, "key_algorithm",
       "key_algorithm 'DSA' is not supported: use RSA, EC or Ed25519"},
      {"RSA 1024", [](CsrRequest& r) { r.key_bits = 1024; }, "key_bits",
       "key_bits must be 2048, 3072 or 4096 for an RSA key, not 1024"},
      {"RSA 2047", [](CsrRequest& r) { r.key_bits = 2047; }, "key_bits", ""},
      {"EC P-192",
       [](CsrRequest& r) {
         r.key_algorithm = "EC";
         r.curve = "P-192";
       },
       "curve", "curve 'P-192' is not supported: use P-256, P-384 or P-521"},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.title);
    CsrRequest r = FullRequest();
    row.change(r);
    Status validated = ValidateCsrRequest(r);
    ASSERT_EQ(validated.code(), Code::kInvalidArgument);
    auto g = GenerateKeyAndCsr(r);
    ASSERT_EQ(g.code(), Code::kInvalidArgument);
    EXPECT_EQ(g.error().detail.at("field"), row.field);
    EXPECT_EQ(g.error().side, Side::kConfiguration);
    if (!row.message.empty()) {
      EXPECT_EQ(g.error().message, row.message);
    }
  }
}

TEST(Csr, AcceptsTheLimits) {
  CsrRequest r = FullRequest();
  r.key_algorithm = "EC";
  // 64 two-byte characters: counted as characters, not bytes.
  r.common_name.clear();
  for (int i = 0; i < 64; ++i) r.common_name += "ü";
  r.locality = std::string(128, 'l');
  r.dns_names = {std::string(63, 'a') + ".example", "xn--bcher-kva.example", "*.example"};
  auto g = GenerateKeyAndCsr(r);
  ASSERT_TRUE(g.ok()) << g.error().ToString();
  auto req = ParseCsr(g->csr_pem);
  ASSERT_TRUE(req);
  EXPECT_EQ(X509_REQ_verify(req.get(), X509_REQ_get0_pubkey(req.get())), 1);
  EXPECT_EQ(DnsNamesOf(req.get()).size(), 3u);
}

}  // namespace
}  // namespace wsstep::core

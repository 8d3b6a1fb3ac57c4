// Access to the generated test PKI (tests/pki/make_pki.sh; OUTDIR/README.txt lists every
// file) and small file helpers for tests.
//
//   std::string cert = PkiPath("client/rsa.pem");
//   std::string pem = ReadFile(cert);
//   SecretBytes p12 = ReadSecretFile(PkiPath("p12/rsa-modern.p12"));
//   ... Import(p12, SecretBytes(pki::kP12Password)) ...
//   EXPECT_EQ(seen_fingerprint, Sha256FingerprintOfPemFile(cert));
//
//   TempDir dir("store-test");            // removed with everything in it at scope exit
//   WriteFile(dir.Path("a.pem"), pem);
//
// Helpers that cannot go on (a missing file, an unreadable certificate, a generator that
// fails) throw std::runtime_error with a message naming the file: GoogleTest reports it
// and fails the current test.
#ifndef WSSTEP_TESTS_SUPPORT_PKI_H_
#define WSSTEP_TESTS_SUPPORT_PKI_H_

#include <string>
#include <string_view>

#include "core/secret.h"

namespace wsstep::testing {

// The passwords of the test PKI. Must equal tests/pki/passwords.sh (pki_test checks).
// Spelled with UTF-8 escapes so the bytes do not depend on the compiler's charset.
namespace pki {
// openssl-made PKCS#12: p12/rsa-modern.p12, rsa-legacy.p12, ec256.p12, cert-only.p12.
// (p12/rsa-empty-password.p12 has the empty password.)
inline constexpr std::string_view kP12Password = "p12 p\xC3\xA4ssw\xC3\xB6rd";  // p12 pässwörd
// Encrypted keys: client/rsa.key.pkcs8-{aes,3des,pbes1}.pem, rsa.key.pkcs8-aes.der,
// rsa.key.trad-enc.pem, the key inside client/rsa.combined-enc.pem.
inline constexpr std::string_view kKeyPassword = "key pass \xC3\xBC";  // key pass ü
// Store password of jks/client.jks, jks/client.jceks, jks/truststore.jks.
inline constexpr std::string_view kStorePassword = "store pass \xE2\x98\x83";  // store pass ☃
// Key password of the "client" entry in jks/client.jks and jks/client.jceks (ASCII: JCEKS
// key protection refuses non-ASCII passwords).
inline constexpr std::string_view kJksKeyPassword = "jks key pass";
// Store and key password of the keytool-made p12/java-modern.p12 and
// p12/java-truststore.p12. ASCII because Java cannot use a non-ASCII PKCS#12 password
// (javax.crypto PBEKey refuses it), so these cannot use kStorePassword.
inline constexpr std::string_view kJavaP12Password = "java p12 pass";
}  // namespace pki

// The directory holding the generated PKI: $WSSTEP_TEST_PKI (set by ctest). When that is
// unset (a test binary run by hand) the PKI is generated, once, into
// $TMPDIR/wsstep-test-pki-<uid> by running make_pki.sh from $WSSTEP_SOURCE_DIR (or the
// source tree the binary was built from). Generating takes a few seconds the first time.
std::string PkiDir();
// PkiDir() + "/" + rel, e.g. PkiPath("client/rsa.pem"). Does not check existence.
std::string PkiPath(std::string_view rel);

// The whole file as bytes; throws if it cannot be read.
std::string ReadFile(const std::string& path);
// The same into zeroizing storage, for keys, key stores and password files.
SecretBytes ReadSecretFile(const std::string& path);
// Writes (replaces) a file; throws on failure.
void WriteFile(const std::string& path, std::string_view bytes);

// SHA-256 fingerprint of the first certificate in a PEM (or DER) file, in the form
// wsstep shows fingerprints: lower-case hex with colons (ossl::Sha256Fingerprint).
std::string Sha256FingerprintOfPemFile(const std::string& path);

// Creates a fresh private directory "$TMPDIR/<prefix>XXXXXX" (TMPDIR defaults to /tmp)
// and returns its path. The caller removes it; prefer TempDir.
std::string MakeTempDir(std::string_view prefix);

// A temporary directory removed recursively when the object dies.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "wsstep-test-");
  ~TempDir();
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + rel.
  std::string Path(std::string_view rel) const;
  // Keeps the directory on disk (for debugging a failing test); returns its path.
  std::string Release();

 private:
  void Remove();
  std::string path_;
};

}  // namespace wsstep::testing

#endif  // WSSTEP_TESTS_SUPPORT_PKI_H_

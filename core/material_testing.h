// What the material tests share (material_test.cc, material_keystores_test.cc): the
// generated test PKI's passwords and files, `openssl x509` as the independent reader, and
// one import described declaratively. Test-only; core tests do not link the test-support
// library.
#ifndef WSSTEP_CORE_MATERIAL_TESTING_H_
#define WSSTEP_CORE_MATERIAL_TESTING_H_

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/material.h"
#include "core/ossl.h"

namespace wsstep::core::material_testing {

// Passwords of the generated PKI (tests/pki/passwords.sh), as UTF-8 bytes.
inline constexpr std::string_view kP12Password = "p12 p\xC3\xA4ssw\xC3\xB6rd";  // p12 pässwörd
inline constexpr std::string_view kKeyPassword = "key pass \xC3\xBC";           // key pass ü
inline constexpr std::string_view kStorePassword = "store pass \xE2\x98\x83";   // store pass ☃
inline constexpr std::string_view kJksKeyPassword = "jks key pass";
inline constexpr std::string_view kJavaP12Password = "java p12 pass";

// --- reading the generated test PKI (core tests do not link the test-support library) ---

inline std::string PkiPath(std::string_view rel) {
  const char* dir = std::getenv("WSSTEP_TEST_PKI");
  if (dir == nullptr) throw std::runtime_error("WSSTEP_TEST_PKI is not set (run through ctest)");
  return std::string(dir) + "/" + std::string(rel);
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string Pki(std::string_view rel) { return ReadFile(PkiPath(rel)); }

// Runs a command and returns its standard output without the trailing newline.
inline std::string Shell(const std::string& cmd) {
  FILE* f = popen((cmd + " 2>/dev/null").c_str(), "r");
  if (f == nullptr) throw std::runtime_error("cannot run " + cmd);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  if (pclose(f) != 0) throw std::runtime_error("failed: " + cmd);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// One field printed by `openssl x509`, the text after "name=".
inline std::string OpensslX509(std::string_view rel, const std::string& args) {
  std::string inform = rel.ends_with(".der") ? " -inform DER" : "";
  std::string out = Shell("openssl x509 -in '" + PkiPath(rel) + "'" + inform + " -noout " + args);
  return out.substr(out.find('=') + 1);
}

inline std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// "2026-11-22 13:50:36Z" (openssl -dateopt iso_8601) -> seconds.
inline UnixSeconds OpensslDate(std::string_view rel, const std::string& which) {
  std::string text = OpensslX509(rel, which + " -dateopt iso_8601");
  struct tm tm = {};
  if (strptime(text.c_str(), "%Y-%m-%d %H:%M:%SZ", &tm) == nullptr) {
    throw std::runtime_error("unexpected date " + text);
  }
  return timegm(&tm);
}

inline ossl::X509Ptr PemCert(std::string_view rel) {
  std::string pem = Pki(rel);
  ossl::BioPtr bio = ossl::MemoryBio(pem);
  ossl::X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) throw std::runtime_error("not a PEM certificate: " + std::string(rel));
  return cert;
}

inline ossl::EvpPkeyPtr PemKey(std::string_view rel) {
  std::string pem = Pki(rel);
  ossl::BioPtr bio = ossl::MemoryBio(pem);
  ossl::EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) throw std::runtime_error("not a PEM key: " + std::string(rel));
  return key;
}

// --- one import, described declaratively ---

struct Upload {
  EntryType type = EntryType::kKeyPair;
  std::string content;  // PKI-relative path
  std::string key;      // PKI-relative path of a separate key file; empty: none
  std::optional<std::string_view> password;
  std::optional<std::string_view> key_password;
  SourceFormat declared = SourceFormat::kAuto;
  std::string alias;
  std::vector<X509*> bound_trust;
  UnixSeconds now = 0;
};

inline std::string BaseName(const std::string& path) { return path.substr(path.rfind('/') + 1); }

inline Result<ParsedMaterial> ImportBytes(const Upload& u, const SecretBytes& content,
                                          const SecretBytes* key) {
  ImportInput in;
  in.type = u.type;
  in.declared_format = u.declared;
  in.content_name = BaseName(u.content);
  if (!u.key.empty()) in.key_name = BaseName(u.key);
  in.content = &content;
  in.key = key;
  if (u.password) in.password = SecretBytes(*u.password);
  if (u.key_password) in.key_password = SecretBytes(*u.key_password);
  in.alias = u.alias;
  in.bound_trust = u.bound_trust;
  in.now = u.now;
  Result<ParsedMaterial> r = ParseMaterial(in);
  EXPECT_EQ(ERR_peek_error(), 0u) << "ParseMaterial left an OpenSSL error queued";
  return r;
}

inline Result<ParsedMaterial> Import(const Upload& u) {
  SecretBytes content(Pki(u.content));
  std::optional<SecretBytes> key;
  if (!u.key.empty()) key = SecretBytes(Pki(u.key));
  return ImportBytes(u, content, key ? &*key : nullptr);
}

inline std::string Describe(const Result<ParsedMaterial>& r) {
  return r.ok() ? "OK" : r.error().ToString();
}

inline Upload KeyPair(std::string cert, std::string key = {},
                      std::optional<std::string_view> password = std::nullopt) {
  Upload u;
  u.content = std::move(cert);
  u.key = std::move(key);
  u.password = password;
  return u;
}

inline Upload OfType(EntryType type, std::string content,
                     std::optional<std::string_view> password = std::nullopt) {
  Upload u;
  u.type = type;
  u.content = std::move(content);
  u.password = password;
  return u;
}

}  // namespace wsstep::core::material_testing

#endif  // WSSTEP_CORE_MATERIAL_TESTING_H_

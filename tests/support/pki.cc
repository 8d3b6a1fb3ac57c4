#include "tests/support/pki.h"

#include <openssl/pem.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "core/ossl.h"
#include "tests/support/process.h"

#ifndef WSSTEP_SOURCE_DIR
#define WSSTEP_SOURCE_DIR ""
#endif

namespace wsstep::testing {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void Fail(const std::string& message) {
  throw std::runtime_error("wsstep test support: " + message);
}

std::string EnvOr(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

std::string TmpRoot() { return EnvOr("TMPDIR", "/tmp"); }

// Runs the generator for `dir` (a no-op when it is current) and checks the result.
void Generate(const std::string& dir) {
  std::string source = EnvOr("WSSTEP_SOURCE_DIR", WSSTEP_SOURCE_DIR);
  std::string script = source + "/tests/pki/make_pki.sh";
  if (source.empty() || !fs::exists(script)) {
    Fail("cannot generate the test PKI: make_pki.sh not found (set WSSTEP_TEST_PKI to a "
         "generated PKI, or WSSTEP_SOURCE_DIR to the source tree); looked for '" +
         script + "'");
  }
  CommandResult r = RunCommand({"bash", script, dir}, {}, std::chrono::seconds(120));
  if (r.exit_code != 0 || !fs::exists(dir + "/.complete")) {
    Fail("make_pki.sh " + dir + " failed (exit " + std::to_string(r.exit_code) + "):\n" +
         r.output);
  }
}

std::string ComputePkiDir() {
  std::string dir = EnvOr("WSSTEP_TEST_PKI", "");
  if (dir.empty()) {
    // Shared by every test binary run by hand, so the PKI is made once, not per binary.
    dir = TmpRoot() + "/wsstep-test-pki-" + std::to_string(getuid());
    Generate(dir);
  } else if (!fs::exists(dir + "/.complete")) {
    // Pointed at a directory the ctest fixture has not filled (a binary run by hand).
    Generate(dir);
  }
  return dir;
}

}  // namespace

std::string PkiDir() {
  static std::once_flag once;
  static std::string dir;
  std::call_once(once, [] { dir = ComputePkiDir(); });
  return dir;
}

std::string PkiPath(std::string_view rel) {
  std::string out = PkiDir();
  out += '/';
  out += rel;
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail("cannot read '" + path + "': " + std::strerror(errno));
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) Fail("error reading '" + path + "'");
  return data;
}

SecretBytes ReadSecretFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail("cannot read '" + path + "': " + std::strerror(errno));
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  if (ec) Fail("cannot stat '" + path + "': " + ec.message());
  // Read straight into zeroizing storage: no intermediate copy of the secret.
  SecretBytes out(static_cast<size_t>(size));
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(size));
  if (static_cast<size_t>(in.gcount()) != size) Fail("short read of '" + path + "'");
  return out;
}

void WriteFile(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) Fail("cannot create '" + path + "': " + std::strerror(errno));
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) Fail("cannot write '" + path + "'");
}

std::string Sha256FingerprintOfPemFile(const std::string& path) {
  std::string data = ReadFile(path);
  ossl::BioPtr bio = ossl::MemoryBio(data);
  ossl::X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    const auto* p = reinterpret_cast<const unsigned char*>(data.data());
    cert.reset(d2i_X509(nullptr, &p, static_cast<long>(data.size())));
  }
  if (cert == nullptr) {
    std::string why = ossl::DrainErrors();
    Fail("no certificate in '" + path + "' (" + why + ")");
  }
  ossl::ClearErrors();
  return ossl::Sha256Fingerprint(cert.get());
}

std::string MakeTempDir(std::string_view prefix) {
  std::string templ = TmpRoot() + "/" + std::string(prefix) + "XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    Fail("cannot create a temporary directory '" + templ + "': " + std::strerror(errno));
  }
  return std::string(buf.data());
}

TempDir::TempDir(std::string_view prefix) : path_(MakeTempDir(prefix)) {}

TempDir::~TempDir() { Remove(); }

TempDir::TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) {
  other.path_.clear();
}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    Remove();
    path_ = std::move(other.path_);
    other.path_.clear();
  }
  return *this;
}

std::string TempDir::Path(std::string_view rel) const {
  std::string out = path_;
  out += '/';
  out += rel;
  return out;
}

std::string TempDir::Release() {
  std::string out = std::move(path_);
  path_.clear();
  return out;
}

void TempDir::Remove() {
  if (path_.empty()) return;
  std::error_code ec;  // best effort: a test must not fail in a destructor
  fs::remove_all(path_, ec);
  path_.clear();
}

}  // namespace wsstep::testing

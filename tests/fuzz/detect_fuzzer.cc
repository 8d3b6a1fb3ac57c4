// Content detection (core::DetectContent): looks at any bytes without a password and
// must describe them consistently.
#include <cstddef>
#include <cstdint>

#include "core/detect.h"
#include "core/jks.h"
#include "tests/fuzz/fuzz_util.h"

using namespace wsstep;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes = fuzz::AsView(data, size);
  core::DetectedContent found = core::DetectContent(bytes);
  if (found.Description().empty()) fuzz::Fail("an empty description");
  (void)core::FormatDisplayName(found.format);
  size_t keys = found.CountPemKeys();
  size_t total = 0;
  for (core::PemBlockKind k :
       {core::PemBlockKind::kCertificate, core::PemBlockKind::kPrivateKey,
        core::PemBlockKind::kEncryptedPrivateKey, core::PemBlockKind::kTraditionalPrivateKey,
        core::PemBlockKind::kIgnorable, core::PemBlockKind::kOther}) {
    total += found.CountPem(k);
  }
  if (total != found.pem_blocks.size() || keys > total) fuzz::Fail("PEM block counts disagree");
  if (found.kind != core::ContentKind::kPem && !found.pem_blocks.empty()) {
    fuzz::Fail("PEM blocks reported for content that is not PEM");
  }
  const char* begin = bytes.data();
  for (const core::PemBlock& b : found.pem_blocks) {
    // Blocks point into the input.
    if (b.text.data() < begin || b.text.data() + b.text.size() > begin + bytes.size()) {
      fuzz::Fail("a PEM block outside the input");
    }
  }
  // Cut short: a DER structure (then nothing is recognized) or a PEM BEGIN without END.
  if (found.truncated && found.kind != core::ContentKind::kUnknown &&
      found.kind != core::ContentKind::kPem) {
    fuzz::Fail("truncated set for recognized content");
  }
  bool jceks = false;
  bool java = core::LooksLikeJavaKeystore(bytes, &jceks);
  if ((found.kind == core::ContentKind::kJks || found.kind == core::ContentKind::kJceks) && !java) {
    fuzz::Fail("detected a Java key store without its magic");
  }
  return 0;
}

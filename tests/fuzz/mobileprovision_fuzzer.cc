// MOBILE_PROVISIONING import: the input as a .mobileprovision (CMS SignedData), and the
// input as the property list inside one (wrapped in an unsigned SignedData here, since
// the parser does not verify the signature), so the plist reader is fuzzed directly.
#include <cstddef>
#include <cstdint>

#include "core/material.h"
#include "core/mobileprovision.h"
#include "tests/fuzz/import_fuzz.h"

using namespace wsstep;

namespace {

void Parse(std::string_view der, std::string_view name) {
  Result<core::ProvisioningProfile> profile = core::ParseMobileProvision(der, name);
  fuzz::Note("ParseMobileProvision", profile);
  if (profile.ok()) {
    if (profile->developer_certificates.empty()) fuzz::Fail("a profile without certificates");
    if (!profile->attributes.contains("profile_expires")) fuzz::Fail("a profile without expiry");
  } else {
    fuzz::CheckImportError(profile.error(), {name});
  }
  SecretBytes content(der);
  core::ImportInput in;
  in.type = core::EntryType::kMobileProvisioning;
  in.content_name = std::string(name);
  in.content = &content;
  Result<core::ParsedMaterial> r = fuzz::ParseChecked(in);
  // ParseMaterial detects the content first; a profile the parser accepts must import.
  if (profile.ok() && !r.ok()) fuzz::Fail("a profile ParseMobileProvision accepts does not import");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes = fuzz::AsView(data, size);
  Parse(bytes, "fuzz.mobileprovision");
  Parse(fuzz::WrapInSignedData(bytes), "fuzz-wrapped.mobileprovision");
  return 0;
}

// Apple .mobileprovision files (PRODUCT.md §1 MOBILE_PROVISIONING): a CMS SignedData
// whose content is an XML property list. wsstep tracks them for expiry only and never
// uses them for TLS, so the signature is parsed but not verified against Apple's roots.
#ifndef WSSTEP_CORE_MOBILEPROVISION_H_
#define WSSTEP_CORE_MOBILEPROVISION_H_

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/model.h"
#include "core/ossl.h"

namespace wsstep::core {

struct ProvisioningProfile {
  // Facts for EntryMetadata::attributes, keys as stored: "name", "app_id_name", "team",
  // "team_name", "uuid", "app_id", "profile_created", "profile_expires" (ISO-8601 UTC,
  // "2026-01-02T00:00:00Z"). Only the keys present in the profile are set.
  std::map<std::string, std::string> attributes;
  UnixSeconds expires = 0;
  std::vector<ossl::X509Ptr> developer_certificates;  // profile order; at least one
};

// Errors (INVALID_CERTIFICATE_FORMAT, naming `input_name`): not CMS SignedData, no
// embedded content, not an XML property list, a DOCTYPE with an internal subset or any
// ENTITY declaration, no ExpirationDate, no readable developer certificate.
Result<ProvisioningProfile> ParseMobileProvision(std::string_view der, std::string_view input_name);

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_MOBILEPROVISION_H_

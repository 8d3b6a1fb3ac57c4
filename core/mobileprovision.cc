#include "core/mobileprovision.h"

#include <openssl/cms.h>
#include <openssl/evp.h>

#include <memory>
#include <pugixml.hpp>

#include "core/detect.h"
#include "core/import_error.h"
#include "core/x509_info.h"

namespace wsstep::core {
namespace {

using CmsPtr = std::unique_ptr<CMS_ContentInfo, ossl::Deleter<CMS_ContentInfo_free>>;

Error Invalid(std::string_view input, std::string_view what) {
  ossl::DrainErrors();
  return ImportError(Code::kInvalidCertificateFormat, input, what,
                     "Upload the .mobileprovision file exactly as downloaded from Apple.");
}

// Apple's profiles carry the standard plist DOCTYPE, which is harmless: pugixml neither
// fetches external DTDs nor expands entities. What is refused is the machinery of entity
// attacks, an internal subset or an ENTITY declaration, so no later parser change can
// turn a profile into a billion-laughs or external-entity vector.
bool HasDangerousDtd(std::string_view xml) {
  if (xml.find("<!ENTITY") != std::string_view::npos) return true;
  size_t doctype = xml.find("<!DOCTYPE");
  if (doctype == std::string_view::npos) return false;
  size_t close = xml.find('>', doctype);
  if (close == std::string_view::npos) return true;
  return xml.substr(doctype, close - doctype).find('[') != std::string_view::npos;
}

std::optional<std::string> DecodeBase64(std::string_view text) {
  std::unique_ptr<EVP_ENCODE_CTX, ossl::Deleter<EVP_ENCODE_CTX_free>> ctx(EVP_ENCODE_CTX_new());
  if (!ctx) return std::nullopt;
  std::string out(text.size() / 4 * 3 + 3, '\0');
  int total = 0, n = 0;
  EVP_DecodeInit(ctx.get());
  // EVP_DecodeUpdate skips the whitespace and line breaks plists put inside <data>.
  if (EVP_DecodeUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &n,
                       reinterpret_cast<const unsigned char*>(text.data()),
                       static_cast<int>(text.size())) < 0) {
    return std::nullopt;
  }
  total = n;
  if (EVP_DecodeFinal(ctx.get(), reinterpret_cast<unsigned char*>(out.data()) + total, &n) < 0) {
    return std::nullopt;
  }
  out.resize(static_cast<size_t>(total + n));
  return out;
}

// The content of a <string>/<date> value, whitespace kept as is.
std::string Text(const pugi::xml_node& node) { return node.child_value(); }

}  // namespace

Result<ProvisioningProfile> ParseMobileProvision(std::string_view der,
                                                 std::string_view input_name) {
  // The same judgement as the importer's detection (one whole CMS object whose content is
  // a property list), so what this accepts always imports.
  DetectedContent found = DetectContent(der);
  if (found.kind != ContentKind::kMobileProvision) {
    return Invalid(input_name, "not a provisioning profile (this is " + found.Description() + ")");
  }
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  CmsPtr cms(d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(der.size())));
  if (!cms) return Invalid(input_name, "not a provisioning profile (no CMS structure)");
  if (OBJ_obj2nid(CMS_get0_type(cms.get())) != NID_pkcs7_signed) {
    return Invalid(input_name, "not a provisioning profile (the CMS is not signed data)");
  }
  ASN1_OCTET_STRING** content = CMS_get0_content(cms.get());
  if (content == nullptr || *content == nullptr) {
    return Invalid(input_name, "the provisioning profile has no embedded property list");
  }
  std::string_view xml(reinterpret_cast<const char*>(ASN1_STRING_get0_data(*content)),
                       static_cast<size_t>(ASN1_STRING_length(*content)));
  if (xml.starts_with("bplist00")) {
    return Invalid(input_name, "binary property lists are not supported");
  }
  if (HasDangerousDtd(xml)) {
    return Invalid(input_name,
                   "the property list declares entities or an internal DTD, which is refused");
  }
  pugi::xml_document doc;
  pugi::xml_parse_result parsed =
      doc.load_buffer(xml.data(), xml.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!parsed) {
    return Invalid(input_name, std::string("the property list is not valid XML (") +
                                   parsed.description() + ")");
  }
  pugi::xml_node dict = doc.child("plist").child("dict");
  if (!dict) return Invalid(input_name, "the property list has no top-level dictionary");

  ProvisioningProfile profile;
  auto& attrs = profile.attributes;
  bool have_expiry = false;
  for (pugi::xml_node key = dict.child("key"); key; key = key.next_sibling("key")) {
    pugi::xml_node value = key.next_sibling();
    if (!value) break;
    std::string_view k = key.child_value();
    std::string_view type = value.name();
    if (k == "Name" && type == "string") {
      attrs["name"] = Text(value);
    } else if (k == "AppIDName" && type == "string") {
      attrs["app_id_name"] = Text(value);
    } else if (k == "TeamName" && type == "string") {
      attrs["team_name"] = Text(value);
    } else if (k == "UUID" && type == "string") {
      attrs["uuid"] = Text(value);
    } else if (k == "TeamIdentifier" && type == "array") {
      if (pugi::xml_node first = value.child("string")) attrs["team"] = Text(first);
    } else if ((k == "ExpirationDate" || k == "CreationDate") && type == "date") {
      std::optional<UnixSeconds> t = ParseUtc(Text(value));
      if (!t) {
        return Invalid(input_name, "the profile's " + std::string(k) + " is not a valid date");
      }
      if (k == "ExpirationDate") {
        profile.expires = *t;
        have_expiry = true;
        attrs["profile_expires"] = FormatUtc(*t);
      } else {
        attrs["profile_created"] = FormatUtc(*t);
      }
    } else if (k == "Entitlements" && type == "dict") {
      for (pugi::xml_node ek = value.child("key"); ek; ek = ek.next_sibling("key")) {
        pugi::xml_node ev = ek.next_sibling();
        if (std::string_view(ek.child_value()) == "application-identifier" && ev &&
            std::string_view(ev.name()) == "string") {
          attrs["app_id"] = Text(ev);
        }
      }
    } else if (k == "DeveloperCertificates" && type == "array") {
      int index = 0;
      for (pugi::xml_node data = value.child("data"); data; data = data.next_sibling("data")) {
        ++index;
        std::optional<std::string> bytes = DecodeBase64(data.child_value());
        const auto* cp = bytes ? reinterpret_cast<const unsigned char*>(bytes->data()) : nullptr;
        ossl::X509Ptr cert(bytes ? d2i_X509(nullptr, &cp, static_cast<long>(bytes->size()))
                                 : nullptr);
        if (!cert) {
          return Invalid(input_name, "developer certificate " + std::to_string(index) +
                                         " in the profile is not a valid certificate");
        }
        profile.developer_certificates.push_back(std::move(cert));
      }
    }
  }
  if (!have_expiry) return Invalid(input_name, "the profile has no ExpirationDate");
  if (profile.developer_certificates.empty()) {
    return Invalid(input_name, "the profile contains no developer certificate");
  }
  ossl::ClearErrors();
  return profile;
}

}  // namespace wsstep::core

#include "core/store/upload.h"

#include <string>
#include <utility>

#include "core/ossl.h"
#include "core/store/master_key.h"

namespace wsstep::core {

ImportInput ImportInputFor(EntryType type, MaterialUpload& upload, const SecretBytes* key_override,
                           std::string_view key_name) {
  ImportInput in;
  in.type = type;
  in.declared_format = upload.declared_format;
  in.content_name = upload.content_name;
  in.key_name = key_name.empty() ? upload.key_name : std::string(key_name);
  in.content = &upload.content;
  in.key = key_override != nullptr ? key_override : (upload.key ? &*upload.key : nullptr);
  if (upload.password) in.password = std::move(*upload.password);
  if (upload.key_password) in.key_password = std::move(*upload.key_password);
  in.alias = upload.alias;
  return in;
}

Result<PreparedUpload> PrepareUpload(const ImportInput& input) {
  WSSTEP_ASSIGN_OR_RETURN(ParsedMaterial parsed, ParseMaterial(input));
  PreparedUpload p;
  p.parsed = std::move(parsed);
  DescribeMaterial(p.parsed, p.facts);
  if (p.parsed.leaf) p.stored.leaf_der = ossl::CertificateDer(p.parsed.leaf.get());
  for (const auto& c : p.parsed.chain) p.stored.chain_der.push_back(ossl::CertificateDer(c.get()));
  for (const auto& c : p.parsed.trusted) {
    p.stored.trusted_der.push_back(ossl::CertificateDer(c.get()));
  }
  return p;
}

Status SealPreparedKey(PreparedUpload& p, const Vault& vault, std::string_view entry_id) {
  if (p.parsed.key == nullptr) return {};
  if (p.parsed.key_pkcs8_der.empty()) {
    return Error(Code::kInternal, "the importer returned a key without its PKCS#8 encoding");
  }
  WSSTEP_ASSIGN_OR_RETURN(std::string blob,
                          vault.Seal(p.parsed.key_pkcs8_der, SealedKeyAad(entry_id)));
  WSSTEP_ASSIGN_OR_RETURN(p.stored.sealed_key_id, Vault::KeyIdOf(blob));
  p.stored.sealed_key = std::move(blob);
  return {};
}

}  // namespace wsstep::core

// From an administrator's upload to what the store writes: the material parsed and
// described (core/material.h), its certificates as DER, its private key sealed under the
// master key. All of it happens before the store takes its write lock, so that parsing
// and PBKDF2 never hold up other changes. Internal to the store.
//
//   ImportInput in = ImportInputFor(type, request.material, nullptr, "");
//   in.bound_trust = ...; in.now = now;
//   WSSTEP_ASSIGN_OR_RETURN(PreparedUpload p, PrepareUpload(in));
//   WSSTEP_RETURN_IF_ERROR(SealPreparedKey(p, *vault, entry_id));
//   ... p.facts describe the material (core/store/entry_changes.h applies them) ...
#ifndef WSSTEP_CORE_STORE_UPLOAD_H_
#define WSSTEP_CORE_STORE_UPLOAD_H_

#include <string_view>

#include "core/error.h"
#include "core/material.h"
#include "core/model.h"
#include "core/secret.h"
#include "core/store/storage.h"
#include "core/store/store.h"
#include "core/vault.h"

namespace wsstep::core {

// What a Create, Update or AttachCertificate parsed, before it is committed.
struct PreparedUpload {
  EntryMetadata facts;    // only the fields DescribeMaterial fills
  ParsedMaterial parsed;  // to pre-build the entry's identity after the commit
  StoredMaterial stored;  // certificates as DER; sealed_key once SealPreparedKey ran
};

// The importer's input for `upload` read as `type`. Moves the passwords out of `upload`
// (they are zeroized with the input). `key_override` replaces upload.key (attaching a
// certificate to a stored key), and `key_name` upload.key_name, when set. The caller
// adds bound_trust and now.
ImportInput ImportInputFor(EntryType type, MaterialUpload& upload, const SecretBytes* key_override,
                           std::string_view key_name);

// Parses and describes the material. Errors: the import codes of core/material.h.
Result<PreparedUpload> PrepareUpload(const ImportInput& input);

// Seals the parsed private key (if any) for entry `entry_id` under `vault`'s primary key.
Status SealPreparedKey(PreparedUpload& prepared, const Vault& vault, std::string_view entry_id);

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_STORE_UPLOAD_H_

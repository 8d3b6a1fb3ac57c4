#include "core/store/store_copy.h"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "core/store/codec.h"

namespace wsstep::core {
namespace {

constexpr size_t kAuditPage = 1000;

Error Refused(std::string message, std::string hint) {
  return Error(Code::kFailedPrecondition, std::move(message), std::move(hint), Side::kStore);
}

// Every audit event of `from`, oldest first.
Result<std::vector<AuditEvent>> AllAudit(Storage& from) {
  std::vector<AuditEvent> all;
  int64_t before = 0;
  for (;;) {
    WSSTEP_ASSIGN_OR_RETURN(std::vector<AuditEvent> page,
                            from.ReadAudit(AuditFilter{}, before, kAuditPage));
    if (page.empty()) break;
    before = page.back().sequence;
    for (auto& ev : page) all.push_back(std::move(ev));
    if (page.size() < kAuditPage) break;
  }
  std::reverse(all.begin(), all.end());
  return all;
}

}  // namespace

Result<StoreCopyReport> CopyStore(Storage& from, Storage& to, const StoreCopyOptions& options) {
  WSSTEP_ASSIGN_OR_RETURN(std::optional<MasterKeyRecord> key, from.ReadMasterKeyRecord());
  WSSTEP_ASSIGN_OR_RETURN(std::optional<MasterKeyRecord> target_key, to.ReadMasterKeyRecord());
  WSSTEP_ASSIGN_OR_RETURN(LoadedEntries target, to.LoadEntries());
  if (!target.entries.empty() && !options.into_non_empty) {
    return Refused(to.location() + " already holds " + std::to_string(target.entries.size()) +
                       " entries; nothing was copied",
                   "copy into an empty store, or add --into-non-empty to add the entries of " +
                       from.location() + " to them");
  }
  if (key && target_key && key->key_id != target_key->key_id) {
    return Refused(to.location() + " is sealed under master key " + target_key->key_id + ", " +
                       from.location() + " under " + key->key_id + "; nothing was copied",
                   "a store has one master key: copy into an empty store, or rotate one of "
                   "them to the other's key first");
  }

  WSSTEP_ASSIGN_OR_RETURN(LoadedEntries source, from.LoadEntries());
  std::vector<std::optional<StoredMaterial>> material;
  material.reserve(source.entries.size());
  for (const auto& e : source.entries) {
    WSSTEP_ASSIGN_OR_RETURN(std::optional<StoredMaterial> m, from.ReadMaterial(e.id));
    material.push_back(std::move(m));
  }
  WSSTEP_ASSIGN_OR_RETURN(std::vector<AuditEvent> audit, AllAudit(from));
  WSSTEP_ASSIGN_OR_RETURN(std::vector<StoredSecret> secrets, from.ReadSecrets());
  WSSTEP_ASSIGN_OR_RETURN(std::vector<StoredSecret> target_secrets, to.ReadSecrets());
  for (const auto& theirs : target_secrets) {
    for (const auto& ours : secrets) {
      if (AsciiLower(ours.name) != AsciiLower(theirs.name)) continue;
      return Error(Code::kDuplicateName,
                   to.location() + " already holds a proxy credential named \"" + theirs.name +
                       "\"; nothing was copied",
                   "delete one of the two (`wsstep proxy-credential delete`) and copy again",
                   Side::kStore)
          .With("proxy_credential", theirs.name);
    }
  }

  StoreCopyReport report;
  WSSTEP_ASSIGN_OR_RETURN(auto tx, to.Begin());
  if (key && !target_key) WSSTEP_RETURN_IF_ERROR(tx->PutMasterKeyRecord(*key));
  // After the target's own entries, in the source's save order.
  int64_t save_sequence = target.latest_save_sequence;
  for (size_t i = 0; i < source.entries.size(); ++i) {
    const EntryMetadata& e = source.entries[i];
    WSSTEP_RETURN_IF_ERROR(tx->PutEntry(e, ++save_sequence));
    WSSTEP_RETURN_IF_ERROR(tx->PutBindings(e));
    if (material[i]) {
      WSSTEP_RETURN_IF_ERROR(tx->PutMaterial(e, *material[i]));
      if (material[i]->sealed_key) ++report.private_keys;
    }
    if (e.use_count > 0 || e.last_used_at > 0) {
      WSSTEP_RETURN_IF_ERROR(tx->PutUsage(e.id, e.use_count, e.last_used_at));
    }
  }
  // Still sealed: they open under the same master key as the private keys.
  for (const auto& secret : secrets) WSSTEP_RETURN_IF_ERROR(tx->PutSecret(secret));
  for (const auto& ev : audit) WSSTEP_RETURN_IF_ERROR(tx->AppendAudit(ev));
  WSSTEP_RETURN_IF_ERROR(tx->Commit());
  report.entries = source.entries.size();
  report.audit_events = audit.size();
  report.proxy_credentials = secrets.size();
  if (key) report.master_key_id = key->key_id;
  return report;
}

}  // namespace wsstep::core

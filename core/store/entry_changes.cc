#include "core/store/entry_changes.h"

#include <utility>
#include <vector>

namespace wsstep::core {

EntryMetadata NewEntry(std::string id, CreateRequest& r, EntryMetadata&& facts, UnixSeconds now) {
  EntryMetadata m = std::move(facts);
  m.id = std::move(id);
  m.name = std::move(r.name);
  m.description = std::move(r.description);
  m.type = r.type;
  m.bindings = std::move(r.bindings);
  m.private_trust_only = r.private_trust_only;
  m.disabled = r.disabled;
  m.notifications = std::move(r.notifications);
  m.created_at = now;
  m.updated_at = now;
  m.version = 1;
  return m;
}

EntryMetadata NewPendingKeyEntry(std::string id, KeyGenerationRequest& request, UnixSeconds now) {
  EntryMetadata m;
  m.id = std::move(id);
  m.name = std::move(request.name);
  m.description = std::move(request.description);
  m.type = EntryType::kKeyPair;
  m.source_format = SourceFormat::kPem;
  m.bindings = std::move(request.bindings);
  m.notifications = std::move(request.notifications);
  m.has_private_key = true;
  m.pending_certificate = true;
  // What was generated, until the certificate brings its own facts.
  m.attributes["key_algorithm"] = request.csr.key_algorithm;
  if (!request.csr.curve.empty()) m.attributes["curve"] = request.csr.curve;
  m.created_at = m.updated_at = now;
  m.version = 1;
  return m;
}

void ApplyMaterialFacts(EntryMetadata& e, EntryMetadata&& facts, uint64_t version) {
  e.certificate = std::move(facts.certificate);
  e.chain_subjects = std::move(facts.chain_subjects);
  e.trusted = std::move(facts.trusted);
  e.key_alias = std::move(facts.key_alias);
  e.attributes = std::move(facts.attributes);
  e.has_private_key = facts.has_private_key;
  e.has_password = facts.has_password;
  e.source_format = facts.source_format;
  e.pending_certificate = false;
  e.version = version;
}

Status CheckRevocationIsFinal(const EntryMetadata& e, const UpdateRequest& request) {
  if (!e.revoked) return {};
  const bool unrevoke = request.revoked && !*request.revoked;
  const bool enable = request.disabled && !*request.disabled && e.disabled;
  if (!unrevoke && !enable) return {};
  return Error(Code::kFailedPrecondition,
               "certificate '" + e.name + "' is revoked, and revocation is final: it cannot be " +
                   (unrevoke ? "un-revoked" : "enabled again"),
               "Import the renewed certificate as a new entry and bind it where this one was "
               "bound; delete the revoked entry when it is no longer needed.",
               Side::kConfiguration)
      .With("certificate", e.name)
      .With("field", unrevoke ? "revoked" : "disabled");
}

AppliedUpdate ApplyUpdate(EntryMetadata& e, const UpdateRequest& request, EntryMetadata* new_facts,
                          UnixSeconds now) {
  AppliedUpdate applied;
  std::vector<std::string> changed;
  auto note = [&](bool differs, const char* what) {
    if (differs) changed.push_back(what);
  };
  if (request.name) {
    note(e.name != *request.name, "name");
    e.name = *request.name;
  }
  if (request.description) {
    note(e.description != *request.description, "description");
    e.description = *request.description;
  }
  if (request.bindings) {
    applied.bindings_changed = e.bindings != *request.bindings;
    note(applied.bindings_changed, "bindings");
    e.bindings = *request.bindings;
  }
  if (request.notifications) {
    note(!(e.notifications == *request.notifications), "notifications");
    e.notifications = *request.notifications;
  }
  if (request.private_trust_only) {
    note(e.private_trust_only != *request.private_trust_only, "private_trust_only");
    e.private_trust_only = *request.private_trust_only;
  }
  if (request.disabled) {
    if (e.disabled != *request.disabled)
      changed.push_back(*request.disabled ? "disabled" : "enabled");
    e.disabled = *request.disabled;
  }
  if (request.revoked) {  // never from true to false: CheckRevocationIsFinal
    note(e.revoked != *request.revoked, "revoked");
    e.revoked = *request.revoked;
  }
  if (new_facts != nullptr) {
    ApplyMaterialFacts(e, std::move(*new_facts), e.version + 1);
    changed.push_back("material (version " + std::to_string(e.version) + ")");
  }
  e.updated_at = now;
  for (const auto& c : changed) applied.detail += (applied.detail.empty() ? "" : ", ") + c;
  if (applied.detail.empty()) applied.detail = "no change";
  return applied;
}

}  // namespace wsstep::core

// The audit log's vocabulary (PRODUCT.md §1 "Audit log"): who did what to which entry,
// and every use of the store by a step. Part of the store's public API: include
// core/store/store.h, which includes this; the store's storage backends
// (core/store/storage.h) write and read these events.
//
//   std::vector<AuditEvent> uses =
//       store->ListAudit({.entry_id = id, .action = AuditAction::kUse}).value().events;
//
// The log is append-only: no API changes or removes an event.
#ifndef WSSTEP_CORE_STORE_AUDIT_H_
#define WSSTEP_CORE_STORE_AUDIT_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/model.h"

namespace wsstep::core {

// Who did it, for the audit log. Step and workflow ids come from the engine's request.
struct AuditContext {
  AuditContext() = default;
  AuditContext(std::string actor_, std::string step_id_ = {},  // NOLINT: {"alice"} reads well
               std::string workflow_id_ = {})
      : actor(std::move(actor_)),
        step_id(std::move(step_id_)),
        workflow_id(std::move(workflow_id_)) {}
  AuditContext(const char* actor_) : AuditContext(std::string(actor_)) {}  // NOLINT
  std::string actor;
  std::string step_id;
  std::string workflow_id;
};

enum class AuditAction {
  kCreate,
  kUpdate,
  kDelete,
  kImportFailure,  // a Create/Update/Attach whose material was refused; `code` says why
  kUse,            // a step used the store for a call (RecordUse)
  kGenerateKey,    // GenerateKeyAndCsr created a pending entry
  kAttachCertificate,
  kRotateMasterKey,
  kNotify,       // an expiry notification was handed to the host (once per entry and UTC day)
  kAcknowledge,  // the host acknowledged an expiry notification
  // A proxy credential was created or changed / deleted (entry_name: its name; no entry).
  kSetProxyCredential,
  kDeleteProxyCredential,
};
std::string_view AuditActionName(AuditAction a);  // "CREATE", "IMPORT_FAILURE", "USE", ...
std::optional<AuditAction> AuditActionFromName(std::string_view name);

// One row of the append-only audit log. Never holds secret material.
struct AuditEvent {
  int64_t sequence = 0;  // increasing; the newest event has the greatest
  UnixSeconds at = 0;
  AuditAction action = AuditAction::kCreate;
  std::string actor;
  std::string entry_id;    // empty for events without an entry (rotation, failed create)
  std::string entry_name;  // the name at the time of the event
  // kUse: the call's target and ids.
  std::string host;
  uint16_t port = 0;
  std::string environment;
  std::string step_id;
  std::string workflow_id;
  std::string outcome;  // kUse: "OK" or a catalog code name; others: "OK"
  std::string code;     // kImportFailure: the catalog code, e.g. "WRONG_PASSWORD"
  std::string detail;   // what changed ("name, bindings"), or the failure's message
};

struct AuditFilter {
  std::string entry_id;  // exact id; empty: any
  std::optional<AuditAction> action;
  std::string actor;
  std::string step_id;
  std::string workflow_id;
  UnixSeconds since = 0;   // inclusive; 0: no lower bound
  UnixSeconds until = 0;   // exclusive; 0: no upper bound
  size_t page_size = 100;  // 0 means 100; at most 1000
  std::string page_token;  // from the previous page; empty: the newest events first
};

struct AuditPage {
  std::vector<AuditEvent> events;  // newest first
  std::string next_page_token;     // empty: no more
};

// ---- For the store's implementation ----

// An event of `action` on entry `e` by `ctx` at `at`, outcome "OK".
AuditEvent EntryAuditEvent(AuditAction action, const AuditContext& ctx, const EntryMetadata& e,
                           std::string detail, UnixSeconds at);
// The same for a change that is not an entry's: `name` (a proxy credential's, or none) in
// entry_name, no entry id.
AuditEvent ContextAuditEvent(AuditAction action, const AuditContext& ctx, std::string name,
                             std::string detail, UnixSeconds at);

// AuditFilter::page_token as the sequence the page starts below (0 for the first page).
// INVALID_ARGUMENT naming page_token for anything ListAudit did not hand out.
Result<int64_t> AuditPageStart(std::string_view page_token);
// The token of the page after one that ended with `last`.
std::string AuditPageToken(const AuditEvent& last);

}  // namespace wsstep::core

#endif  // WSSTEP_CORE_STORE_AUDIT_H_

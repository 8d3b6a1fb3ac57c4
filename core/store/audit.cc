#include "core/store/audit.h"

#include <cerrno>
#include <cstdlib>
#include <utility>

#include "core/enum_names.h"
#include "core/store/validation.h"

namespace wsstep::core {
namespace {

constexpr std::pair<AuditAction, std::string_view> kAuditActionNames[] = {
    {AuditAction::kCreate, "CREATE"},
    {AuditAction::kUpdate, "UPDATE"},
    {AuditAction::kDelete, "DELETE"},
    {AuditAction::kImportFailure, "IMPORT_FAILURE"},
    {AuditAction::kUse, "USE"},
    {AuditAction::kGenerateKey, "GENERATE_KEY"},
    {AuditAction::kAttachCertificate, "ATTACH_CERTIFICATE"},
    {AuditAction::kRotateMasterKey, "ROTATE_MASTER_KEY"},
    {AuditAction::kNotify, "NOTIFY"},
    {AuditAction::kAcknowledge, "ACKNOWLEDGE"},
    {AuditAction::kSetProxyCredential, "SET_PROXY_CREDENTIAL"},
    {AuditAction::kDeleteProxyCredential, "DELETE_PROXY_CREDENTIAL"},
};

}  // namespace

std::string_view AuditActionName(AuditAction a) { return NameIn(kAuditActionNames, a); }

std::optional<AuditAction> AuditActionFromName(std::string_view name) {
  return ValueIn(kAuditActionNames, name);
}

AuditEvent ContextAuditEvent(AuditAction action, const AuditContext& ctx, std::string name,
                             std::string detail, UnixSeconds at) {
  AuditEvent ev;
  ev.at = at;
  ev.action = action;
  ev.actor = ctx.actor;
  ev.entry_name = std::move(name);
  ev.step_id = ctx.step_id;
  ev.workflow_id = ctx.workflow_id;
  ev.outcome = "OK";
  ev.detail = std::move(detail);
  return ev;
}

AuditEvent EntryAuditEvent(AuditAction action, const AuditContext& ctx, const EntryMetadata& e,
                           std::string detail, UnixSeconds at) {
  AuditEvent ev = ContextAuditEvent(action, ctx, e.name, std::move(detail), at);
  ev.entry_id = e.id;
  return ev;
}

Result<int64_t> AuditPageStart(std::string_view page_token) {
  if (page_token.empty()) return int64_t{0};
  const std::string token(page_token);
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(token.c_str(), &end, 10);
  if (errno != 0 || end == token.c_str() || *end != '\0' || v <= 0) {
    return Invalid("page_token", "not a token returned by a previous ListAudit");
  }
  return static_cast<int64_t>(v);
}

std::string AuditPageToken(const AuditEvent& last) { return std::to_string(last.sequence); }

}  // namespace wsstep::core

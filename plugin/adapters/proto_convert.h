// Conversions between the certificate store's domain types (core/) and the wire types of
// wsstep.v1 (certificate.proto, certificate_service.proto). Pure functions: no store
// access. Errors name the *proto* field path (detail "field"), so status_map turns them
// into google.rpc.BadRequest field violations the host can show next to its form field.
//
//   v1::Certificate c;
//   CertificateToProto(entry, store.Now(), &c);
//   WSSTEP_ASSIGN_OR_RETURN(core::Binding b, BindingFromProto(req.bindings(0), "certificate.bindings[0]"));
#ifndef WSSTEP_PLUGIN_ADAPTERS_PROTO_CONVERT_H_
#define WSSTEP_PLUGIN_ADAPTERS_PROTO_CONVERT_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/model.h"
#include "core/notifications.h"
#include "core/store/store.h"
#include "wsstep/v1/certificate.pb.h"
#include "wsstep/v1/certificate_service.pb.h"

namespace wsstep::plugin {

void SetTimestamp(core::UnixSeconds t, google::protobuf::Timestamp* out);

v1::CertificateType EntryTypeToProto(core::EntryType t);
// CERTIFICATE_TYPE_UNSPECIFIED: nullopt.
std::optional<core::EntryType> EntryTypeFromProto(v1::CertificateType t);
v1::SourceFormat SourceFormatToProto(core::SourceFormat f);
core::SourceFormat SourceFormatFromProto(v1::SourceFormat f);
v1::CertificateStatus StatusToProto(core::CertStatus s);
std::optional<core::CertStatus> StatusFromProto(v1::CertificateStatus s);
v1::AuditAction AuditActionToProto(core::AuditAction a);
std::optional<core::AuditAction> AuditActionFromProto(v1::AuditAction a);

void BindingToProto(const core::Binding& b, v1::Binding* out);
// Port 0 -> 443, empty environment -> "default". INVALID_ARGUMENT naming `field`.
Result<core::Binding> BindingFromProto(const v1::Binding& b, const std::string& field);
Result<std::vector<core::Binding>> BindingsFromProto(
    const google::protobuf::RepeatedPtrField<v1::Binding>& bindings, const std::string& field);

// "host:port@environment", the port and environment filled in; "[v6]:port@environment".
std::string BindingText(const v1::Binding& b);

void CertificateInfoToProto(const core::CertificateInfo& info, v1::CertificateInfo* out);
// Metadata only; status and days_remaining at `now`.
void CertificateToProto(const core::EntryMetadata& e, core::UnixSeconds now, v1::Certificate* out);

void NotificationsToProto(const core::NotificationSettings& n, v1::NotificationSettings* out);
// warning_days 0 -> 30, urgent_days 0 -> DefaultUrgentDays(warning_days), frequency unset
// -> daily; `enabled` as given.
core::NotificationSettings NotificationsFromProto(const v1::NotificationSettings& n);
// urgent_days when a request leaves it 0: 7, or warning_days when that is smaller.
int DefaultUrgentDays(int warning_days);
v1::NotificationLevel NotificationLevelToProto(core::NotificationLevel level);

// A catalog error as a Diagnostic: ValidateStep's error findings, and import warnings
// (whose warning_code ImportWarningCode gives).
void ErrorToDiagnostic(const Error& e, v1::Severity severity, v1::Diagnostic* out);

// What a host reads in Diagnostic.code for a warning: the value's name without
// "WARNING_CODE_", e.g. "CHAIN_INCOMPLETE".
std::string_view WarningCodeName(v1::WarningCode code);
// A warning as a Diagnostic: warning_code, its name in code, severity, summary (made
// valid UTF-8) and field path.
void FillWarningDiagnostic(v1::WarningCode code, v1::Severity severity, std::string_view summary,
                           std::string_view field_path, v1::Diagnostic* out);
// The warning an import reports as a catalog code (core's warnings are Errors):
// CHAIN_INCOMPLETE; WARNING_CODE_UNSPECIFIED for a code that is no warning.
v1::WarningCode ImportWarningCode(Code code);

void AuditEventToProto(const core::AuditEvent& e, v1::AuditEvent* out);

// Prefixes a core field name with its proto parent ("name" -> "certificate.name"), in
// place, when the error carries detail "field".
Error WithFieldPrefix(Error e, std::string_view prefix);

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_ADAPTERS_PROTO_CONVERT_H_

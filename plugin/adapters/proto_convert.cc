#include "plugin/adapters/proto_convert.h"

#include "plugin/process/utf8.h"

namespace wsstep::plugin {

void SetTimestamp(core::UnixSeconds t, google::protobuf::Timestamp* out) {
  out->set_seconds(t);
  out->set_nanos(0);
}

v1::CertificateType EntryTypeToProto(core::EntryType t) {
  switch (t) {
    case core::EntryType::kKeyPair: return v1::CERTIFICATE_TYPE_KEY_PAIR;
    case core::EntryType::kPkcs12: return v1::CERTIFICATE_TYPE_PKCS12;
    case core::EntryType::kTrustStore: return v1::CERTIFICATE_TYPE_TRUST_STORE;
    case core::EntryType::kJavaKeystore: return v1::CERTIFICATE_TYPE_JAVA_KEYSTORE;
    case core::EntryType::kMobileProvisioning: return v1::CERTIFICATE_TYPE_MOBILE_PROVISIONING;
  }
  return v1::CERTIFICATE_TYPE_UNSPECIFIED;
}

std::optional<core::EntryType> EntryTypeFromProto(v1::CertificateType t) {
  switch (t) {
    case v1::CERTIFICATE_TYPE_KEY_PAIR: return core::EntryType::kKeyPair;
    case v1::CERTIFICATE_TYPE_PKCS12: return core::EntryType::kPkcs12;
    case v1::CERTIFICATE_TYPE_TRUST_STORE: return core::EntryType::kTrustStore;
    case v1::CERTIFICATE_TYPE_JAVA_KEYSTORE: return core::EntryType::kJavaKeystore;
    case v1::CERTIFICATE_TYPE_MOBILE_PROVISIONING: return core::EntryType::kMobileProvisioning;
    default: return std::nullopt;
  }
}

v1::SourceFormat SourceFormatToProto(core::SourceFormat f) {
  switch (f) {
    case core::SourceFormat::kAuto: return v1::SOURCE_FORMAT_UNSPECIFIED;
    case core::SourceFormat::kPem: return v1::SOURCE_FORMAT_PEM;
    case core::SourceFormat::kDer: return v1::SOURCE_FORMAT_DER;
    case core::SourceFormat::kPkcs12: return v1::SOURCE_FORMAT_PKCS12;
    case core::SourceFormat::kJks: return v1::SOURCE_FORMAT_JKS;
    case core::SourceFormat::kJceks: return v1::SOURCE_FORMAT_JCEKS;
    case core::SourceFormat::kMobileProvision: return v1::SOURCE_FORMAT_MOBILE_PROVISION;
  }
  return v1::SOURCE_FORMAT_UNSPECIFIED;
}

core::SourceFormat SourceFormatFromProto(v1::SourceFormat f) {
  switch (f) {
    case v1::SOURCE_FORMAT_PEM: return core::SourceFormat::kPem;
    case v1::SOURCE_FORMAT_DER: return core::SourceFormat::kDer;
    case v1::SOURCE_FORMAT_PKCS12: return core::SourceFormat::kPkcs12;
    case v1::SOURCE_FORMAT_JKS: return core::SourceFormat::kJks;
    case v1::SOURCE_FORMAT_JCEKS: return core::SourceFormat::kJceks;
    case v1::SOURCE_FORMAT_MOBILE_PROVISION: return core::SourceFormat::kMobileProvision;
    default: return core::SourceFormat::kAuto;
  }
}

v1::CertificateStatus StatusToProto(core::CertStatus s) {
  switch (s) {
    case core::CertStatus::kValid: return v1::CERTIFICATE_STATUS_VALID;
    case core::CertStatus::kExpiringSoon: return v1::CERTIFICATE_STATUS_EXPIRING_SOON;
    case core::CertStatus::kExpired: return v1::CERTIFICATE_STATUS_EXPIRED;
    case core::CertStatus::kNotYetValid: return v1::CERTIFICATE_STATUS_NOT_YET_VALID;
    case core::CertStatus::kRevoked: return v1::CERTIFICATE_STATUS_REVOKED;
    case core::CertStatus::kDisabled: return v1::CERTIFICATE_STATUS_DISABLED;
    case core::CertStatus::kPendingCertificate: return v1::CERTIFICATE_STATUS_PENDING_CERTIFICATE;
  }
  return v1::CERTIFICATE_STATUS_UNSPECIFIED;
}

std::optional<core::CertStatus> StatusFromProto(v1::CertificateStatus s) {
  switch (s) {
    case v1::CERTIFICATE_STATUS_VALID: return core::CertStatus::kValid;
    case v1::CERTIFICATE_STATUS_EXPIRING_SOON: return core::CertStatus::kExpiringSoon;
    case v1::CERTIFICATE_STATUS_EXPIRED: return core::CertStatus::kExpired;
    case v1::CERTIFICATE_STATUS_NOT_YET_VALID: return core::CertStatus::kNotYetValid;
    case v1::CERTIFICATE_STATUS_REVOKED: return core::CertStatus::kRevoked;
    case v1::CERTIFICATE_STATUS_DISABLED: return core::CertStatus::kDisabled;
    case v1::CERTIFICATE_STATUS_PENDING_CERTIFICATE: return core::CertStatus::kPendingCertificate;
    default: return std::nullopt;
  }
}

v1::AuditAction AuditActionToProto(core::AuditAction a) {
  switch (a) {
    case core::AuditAction::kCreate: return v1::AUDIT_ACTION_CREATE;
    case core::AuditAction::kUpdate: return v1::AUDIT_ACTION_UPDATE;
    case core::AuditAction::kDelete: return v1::AUDIT_ACTION_DELETE;
    case core::AuditAction::kImportFailure: return v1::AUDIT_ACTION_IMPORT_FAILURE;
    case core::AuditAction::kUse: return v1::AUDIT_ACTION_USE;
    case core::AuditAction::kGenerateKey: return v1::AUDIT_ACTION_GENERATE_KEY;
    case core::AuditAction::kAttachCertificate: return v1::AUDIT_ACTION_ATTACH_CERTIFICATE;
    case core::AuditAction::kRotateMasterKey: return v1::AUDIT_ACTION_ROTATE_MASTER_KEY;
    case core::AuditAction::kNotify: return v1::AUDIT_ACTION_NOTIFY;
    case core::AuditAction::kAcknowledge: return v1::AUDIT_ACTION_ACKNOWLEDGE;
    case core::AuditAction::kSetProxyCredential: return v1::AUDIT_ACTION_SET_PROXY_CREDENTIAL;
    case core::AuditAction::kDeleteProxyCredential:
      return v1::AUDIT_ACTION_DELETE_PROXY_CREDENTIAL;
  }
  return v1::AUDIT_ACTION_UNSPECIFIED;
}

std::optional<core::AuditAction> AuditActionFromProto(v1::AuditAction a) {
  switch (a) {
    case v1::AUDIT_ACTION_CREATE: return core::AuditAction::kCreate;
    case v1::AUDIT_ACTION_UPDATE: return core::AuditAction::kUpdate;
    case v1::AUDIT_ACTION_DELETE: return core::AuditAction::kDelete;
    case v1::AUDIT_ACTION_IMPORT_FAILURE: return core::AuditAction::kImportFailure;
    case v1::AUDIT_ACTION_USE: return core::AuditAction::kUse;
    case v1::AUDIT_ACTION_GENERATE_KEY: return core::AuditAction::kGenerateKey;
    case v1::AUDIT_ACTION_ATTACH_CERTIFICATE: return core::AuditAction::kAttachCertificate;
    case v1::AUDIT_ACTION_ROTATE_MASTER_KEY: return core::AuditAction::kRotateMasterKey;
    case v1::AUDIT_ACTION_NOTIFY: return core::AuditAction::kNotify;
    case v1::AUDIT_ACTION_ACKNOWLEDGE: return core::AuditAction::kAcknowledge;
    case v1::AUDIT_ACTION_SET_PROXY_CREDENTIAL: return core::AuditAction::kSetProxyCredential;
    case v1::AUDIT_ACTION_DELETE_PROXY_CREDENTIAL:
      return core::AuditAction::kDeleteProxyCredential;
    default: return std::nullopt;  // NOTIFY / ACKNOWLEDGE: the store does not write them
  }
}

void BindingToProto(const core::Binding& b, v1::Binding* out) {
  out->set_host(b.host);
  out->set_port(b.port);
  out->set_environment(b.environment);
}

Result<core::Binding> BindingFromProto(const v1::Binding& b, const std::string& field) {
  core::Binding out;
  out.host = b.host();
  if (b.port() > 65535) {
    return Error(Code::kInvalidArgument,
                 field + ".port: " + std::to_string(b.port()) + " is not a TCP port (1-65535)")
        .With("field", field + ".port");
  }
  out.port = b.port() == 0 ? core::kDefaultPort : static_cast<uint16_t>(b.port());
  if (!b.environment().empty()) out.environment = b.environment();
  return out;
}

Result<std::vector<core::Binding>> BindingsFromProto(
    const google::protobuf::RepeatedPtrField<v1::Binding>& bindings, const std::string& field) {
  std::vector<core::Binding> out;
  for (int i = 0; i < bindings.size(); ++i) {
    WSSTEP_ASSIGN_OR_RETURN(core::Binding b,
                            BindingFromProto(bindings[i], field + "[" + std::to_string(i) + "]"));
    out.push_back(std::move(b));
  }
  return out;
}

void CertificateInfoToProto(const core::CertificateInfo& info, v1::CertificateInfo* out) {
  out->set_subject(info.subject);
  out->set_issuer(info.issuer);
  out->set_serial(info.serial);
  SetTimestamp(info.not_before, out->mutable_not_before());
  SetTimestamp(info.not_after, out->mutable_not_after());
  for (const auto& s : info.sans) out->add_sans(s);
  out->set_key_algorithm(info.key_algorithm);
  out->set_key_bits(info.key_bits);
  out->set_curve(info.curve);
  out->set_sha256_fingerprint(info.sha256_fingerprint);
  out->set_is_ca(info.is_ca);
}

std::string BindingText(const v1::Binding& b) {
  const bool v6 = b.host().find(':') != std::string::npos;
  std::string s =
      (v6 ? "[" + b.host() + "]" : b.host()) + ":" + std::to_string(b.port() == 0 ? 443 : b.port());
  s += "@" + (b.environment().empty() ? std::string("default") : b.environment());
  return s;
}

void NotificationsToProto(const core::NotificationSettings& n, v1::NotificationSettings* out) {
  out->set_enabled(n.enabled);
  out->set_warning_days(n.warning_days);
  out->set_urgent_days(n.urgent_days);
  out->set_frequency(n.frequency == core::NotificationFrequency::kWeekly
                         ? v1::NOTIFICATION_FREQUENCY_WEEKLY
                         : v1::NOTIFICATION_FREQUENCY_DAILY);
  out->set_alert_ref(n.alert_ref);
}

v1::NotificationLevel NotificationLevelToProto(core::NotificationLevel level) {
  switch (level) {
    case core::NotificationLevel::kWarning:
      return v1::NOTIFICATION_LEVEL_WARNING;
    case core::NotificationLevel::kUrgent:
      return v1::NOTIFICATION_LEVEL_URGENT;
    case core::NotificationLevel::kNone:
      break;
  }
  return v1::NOTIFICATION_LEVEL_NONE;
}

int DefaultUrgentDays(int warning_days) {
  return std::min(core::NotificationSettings{}.urgent_days, std::max(0, warning_days));
}

core::NotificationSettings NotificationsFromProto(const v1::NotificationSettings& n) {
  core::NotificationSettings out;
  out.enabled = n.enabled();
  if (n.warning_days() != 0) out.warning_days = n.warning_days();
  out.urgent_days = n.urgent_days() != 0 ? n.urgent_days() : DefaultUrgentDays(out.warning_days);
  out.frequency = n.frequency() == v1::NOTIFICATION_FREQUENCY_WEEKLY
                      ? core::NotificationFrequency::kWeekly
                      : core::NotificationFrequency::kDaily;
  out.alert_ref = n.alert_ref();
  return out;
}

void CertificateToProto(const core::EntryMetadata& e, core::UnixSeconds now, v1::Certificate* out) {
  out->Clear();
  out->set_id(e.id);
  out->set_name(e.name);
  out->set_description(e.description);
  out->set_type(EntryTypeToProto(e.type));
  out->set_source_format(SourceFormatToProto(e.source_format));
  for (const auto& b : e.bindings) BindingToProto(b, out->add_bindings());
  if (e.certificate) CertificateInfoToProto(*e.certificate, out->mutable_certificate());
  for (const auto& s : e.chain_subjects) out->add_chain_subjects(s);
  for (const auto& t : e.trusted) CertificateInfoToProto(t, out->add_trusted());
  out->set_key_alias(e.key_alias);
  for (const auto& [k, v] : e.attributes) (*out->mutable_attributes())[k] = v;
  out->set_has_private_key(e.has_private_key);
  out->set_has_password(e.has_password);
  out->set_private_trust_only(e.private_trust_only);
  out->set_disabled(e.disabled);
  out->set_revoked(e.revoked);
  out->set_pending_certificate(e.pending_certificate);
  out->set_status(StatusToProto(core::StatusAt(e, now)));
  out->set_days_remaining(core::DaysRemaining(e, now));
  out->set_notification_level(NotificationLevelToProto(core::NotificationLevelAt(e, now)));
  SetTimestamp(e.created_at, out->mutable_create_time());
  SetTimestamp(e.updated_at, out->mutable_update_time());
  if (e.last_used_at != 0) SetTimestamp(e.last_used_at, out->mutable_last_use_time());
  out->set_use_count(e.use_count);
  out->set_version(e.version);
  NotificationsToProto(e.notifications, out->mutable_notifications());
  if (e.last_notified_at != 0) SetTimestamp(e.last_notified_at, out->mutable_last_notify_time());
}

void ErrorToDiagnostic(const Error& e, v1::Severity severity, v1::Diagnostic* out) {
  out->set_severity(severity);
  out->set_code(std::string(CodeName(e.code)));
  out->set_summary(e.message);
  out->set_detail(e.hint);
  auto it = e.detail.find("field");
  if (it != e.detail.end()) out->set_field_path(it->second);
}

std::string_view WarningCodeName(v1::WarningCode code) {
  constexpr std::string_view kPrefix = "WARNING_CODE_";
  std::string_view name = v1::WarningCode_Name(code);
  if (name.starts_with(kPrefix)) name.remove_prefix(kPrefix.size());
  return name;
}

void FillWarningDiagnostic(v1::WarningCode code, v1::Severity severity, std::string_view summary,
                           std::string_view field_path, v1::Diagnostic* out) {
  out->set_severity(severity);
  out->set_warning_code(code);
  out->set_code(std::string(WarningCodeName(code)));
  out->set_summary(ValidUtf8(summary));
  out->set_field_path(std::string(field_path));
}

v1::WarningCode ImportWarningCode(Code code) {
  return code == Code::kChainIncomplete ? v1::WARNING_CODE_CHAIN_INCOMPLETE
                                        : v1::WARNING_CODE_UNSPECIFIED;
}

void AuditEventToProto(const core::AuditEvent& e, v1::AuditEvent* out) {
  out->set_id(std::to_string(e.sequence));
  SetTimestamp(e.at, out->mutable_time());
  out->set_actor(e.actor);
  out->set_action(AuditActionToProto(e.action));
  out->set_certificate_id(e.entry_id);
  out->set_certificate_name(e.entry_name);
  if (!e.host.empty()) {
    out->mutable_target()->set_host(e.host);
    out->mutable_target()->set_port(e.port);
    out->mutable_target()->set_environment(e.environment);
  }
  out->set_step_id(e.step_id);
  out->set_workflow_id(e.workflow_id);
  out->set_outcome(e.action == core::AuditAction::kImportFailure && !e.code.empty() ? e.code
                                                                                    : e.outcome);
  out->set_message(e.detail);
  if (!e.code.empty()) (*out->mutable_attributes())["code"] = e.code;
}

Error WithFieldPrefix(Error e, std::string_view prefix) {
  auto it = e.detail.find("field");
  if (it != e.detail.end() && !std::string_view(it->second).starts_with(prefix)) {
    it->second = std::string(prefix) + it->second;
  }
  return e;
}

}  // namespace wsstep::plugin

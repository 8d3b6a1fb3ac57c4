#include "plugin/adapters/store_backend.h"

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <deque>
#include <map>
#include <set>
#include <tuple>

#include "core/ossl.h"
#include "core/x509_info.h"

#include "plugin/adapters/proto_convert.h"
#include "plugin/server/status_map.h"

namespace wsstep::plugin {
namespace {

// DeleteCertificate refuses an entry used within this many days unless forced.
constexpr int kDeleteInUseDays = 7;

Error Invalid(std::string field, std::string message) {
  return Error(Code::kInvalidArgument, field + ": " + message, {}, Side::kConfiguration)
      .With("field", field);
}

// Import errors do not name a field; attach the upload field that caused them so the
// host can show the message beside it.
Error WithImportField(Error e, std::string_view material) {
  if (e.detail.count("field")) return WithFieldPrefix(std::move(e), "certificate.");
  std::string field;
  switch (e.code) {
    case Code::kWrongPassword:
    case Code::kPasswordRequired:
      // A key store's entry (detail "alias") is opened with the key password.
      field = e.detail.count("alias") ? "key_password" : "password";
      break;
    case Code::kPrivateKeyMissing:
    case Code::kKeyCertMismatch: field = "private_key"; break;
    case Code::kInvalidCertificateFormat:
    case Code::kUnsupportedAlgorithm: field = "content"; break;
    case Code::kDuplicateName: e.With("field", "certificate.name"); return e;
    default: return e;
  }
  e.With("field", std::string(material) + "." + field);
  return e;
}

core::MaterialUpload MaterialFromProto(const v1::CertificateMaterial& m) {
  core::MaterialUpload u;
  u.declared_format = SourceFormatFromProto(m.format());
  u.content = SecretBytes(m.content());
  if (!m.private_key().empty()) u.key = SecretBytes(m.private_key());
  if (!m.content_name().empty()) u.content_name = m.content_name();
  if (!m.private_key_name().empty()) u.key_name = m.private_key_name();
  if (m.has_password()) u.password = SecretBytes(m.password().value());
  if (m.has_key_password()) u.key_password = SecretBytes(m.key_password().value());
  u.alias = m.alias();
  return u;
}

void WarningsToProto(const std::vector<Error>& warnings,
                     google::protobuf::RepeatedPtrField<v1::Diagnostic>* out) {
  for (const auto& w : warnings) {
    v1::Diagnostic* d = out->Add();
    ErrorToDiagnostic(w, v1::SEVERITY_WARNING, d);
    d->set_warning_code(ImportWarningCode(w.code));
  }
}

core::AuditContext Audit(const CallContext& call) {
  return core::AuditContext(call.ActorOrDefault(), call.step_id, call.workflow_id);
}

Result<std::string> Selector(const std::string& id, const std::string& name) {
  if (!id.empty()) return id;
  if (!name.empty()) return name;
  return Invalid("id", "set `id` or `name` to select a certificate");
}

void NotificationToProto(const core::CertificateStore& store, const core::DueNotification& n,
                         v1::ExpiryNotification* out) {
  out->set_id(n.entry_id);
  auto entry = store.Get(n.entry_id);
  if (entry.ok()) CertificateToProto(*entry, store.Now(), out->mutable_certificate());
  out->set_alert_ref(n.alert_ref);
  out->set_days_remaining(n.days_remaining);
  out->set_level(NotificationLevelToProto(n.level));
  SetTimestamp(n.not_after, out->mutable_expire_time());
  SetTimestamp(store.Now(), out->mutable_due_time());
}

// A DER certificate as PEM, and its subject; nullopt if it does not parse.
std::optional<std::pair<std::string, std::string>> PemAndSubject(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  ossl::X509Ptr x(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!x || !bio || PEM_write_bio_X509(bio.get(), x.get()) != 1) return std::nullopt;
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::make_pair(std::string(data, static_cast<size_t>(n)),
                        core::NameOneLine(X509_get_subject_name(x.get())));
}

// DUPLICATE_CERTIFICATE: `entry`'s leaf is already stored under another name (two entries
// for one certificate are usually a mistake: renewing one leaves the other to expire).
void WarnIfStoredTwice(const core::CertificateStore& store, const core::EntryMetadata& entry,
                       google::protobuf::RepeatedPtrField<v1::Diagnostic>* out) {
  if (!entry.certificate) return;
  const std::string& fingerprint = entry.certificate->sha256_fingerprint;
  for (const auto& shared : store.snapshot()->entries()) {
    const core::EntryMetadata& other = *shared;
    if (other.id == entry.id || !other.certificate ||
        other.certificate->sha256_fingerprint != fingerprint) {
      continue;
    }
    v1::Diagnostic* d = out->Add();
    d->set_severity(v1::SEVERITY_WARNING);
    d->set_code("DUPLICATE_CERTIFICATE");
    d->set_warning_code(v1::WARNING_CODE_DUPLICATE_CERTIFICATE);
    d->set_summary("this certificate (SHA-256 " + fingerprint.substr(0, 23) +
                   "...) is already stored as '" + other.name + "'");
    d->set_detail("keep one entry per certificate: bind the existing entry where this one "
                  "is bound, then delete this one");
    d->set_field_path("material.content");
  }
}

Result<core::ResolveRequest> ResolveRequestFromProto(const std::string& host, uint32_t port,
                                                     const std::string& environment,
                                                     const std::string& certificate) {
  if (host.empty()) return Invalid("host", "required");
  if (port > 65535) return Invalid("port", std::to_string(port) + " is not a TCP port");
  core::ResolveRequest r;
  r.host = host;
  r.port = port == 0 ? core::kDefaultPort : static_cast<uint16_t>(port);
  if (!environment.empty()) r.environment = environment;
  r.certificate_name = certificate;
  return r;
}

// Streams store changes and expiry notifications that fall due while it is open.
class StoreWatch final : public EventWatch {
 public:
  StoreWatch(std::shared_ptr<core::CertificateStore> store, const v1::WatchEventsRequest& request,
             core::AuditContext audit)
      : store_(std::move(store)), audit_(std::move(audit)), after_(store_->LatestChangeSequence()) {
    for (int t : request.types()) {
      if (t == v1::EVENT_TYPE_EXPIRY_NOTIFICATION) notifications_ = true;
      if (t == v1::EVENT_TYPE_CERTIFICATE_CHANGE) changes_ = true;
    }
    if (request.types().empty()) notifications_ = changes_ = true;
    // Notifications due before the call are replayed only on request; the others count
    // as already seen today.
    for (const auto& n : store_->DueNotifications()) {
      if (notifications_ && request.include_pending()) {
        Queue(n);
      } else {
        seen_.insert(Key(n));
      }
    }
    last_check_ = std::chrono::steady_clock::now();
  }

  bool Next(v1::WatchEventsResponse* event, std::chrono::milliseconds timeout) override {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (queue_.empty()) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= until) return false;
      if (notifications_ && now - last_check_ >= std::chrono::seconds(30)) {
        last_check_ = now;
        for (const auto& n : store_->DueNotifications()) {
          if (seen_.count(Key(n)) != 0) continue;
          // Several plugins on one shared store: the one that claims it hands it over.
          // Unclaimable now (the database is away): asked again at the next check.
          auto mine = store_->ClaimNotification(n);
          if (!mine.ok()) continue;
          seen_.insert(Key(n));
          if (*mine) Queue(n);
        }
        continue;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - now);
      for (const auto& c : store_->WaitForChanges(after_, left)) {
        after_ = std::max<uint64_t>(after_, c.sequence);
        if (changes_) Queue(c);
      }
    }
    *event = std::move(queue_.front());
    queue_.pop_front();
    return true;
  }

 private:
  std::string Key(const core::DueNotification& n) const {
    // One per entry, day and level: becoming urgent is news the same day.
    return n.entry_id + "@" + std::to_string(core::UtcDay(store_->Now())) + "/" +
           std::string(core::NotificationLevelName(n.level));
  }
  void Queue(const core::DueNotification& n) {
    store_->RecordNotificationsHanded({n}, audit_);
    v1::WatchEventsResponse e;
    e.set_id("n" + std::to_string(++serial_));
    SetTimestamp(store_->Now(), e.mutable_time());
    NotificationToProto(*store_, n, e.mutable_notification());
    queue_.push_back(std::move(e));
  }
  void Queue(const core::ChangeEvent& c) {
    v1::WatchEventsResponse e;
    e.set_id("c" + std::to_string(c.sequence));
    SetTimestamp(c.at, e.mutable_time());
    auto* change = e.mutable_change();
    change->set_actor(c.actor);
    switch (c.kind) {
      case core::ChangeKind::kCreated: change->set_type(v1::CHANGE_TYPE_CREATED); break;
      case core::ChangeKind::kUpdated: change->set_type(v1::CHANGE_TYPE_UPDATED); break;
      case core::ChangeKind::kDeleted: change->set_type(v1::CHANGE_TYPE_DELETED); break;
      case core::ChangeKind::kResync:
        // Events were dropped: the proto has no resync type; an unspecified change
        // without an entry tells the host to list again.
        change->set_type(v1::CHANGE_TYPE_UNSPECIFIED);
        break;
    }
    auto entry = c.entry_id.empty() ? Result<core::EntryMetadata>(Error(Code::kNotFound, ""))
                                    : store_->Get(c.entry_id);
    if (entry.ok()) {
      CertificateToProto(*entry, store_->Now(), change->mutable_certificate());
    } else if (!c.entry_id.empty()) {
      change->mutable_certificate()->set_id(c.entry_id);
      change->mutable_certificate()->set_name(c.entry_name);
    }
    queue_.push_back(std::move(e));
  }

  std::shared_ptr<core::CertificateStore> store_;
  core::AuditContext audit_;
  uint64_t after_;
  bool notifications_ = false;
  bool changes_ = false;
  std::set<std::string> seen_;
  std::deque<v1::WatchEventsResponse> queue_;
  std::chrono::steady_clock::time_point last_check_;
  uint64_t serial_ = 0;
};

// DeleteCertificate's refusal of an entry used within `days`, naming each user.
Error InUse(const std::string& name, int days, const std::vector<v1::CertificateUser>& users) {
  std::string who;
  for (const auto& u : users) {
    who += (who.empty() ? "" : "; ") + BindingText(u.target()) +
           (u.workflow_id().empty() ? "" : " workflow " + u.workflow_id()) +
           (u.step_id().empty() ? "" : " step " + u.step_id()) + " (" +
           std::to_string(u.uses()) + " uses, last " +
           core::FormatUtc(u.last_use_time().seconds()) + ")";
  }
  return Error(Code::kFailedPrecondition,
               "'" + name + "' was used in the last " + std::to_string(days) + " days by: " + who,
               "steps that use it will fail with CERTIFICATE_NOT_FOUND; delete it anyway with "
               "force (wsstep cert delete --force)",
               Side::kStore)
      .With("users", who)
      .With("in_use_days", std::to_string(days));
}

// The USE events of entry `id` in the last `days`, grouped by target, workflow and step,
// most recent first. Reads at most 100 pages of 1000 events.
Result<std::vector<v1::CertificateUser>> RecentUsers(const core::CertificateStore& store,
                                                     const std::string& id, int days) {
  core::AuditFilter f;
  f.entry_id = id;
  f.action = core::AuditAction::kUse;
  f.since = store.Now() - static_cast<core::UnixSeconds>(days) * 86400;
  f.page_size = 1000;
  using Key = std::tuple<std::string, uint16_t, std::string, std::string, std::string>;
  std::map<Key, v1::CertificateUser> users;
  for (int page = 0; page < 100; ++page) {
    WSSTEP_ASSIGN_OR_RETURN(core::AuditPage events, store.ListAudit(f));
    for (const auto& ev : events.events) {  // newest first
      v1::CertificateUser& u =
          users[Key(ev.host, ev.port, ev.environment, ev.workflow_id, ev.step_id)];
      if (u.uses() == 0) {
        core::Binding b;
        b.host = ev.host;
        b.port = ev.port;
        b.environment = ev.environment;
        BindingToProto(b, u.mutable_target());
        u.set_workflow_id(ev.workflow_id);
        u.set_step_id(ev.step_id);
        SetTimestamp(ev.at, u.mutable_last_use_time());
        u.set_last_outcome(ev.outcome);
      }
      u.set_uses(u.uses() + 1);
    }
    if (events.next_page_token.empty()) break;
    f.page_token = events.next_page_token;
  }
  std::vector<v1::CertificateUser> out;
  for (auto& [key, u] : users) out.push_back(std::move(u));
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.last_use_time().seconds() > b.last_use_time().seconds();
  });
  return out;
}

}  // namespace

Status ExplainResolution(const core::CertificateStore& store, const core::ResolveRequest& request,
                         v1::ResolveCertificateResponse* out) {
  const auto now = store.Now();
  auto explained = store.Explain(request, /*require_identity=*/true);
  if (!explained.ok()) {
    const Error& e = explained.error();
    const bool outcome = e.code == Code::kCertificateNotFound ||
                         e.code == Code::kCertificateExpired ||
                         e.code == Code::kCertificateNotYetValid;
    if (!outcome) return e;
    FillStepError(e, out->mutable_error());
    // The trust side and the rejected candidates still explain the decision.
    explained = store.Explain(request, /*require_identity=*/false);
    if (!explained.ok()) {
      auto it = e.detail.find("explanation");
      out->set_explanation(it != e.detail.end() ? it->second : e.message);
      return Status();
    }
  }
  const core::Resolution& r = explained->resolution;
  if (r.identity != nullptr) CertificateToProto(*r.identity, now, out->mutable_chosen());
  for (const auto& rej : r.rejected) {
    auto* x = out->add_rejected();
    const auto* entry = explained->snapshot->FindById(rej.entry_id);
    if (entry != nullptr) {
      CertificateToProto(*entry, now, x->mutable_certificate());
    } else {
      x->mutable_certificate()->set_id(rej.entry_id);
      x->mutable_certificate()->set_name(rej.name);
    }
    x->set_reason(rej.reason);
  }
  for (const auto* t : r.trust) CertificateToProto(*t, now, out->add_trust());
  out->set_private_trust_only(r.private_trust_only);
  out->set_explanation(r.explanation);
  return Status();
}

StoreBackend::StoreBackend(std::shared_ptr<core::CertificateStore> store, ConnectionTester tester)
    : store_(std::move(store)), tester_(std::move(tester)) {}

Status StoreBackend::Create(const CallContext& call, const v1::CreateCertificateRequest& request,
                            v1::CreateCertificateResponse* response) {
  const v1::Certificate& c = request.certificate();
  core::CreateRequest req;
  if (c.name().empty()) return Invalid("certificate.name", "required");
  req.name = c.name();
  req.description = c.description();
  auto type = EntryTypeFromProto(c.type());
  if (!type) return Invalid("certificate.type", "required (KEY_PAIR, PKCS12, TRUST_STORE, ...)");
  req.type = *type;
  if (!request.has_material()) return Invalid("material", "required: the uploaded file");
  req.material = MaterialFromProto(request.material());
  WSSTEP_ASSIGN_OR_RETURN(req.bindings, BindingsFromProto(c.bindings(), "certificate.bindings"));
  req.private_trust_only = c.private_trust_only();
  // Disabled from the start, atomically: a create-then-disable left the entry usable by
  // steps in between, and enabled for good when the second write failed.
  req.disabled = c.disabled();
  if (c.has_notifications()) req.notifications = NotificationsFromProto(c.notifications());
  std::vector<Error> warnings;
  auto created = store_->Create(std::move(req), Audit(call), &warnings);
  if (!created.ok()) return WithImportField(created.error(), "material");
  CertificateToProto(*created, store_->Now(), response->mutable_certificate());
  WarningsToProto(warnings, response->mutable_warnings());
  WarnIfStoredTwice(*store_, *created, response->mutable_warnings());
  return Status();
}

Status StoreBackend::Get(const CallContext& /*call*/, const v1::GetCertificateRequest& request,
                         v1::GetCertificateResponse* response) {
  WSSTEP_ASSIGN_OR_RETURN(std::string which, Selector(request.id(), request.name()));
  WSSTEP_ASSIGN_OR_RETURN(core::EntryMetadata e, store_->Get(which));
  CertificateToProto(e, store_->Now(), response->mutable_certificate());
  return Status();
}

Status StoreBackend::List(const CallContext& /*call*/, const v1::ListCertificatesRequest& request,
                          v1::ListCertificatesResponse* response) {
  core::ListFilter f;
  if (request.page_size() < 0 || request.page_size() > 1000) {
    return Invalid("page_size", "must be 0-1000");
  }
  f.page_size = static_cast<size_t>(request.page_size());
  f.page_token = request.page_token();
  f.host = request.host();
  if (request.port() > 65535) return Invalid("port", "not a TCP port");
  if (request.port() != 0 && request.host().empty()) {
    return Invalid("port", "filtering by port requires `host`");
  }
  if (request.port() != 0) f.port = static_cast<uint16_t>(request.port());
  f.environment = request.environment();
  f.status = StatusFromProto(request.status());
  f.type = EntryTypeFromProto(request.type());
  f.name_contains = request.name_contains();
  auto page = store_->List(f);
  if (!page.ok()) return WithFieldPrefix(page.error(), "");
  const auto now = store_->Now();
  for (const auto& e : page->entries) CertificateToProto(e, now, response->add_certificates());
  response->set_next_page_token(page->next_page_token);
  response->set_total_size(static_cast<int32_t>(page->total_size));
  return Status();
}

Status StoreBackend::Update(const CallContext& call, const v1::UpdateCertificateRequest& request,
                            v1::UpdateCertificateResponse* response) {
  const v1::Certificate& c = request.certificate();
  if (c.id().empty()) return Invalid("certificate.id", "required: the entry to update");
  if (request.update_mask().paths().empty() && !request.has_material()) {
    return Invalid("update_mask", "required unless only `material` is given");
  }
  core::UpdateRequest req;
  std::optional<core::NotificationSettings> notifications;
  bool urgent_days_given = false;
  for (const std::string& path : request.update_mask().paths()) {
    if (path == "name") {
      if (c.name().empty()) return Invalid("certificate.name", "must not be empty");
      req.name = c.name();
    } else if (path == "description") {
      req.description = c.description();
    } else if (path == "bindings") {
      WSSTEP_ASSIGN_OR_RETURN(req.bindings,
                              BindingsFromProto(c.bindings(), "certificate.bindings"));
    } else if (path == "notifications") {
      notifications = NotificationsFromProto(c.notifications());
    } else if (path.starts_with("notifications.")) {
      if (!notifications) {
        WSSTEP_ASSIGN_OR_RETURN(core::EntryMetadata current, store_->Get(c.id()));
        notifications = current.notifications;
      }
      const auto n = c.notifications();
      if (path == "notifications.enabled") {
        notifications->enabled = n.enabled();
      } else if (path == "notifications.warning_days") {
        notifications->warning_days = n.warning_days() == 0 ? 30 : n.warning_days();
      } else if (path == "notifications.urgent_days") {
        urgent_days_given = true;
        notifications->urgent_days = n.urgent_days();
        if (n.urgent_days() == 0) notifications->urgent_days = -1;  // the default, below
      } else if (path == "notifications.frequency") {
        notifications->frequency = n.frequency() == v1::NOTIFICATION_FREQUENCY_WEEKLY
                                       ? core::NotificationFrequency::kWeekly
                                       : core::NotificationFrequency::kDaily;
      } else if (path == "notifications.alert_ref") {
        notifications->alert_ref = n.alert_ref();
      } else {
        return Invalid("update_mask", "'" + path + "' is not a mutable field");
      }
    } else if (path == "private_trust_only") {
      req.private_trust_only = c.private_trust_only();
    } else if (path == "disabled") {
      req.disabled = c.disabled();
    } else if (path == "revoked") {
      req.revoked = c.revoked();
    } else {
      return Invalid("update_mask", "'" + path +
                                        "' is not a mutable field (name, description, "
                                        "bindings, notifications, private_trust_only, "
                                        "disabled, revoked)");
    }
  }
  if (notifications && notifications->urgent_days < 0) {
    notifications->urgent_days = DefaultUrgentDays(notifications->warning_days);
  } else if (notifications && !urgent_days_given) {
    // A smaller warning window narrows the urgent one with it, unless it was given.
    notifications->urgent_days = std::min(notifications->urgent_days, notifications->warning_days);
  }
  req.notifications = notifications;
  if (request.has_material()) req.material = MaterialFromProto(request.material());
  std::vector<Error> warnings;
  auto updated = store_->Update(c.id(), std::move(req), Audit(call), &warnings);
  if (!updated.ok()) return WithImportField(updated.error(), "material");
  CertificateToProto(*updated, store_->Now(), response->mutable_certificate());
  WarningsToProto(warnings, response->mutable_warnings());
  return Status();
}

Status StoreBackend::Delete(const CallContext& call, const v1::DeleteCertificateRequest& request,
                            v1::DeleteCertificateResponse* response) {
  WSSTEP_ASSIGN_OR_RETURN(std::string which, Selector(request.id(), request.name()));
  if (request.in_use_days() > 3660) return Invalid("in_use_days", "must be at most 3660");
  WSSTEP_ASSIGN_OR_RETURN(core::EntryMetadata e, store_->Get(which));
  if (request.in_use_days() >= 0) {
    // An entry in use is deleted on purpose only: name who used it.
    const int days = request.in_use_days() == 0 ? kDeleteInUseDays : request.in_use_days();
    WSSTEP_RETURN_IF_ERROR(store_->Flush());  // uses are written in batches
    WSSTEP_ASSIGN_OR_RETURN(std::vector<v1::CertificateUser> users,
                            RecentUsers(*store_, e.id, days));
    if (!users.empty() && !request.force()) return InUse(e.name, days, users);
    for (auto& u : users) *response->add_users() = std::move(u);
  }
  WSSTEP_RETURN_IF_ERROR(store_->Delete(e.id, Audit(call)));
  CertificateToProto(e, store_->Now(), response->mutable_certificate());
  return Status();
}

Status StoreBackend::Resolve(const CallContext& /*call*/,
                             const v1::ResolveCertificateRequest& request,
                             v1::ResolveCertificateResponse* response) {
  WSSTEP_ASSIGN_OR_RETURN(core::ResolveRequest r,
                          ResolveRequestFromProto(request.host(), request.port(),
                                                  request.environment(), request.certificate()));
  return ExplainResolution(*store_, r, response);
}

Status StoreBackend::GenerateKeyAndCsr(const CallContext& call,
                                       const v1::GenerateKeyAndCsrRequest& request,
                                       v1::GenerateKeyAndCsrResponse* response) {
  const v1::Certificate& c = request.certificate();
  core::KeyGenerationRequest req;
  if (c.name().empty()) return Invalid("certificate.name", "required");
  req.name = c.name();
  req.description = c.description();
  WSSTEP_ASSIGN_OR_RETURN(req.bindings, BindingsFromProto(c.bindings(), "certificate.bindings"));
  if (c.has_notifications()) req.notifications = NotificationsFromProto(c.notifications());
  core::CsrRequest& csr = req.csr;
  switch (request.key_algorithm()) {
    case v1::KEY_ALGORITHM_RSA_2048: csr.key_algorithm = "RSA"; csr.key_bits = 2048; break;
    case v1::KEY_ALGORITHM_RSA_3072: csr.key_algorithm = "RSA"; csr.key_bits = 3072; break;
    case v1::KEY_ALGORITHM_RSA_4096: csr.key_algorithm = "RSA"; csr.key_bits = 4096; break;
    case v1::KEY_ALGORITHM_EC_P384: csr.key_algorithm = "EC"; csr.curve = "P-384"; break;
    case v1::KEY_ALGORITHM_EC_P521: csr.key_algorithm = "EC"; csr.curve = "P-521"; break;
    case v1::KEY_ALGORITHM_ED25519: csr.key_algorithm = "Ed25519"; break;
    default:  // unset: EC P-256, as the proto documents
      csr.key_algorithm = "EC";
      csr.curve = "P-256";
  }
  const v1::CsrSubject& s = request.subject();
  csr.common_name = s.common_name();
  csr.organization = s.organization();
  csr.organizational_unit = s.organizational_unit();
  csr.locality = s.locality();
  csr.state = s.state();
  csr.country = s.country();
  csr.email = s.email();
  for (int i = 0; i < request.sans_size(); ++i) {
    const std::string& san = request.sans(i);
    if (san.size() > 4 && (san.starts_with("DNS:") || san.starts_with("dns:"))) {
      csr.dns_names.push_back(san.substr(4));
    } else {
      return Invalid("sans[" + std::to_string(i) + "]",
                     "'" + san + "': only DNS names (\"DNS:name\") are supported in CSRs");
    }
  }
  // The proto asks for a CN or a SAN; the store needs a CN: use the first DNS name.
  if (csr.common_name.empty() && !csr.dns_names.empty()) csr.common_name = csr.dns_names.front();
  if (csr.common_name.empty()) {
    return Invalid("subject.common_name", "set a common name or at least one DNS SAN");
  }
  auto generated = store_->GenerateKeyAndCsr(std::move(req), Audit(call));
  if (!generated.ok()) {
    Error e = generated.error();
    auto it = e.detail.find("field");
    if (it != e.detail.end()) {
      if (it->second == "name" || it->second == "description" ||
          it->second.starts_with("bindings")) {
        it->second = "certificate." + it->second;
      } else if (it->second.starts_with("dns_names")) {
        it->second = "sans";
      } else if (!it->second.starts_with("subject.") && it->second != "key_algorithm") {
        it->second = "subject." + it->second;
      }
    }
    if (e.code == Code::kDuplicateName) e.With("field", "certificate.name");
    return e;
  }
  CertificateToProto(generated->entry, store_->Now(), response->mutable_certificate());
  response->set_csr_pem(generated->csr_pem);
  return Status();
}

Status StoreBackend::Attach(const CallContext& call, const v1::AttachCertificateRequest& request,
                            v1::AttachCertificateResponse* response) {
  if (request.id().empty()) return Invalid("id", "required: the pending entry");
  if (request.certificate().empty()) return Invalid("certificate", "required");
  WSSTEP_ASSIGN_OR_RETURN(core::EntryMetadata current, store_->Get(request.id()));
  if (!current.pending_certificate) {
    return Error(Code::kFailedPrecondition,
                 "certificate '" + current.name +
                     "' is not waiting for a certificate (AttachCertificate applies to "
                     "entries made by GenerateKeyAndCsr)",
                 "to replace the material of an existing entry use UpdateCertificate",
                 Side::kConfiguration)
        .With("field", "id");
  }
  std::vector<Error> warnings;
  auto attached = store_->AttachCertificate(
      current.id, SecretBytes(request.certificate()),
      request.content_name().empty() ? "certificate" : request.content_name(), Audit(call),
      &warnings);
  if (!attached.ok()) {
    Error e = attached.error();
    if (!e.detail.count("field") && e.code != Code::kNotFound &&
        e.code != Code::kFailedPrecondition && e.code != Code::kStorageError) {
      e.With("field", "certificate");
    }
    return e;
  }
  CertificateToProto(*attached, store_->Now(), response->mutable_certificate());
  WarningsToProto(warnings, response->mutable_warnings());
  return Status();
}

Status StoreBackend::ListAuditEvents(const CallContext& /*call*/,
                                     const v1::ListAuditEventsRequest& request,
                                     v1::ListAuditEventsResponse* response) {
  core::AuditFilter f;
  if (request.page_size() < 0 || request.page_size() > 1000) {
    return Invalid("page_size", "must be 0-1000");
  }
  f.page_size = static_cast<size_t>(request.page_size());
  f.page_token = request.page_token();
  f.entry_id = request.certificate_id();
  f.step_id = request.step_id();
  f.workflow_id = request.workflow_id();
  if (request.has_start_time()) f.since = request.start_time().seconds();
  if (request.has_end_time()) f.until = request.end_time().seconds();
  std::set<v1::AuditAction> wanted;
  for (int a : request.actions()) wanted.insert(static_cast<v1::AuditAction>(a));
  wanted.erase(v1::AUDIT_ACTION_UNSPECIFIED);
  // The store filters on one action; several are filtered here (pages may come back
  // shorter than page_size, next_page_token stays correct).
  if (wanted.size() == 1) {
    f.action = AuditActionFromProto(*wanted.begin());
    if (!f.action) return Status();  // an action the store never writes: no events
  }
  auto page = store_->ListAudit(f);
  if (!page.ok()) return WithFieldPrefix(page.error(), "");
  for (const auto& e : page->events) {
    if (wanted.size() > 1 && !wanted.count(AuditActionToProto(e.action))) continue;
    AuditEventToProto(e, response->add_events());
  }
  response->set_next_page_token(page->next_page_token);
  return Status();
}

Status StoreBackend::ListPendingNotifications(const CallContext& call,
                                              const v1::ListPendingNotificationsRequest&,
                                              v1::ListPendingNotificationsResponse* response) {
  const auto due = store_->DueNotifications();
  for (const auto& n : due) NotificationToProto(*store_, n, response->add_notifications());
  store_->RecordNotificationsHanded(due, Audit(call));
  return Status();
}

Status StoreBackend::AcknowledgeNotification(const CallContext& call,
                                             const v1::AcknowledgeNotificationRequest& request,
                                             v1::AcknowledgeNotificationResponse* /*response*/) {
  if (request.notification_id().empty()) return Invalid("notification_id", "required");
  Status s = store_->AcknowledgeNotification(request.notification_id(), store_->Now(), Audit(call));
  if (!s.ok() && s.error().code == Code::kNotFound) {
    Error e = s.error();
    e.With("field", "notification_id");
    return e;
  }
  return s;
}

Status StoreBackend::Export(const CallContext& /*call*/,
                            const v1::ExportCertificateRequest& request,
                            v1::ExportCertificateResponse* response) {
  WSSTEP_ASSIGN_OR_RETURN(std::string which, Selector(request.id(), request.name()));
  WSSTEP_ASSIGN_OR_RETURN(core::EntryMetadata e, store_->Get(which));
  WSSTEP_ASSIGN_OR_RETURN(core::PublicMaterial m, store_->ExportPublic(e.id));
  std::vector<std::string> ders;
  if (!m.leaf_der.empty()) {
    ders.push_back(m.leaf_der);
    if (!request.leaf_only()) {
      for (const auto& c : m.chain_der) {
        if (std::find(ders.begin(), ders.end(), c) == ders.end()) ders.push_back(c);
      }
    }
  } else {
    ders = m.trusted_der;
  }
  if (ders.empty()) {
    return Error(Code::kFailedPrecondition,
                 "certificate '" + e.name + "' has no certificate to export yet",
                 "attach the certificate the CA issued for its CSR first (wsstep cert attach)",
                 Side::kConfiguration)
        .With("field", request.id().empty() ? "name" : "id");
  }
  CertificateToProto(e, store_->Now(), response->mutable_certificate());
  for (const auto& der : ders) {
    auto pem = PemAndSubject(der);
    if (!pem) return Error(Code::kInternal, "certificate '" + e.name + "': a stored certificate does not parse");
    response->add_der(der);
    response->mutable_pem()->append(pem->first);
    response->add_subjects(pem->second);
  }
  return Status();
}

Status StoreBackend::GetCsr(const CallContext& /*call*/, const v1::GetCsrRequest& request,
                            v1::GetCsrResponse* response) {
  WSSTEP_ASSIGN_OR_RETURN(std::string which, Selector(request.id(), request.name()));
  WSSTEP_ASSIGN_OR_RETURN(core::EntryMetadata e, store_->Get(which));
  WSSTEP_ASSIGN_OR_RETURN(std::string csr, store_->GetCsr(e.id));
  CertificateToProto(e, store_->Now(), response->mutable_certificate());
  response->set_csr_pem(std::move(csr));
  return Status();
}

Status StoreBackend::Usage(const CallContext& /*call*/,
                           const v1::GetCertificateUsageRequest& request,
                           v1::GetCertificateUsageResponse* response) {
  WSSTEP_ASSIGN_OR_RETURN(std::string which, Selector(request.id(), request.name()));
  if (request.days() < 0 || request.days() > 3660) return Invalid("days", "must be 0-3660");
  const int days = request.days() == 0 ? 30 : request.days();
  WSSTEP_ASSIGN_OR_RETURN(core::EntryMetadata e, store_->Get(which));
  WSSTEP_RETURN_IF_ERROR(store_->Flush());  // uses are written in batches
  WSSTEP_ASSIGN_OR_RETURN(std::vector<v1::CertificateUser> users,
                          RecentUsers(*store_, e.id, days));
  CertificateToProto(e, store_->Now(), response->mutable_certificate());
  response->set_days(days);
  for (auto& u : users) *response->add_users() = std::move(u);
  return Status();
}

Status StoreBackend::RotateMasterKey(const CallContext& call,
                                     const v1::RotateMasterKeyRequest& request,
                                     v1::RotateMasterKeyResponse* response) {
  const std::string previous = store_->master_key_id();
  std::optional<core::MasterKey> key;
  if (request.new_key().empty()) {
    if (store_->master_key_file().empty()) {
      return Invalid("new_key",
                     "required: the master key comes from the environment (WSSTEP_MASTER_KEY), "
                     "so the plugin cannot keep a key it generates; give the new key");
    }
    WSSTEP_ASSIGN_OR_RETURN(key, core::MasterKey::Generate());
  } else {
    auto given = core::MasterKey::FromBytes(SecretBytes(request.new_key()), "new_key");
    if (!given.ok()) return Invalid("new_key", given.error().message);
    key = std::move(given).value();
  }
  WSSTEP_RETURN_IF_ERROR(store_->RotateMasterKey(std::move(*key), Audit(call)));
  response->set_previous_key_id(previous);
  response->set_key_id(store_->master_key_id());
  response->set_key_file(store_->master_key_file());
  return Status();
}

namespace {

void ProxyCredentialToProto(const core::ProxyCredentialInfo& c, v1::ProxyCredential* out) {
  out->set_name(c.name);
  out->set_username(c.username);
  SetTimestamp(c.created_at, out->mutable_create_time());
  SetTimestamp(c.updated_at, out->mutable_update_time());
}

}  // namespace

Status StoreBackend::SetProxyCredential(const CallContext& call,
                                        const v1::SetProxyCredentialRequest& request,
                                        v1::SetProxyCredentialResponse* response) {
  bool created = false;
  WSSTEP_ASSIGN_OR_RETURN(
      core::ProxyCredentialInfo info,
      store_->SetProxyCredential(request.name(), request.username(),
                                 SecretBytes(request.password()), Audit(call), &created));
  ProxyCredentialToProto(info, response->mutable_credential());
  response->set_created(created);
  return Status();
}

Status StoreBackend::ListProxyCredentials(const CallContext& /*call*/,
                                          const v1::ListProxyCredentialsRequest& /*request*/,
                                          v1::ListProxyCredentialsResponse* response) {
  for (const auto& c : store_->ListProxyCredentials()) {
    ProxyCredentialToProto(c, response->add_credentials());
  }
  return Status();
}

Status StoreBackend::DeleteProxyCredential(const CallContext& call,
                                           const v1::DeleteProxyCredentialRequest& request,
                                           v1::DeleteProxyCredentialResponse* /*response*/) {
  if (request.name().empty()) return Invalid("name", "required");
  return store_->DeleteProxyCredential(request.name(), Audit(call));
}

Result<std::unique_ptr<EventWatch>> StoreBackend::Watch(const CallContext& call,
                                                        const v1::WatchEventsRequest& request) {
  return std::unique_ptr<EventWatch>(std::make_unique<StoreWatch>(store_, request, Audit(call)));
}

void StoreBackend::TestConnection(const CallContext& call, const v1::TestConnectionRequest& request,
                                  v1::TestConnectionResponse* response, Done done) {
  if (!tester_) {
    done(Error(Code::kInternal, "TestConnection: no transfer engine in this build"));
    return;
  }
  tester_(call, request, response, std::move(done));
}

}  // namespace wsstep::plugin

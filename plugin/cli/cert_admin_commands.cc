// `wsstep cert update|disable|enable|revoke|export|csr|attach|audit|usage`,
// `wsstep notifications list|ack` and `wsstep master-key rotate`: everything an
// administrator does to the store besides importing, listing and deleting, so that nobody
// needs raw gRPC (PRODUCT.md §4).
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <memory>
#include <tuple>

#include "core/vault.h"
#include "plugin/adapters/proto_convert.h"
#include "plugin/cli/cert_commands.h"

namespace wsstep::plugin {
namespace {

// Which entry a command is about: a name, or an id with --id.
struct Which {
  std::string which;
  bool by_id = false;

  void Add(CLI::App* cmd) {
    cmd->add_option("certificate", which, "name (or id with --id)")->required();
    cmd->add_flag("--id", by_id, "the argument is an id");
  }
  template <typename Request>
  void Select(Request* req) const {
    by_id ? req->set_id(which) : req->set_name(which);
  }
};

// The entry, for the commands whose RPC takes an id (update, attach, audit).
std::optional<int> Fetch(Client& client, const Which& w, v1::Certificate* out) {
  v1::GetCertificateRequest get;
  w.Select(&get);
  v1::GetCertificateResponse found;
  if (auto rc = client.Call("GetCertificate", &v1::CertificateService::Stub::GetCertificate, get,
                            &found)) {
    return rc;
  }
  *out = found.certificate();
  return std::nullopt;
}

// "on"/"off" in any spelling a person uses; nullopt for anything else.
std::optional<bool> OnOff(const std::string& text) {
  const std::string k = EnumKey(text);
  if (k == "ON" || k == "TRUE" || k == "YES" || k == "1") return true;
  if (k == "OFF" || k == "FALSE" || k == "NO" || k == "0") return false;
  return std::nullopt;
}

// Writes `bytes` to `path`, or to stdout when `path` is empty.
int WriteOut(const std::string& path, const std::string& bytes) {
  if (path.empty()) {
    std::cout << bytes;
    std::cout.flush();
    return kExitOk;
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  out.close();
  if (!out) return UsageError("--out " + path + ": cannot write the file");
  return kExitOk;
}

int UpdateOne(Client& client, v1::UpdateCertificateRequest& req, const std::string& done) {
  v1::UpdateCertificateResponse resp;
  const auto rc = client.Call("UpdateCertificate", &v1::CertificateService::Stub::UpdateCertificate,
                              req, &resp);
  req.mutable_material()->Clear();  // it held the upload and passwords
  if (rc) return *rc;
  return PrintResult(client.options(), resp, [&] {
    PrintWarnings(resp.warnings());
    std::cout << done << ":\n";
    PrintCertificate(resp.certificate());
  });
}

// ---- cert update ----

struct UpdateFlags {
  Which w;
  std::string rename, description, notifications, alert_ref, private_trust_only;
  std::vector<std::string> bindings;
  bool clear_bindings = false, weekly = false, daily = false;
  int warning_days = -1, urgent_days = -1;
  MaterialFlags material;
};

int CertUpdate(Client& client, const UpdateFlags& f) {
  v1::Certificate current;
  if (auto rc = Fetch(client, f.w, &current)) return *rc;
  v1::UpdateCertificateRequest req;
  auto* c = req.mutable_certificate();
  c->set_id(current.id());
  auto* mask = req.mutable_update_mask();
  if (!f.rename.empty()) {
    c->set_name(f.rename);
    mask->add_paths("name");
  }
  if (!f.description.empty()) {
    c->set_description(f.description);
    mask->add_paths("description");
  }
  if (!f.bindings.empty() || f.clear_bindings) {
    if (!f.bindings.empty() && f.clear_bindings) {
      return UsageError("cert update: give --bind or --clear-bindings, not both");
    }
    if (auto rc = AddBindings(f.bindings, c->mutable_bindings())) return *rc;
    mask->add_paths("bindings");
  }
  auto* n = c->mutable_notifications();
  if (!f.notifications.empty()) {
    auto on = OnOff(f.notifications);
    if (!on) return UsageError("--notifications '" + f.notifications + "': give on or off");
    n->set_enabled(*on);
    mask->add_paths("notifications.enabled");
  }
  if (f.warning_days >= 0) {
    n->set_warning_days(f.warning_days);
    mask->add_paths("notifications.warning_days");
  }
  if (f.urgent_days >= 0) {
    n->set_urgent_days(f.urgent_days);
    mask->add_paths("notifications.urgent_days");
  }
  if (f.weekly && f.daily) return UsageError("cert update: give --weekly or --daily, not both");
  if (f.weekly || f.daily) {
    n->set_frequency(f.weekly ? v1::NOTIFICATION_FREQUENCY_WEEKLY
                              : v1::NOTIFICATION_FREQUENCY_DAILY);
    mask->add_paths("notifications.frequency");
  }
  if (!f.alert_ref.empty()) {
    n->set_alert_ref(f.alert_ref);
    mask->add_paths("notifications.alert_ref");
  }
  if (!f.private_trust_only.empty()) {
    auto on = OnOff(f.private_trust_only);
    if (!on) {
      return UsageError("--private-trust-only '" + f.private_trust_only + "': give on or off");
    }
    c->set_private_trust_only(*on);
    mask->add_paths("private_trust_only");
  }
  if (!f.material.file.empty()) {
    if (auto rc = f.material.Fill(client, req.mutable_material())) return *rc;
  }
  if (mask->paths().empty() && !req.has_material()) {
    return UsageError("cert update: nothing to change",
                      "give --file (new material), --bind, --rename, --description, "
                      "--warning-days, --notifications, ... (wsstep cert update --help)");
  }
  return UpdateOne(client, req, "updated");
}

// ---- cert disable | enable | revoke ----

int SetFlag(Client& client, const Which& w, const std::string& path, bool value,
            const std::string& done) {
  v1::Certificate current;
  if (auto rc = Fetch(client, w, &current)) return *rc;
  if (path == "disabled" && !value && current.revoked()) {
    // The store keeps a revoked entry unused whatever `disabled` says; "enabled" would
    // be a false promise.
    CliFailure refused;
    refused.error = Error(Code::kFailedPrecondition,
                          "certificate '" + current.name() +
                              "' is revoked, and revocation is final: it cannot be enabled",
                          "import the renewed certificate as a new entry", Side::kConfiguration);
    return ReportFailure(client.options().json, refused, kExitRefused);
  }
  v1::UpdateCertificateRequest req;
  req.mutable_certificate()->set_id(current.id());
  if (path == "disabled") req.mutable_certificate()->set_disabled(value);
  if (path == "revoked") req.mutable_certificate()->set_revoked(value);
  req.mutable_update_mask()->add_paths(path);
  return UpdateOne(client, req, done);
}

// ---- cert export ----

struct ExportFlags {
  Which w;
  std::string format = "pem", out;
  bool leaf_only = false;
};

int CertExport(Client& client, const ExportFlags& f) {
  const std::string format = EnumKey(f.format);
  if (format != "PEM" && format != "DER") {
    return UsageError("--format '" + f.format + "' is unknown (pem, der)");
  }
  v1::ExportCertificateRequest req;
  f.w.Select(&req);
  req.set_leaf_only(f.leaf_only);
  v1::ExportCertificateResponse resp;
  if (auto rc = client.Call("ExportCertificate", &v1::CertificateService::Stub::ExportCertificate,
                            req, &resp)) {
    return *rc;
  }
  if (client.options().json) return PrintResult(client.options(), resp, [] {});
  if (format == "PEM") return WriteOut(f.out, resp.pem());
  if (resp.der_size() != 1) {
    return UsageError("cert export: '" + f.w.which + "' has " + std::to_string(resp.der_size()) +
                          " certificates and DER holds one",
                      "add --leaf-only for the leaf alone, or use --format pem for all of them");
  }
  if (f.out.empty() && ::isatty(STDOUT_FILENO)) {
    return UsageError("cert export: DER is binary; give --out FILE or redirect stdout");
  }
  return WriteOut(f.out, resp.der(0));
}

// ---- cert csr create | show ----

struct CsrFlags {
  std::string name, description, key_algorithm, out;
  std::string cn, org, ou, locality, state, country, email;
  std::vector<std::string> sans, bindings;
};

constexpr std::string_view kKeyAlgorithms =
    "ec-p256, ec-p384, ec-p521, rsa-2048, rsa-3072, rsa-4096, ed25519";

int CsrCreate(Client& client, const CsrFlags& f) {
  v1::GenerateKeyAndCsrRequest req;
  req.mutable_certificate()->set_name(f.name);
  req.mutable_certificate()->set_description(f.description);
  if (auto rc = AddBindings(f.bindings, req.mutable_certificate()->mutable_bindings())) return *rc;
  if (!f.key_algorithm.empty()) {
    v1::KeyAlgorithm a;
    if (!v1::KeyAlgorithm_Parse("KEY_ALGORITHM_" + EnumKey(f.key_algorithm), &a) ||
        a == v1::KEY_ALGORITHM_UNSPECIFIED) {
      return UsageError("--key-algorithm '" + f.key_algorithm + "' is unknown (" +
                        std::string(kKeyAlgorithms) + ")");
    }
    req.set_key_algorithm(a);
  }
  auto* s = req.mutable_subject();
  s->set_common_name(f.cn);
  s->set_organization(f.org);
  s->set_organizational_unit(f.ou);
  s->set_locality(f.locality);
  s->set_state(f.state);
  s->set_country(f.country);
  s->set_email(f.email);
  for (const auto& san : f.sans)
    req.add_sans(san.find(':') == std::string::npos ? "DNS:" + san : san);
  v1::GenerateKeyAndCsrResponse resp;
  if (auto rc = client.Call("GenerateKeyAndCsr", &v1::CertificateService::Stub::GenerateKeyAndCsr,
                            req, &resp)) {
    return *rc;
  }
  if (client.options().json) return PrintResult(client.options(), resp, [] {});
  std::cerr << "created '" << resp.certificate().name()
            << "' (PENDING_CERTIFICATE); send the CSR to your CA, then: wsstep cert attach "
            << resp.certificate().name() << " --file ISSUED.pem\n";
  return WriteOut(f.out, resp.csr_pem());
}

int CsrShow(Client& client, const Which& w, const std::string& out) {
  v1::GetCsrRequest req;
  w.Select(&req);
  v1::GetCsrResponse resp;
  if (auto rc = client.Call("GetCsr", &v1::CertificateService::Stub::GetCsr, req, &resp))
    return *rc;
  if (client.options().json) return PrintResult(client.options(), resp, [] {});
  return WriteOut(out, resp.csr_pem());
}

// ---- cert attach ----

int CertAttach(Client& client, const Which& w, const std::string& file) {
  v1::Certificate current;
  if (auto rc = Fetch(client, w, &current)) return *rc;
  auto content = ReadUploadFile(file, "--file", client.options().max_message_bytes);
  if (!content.ok()) return UsageError(content.error().message, content.error().hint);
  v1::AttachCertificateRequest req;
  req.set_id(current.id());
  req.set_certificate(*content);
  const size_t slash = file.rfind('/');
  req.set_content_name(slash == std::string::npos ? file : file.substr(slash + 1));
  v1::AttachCertificateResponse resp;
  if (auto rc = client.Call("AttachCertificate", &v1::CertificateService::Stub::AttachCertificate,
                            req, &resp)) {
    return *rc;
  }
  return PrintResult(client.options(), resp, [&] {
    PrintWarnings(resp.warnings());
    std::cout << "attached:\n";
    PrintCertificate(resp.certificate());
  });
}

// ---- cert audit ----

struct AuditFlags {
  std::string which, step_id, workflow_id;
  bool by_id = false, all = false;
  std::vector<std::string> actions;
  int days = 0, limit = 50;
};

constexpr std::string_view kAuditActions =
    "create, update, delete, import-failure, use, notify, acknowledge, generate-key, "
    "attach-certificate, rotate-master-key, set-proxy-credential, delete-proxy-credential";

void SetTimestampSeconds(int64_t seconds, google::protobuf::Timestamp* t) {
  t->set_seconds(seconds);
}

int CertAudit(Client& client, const AuditFlags& f) {
  v1::ListAuditEventsRequest req;
  if (!f.which.empty()) {
    v1::Certificate current;
    if (auto rc = Fetch(client, Which{f.which, f.by_id}, &current)) return *rc;
    req.set_certificate_id(current.id());
  }
  for (const auto& a : f.actions) {
    v1::AuditAction action;
    if (!v1::AuditAction_Parse("AUDIT_ACTION_" + EnumKey(a), &action) ||
        action == v1::AUDIT_ACTION_UNSPECIFIED) {
      return UsageError("--action '" + a + "' is unknown (" + std::string(kAuditActions) + ")");
    }
    req.add_actions(action);
  }
  if (f.days < 0) return UsageError("--days must be 0 or more");
  if (f.days > 0) {
    SetTimestampSeconds(static_cast<int64_t>(std::time(nullptr)) - int64_t{f.days} * 86400,
                        req.mutable_start_time());
  }
  if (f.limit < 1 || f.limit > 1000) return UsageError("--limit must be 1-1000");
  req.set_page_size(f.limit);
  req.set_step_id(f.step_id);
  req.set_workflow_id(f.workflow_id);
  v1::ListAuditEventsResponse all;
  for (int page = 0; page < 10000; ++page) {
    v1::ListAuditEventsResponse got;
    if (auto rc = client.Call("ListAuditEvents", &v1::CertificateService::Stub::ListAuditEvents,
                              req, &got)) {
      return *rc;
    }
    for (auto& e : *got.mutable_events()) *all.add_events() = std::move(e);
    all.set_next_page_token(got.next_page_token());
    if (!f.all || got.next_page_token().empty()) break;
    req.set_page_token(got.next_page_token());
  }
  return PrintResult(client.options(), all, [&] {
    std::printf("%-20s %-23s %-24s %-24s %-20s %s\n", "TIME", "ACTION", "CERTIFICATE", "ACTOR",
                "OUTCOME", "DETAIL");
    for (const auto& e : all.events()) {
      std::string detail = e.message();
      if (e.has_target() && !e.target().host().empty()) {
        detail = BindingText(e.target()) +
                 (e.workflow_id().empty() ? "" : " workflow " + e.workflow_id()) +
                 (e.step_id().empty() ? "" : " step " + e.step_id()) +
                 (detail.empty() ? "" : "; " + detail);
      }
      std::printf("%-20s %-23s %-24s %-24s %-20s %s\n", FormatTime(e.time()).c_str(),
                  EnumName(v1::AuditAction_Name(e.action()), "AUDIT_ACTION_").c_str(),
                  e.certificate_name().c_str(), e.actor().c_str(), e.outcome().c_str(),
                  detail.c_str());
    }
    if (!all.next_page_token().empty()) std::printf("(more: --all lists every page)\n");
  });
}

// ---- cert usage ----

void PrintUsers(const v1::GetCertificateUsageResponse& resp) {
  std::printf("%-30s %-20s %-20s %6s %-20s %s\n", "TARGET", "WORKFLOW", "STEP", "USES", "LAST USED",
              "LAST OUTCOME");
  for (const auto& u : resp.users()) {
    std::printf("%-30s %-20s %-20s %6lld %-20s %s\n", BindingText(u.target()).c_str(),
                u.workflow_id().empty() ? "-" : u.workflow_id().c_str(),
                u.step_id().empty() ? "-" : u.step_id().c_str(), static_cast<long long>(u.uses()),
                FormatTime(u.last_use_time()).c_str(), u.last_outcome().c_str());
  }
}

int CertUsage(Client& client, const Which& w, int days) {
  v1::GetCertificateUsageRequest req;
  w.Select(&req);
  req.set_days(days);
  v1::GetCertificateUsageResponse resp;
  if (auto rc = client.Call("GetCertificateUsage",
                            &v1::CertificateService::Stub::GetCertificateUsage, req, &resp)) {
    return *rc;
  }
  return PrintResult(client.options(), resp, [&] {
    if (resp.users().empty()) {
      std::cout << "'" << resp.certificate().name() << "' was not used in the last " << resp.days()
                << " days\n";
      return;
    }
    std::cout << "'" << resp.certificate().name() << "' in use by (last " << resp.days()
              << " days):\n";
    PrintUsers(resp);
  });
}

// ---- notifications ----

int NotificationsList(Client& client) {
  v1::ListPendingNotificationsResponse resp;
  if (auto rc = client.Call("ListPendingNotifications",
                            &v1::CertificateService::Stub::ListPendingNotifications,
                            v1::ListPendingNotificationsRequest(), &resp)) {
    return *rc;
  }
  return PrintResult(client.options(), resp, [&] {
    std::printf("%-28s %-28s %6s %-7s %-21s %s\n", "ID", "CERTIFICATE", "DAYS", "LEVEL", "EXPIRES",
                "ALERT");
    for (const auto& n : resp.notifications()) {
      const std::string level =
          EnumName(v1::NotificationLevel_Name(n.level()), "NOTIFICATION_LEVEL_");
      std::printf("%-28s %-28s %6lld %-7s %-21s %s\n", n.id().c_str(),
                  n.certificate().name().c_str(), static_cast<long long>(n.days_remaining()),
                  level.c_str(), FormatTime(n.expire_time()).c_str(), n.alert_ref().c_str());
    }
  });
}

int NotificationsAck(Client& client, const std::string& id) {
  v1::AcknowledgeNotificationRequest req;
  req.set_notification_id(id);
  v1::AcknowledgeNotificationResponse resp;
  if (auto rc = client.Call("AcknowledgeNotification",
                            &v1::CertificateService::Stub::AcknowledgeNotification, req, &resp)) {
    return *rc;
  }
  return PrintResult(client.options(), resp, [&] { std::cout << "acknowledged " << id << "\n"; });
}

// ---- master-key rotate ----

int MasterKeyRotate(Client& client, const std::string& key_file, const std::string& key_env) {
  v1::RotateMasterKeyRequest req;
  auto text = ReadSecret(key_file, key_env, false, "new master key");
  if (!text.ok()) return UsageError(text.error().message);
  if (*text) {
    auto key = core::MasterKey::FromBase64((*text)->view(), key_file.empty() ? key_env : key_file);
    if (!key.ok()) return UsageError(key.error().message, key.error().hint);
    req.set_new_key(std::string(key->bytes().view()));
  }
  v1::RotateMasterKeyResponse resp;
  const auto rc =
      client.Call("RotateMasterKey", &v1::CertificateService::Stub::RotateMasterKey, req, &resp);
  std::fill(req.mutable_new_key()->begin(), req.mutable_new_key()->end(), '\0');
  if (rc) return *rc;
  return PrintResult(client.options(), resp, [&] {
    std::cout << "master key rotated: " << resp.previous_key_id() << " -> " << resp.key_id()
              << "\n";
    if (!resp.key_file().empty()) {
      std::cout << "the new key is in " << resp.key_file() << "; back it up now\n";
    } else {
      std::cout << "start the plugin with the new key from now on (WSSTEP_MASTER_KEY)\n";
    }
  });
}

}  // namespace

void AddCertAdminCommands(CLI::App* cert, CommandLine& line) {
  auto uf = std::make_shared<UpdateFlags>();
  auto* update = cert->add_subcommand(
      "update", "change an entry: new material (rotation), bindings, name, notifications");
  uf->w.Add(update);
  update->add_option("--rename", uf->rename, "new name");
  update->add_option("--description", uf->description, "new description");
  update->add_option("--bind", uf->bindings,
                     "HOST[:PORT][@ENV] (repeatable; replaces every binding)");
  update->add_flag("--clear-bindings", uf->clear_bindings,
                   "remove every binding (usable only when a step names it)");
  update->add_option("--notifications", uf->notifications, "expiry notifications on or off");
  update->add_option("--warning-days", uf->warning_days, "days before expiry to warn (0: 30)");
  update->add_option("--urgent-days", uf->urgent_days,
                     "days before expiry notifications turn urgent (0: 7, at most --warning-days)");
  update->add_flag("--weekly", uf->weekly, "notify weekly");
  update->add_flag("--daily", uf->daily, "notify daily");
  update->add_option("--alert-ref", uf->alert_ref, "the host's alert reference");
  update->add_option("--private-trust-only", uf->private_trust_only,
                     "trust stores: on (no system CAs) or off");
  uf->material.Add(update, /*file_required=*/false);
  AddClientCommand(update, line, [uf](Client& client) { return CertUpdate(client, *uf); });

  for (const auto& [verb, help, value] :
       {std::tuple{"disable", "keep an entry but never use it", true},
        std::tuple{"enable", "use a disabled entry again", false}}) {
    auto w = std::make_shared<Which>();
    auto* cmd = cert->add_subcommand(verb, help);
    w->Add(cmd);
    const std::string done = std::string(verb) + "d";
    const bool disabled = value;
    AddClientCommand(cmd, line, [w, disabled, done](Client& client) {
      return SetFlag(client, *w, "disabled", disabled, done);
    });
  }

  struct RevokeFlags {
    Which w;
    bool yes = false;
  };
  auto rv = std::make_shared<RevokeFlags>();
  auto* revoke = cert->add_subcommand("revoke", "never use an entry again (final)");
  rv->w.Add(revoke);
  revoke->add_flag("--yes,-y", rv->yes, "confirm");
  AddClientCommand(revoke, line, [rv](Client& client) {
    if (!rv->yes) {
      v1::Certificate current;
      if (auto rc = Fetch(client, rv->w, &current)) return *rc;
      return UsageError("cert revoke: revoking '" + current.name() +
                            "' is final (it cannot be enabled again); add --yes to confirm",
                        "to stop using it for a while, use `wsstep cert disable`");
    }
    return SetFlag(client, rv->w, "revoked", true, "revoked");
  });

  auto ef = std::make_shared<ExportFlags>();
  auto* exp = cert->add_subcommand("export",
                                   "write an entry's public certificate and chain (never its key)");
  ef->w.Add(exp);
  exp->add_option("--format", ef->format,
                  "pem (default: leaf then chain) or der (one certificate)");
  exp->add_flag("--leaf-only", ef->leaf_only, "only the leaf, without its chain");
  exp->add_option("--out,-o", ef->out, "write to this file instead of stdout");
  AddClientCommand(exp, line, [ef](Client& client) { return CertExport(client, *ef); });

  auto* csr = cert->add_subcommand("csr", "generate a key and CSR inside the store; show a CSR");
  csr->require_subcommand(1);
  auto cf = std::make_shared<CsrFlags>();
  auto* create = csr->add_subcommand(
      "create", "generate a private key in the store and print its CSR (the key never leaves)");
  create->add_option("name", cf->name, "name of the new (pending) entry")->required();
  create->add_option("--cn", cf->cn, "subject common name");
  create->add_option("--san", cf->sans, "subject alternative name, DNS:name (repeatable)");
  create->add_option("--org", cf->org, "subject O");
  create->add_option("--ou", cf->ou, "subject OU");
  create->add_option("--locality", cf->locality, "subject L");
  create->add_option("--state", cf->state, "subject ST");
  create->add_option("--country", cf->country, "subject C (two letters)");
  create->add_option("--email", cf->email, "subject emailAddress");
  create->add_option("--key-algorithm", cf->key_algorithm,
                     "ec-p256 (default), ec-p384, ec-p521, rsa-2048, rsa-3072, rsa-4096, ed25519");
  create->add_option("--bind", cf->bindings, "HOST[:PORT][@ENV] (repeatable)");
  create->add_option("--description", cf->description, "free text");
  create->add_option("--out,-o", cf->out, "write the CSR to this file instead of stdout");
  AddClientCommand(create, line, [cf](Client& client) { return CsrCreate(client, *cf); });
  struct ShowFlags {
    Which w;
    std::string out;
  };
  auto sf = std::make_shared<ShowFlags>();
  auto* show = csr->add_subcommand("show", "print a pending entry's CSR again");
  sf->w.Add(show);
  show->add_option("--out,-o", sf->out, "write the CSR to this file instead of stdout");
  AddClientCommand(show, line, [sf](Client& client) { return CsrShow(client, sf->w, sf->out); });

  struct AttachFlags {
    Which w;
    std::string file;
  };
  auto af = std::make_shared<AttachFlags>();
  auto* attach =
      cert->add_subcommand("attach", "attach the certificate a CA issued for an entry's CSR");
  af->w.Add(attach);
  attach->add_option("--file", af->file, "the issued certificate, PEM or DER (chain may follow)")
      ->required();
  AddClientCommand(attach, line,
                   [af](Client& client) { return CertAttach(client, af->w, af->file); });

  auto au = std::make_shared<AuditFlags>();
  auto* audit = cert->add_subcommand("audit", "read the audit log, newest first");
  audit->add_option("certificate", au->which, "only this entry (name, or id with --id)");
  audit->add_flag("--id", au->by_id, "the argument is an id");
  audit->add_option("--action", au->actions, std::string(kAuditActions) + " (repeatable)");
  audit->add_option("--days", au->days, "only the last N days");
  audit->add_option("--step-id", au->step_id, "only events of this step");
  audit->add_option("--workflow-id", au->workflow_id, "only events of this workflow");
  audit->add_option("--limit", au->limit, "events per page, 1-1000 (default 50)");
  audit->add_flag("--all", au->all, "fetch every page");
  AddClientCommand(audit, line, [au](Client& client) { return CertAudit(client, *au); });

  struct UsageFlags {
    Which w;
    int days = 30;
  };
  auto us = std::make_shared<UsageFlags>();
  auto* usage =
      cert->add_subcommand("usage", "who used an entry recently: the hosts, workflows and steps");
  us->w.Add(usage);
  usage->add_option("--days", us->days, "how far back (default 30)");
  AddClientCommand(usage, line,
                   [us](Client& client) { return CertUsage(client, us->w, us->days); });
}

void AddNotificationCommands(CLI::App& app, CommandLine& line) {
  auto* n = app.add_subcommand("notifications", "expiry notifications that are due");
  n->require_subcommand(1);
  auto* list = n->add_subcommand("list", "notifications due and not acknowledged");
  AddClientCommand(list, line, [](Client& client) { return NotificationsList(client); });
  auto id = std::make_shared<std::string>();
  auto* ack = n->add_subcommand("ack", "acknowledge a notification: its alert was sent");
  ack->add_option("id", *id, "the notification id (notifications list)")->required();
  AddClientCommand(ack, line, [id](Client& client) { return NotificationsAck(client, *id); });
}

void AddMasterKeyCommands(CLI::App& app, CommandLine& line) {
  auto* mk = app.add_subcommand("master-key", "the key that encrypts stored private keys");
  mk->require_subcommand(1);
  struct RotateFlags {
    std::string file, env;
  };
  auto rf = std::make_shared<RotateFlags>();
  auto* rotate = mk->add_subcommand("rotate", "re-encrypt every stored key under a new master key");
  rotate->add_option("--new-key-file", rf->file,
                     "the new key (base64 of 32 bytes) from a file; needed when the key comes "
                     "from WSSTEP_MASTER_KEY");
  rotate->add_option("--new-key-env", rf->env, "the new key from this variable");
  AddClientCommand(rotate, line,
                   [rf](Client& client) { return MasterKeyRotate(client, rf->file, rf->env); });
}

}  // namespace wsstep::plugin

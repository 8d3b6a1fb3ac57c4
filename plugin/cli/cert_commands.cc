#include "plugin/cli/cert_commands.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "plugin/adapters/proto_convert.h"
#include "plugin/cli/command.h"

namespace wsstep::plugin {
namespace {

constexpr int64_t kMiB = 1 << 20;

std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string Mib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / kMiB);
  return buf;
}

// When the entry expires, by the rule that gives its status and days_remaining
// (core::GoverningWindow): a provisioning profile's own ExpirationDate, the leaf's expiry,
// or for an entry without a leaf (a trust store) the earliest expiry of its certificates.
// "-" without any.
std::string Expiry(const v1::Certificate& c) {
  if (auto it = c.attributes().find("profile_expires"); it != c.attributes().end()) {
    return it->second;
  }
  if (c.has_certificate()) return FormatTime(c.certificate().not_after());
  google::protobuf::Timestamp earliest;
  for (const auto& t : c.trusted()) {
    if (earliest.seconds() == 0 || t.not_after().seconds() < earliest.seconds()) {
      earliest = t.not_after();
    }
  }
  return FormatTime(earliest);
}

}  // namespace

void PrintCertificate(const v1::Certificate& c) {
  std::cout << "name:          " << c.name() << "\n"
            << "id:            " << c.id() << "\n"
            << "type:          "
            << EnumName(v1::CertificateType_Name(c.type()), "CERTIFICATE_TYPE_") << "\n"
            << "status:        "
            << EnumName(v1::CertificateStatus_Name(c.status()), "CERTIFICATE_STATUS_") << "\n";
  if (c.has_certificate()) {
    const auto& i = c.certificate();
    std::cout << "subject:       " << i.subject() << "\n"
              << "issuer:        " << i.issuer() << "\n";
    if (c.attributes().count("profile_expires") == 0) {
      std::cout << "expires:       " << FormatTime(i.not_after()) << " (" << c.days_remaining()
                << " days)\n";
    }
    std::cout << "key:           " << i.key_algorithm() << " " << i.key_bits()
              << (i.curve().empty() ? "" : " " + i.curve()) << "\n"
              << "fingerprint:   " << i.sha256_fingerprint() << "\n";
  }
  for (const auto& t : c.trusted()) std::cout << "trusts:        " << t.subject() << "\n";
  if (c.attributes().count("profile_expires") != 0) {
    std::cout << "expires:       " << Expiry(c) << " (" << c.days_remaining()
              << " days; the profile's ExpirationDate)\n";
  } else if (!c.has_certificate() && c.trusted_size() > 0) {
    std::cout << "expires:       " << Expiry(c) << " (" << c.days_remaining()
              << " days; the first of its certificates to expire)\n";
  }
  for (const auto& b : c.bindings()) std::cout << "bound to:      " << BindingText(b) << "\n";
  if (c.has_notifications()) {
    const auto& n = c.notifications();
    std::cout << "notifications: "
              << (n.enabled()
                      ? std::to_string(n.warning_days()) + " days before expiry, " +
                            (n.frequency() == v1::NOTIFICATION_FREQUENCY_WEEKLY
                                 ? std::string("weekly")
                                 : std::string("daily")) +
                            ", urgent (daily) " + std::to_string(n.urgent_days()) + " days before"
                      : std::string("off"))
              << (n.alert_ref().empty() ? "" : ", alert " + n.alert_ref()) << "\n";
    if (c.notification_level() != v1::NOTIFICATION_LEVEL_NONE) {
      std::cout << "level:         "
                << EnumName(v1::NotificationLevel_Name(c.notification_level()),
                            "NOTIFICATION_LEVEL_")
                << "\n";
    }
  }
  std::cout << "private key:   " << (c.has_private_key() ? "yes" : "no") << "\n"
            << "uses:          " << c.use_count() << "\n";
  if (c.has_last_use_time())
    std::cout << "last used:     " << FormatTime(c.last_use_time()) << "\n";
}

std::optional<int> AddBindings(const std::vector<std::string>& texts,
                               google::protobuf::RepeatedPtrField<v1::Binding>* out) {
  for (const auto& text : texts) {
    auto binding = ParseBinding(text);
    if (!binding.ok()) return UsageError(binding.error().message, binding.error().hint);
    *out->Add() = *binding;
  }
  return std::nullopt;
}

std::string EnumKey(std::string_view text) {
  std::string key;
  for (char ch : text) {
    key += ch == '-' || ch == ' ' ? '_'
                                  : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  }
  return key;
}

Result<std::string> ReadUploadFile(const std::string& path, std::string_view flag,
                                   int64_t max_bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return Error(Code::kInvalidArgument,
                 std::string(flag) + " " + path + ": " + std::strerror(errno), "",
                 Side::kConfiguration);
  }
  if (S_ISDIR(st.st_mode)) {
    return Error(Code::kInvalidArgument,
                 std::string(flag) + " " + path + ": is a directory, not a file",
                 "give the certificate, key or key store file itself", Side::kConfiguration);
  }
  if (st.st_size == 0) {
    return Error(Code::kInvalidArgument, std::string(flag) + " " + path + ": the file is empty", "",
                 Side::kConfiguration);
  }
  // The request carries the file and a few fields besides; keep room for them.
  if (max_bytes > 0 && st.st_size + 64 * 1024 > max_bytes) {
    return Error(Code::kInvalidArgument,
                 std::string(flag) + " " + path + ": the file is " + Mib(st.st_size) +
                     "; the plugin accepts uploads up to " + Mib(max_bytes - 64 * 1024),
                 "certificates and key stores are kilobytes; check that this is the right file "
                 "(or raise limits.max_message_bytes of the plugin)",
                 Side::kConfiguration)
        .With("size_bytes", std::to_string(st.st_size))
        .With("limit_bytes", std::to_string(max_bytes));
  }
  return ReadWholeFile(path);
}

void MaterialFlags::Add(CLI::App* cmd, bool file_required) {
  auto* f = cmd->add_option("--file", file, "certificate / PKCS#12 / JKS / bundle file");
  if (file_required) f->required();
  cmd->add_option("--key-file", key_file, "private key file (key pairs)");
  cmd->add_option("--format", format,
                  "declared format: pem, der, pkcs12, jks, jceks, mobileprovision");
  cmd->add_option("--password-file", password_file, "password from a file");
  cmd->add_option("--password-env", password_env, "password from a variable");
  cmd->add_flag("--password-stdin", password_stdin, "read the password from stdin");
  cmd->add_option("--key-password-file", key_password_file, "JKS key password file");
  cmd->add_option("--key-password-env", key_password_env, "JKS key password variable");
  cmd->add_option("--alias", alias, "key entry alias in a key store");
}

std::optional<int> MaterialFlags::Fill(Client& client, v1::CertificateMaterial* m) const {
  if (auto rc = client.Connect()) return rc;
  const int64_t limit = client.options().max_message_bytes;
  auto content = ReadUploadFile(file, "--file", limit);
  if (!content.ok()) return UsageError(content.error().message, content.error().hint);
  m->set_content(*content);
  m->set_content_name(BaseName(file));
  if (!key_file.empty()) {
    auto key = ReadUploadFile(key_file, "--key-file", limit);
    if (!key.ok()) return UsageError(key.error().message, key.error().hint);
    m->set_private_key(*key);
    m->set_private_key_name(BaseName(key_file));
  }
  if (!format.empty()) {
    v1::SourceFormat fmt;
    std::string upper = "SOURCE_FORMAT_" + EnumKey(format);
    if (upper == "SOURCE_FORMAT_MOBILEPROVISION") upper = "SOURCE_FORMAT_MOBILE_PROVISION";
    if (!v1::SourceFormat_Parse(upper, &fmt) || fmt == v1::SOURCE_FORMAT_UNSPECIFIED) {
      return UsageError("--format '" + format +
                        "' is unknown (pem, der, pkcs12, jks, jceks, mobileprovision)");
    }
    m->set_format(fmt);
  }
  auto password = ReadSecret(password_file, password_env, password_stdin, "password");
  if (!password.ok()) return UsageError(password.error().message);
  if (*password) m->mutable_password()->set_value(std::string((*password)->view()));
  auto key_password = ReadSecret(key_password_file, key_password_env, false, "key password");
  if (!key_password.ok()) return UsageError(key_password.error().message);
  if (*key_password) m->mutable_key_password()->set_value(std::string((*key_password)->view()));
  m->set_alias(alias);
  return std::nullopt;
}

namespace {

struct ImportFlags {
  std::string name, type, description, alert_ref;
  MaterialFlags material;
  bool private_trust_only = false, disabled = false;
  bool no_notifications = false, weekly = false;
  int warning_days = 0, urgent_days = 0;
  std::vector<std::string> bindings;
};

constexpr std::string_view kTypeNames =
    "key-pair, pkcs12, trust-store, java-keystore, mobile-provisioning";

// --type, in any case: nullopt when it names no type.
std::optional<v1::CertificateType> ParseTypeFlag(const std::string& type) {
  v1::CertificateType t;
  if (!v1::CertificateType_Parse("CERTIFICATE_TYPE_" + EnumKey(type), &t) ||
      t == v1::CERTIFICATE_TYPE_UNSPECIFIED) {
    return std::nullopt;
  }
  return t;
}

std::optional<v1::CertificateType> TypeFromFlag(const std::string& type, const std::string& file,
                                                bool has_key_file) {
  if (!type.empty()) return ParseTypeFlag(type);
  auto ends = [&](std::string_view s) { return file.ends_with(s); };
  if (ends(".p12") || ends(".pfx")) return v1::CERTIFICATE_TYPE_PKCS12;
  if (ends(".jks") || ends(".jceks")) return v1::CERTIFICATE_TYPE_JAVA_KEYSTORE;
  if (ends(".mobileprovision")) return v1::CERTIFICATE_TYPE_MOBILE_PROVISIONING;
  if (has_key_file) return v1::CERTIFICATE_TYPE_KEY_PAIR;
  return std::nullopt;
}

int CertImport(Client& client, const ImportFlags& f) {
  auto type = TypeFromFlag(f.type, f.material.file, !f.material.key_file.empty());
  if (!type && !f.type.empty()) {
    return UsageError("cert import: --type '" + f.type + "' is unknown (" +
                      std::string(kTypeNames) + ")");
  }
  if (!type) {
    return UsageError("cert import: give --type (" + std::string(kTypeNames) +
                      "); it cannot be guessed from '" + f.material.file + "'");
  }
  v1::CreateCertificateRequest req;
  auto* c = req.mutable_certificate();
  c->set_name(f.name);
  c->set_description(f.description);
  c->set_type(*type);
  c->set_private_trust_only(f.private_trust_only);
  c->set_disabled(f.disabled);
  if (auto rc = AddBindings(f.bindings, c->mutable_bindings())) return *rc;
  auto* n = c->mutable_notifications();
  n->set_enabled(!f.no_notifications);
  n->set_warning_days(f.warning_days);
  n->set_urgent_days(f.urgent_days);
  n->set_frequency(f.weekly ? v1::NOTIFICATION_FREQUENCY_WEEKLY : v1::NOTIFICATION_FREQUENCY_DAILY);
  n->set_alert_ref(f.alert_ref);

  if (auto rc = f.material.Fill(client, req.mutable_material())) return *rc;

  v1::CreateCertificateResponse resp;
  const auto rc = client.Call("CreateCertificate", &v1::CertificateService::Stub::CreateCertificate,
                              req, &resp);
  // The request held the upload and passwords: clear them now.
  req.mutable_material()->Clear();
  if (rc) return *rc;
  return PrintResult(client.options(), resp, [&] {
    PrintWarnings(resp.warnings());
    std::cout << "imported:\n";
    PrintCertificate(resp.certificate());
  });
}

struct ListFlags {
  std::string host, environment, status, type, name_contains;
  uint32_t port = 0;
  int page_size = 0;
  bool all = false;
};

int CertList(Client& client, const ListFlags& f) {
  v1::ListCertificatesRequest req;
  req.set_host(f.host);
  req.set_port(f.port);
  req.set_environment(f.environment);
  req.set_name_contains(f.name_contains);
  req.set_page_size(f.page_size);
  if (!f.status.empty()) {
    v1::CertificateStatus st;
    if (!v1::CertificateStatus_Parse("CERTIFICATE_STATUS_" + EnumKey(f.status), &st) ||
        st == v1::CERTIFICATE_STATUS_UNSPECIFIED) {
      return UsageError("--status '" + f.status +
                        "' is unknown (VALID, EXPIRING_SOON, EXPIRED, ...)");
    }
    req.set_status(st);
  }
  if (!f.type.empty()) {
    auto t = ParseTypeFlag(f.type);
    if (!t) {
      return UsageError("--type '" + f.type + "' is unknown (" + std::string(kTypeNames) + ")");
    }
    req.set_type(*t);
  }
  v1::ListCertificatesResponse all;
  for (;;) {
    v1::ListCertificatesResponse page;
    if (auto rc = client.Call("ListCertificates", &v1::CertificateService::Stub::ListCertificates,
                              req, &page)) {
      return *rc;
    }
    for (auto& c : *page.mutable_certificates()) *all.add_certificates() = std::move(c);
    all.set_total_size(page.total_size());
    all.set_next_page_token(page.next_page_token());
    if (!f.all || page.next_page_token().empty()) break;
    req.set_page_token(page.next_page_token());
  }
  return PrintResult(client.options(), all, [&] {
    std::printf("%-28s %-20s %-16s %-21s %s\n", "NAME", "TYPE", "STATUS", "EXPIRES", "BINDINGS");
    for (const auto& c : all.certificates()) {
      std::string bindings;
      for (const auto& b : c.bindings()) bindings += (bindings.empty() ? "" : ",") + BindingText(b);
      std::printf("%-28s %-20s %-16s %-21s %s\n", c.name().c_str(),
                  EnumName(v1::CertificateType_Name(c.type()), "CERTIFICATE_TYPE_").c_str(),
                  EnumName(v1::CertificateStatus_Name(c.status()), "CERTIFICATE_STATUS_").c_str(),
                  Expiry(c).c_str(), bindings.c_str());
    }
    if (!all.next_page_token().empty()) {
      std::printf("(%d in all; --all lists every page)\n", all.total_size());
    }
  });
}

int CertShow(Client& client, const std::string& which, bool by_id) {
  v1::GetCertificateRequest req;
  by_id ? req.set_id(which) : req.set_name(which);
  v1::GetCertificateResponse resp;
  if (auto rc =
          client.Call("GetCertificate", &v1::CertificateService::Stub::GetCertificate, req, &resp))
    return *rc;
  return PrintResult(client.options(), resp, [&] { PrintCertificate(resp.certificate()); });
}

struct DeleteFlags {
  std::string which;
  bool by_id = false, yes = false, force = false;
  int recent_days = 7;
};

int CertDelete(Client& client, const DeleteFlags& f) {
  if (!f.yes) {
    // Say what would go, about an entry that exists: an unknown name is NOT_FOUND, as
    // with --yes, and only an entry with a key has a key to destroy.
    v1::GetCertificateRequest get;
    f.by_id ? get.set_id(f.which) : get.set_name(f.which);
    v1::GetCertificateResponse found;
    if (auto rc = client.Call("GetCertificate", &v1::CertificateService::Stub::GetCertificate, get,
                              &found)) {
      return *rc;
    }
    const bool has_key = found.certificate().has_private_key();
    return UsageError("cert delete: deleting '" + f.which + "' is irreversible" +
                      (has_key ? " (its private key is destroyed)" : "") +
                      "; add --yes to confirm");
  }
  // The plugin refuses an entry used in the last --recent-days, naming who used it.
  v1::DeleteCertificateRequest req;
  f.by_id ? req.set_id(f.which) : req.set_name(f.which);
  req.set_force(f.force);
  req.set_in_use_days(f.recent_days > 0 ? f.recent_days : -1);
  v1::DeleteCertificateResponse resp;
  if (auto rc = client.Call("DeleteCertificate", &v1::CertificateService::Stub::DeleteCertificate,
                            req, &resp))
    return *rc;
  return PrintResult(client.options(), resp, [&] {
    std::cout << "deleted " << resp.certificate().name() << "\n";
    for (const auto& u : resp.users()) {
      std::cout << "was in use by: " << BindingText(u.target())
                << (u.workflow_id().empty() ? "" : " workflow " + u.workflow_id())
                << (u.step_id().empty() ? "" : " step " + u.step_id()) << "\n";
    }
  });
}

// "host", "host:port".

void PrintResolution(const v1::ResolveCertificateResponse& resp);

int CertResolve(Client& client, const std::string& target, const std::string& environment,
                const std::string& certificate) {
  v1::ResolveCertificateRequest req;
  std::string host;
  uint32_t port = 0;
  if (!SplitHostPort(target, &host, &port))
    return UsageError("expected HOST[:PORT], got '" + target + "'");
  req.set_host(host);
  req.set_port(port);
  req.set_environment(environment);
  req.set_certificate(certificate);
  v1::ResolveCertificateResponse resp;
  if (auto rc = client.Call("ResolveCertificate", &v1::CertificateService::Stub::ResolveCertificate,
                            req, &resp))
    return *rc;
  if (resp.has_error()) {
    if (!client.options().json) PrintResolution(resp);
    return ReportStepError(client.options(), resp.error(), resp);
  }
  return PrintResult(client.options(), resp, [&] { PrintResolution(resp); });
}

void PrintResolution(const v1::ResolveCertificateResponse& resp) {
  {
    if (resp.has_chosen()) std::cout << "chosen: " << resp.chosen().name() << "\n";
    for (const auto& r : resp.rejected()) {
      std::cout << "rejected: " << r.certificate().name() << ": " << r.reason() << "\n";
    }
    for (const auto& t : resp.trust()) std::cout << "trust: " << t.name() << "\n";
    if (!resp.explanation().empty()) std::cout << resp.explanation() << "\n";
  }
}

}  // namespace

void AddCertCommands(CLI::App& app, CommandLine& line) {
  auto* cert = app.add_subcommand("cert", "manage the certificate store");
  cert->require_subcommand(1);

  auto imp = std::make_shared<ImportFlags>();
  auto* cert_import = cert->add_subcommand("import", "import a certificate, key pair or key store");
  cert_import->add_option("--name", imp->name, "unique name")->required();
  cert_import->add_option("--type", imp->type,
                          "key-pair, pkcs12, trust-store, java-keystore, mobile-provisioning");
  imp->material.Add(cert_import, /*file_required=*/true);
  cert_import->add_option("--bind", imp->bindings, "HOST[:PORT][@ENV] (repeatable)");
  cert_import->add_option("--description", imp->description, "free text");
  cert_import->add_flag("--private-trust-only", imp->private_trust_only,
                        "trust stores: no system CAs");
  cert_import->add_flag("--disabled", imp->disabled, "import disabled");
  cert_import->add_flag("--no-notifications", imp->no_notifications, "no expiry notifications");
  cert_import->add_option("--warning-days", imp->warning_days, "days before expiry to warn (30)");
  cert_import->add_option(
      "--urgent-days", imp->urgent_days,
      "days before expiry notifications turn urgent (7, at most --warning-days)");
  cert_import->add_flag("--weekly", imp->weekly, "notify weekly instead of daily");
  cert_import->add_option("--alert-ref", imp->alert_ref, "the host's alert reference");
  AddClientCommand(cert_import, line, [imp](Client& client) { return CertImport(client, *imp); });

  auto lf = std::make_shared<ListFlags>();
  auto* cert_list = cert->add_subcommand("list", "list certificates");
  cert_list->add_option("--host", lf->host, "bound to this host");
  cert_list->add_option("--port", lf->port, "bound to this port");
  cert_list->add_option("--environment,-e", lf->environment, "bound in this environment");
  cert_list->add_option("--status", lf->status, "VALID, EXPIRING_SOON, EXPIRED, ...");
  cert_list->add_option("--type", lf->type, "key-pair, pkcs12, ...");
  cert_list->add_option("--name-contains", lf->name_contains, "name filter");
  cert_list->add_option("--page-size", lf->page_size, "entries per page");
  cert_list->add_flag("--all", lf->all, "fetch every page");
  AddClientCommand(cert_list, line, [lf](Client& client) { return CertList(client, *lf); });

  struct Which {
    std::string which;
    bool by_id = false;
  };
  auto show = std::make_shared<Which>();
  auto* cert_show = cert->add_subcommand("show", "show one certificate's metadata");
  cert_show->add_option("certificate", show->which, "name (or id with --id)")->required();
  cert_show->add_flag("--id", show->by_id, "the argument is an id");
  AddClientCommand(cert_show, line,
                   [show](Client& client) { return CertShow(client, show->which, show->by_id); });

  auto del = std::make_shared<DeleteFlags>();
  auto* cert_delete = cert->add_subcommand("delete", "delete a certificate (irreversible)");
  cert_delete->add_option("certificate", del->which, "name (or id with --id)")->required();
  cert_delete->add_flag("--id", del->by_id, "the argument is an id");
  cert_delete->add_flag("--yes,-y", del->yes, "confirm");
  cert_delete->add_flag("--force", del->force, "delete even if steps used it recently");
  cert_delete->add_option("--recent-days", del->recent_days,
                          "refuse when used within this many days (default 7; 0: never)");
  AddClientCommand(cert_delete, line, [del](Client& client) { return CertDelete(client, *del); });

  struct ResolveFlags {
    std::string target, environment, certificate;
  };
  auto rf = std::make_shared<ResolveFlags>();
  auto* cert_resolve =
      cert->add_subcommand("resolve", "explain which certificate a call would use");
  cert_resolve->add_option("target", rf->target, "HOST[:PORT]")->required();
  cert_resolve->add_option("--environment,-e", rf->environment, "environment");
  cert_resolve->add_option("--certificate", rf->certificate, "as a step naming this certificate");
  AddClientCommand(cert_resolve, line, [rf](Client& client) {
    return CertResolve(client, rf->target, rf->environment, rf->certificate);
  });

  AddCertAdminCommands(cert, line);
}

}  // namespace wsstep::plugin

#include "plugin/cli/cert_commands.h"

#include <map>

#include "plugin/cli/command.h"

namespace wsstep::plugin {
namespace {

// When the entry expires, by the rule that gives its status and days_remaining
// (core::GoverningCertificate): the leaf's expiry, or for an entry without a leaf (a trust
// store) the earliest expiry of its certificates. Unset (printed "-") without any.
google::protobuf::Timestamp Expiry(const v1::Certificate& c) {
  if (c.has_certificate()) return c.certificate().not_after();
  google::protobuf::Timestamp earliest;
  for (const auto& t : c.trusted()) {
    if (earliest.seconds() == 0 || t.not_after().seconds() < earliest.seconds()) {
      earliest = t.not_after();
    }
  }
  return earliest;
}

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
              << "issuer:        " << i.issuer() << "\n"
              << "expires:       " << FormatTime(i.not_after()) << " (" << c.days_remaining()
              << " days)\n"
              << "key:           " << i.key_algorithm() << " " << i.key_bits()
              << (i.curve().empty() ? "" : " " + i.curve()) << "\n"
              << "fingerprint:   " << i.sha256_fingerprint() << "\n";
  }
  for (const auto& t : c.trusted()) std::cout << "trusts:        " << t.subject() << "\n";
  if (!c.has_certificate() && c.trusted_size() > 0) {
    std::cout << "expires:       " << FormatTime(Expiry(c)) << " (" << c.days_remaining()
              << " days; the first of its certificates to expire)\n";
  }
  for (const auto& b : c.bindings()) std::cout << "bound to:      " << BindingText(b) << "\n";
  std::cout << "private key:   " << (c.has_private_key() ? "yes" : "no") << "\n"
            << "uses:          " << c.use_count() << "\n";
}

// The `--json` or human output of a successful call.

struct ImportFlags {
  std::string name, type, file, key_file, format, description, alias, alert_ref;
  std::string password_file, password_env, key_password_file, key_password_env;
  bool password_stdin = false, private_trust_only = false, disabled = false;
  bool no_notifications = false, weekly = false;
  int warning_days = 0;
  std::vector<std::string> bindings;
};

// An enum value as a person types it ("pkcs12", "PKCS12", "trust-store", "TRUST_STORE",
// "Expiring-Soon") in the spelling of the proto's names: upper case, '_' between words.
std::string EnumKey(std::string_view text) {
  std::string key;
  for (char ch : text) {
    key += ch == '-' || ch == ' ' ? '_'
                                  : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  }
  return key;
}

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

std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

int CertImport(Client& client, const ImportFlags& f) {
  auto type = TypeFromFlag(f.type, f.file, !f.key_file.empty());
  if (!type && !f.type.empty()) {
    return UsageError("cert import: --type '" + f.type + "' is unknown (" +
                      std::string(kTypeNames) + ")");
  }
  if (!type) {
    return UsageError("cert import: give --type (" + std::string(kTypeNames) +
                      "); it cannot be guessed from '" + f.file + "'");
  }
  v1::CreateCertificateRequest req;
  auto* c = req.mutable_certificate();
  c->set_name(f.name);
  c->set_description(f.description);
  c->set_type(*type);
  c->set_private_trust_only(f.private_trust_only);
  c->set_disabled(f.disabled);
  for (const auto& b : f.bindings) {
    auto binding = ParseBinding(b);
    if (!binding.ok()) return UsageError(binding.error().message);
    *c->add_bindings() = *binding;
  }
  auto* n = c->mutable_notifications();
  n->set_enabled(!f.no_notifications);
  n->set_warning_days(f.warning_days);
  n->set_frequency(f.weekly ? v1::NOTIFICATION_FREQUENCY_WEEKLY : v1::NOTIFICATION_FREQUENCY_DAILY);
  n->set_alert_ref(f.alert_ref);

  auto* m = req.mutable_material();
  auto content = ReadWholeFile(f.file);
  if (!content.ok()) return UsageError(content.error().message);
  m->set_content(*content);
  m->set_content_name(BaseName(f.file));
  if (!f.key_file.empty()) {
    auto key = ReadWholeFile(f.key_file);
    if (!key.ok()) return UsageError(key.error().message);
    m->set_private_key(*key);
    m->set_private_key_name(BaseName(f.key_file));
  }
  if (!f.format.empty()) {
    v1::SourceFormat fmt;
    std::string upper = "SOURCE_FORMAT_" + EnumKey(f.format);
    if (upper == "SOURCE_FORMAT_MOBILEPROVISION") upper = "SOURCE_FORMAT_MOBILE_PROVISION";
    if (!v1::SourceFormat_Parse(upper, &fmt))
      return UsageError("--format '" + f.format + "' is unknown");
    m->set_format(fmt);
  }
  auto password = ReadSecret(f.password_file, f.password_env, f.password_stdin, "password");
  if (!password.ok()) return UsageError(password.error().message);
  if (*password) m->mutable_password()->set_value(std::string((*password)->view()));
  auto key_password = ReadSecret(f.key_password_file, f.key_password_env, false, "key password");
  if (!key_password.ok()) return UsageError(key_password.error().message);
  if (*key_password) m->mutable_key_password()->set_value(std::string((*key_password)->view()));
  m->set_alias(f.alias);

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
                  FormatTime(Expiry(c)).c_str(), bindings.c_str());
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

int CertDelete(Client& client, const std::string& which, bool by_id, bool yes) {
  if (!yes) {
    // Say what would go, about an entry that exists: an unknown name is NOT_FOUND, as
    // with --yes, and only an entry with a key has a key to destroy.
    v1::GetCertificateRequest get;
    by_id ? get.set_id(which) : get.set_name(which);
    v1::GetCertificateResponse found;
    if (auto rc = client.Call("GetCertificate", &v1::CertificateService::Stub::GetCertificate, get,
                              &found)) {
      return *rc;
    }
    const bool has_key = found.certificate().has_private_key();
    return UsageError("cert delete: deleting '" + which + "' is irreversible" +
                      (has_key ? " (its private key is destroyed)" : "") +
                      "; add --yes to confirm");
  }
  v1::DeleteCertificateRequest req;
  by_id ? req.set_id(which) : req.set_name(which);
  v1::DeleteCertificateResponse resp;
  if (auto rc = client.Call("DeleteCertificate", &v1::CertificateService::Stub::DeleteCertificate,
                            req, &resp))
    return *rc;
  return PrintResult(client.options(), resp,
                     [&] { std::cout << "deleted " << resp.certificate().name() << "\n"; });
}

// "host", "host:port".

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
  PrintResult(client.options(), resp, [&] {
    if (resp.has_chosen()) std::cout << "chosen: " << resp.chosen().name() << "\n";
    for (const auto& r : resp.rejected()) {
      std::cout << "rejected: " << r.certificate().name() << ": " << r.reason() << "\n";
    }
    for (const auto& t : resp.trust()) std::cout << "trust: " << t.name() << "\n";
    if (!resp.explanation().empty()) std::cout << resp.explanation() << "\n";
  });
  return resp.has_error() ? ReportStepError(client.options(), resp.error()) : kExitOk;
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
  cert_import->add_option("--file", imp->file, "certificate / PKCS#12 / JKS / bundle file")
      ->required();
  cert_import->add_option("--key-file", imp->key_file, "private key file (key pairs)");
  cert_import->add_option("--format", imp->format,
                          "declared format: pem, der, pkcs12, jks, jceks, mobileprovision");
  cert_import->add_option("--password-file", imp->password_file, "password from a file");
  cert_import->add_option("--password-env", imp->password_env, "password from a variable");
  cert_import->add_flag("--password-stdin", imp->password_stdin, "read the password from stdin");
  cert_import->add_option("--key-password-file", imp->key_password_file, "JKS key password file");
  cert_import->add_option("--key-password-env", imp->key_password_env, "JKS key password variable");
  cert_import->add_option("--alias", imp->alias, "key entry alias in a key store");
  cert_import->add_option("--bind", imp->bindings, "HOST[:PORT][@ENV] (repeatable)");
  cert_import->add_option("--description", imp->description, "free text");
  cert_import->add_flag("--private-trust-only", imp->private_trust_only,
                        "trust stores: no system CAs");
  cert_import->add_flag("--disabled", imp->disabled, "import disabled");
  cert_import->add_flag("--no-notifications", imp->no_notifications, "no expiry notifications");
  cert_import->add_option("--warning-days", imp->warning_days, "days before expiry to warn (30)");
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
    bool by_id = false, yes = false;
  };
  auto show = std::make_shared<Which>();
  auto* cert_show = cert->add_subcommand("show", "show one certificate's metadata");
  cert_show->add_option("certificate", show->which, "name (or id with --id)")->required();
  cert_show->add_flag("--id", show->by_id, "the argument is an id");
  AddClientCommand(cert_show, line,
                   [show](Client& client) { return CertShow(client, show->which, show->by_id); });

  auto del = std::make_shared<Which>();
  auto* cert_delete = cert->add_subcommand("delete", "delete a certificate (irreversible)");
  cert_delete->add_option("certificate", del->which, "name (or id with --id)")->required();
  cert_delete->add_flag("--id", del->by_id, "the argument is an id");
  cert_delete->add_flag("--yes,-y", del->yes, "confirm");
  AddClientCommand(cert_delete, line, [del](Client& client) {
    return CertDelete(client, del->which, del->by_id, del->yes);
  });

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
}

}  // namespace wsstep::plugin

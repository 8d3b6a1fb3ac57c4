// `wsstep proxy-credential set|list|delete`: the proxy users and passwords the store keeps
// for steps and for the plugin's own proxy (PRODUCT.md §2 "Networks"), through the
// plugin's CertificateService. The password is read from a file, a variable or stdin,
// never from the command line, and no command ever prints it.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>

#include "plugin/cli/cert_commands.h"

namespace wsstep::plugin {
namespace {

struct SetFlags {
  std::string name, user, password_file, password_env;
  bool password_stdin = false;
};

int ProxyCredentialSet(Client& client, const SetFlags& f) {
  auto password = ReadSecret(f.password_file, f.password_env, f.password_stdin, "password");
  if (!password.ok()) return UsageError(password.error().message);
  if (!*password) {
    return UsageError("password: required",
                      "give --password-env VAR, --password-file FILE or --password-stdin");
  }
  v1::SetProxyCredentialRequest req;
  req.set_name(f.name);
  req.set_username(f.user);
  req.set_password(std::string((*password)->view()));
  v1::SetProxyCredentialResponse resp;
  const auto rc = client.Call("SetProxyCredential",
                              &v1::CertificateService::Stub::SetProxyCredential, req, &resp);
  std::fill(req.mutable_password()->begin(), req.mutable_password()->end(), '\0');
  if (rc) return *rc;
  return PrintResult(client.options(), resp, [&] {
    std::cout << (resp.created() ? "created" : "updated") << " proxy credential "
              << resp.credential().name() << " (user " << resp.credential().username()
              << "); the password is stored encrypted\n";
  });
}

int ProxyCredentialList(Client& client) {
  v1::ListProxyCredentialsResponse resp;
  if (auto rc =
          client.Call("ListProxyCredentials", &v1::CertificateService::Stub::ListProxyCredentials,
                      v1::ListProxyCredentialsRequest(), &resp)) {
    return *rc;
  }
  return PrintResult(client.options(), resp, [&] {
    std::printf("%-28s %-28s %-21s %s\n", "NAME", "USER", "CREATED", "UPDATED");
    for (const auto& c : resp.credentials()) {
      std::printf("%-28s %-28s %-21s %s\n", c.name().c_str(), c.username().c_str(),
                  FormatTime(c.create_time()).c_str(), FormatTime(c.update_time()).c_str());
    }
  });
}

int ProxyCredentialDelete(Client& client, const std::string& name) {
  v1::DeleteProxyCredentialRequest req;
  req.set_name(name);
  v1::DeleteProxyCredentialResponse resp;
  if (auto rc = client.Call("DeleteProxyCredential",
                            &v1::CertificateService::Stub::DeleteProxyCredential, req, &resp)) {
    return *rc;
  }
  return PrintResult(client.options(), resp,
                     [&] { std::cout << "deleted proxy credential " << name << "\n"; });
}

}  // namespace

void AddProxyCredentialCommands(CLI::App& app, CommandLine& line) {
  auto* pc = app.add_subcommand("proxy-credential",
                                "proxy users and passwords kept encrypted in the store");
  pc->require_subcommand(1);

  auto sf = std::make_shared<SetFlags>();
  auto* set = pc->add_subcommand("set", "create a proxy credential, or change its user/password");
  set->add_option("name", sf->name, "the credential's name (steps and the config name it)")
      ->required();
  set->add_option("--user", sf->user, "the proxy user")->required();
  set->add_option("--password-env", sf->password_env, "the password, from this variable");
  set->add_option("--password-file", sf->password_file, "the password, from this file");
  set->add_flag("--password-stdin", sf->password_stdin, "the password, from stdin");
  AddClientCommand(set, line, [sf](Client& client) { return ProxyCredentialSet(client, *sf); });

  auto* list = pc->add_subcommand("list", "every proxy credential's name and user");
  AddClientCommand(list, line, [](Client& client) { return ProxyCredentialList(client); });

  auto name = std::make_shared<std::string>();
  auto* del = pc->add_subcommand("delete", "delete a proxy credential");
  del->add_option("name", *name, "the credential's name")->required();
  AddClientCommand(del, line,
                   [name](Client& client) { return ProxyCredentialDelete(client, *name); });
}

}  // namespace wsstep::plugin

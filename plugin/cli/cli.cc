#include "plugin/cli/cli.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>

#include "plugin/cli/call_commands.h"
#include "plugin/cli/cert_commands.h"
#include "plugin/cli/command.h"
#include "plugin/cli/demo.h"
#include "plugin/cli/serve.h"
#include "plugin/cli/store_commands.h"
#include "plugin/cli/wsdl_command.h"

namespace wsstep::plugin {
namespace {

std::string SelfExecutable(const char* argv0) {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0) return std::string(buf, static_cast<size_t>(n));
  return argv0;
}

}  // namespace

int RunCli(int argc, char** argv) {
  CLI::App app{"wsstep: outbound REST and SOAP steps over mutual TLS, as a workflow plugin"};
  app.fallthrough();
  app.require_subcommand(0, 1);
  CommandLine line;
  GlobalFlags& g = line.global;
  app.add_option("--config", g.config_file, "JSON config file (also WSSTEP_CONFIG)");
  app.add_option("--data-dir", g.data_dir, "store directory (also WSSTEP_DATA_DIR)");
  app.add_option("--plugin", g.plugin, "plugin to talk to: unix:///path/to.sock or HOST:PORT");
  app.add_option("--address", g.address, "plugin TCP address HOST:PORT");
  app.add_flag("--json", g.json, "print results and errors as JSON on stdout");
  app.add_option("--timeout", g.timeout_seconds, "seconds per call (default 30)");
  app.add_option("--actor", g.actor, "who acts, for the audit log (default wsstep-cli:USER)");
  app.add_option("--step-id", g.step_id, "step id sent as x-wsstep-step-id");
  app.add_option("--workflow-id", g.workflow_id, "workflow id sent as x-wsstep-workflow-id");

  auto serve = AddServeCommand(app, g.config_file, g.data_dir);
  AddCertCommands(app, line);
  AddNotificationCommands(app, line);
  AddMasterKeyCommands(app, line);
  AddProxyCredentialCommands(app, line);
  AddCallCommands(app, line);
  AddTestConnectionCommand(app, line);
  AddStoreCommands(app, line);
  AddWsdlCommand(app, line);
  auto* demo = app.add_subcommand(
      "demo",
      "make a throwaway PKI and nginx, launch the plugin as a host would, run an mTLS step "
      "that works and one that fails");
  demo->callback([&line, argv] {
    line.run = [&line, argv] { return RunDemo(SelfExecutable(argv[0]), line.global.json); };
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are not failures; a usage error with --json is JSON too.
    if (e.get_exit_code() == 0) return app.exit(e);
    for (int i = 1; i < argc; ++i) {
      if (std::string_view(argv[i]) == "--json") {
        SetJsonOutput(true);
        return UsageError(e.what(),
                          "wsstep --help lists the commands; wsstep COMMAND --help "
                          "their flags");
      }
    }
    app.exit(e);
    return kExitUsage;
  }
  SetJsonOutput(g.json);
  // WSSTEP_CHECK_COMMAND_LINE=1: parse only, run nothing (the docs test checks that
  // every command the guides show is one this binary accepts).
  if (const char* check = std::getenv("WSSTEP_CHECK_COMMAND_LINE"); check && *check == '1') {
    return kExitOk;
  }

  // No command at all: this is how hosts launch plugins.
  if (app.get_subcommands().empty()) return serve(/*explicit_serve=*/false);
  if (app.got_subcommand("serve")) return serve(/*explicit_serve=*/true);
  if (line.run) return line.run();
  std::cerr << app.help();
  return kExitUsage;
}

}  // namespace wsstep::plugin

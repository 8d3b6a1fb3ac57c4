// `wsstep cert import|list|show|delete|resolve`: the administrator's view of the store,
// through the plugin's CertificateService.
#ifndef WSSTEP_PLUGIN_CLI_CERT_COMMANDS_H_
#define WSSTEP_PLUGIN_CLI_CERT_COMMANDS_H_

#include <CLI/CLI.hpp>

#include "plugin/cli/command.h"

namespace wsstep::plugin {

// Registers `cert` and its subcommands; the parsed one sets line.run.
void AddCertCommands(CLI::App& app, CommandLine& line);

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_CLI_CERT_COMMANDS_H_

// `wsstep call rest|soap` and `wsstep test-connection`: run a step, or diagnose a
// handshake, through a running plugin exactly as a host would.
#ifndef WSSTEP_PLUGIN_CLI_CALL_COMMANDS_H_
#define WSSTEP_PLUGIN_CLI_CALL_COMMANDS_H_

#include <CLI/CLI.hpp>

#include "plugin/cli/command.h"

namespace wsstep::plugin {

// Registers `call rest` and `call soap`; the parsed one sets line.run.
void AddCallCommands(CLI::App& app, CommandLine& line);
// Registers `test-connection`.
void AddTestConnectionCommand(CLI::App& app, CommandLine& line);

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_CLI_CALL_COMMANDS_H_

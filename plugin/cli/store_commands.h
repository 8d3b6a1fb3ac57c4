// `wsstep store ...`: commands on a store's storage itself, run where the storage is
// reachable and without a running plugin.
//
//   wsstep store copy --from /var/lib/wsstep --to postgresql://wsstep@db.internal/wsstep
#ifndef WSSTEP_PLUGIN_CLI_STORE_COMMANDS_H_
#define WSSTEP_PLUGIN_CLI_STORE_COMMANDS_H_

#include <CLI/CLI.hpp>

#include "plugin/cli/command.h"

namespace wsstep::plugin {

void AddStoreCommands(CLI::App& app, CommandLine& line);

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_CLI_STORE_COMMANDS_H_

// The `wsstep` command line (CLI11): one binary that is the plugin, its server, and the
// administrator's and tester's client of the plugin's own gRPC API.
//
//   wsstep                                   plugin mode (go-plugin handshake required)
//   wsstep serve [--listen ADDR] ...         run the server
//   wsstep cert import|list|show|delete|resolve ...
//   wsstep call rest|soap ...
//   wsstep test-connection HOST:PORT ...
//   wsstep demo                              launch the plugin as a host would, show it
//
// Every command has --help; client commands take --plugin/--address, --json and
// --timeout, and return the exit codes of plugin/cli/client.h.
#ifndef WSSTEP_PLUGIN_CLI_CLI_H_
#define WSSTEP_PLUGIN_CLI_CLI_H_

namespace wsstep::plugin {

// Runs the command line; returns the process exit code.
int RunCli(int argc, char** argv);

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_CLI_CLI_H_

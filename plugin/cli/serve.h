// `wsstep serve`: runs the plugin server until it is told to stop, then drains.
//
// Two modes:
//   - plugin mode (the go-plugin magic cookie is in the environment): binds an ephemeral
//     address (a unix socket in a fresh 0700 directory, or 127.0.0.1 when
//     WSSTEP_PLUGIN_NETWORK=tcp), secures it with AutoMTLS when PLUGIN_CLIENT_CERT is set,
//     prints the one handshake line on stdout (plugin/process/handshake.h) and nothing else ever:
//     from the start, file descriptor 1 points at stderr and the line goes out through a
//     private copy of the original stdout, which is closed right after. Stops on SIGTERM,
//     stdin end-of-file or GRPCController.Shutdown; SIGINT is ignored (see lifecycle.h).
//   - standalone: listens on config.listen (unix socket by default, loopback TCP, or
//     remote TCP with allow_remote), stops on SIGTERM or SIGINT.
#ifndef WSSTEP_PLUGIN_CLI_SERVE_H_
#define WSSTEP_PLUGIN_CLI_SERVE_H_

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "plugin/process/config.h"
#include "plugin/process/handshake.h"

namespace wsstep::plugin {

// Returns the process exit code: 0 after a clean stop, 1 when the server cannot start.
int RunServe(const Config& config, const HandshakeEnv& handshake, bool plugin_mode);

// Registers `serve` and its flags on the command line. The returned function runs the
// server with the flags given: for the `serve` command, and when the binary is started
// with no command at all, which is how hosts launch plugins (then the go-plugin magic
// cookie must be in the environment). `global` holds --config and --data-dir.
std::function<int(bool explicit_serve)> AddServeCommand(CLI::App& app, const std::string& config_file,
                                                        const std::string& data_dir);

// The message for someone who ran the plugin binary the way a host would, by hand.
std::string NotLaunchedByHostMessage(CookieState cookie);

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_CLI_SERVE_H_

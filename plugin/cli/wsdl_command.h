// `wsstep wsdl URL|FILE`: DescribeWsdl from the command line. A URL is fetched by the
// plugin (with the certificate bound to its host); a FILE is uploaded together with the
// local documents it imports, each read relative to the WSDL's directory as the plugin
// asks for it.
#ifndef WSSTEP_PLUGIN_CLI_WSDL_COMMAND_H_
#define WSSTEP_PLUGIN_CLI_WSDL_COMMAND_H_

#include <CLI/CLI.hpp>

#include "plugin/cli/command.h"

namespace wsstep::plugin {

void AddWsdlCommand(CLI::App& app, CommandLine& line);

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_CLI_WSDL_COMMAND_H_

// The `wsstep` binary: the plugin, its server and its command line (plugin/cli/cli.h).
#include "plugin/cli/cli.h"

int main(int argc, char** argv) { return wsstep::plugin::RunCli(argc, argv); }

// The `wsstep` binary: the plugin, its server and its command line (plugin/cli.h).
#include "plugin/cli.h"

int main(int argc, char** argv) { return wsstep::plugin::RunCli(argc, argv); }

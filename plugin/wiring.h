// The one place where the plugin's components are created and connected: the certificate
// store (core/), the REST engine (rest/) and SOAP (soap/) behind the backend interfaces
// of plugin/backends.h. Everything else in plugin/ only sees the interfaces.
#ifndef WSSTEP_PLUGIN_WIRING_H_
#define WSSTEP_PLUGIN_WIRING_H_

#include <functional>

#include "core/error.h"
#include "plugin/backends.h"
#include "plugin/config.h"

namespace wsstep::plugin {

struct Wiring {
  Backends backends;
  // Releases the components (engine workers, store) after the server has drained.
  std::function<void()> close;
  // What is not wired in this build, for the startup log line.
  std::vector<std::string> missing;
};

// Opens the store in config.data_dir with the configured master key and creates the
// engines with the configured policy and limits. Errors: STORAGE_ERROR,
// MASTER_KEY_ERROR (the plugin cannot start without its store).
Result<Wiring> BuildBackends(const Config& config);

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_WIRING_H_

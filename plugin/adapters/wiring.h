// The one place where the plugin's components are created and connected: the certificate
// store (core/), the REST engine (rest/) and SOAP (soap/) behind the backend interfaces
// of plugin/server/backends.h. Everything else in plugin/ only sees the interfaces.
#ifndef WSSTEP_PLUGIN_ADAPTERS_WIRING_H_
#define WSSTEP_PLUGIN_ADAPTERS_WIRING_H_

#include <cstddef>
#include <functional>

#include "core/error.h"
#include "plugin/server/backends.h"
#include "plugin/process/config.h"
#include "plugin/adapters/metrics.h"
#include "plugin/adapters/rest_runner.h"

namespace wsstep::plugin {

struct Wiring {
  Backends backends;
  // Releases the components (engine workers, store) after the server has drained.
  std::function<void()> close;
  // What is not wired in this build, for the startup log line.
  std::vector<std::string> missing;
  // With config.metrics_listen set: the metrics, already observing steps
  // (backends.observer); serve them with MetricsEndpoint. Null otherwise: steps pay
  // nothing for metrics nobody reads.
  std::shared_ptr<PluginMetrics> metrics;
};

// The engine's options from the plugin's configuration. The engine queue is sized from
// limits.max_in_flight_steps so that Execute calls the plugin admits never find the
// engine busy (the host sees one refusal, UNAVAILABLE naming max_in_flight_steps), with
// kEngineQueueHeadroom places beyond for calls not counted there (TestConnection).
inline constexpr size_t kEngineQueueHeadroom = 1024;
TransferOptions TransferOptionsFor(const Config& config);

// Opens the store in config.data_dir with the configured master key and creates the
// engines with the configured policy and limits. Errors: STORAGE_ERROR,
// MASTER_KEY_ERROR (the plugin cannot start without its store).
Result<Wiring> BuildBackends(const Config& config);

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_ADAPTERS_WIRING_H_

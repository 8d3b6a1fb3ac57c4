#include "plugin/adapters/wiring.h"

#include <algorithm>

#include "core/store/pg_storage.h"
#include "core/store/store.h"
#include "plugin/adapters/rest_runner.h"
#include "plugin/adapters/store_backend.h"
#include "plugin/process/log.h"

namespace wsstep::plugin {

TransferOptions TransferOptionsFor(const Config& config) {
  TransferOptions transfer;
  transfer.protected_environments = {config.protected_environments.begin(),
                                     config.protected_environments.end()};
  transfer.max_body_bytes = static_cast<size_t>(config.limits.max_body_bytes);
  transfer.max_chunked_body_bytes = static_cast<size_t>(config.limits.max_chunked_body_bytes);
  transfer.spin_wait = config.spin_wait;
  transfer.propagate_trace_context = config.propagate_trace_context;
  // Every step the plugin admits fits in the queue even when no worker is free; with the
  // fixed 1,024 of old, a max_in_flight_steps above workers + 1,024 made the engine
  // refuse first, with a different message than the plugin's UNAVAILABLE.
  transfer.max_queue =
      static_cast<size_t>(std::max(config.limits.max_in_flight_steps, 0)) + kEngineQueueHeadroom;
  transfer.max_in_flight_per_origin = config.limits.max_in_flight_per_origin;
  transfer.proxy_url = config.proxy.url;
  transfer.proxy_username = config.proxy.username;
  transfer.proxy_password = config.proxy.password;
  transfer.proxy_credential = config.proxy.credential;
  transfer.no_proxy = config.proxy.no_proxy;
  transfer.offer_http2 = config.offer_http2;
  return transfer;
}

Result<Wiring> BuildBackends(const Config& config) {
  core::StoreOptions options;
  options.data_dir = config.data_dir;
  options.master_key_file = config.master_key_file;
  if (config.master_key) options.master_key = config.master_key->Clone();
  if (!config.store.empty()) {
    options.storage = core::PostgresStorageFactory(config.store);
    options.on_storage_state = [location = core::PostgresLocation(config.store)](const Status& st) {
      if (st.ok()) {
        Log().Info(
            "the shared store is reachable again; this plugin has caught up with every "
            "change made meanwhile",
            {{"store", location}});
        return;
      }
      Log().Error(
          "the shared store cannot be reached: steps go on with this plugin's copy of "
          "the store, changes are refused with STORAGE_UNAVAILABLE until it is back",
          {{"store", location},
           {"code", CodeName(st.error().code)},
           {"error", st.error().message}});
    };
  }
  WSSTEP_ASSIGN_OR_RETURN(std::unique_ptr<core::CertificateStore> opened,
                          core::CertificateStore::Open(std::move(options)));
  std::shared_ptr<core::CertificateStore> store(std::move(opened));

  // One engine for REST steps, SOAP steps and connection tests: one transfer path, one
  // set of identity partitions.
  std::shared_ptr<Transfers> transfers = MakeTransfers(store, TransferOptionsFor(config));

  Wiring w;
  w.backends.certificates = std::make_shared<StoreBackend>(store, MakeConnectionTester(transfers));
  w.backends.rest = MakeRestRunner(transfers);
  w.backends.soap = MakeSoapRunner(transfers);
  w.backends.wsdl = MakeWsdlDescriber(transfers);
  w.backends.lend_step_thread = [transfers](std::function<void()> on_slow) {
    return LendThreadToEngine(*transfers, std::move(on_slow));
  };
  if (!config.metrics_listen.empty()) {
    w.metrics = std::make_shared<PluginMetrics>(store, transfers);
    w.backends.observer = w.metrics->observer();
  }
  w.close = [store, transfers]() {
    // The server has drained: stop the engine's workers, then write pending use records.
    ShutdownTransfers(*transfers);
    (void)store->Flush();
  };
  return w;
}

}  // namespace wsstep::plugin

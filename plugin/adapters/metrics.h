// The plugin's Prometheus metrics (docs/operations.md lists every series and example alert
// rules). Two sources feed one exposition:
//   - the step service tells PluginMetrics::observer() about each step as it happens
//     (counters, latency and phase histograms, steps in flight): lock-free on that path;
//   - at scrape time the certificate store and the transfer engine are read (entries by
//     status, seconds to expiry, bindings, notifications due; connections and handshakes
//     per store entry).
// Label values are bounded by what the store holds: entry names, bound host:ports,
// catalog codes. Never URLs, paths, headers or free text.
//
//   auto metrics = std::make_shared<PluginMetrics>(store, transfers);
//   backends.observer = metrics->observer();
//   auto endpoint = MetricsEndpoint::Start(ListenAddress::Tcp("127.0.0.1", 9464), metrics);
#ifndef WSSTEP_PLUGIN_ADAPTERS_METRICS_H_
#define WSSTEP_PLUGIN_ADAPTERS_METRICS_H_

#include <memory>
#include <string>

#include "core/error.h"
#include "core/store/store.h"
#include "plugin/adapters/rest_runner.h"
#include "plugin/process/listen.h"
#include "plugin/server/backends.h"
#include "plugin/server/step_service.h"

namespace wsstep::plugin {

class PluginMetrics {
 public:
  // `transfers` may be null (no connection series then).
  PluginMetrics(std::shared_ptr<core::CertificateStore> store,
                std::shared_ptr<Transfers> transfers);
  ~PluginMetrics();
  PluginMetrics(const PluginMetrics&) = delete;
  PluginMetrics& operator=(const PluginMetrics&) = delete;

  // Give it to Backends::observer.
  std::shared_ptr<StepObserver> observer() const;
  // The whole exposition in Prometheus text format 0.0.4, as a scrape returns it.
  std::string Text() const;

 private:
  friend class MetricsEndpoint;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Serves PluginMetrics at http://ADDRESS/metrics (prometheus-cpp's exposer, civetweb) with
// its own two threads. Prometheus scrapes TCP, so the address is host:port; a non-loopback
// host needs allow_remote (CheckListenPolicy), as for the plugin API.
class MetricsEndpoint {
 public:
  // `address` is TCP (ParseMetricsAddress). INVALID_ARGUMENT for a non-loopback host
  // (unless allowed) and naming the address when it cannot be bound. Port 0 picks a free
  // port (see port()).
  static Result<std::unique_ptr<MetricsEndpoint>> Start(const ListenAddress& address,
                                                        bool allow_remote,
                                                        std::shared_ptr<PluginMetrics> metrics);
  ~MetricsEndpoint();  // stops serving
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  int port() const { return port_; }
  std::string url() const;  // "http://127.0.0.1:9464/metrics"

 private:
  struct Impl;
  MetricsEndpoint(std::unique_ptr<Impl> impl, std::string host, int port);
  std::unique_ptr<Impl> impl_;
  std::string host_;
  int port_ = 0;
};

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_ADAPTERS_METRICS_H_

#include "plugin/wiring.h"

#include "core/store.h"
#include "plugin/rest_runner.h"
#include "plugin/store_backend.h"

namespace wsstep::plugin {

Result<Wiring> BuildBackends(const Config& config) {
  core::StoreOptions options;
  options.data_dir = config.data_dir;
  options.master_key_file = config.master_key_file;
  if (config.master_key) options.master_key = config.master_key->Clone();
  WSSTEP_ASSIGN_OR_RETURN(std::unique_ptr<core::CertificateStore> opened,
                          core::CertificateStore::Open(std::move(options)));
  std::shared_ptr<core::CertificateStore> store(std::move(opened));

  // One engine for REST steps, SOAP steps and connection tests: one transfer path, one
  // set of identity partitions.
  TransferOptions transfer;
  transfer.protected_environments = {config.protected_environments.begin(),
                                     config.protected_environments.end()};
  transfer.max_body_bytes = static_cast<size_t>(config.limits.max_body_bytes);
  std::shared_ptr<Transfers> transfers = MakeTransfers(store, transfer);

  Wiring w;
  w.backends.certificates = std::make_shared<StoreBackend>(store, MakeConnectionTester(transfers));
  w.backends.rest = MakeRestRunner(transfers);
  w.backends.soap = MakeSoapRunner(transfers);
  w.close = [store, transfers]() {
    // The server has drained: stop the engine's workers, then write pending use records.
    ShutdownTransfers(*transfers);
    (void)store->Flush();
  };
  return w;
}

}  // namespace wsstep::plugin

#include "plugin/wiring.h"

namespace wsstep::plugin {

Result<Wiring> BuildBackends(const Config& /*config*/) {
  // The store (core/store.h), the REST engine (rest/engine.h) and SOAP (soap/) are wired
  // here as their adapters land; until then their services answer UNIMPLEMENTED.
  Wiring w;
  w.close = [] {};
  w.missing = {"certificate store", "REST engine", "SOAP engine"};
  return w;
}

}  // namespace wsstep::plugin

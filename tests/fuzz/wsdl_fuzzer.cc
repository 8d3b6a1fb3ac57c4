// WSDL reading (soap::ReadWsdl): the input is the WSDL, and also every document it may
// import ("b.wsdl", "b.xsd", "types.xsd"), so mutated imports reach cycles, schemas read
// twice and deep import chains. Then what a designer does with the result: a ready step
// for each operation, checked by the envelope builder and against its own operation.
#include <cstddef>
#include <cstdint>

#include "soap/envelope.h"
#include "soap/wsdl.h"
#include "tests/fuzz/fuzz_util.h"

using namespace wsstep;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(fuzz::AsView(data, size));
  soap::UploadedDocuments docs(
      {{"a.wsdl", input}, {"b.wsdl", input}, {"b.xsd", input}, {"types.xsd", input}});
  soap::WsdlLimits limits;
  limits.max_documents = 8;
  Result<soap::WsdlDescription> d = soap::ReadWsdl("a.wsdl", docs, limits);
  fuzz::Note("ReadWsdl", d);
  if (!d.ok()) {
    if (d.error().code != Code::kInvalidWsdl) {
      fuzz::Fail("undocumented WSDL error " + std::string(CodeName(d.error().code)));
    }
    return 0;
  }
  for (const auto& service : d->services) {
    for (const auto& port : service.ports) {
      for (const auto& op : port.operations) {
        soap::SoapStep step = soap::StepForOperation(port, op);
        (void)soap::ValidateSoapStep(step);
        (void)soap::CheckStepAgainstOperation(step, op);
      }
    }
  }
  return 0;
}

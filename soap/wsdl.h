// WSDL 1.1 reading (PRODUCT.md §3): services, ports, endpoint addresses, the binding's
// SOAP version and style, and for each operation its soapAction and the parameter trees
// of its input and output, read with pugixml from a WSDL and every document it imports
// (wsdl:import, xsd:import, xsd:include), so a designer can pick an operation and get a
// ready SoapStep.
//
//   soap::UploadedDocuments files({{"bank.wsdl", wsdl_text}, {"types/common.xsd", xsd}});
//   Result<soap::WsdlDescription> d = soap::ReadWsdl("bank.wsdl", files);
//   if (!d.ok()) show(d.error());     // INVALID_WSDL: detail "document", "element"
//   const soap::WsdlPort* port = nullptr;
//   const soap::WsdlOperation* op = soap::FindOperation(*d, "Transfer", "", &port);
//   soap::SoapStep step = soap::StepForOperation(*port, *op);
//
// Documents come from a WsdlDocumentSource: uploaded content (UploadedDocuments) or, in the
// plugin, URLs fetched through the REST engine with the certificate bound to each host.
// Locations are resolved against the importing document's location (ResolveLocation).
//
// Bad input is INVALID_WSDL (side configuration) with a message "<document>: <element>:
// <problem>" and detail "document" and "element": not XML (with the offset), a DOCTYPE
// (refused, never expanded), not WSDL 1.1, a reference to a message / portType / binding /
// element / type that no document defines, an import that cannot be loaded (detail
// "missing_document" holds its resolved location), a wsdl:import cycle, more documents,
// bytes or import depth than WsdlLimits allows. XSD imports may be mutual (XML Schema
// allows it): a schema already read is not read again.
//
// Supported: document/literal (wrapped or bare) and rpc/literal bindings, SOAP 1.1
// (http://schemas.xmlsoap.org/wsdl/soap/) and SOAP 1.2 (.../wsdl/soap12/) bindings;
// xsd element/complexType/simpleType/group/attributeGroup, sequence/all/choice,
// complexContent and simpleContent extension/restriction, enumerations. Ports without a
// SOAP binding (HTTP bindings) are left out. rpc/encoded operations are described with
// use "encoded"; wsstep does not send SOAP encoding.
#ifndef WSSTEP_SOAP_WSDL_H_
#define WSSTEP_SOAP_WSDL_H_

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"
#include "soap/envelope.h"

namespace wsstep::soap {

inline constexpr std::string_view kWsdlNamespace = "http://schemas.xmlsoap.org/wsdl/";
inline constexpr std::string_view kWsdlSoap11Namespace = "http://schemas.xmlsoap.org/wsdl/soap/";
inline constexpr std::string_view kWsdlSoap12Namespace = "http://schemas.xmlsoap.org/wsdl/soap12/";
inline constexpr std::string_view kXsdNamespace = "http://www.w3.org/2001/XMLSchema";

// One element or attribute of a message, with what it may contain.
struct WsdlParameter {
  std::string name{};
  std::string ns{};    // namespace URI; "" for an unqualified (local, form="unqualified") one
  std::string type{};  // "{namespace}local" of its type; "" for an anonymous type
  bool attribute = false;
  int min_occurs = 1;
  int max_occurs = 1;  // -1: unbounded
  bool nillable = false;
  std::vector<std::string> enumeration{};
  // Its type contains itself (directly or further down): the children shown once.
  bool recursive = false;
  std::vector<WsdlParameter> children{};
};

struct WsdlOperation {
  std::string name{};
  std::string soap_action{};
  std::string style{};  // "document" or "rpc"
  std::string use{};    // "literal" or "encoded"
  // The element inside soap:Body: the wrapper element (document) or the operation's
  // element in soap:body's namespace (rpc), and the parameters below it.
  std::string input_element{};
  std::string input_namespace{};
  std::vector<WsdlParameter> input{};
  std::string output_element{};
  std::string output_namespace{};
  std::vector<WsdlParameter> output{};
  std::string documentation{};
};

struct WsdlPort {
  std::string name{};
  std::string binding{};  // "{namespace}local"
  std::string address{};  // soap:address location
  SoapVersion version = SoapVersion::k11;
  std::string style{};  // the binding's default style
  std::vector<WsdlOperation> operations{};
};

struct WsdlService {
  std::string name{};
  std::vector<WsdlPort> ports{};
};

struct WsdlDescription {
  std::string target_namespace{};
  std::vector<WsdlService> services{};
  std::vector<std::string> documents{};  // every location read, the WSDL first
};

struct WsdlLimits {
  int max_import_depth = 8;
  int max_documents = 32;
  size_t max_document_bytes = size_t{2} << 20;
  size_t max_total_bytes = size_t{8} << 20;
  // Parameter trees deeper than this are cut (the deepest shown with no children); also
  // keeps every tree within a host's protobuf nesting limit.
  int max_type_depth = 24;
};

// Where the documents of a WSDL come from.
class WsdlDocumentSource {
 public:
  virtual ~WsdlDocumentSource() = default;
  // The bytes at `location` (as ResolveLocation made it). An unknown location is
  // INVALID_WSDL with detail "missing_document" = location; a transport failure is the
  // transport's catalog error.
  virtual Result<std::string> Load(const std::string& location) = 0;
};

// Uploaded documents by location ("bank.wsdl", "types/common.xsd").
class UploadedDocuments final : public WsdlDocumentSource {
 public:
  explicit UploadedDocuments(std::vector<std::pair<std::string, std::string>> documents);
  Result<std::string> Load(const std::string& location) override;

 private:
  std::map<std::string, std::string> documents_;
};

// `relative` resolved against the document at `base`: an absolute URL stays as it is; a
// URL base resolves like a browser (RFC 3986, "." and ".." removed); a path base
// ("dir/a.wsdl") joins with its directory.
std::string ResolveLocation(std::string_view base, std::string_view relative);

// Reads the WSDL at `location` and everything it imports.
Result<WsdlDescription> ReadWsdl(const std::string& location, WsdlDocumentSource& source,
                                 const WsdlLimits& limits = {});

// The operation named `operation` (in the port named `port`, or in the first port that
// has it when `port` is empty); null if none. `port_out` receives its port.
const WsdlOperation* FindOperation(const WsdlDescription& d, std::string_view operation,
                                   std::string_view port, const WsdlPort** port_out);

// A ready step for `op` of `port`: endpoint, version, action, and the operation element
// with its input parameters (every element, nested, once; empty text) for a designer to
// fill in. Attributes are left out when optional.
SoapStep StepForOperation(const WsdlPort& port, const WsdlOperation& op);

// Checks the operation element of `step` against `op`'s input: its name and namespace,
// unknown elements, missing required ones, too many repetitions, values outside an
// enumeration. INVALID_STEP_CONFIG naming the field ("operation.name",
// "parameters.order.items[2]", ...), the first problem only.
Status CheckStepAgainstOperation(const SoapStep& step, const WsdlOperation& op);

}  // namespace wsstep::soap

#endif  // WSSTEP_SOAP_WSDL_H_

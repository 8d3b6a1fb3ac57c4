// SOAP responses (PRODUCT.md §3): parsing an HTTP response body into the payload, as XML
// and as a tree a workflow can map to variables, and a SOAP Fault into a structured
// outcome.
//
// Usage:
//   Result<soap::SoapResponse> r = soap::ParseResponse(http.status, http.content_type,
//                                                      http.body, SoapVersion::k11, limit);
//   if (!r.ok()) ...                       // INVALID_RESPONSE / RESPONSE_TOO_LARGE
//   else if (r->fault) Error e = soap::FaultError(*r->fault);   // SOAP_FAULT outcome
//   else use r->body_xml, r->body, r->ToJson();
//
// A fault is a result, not a parse error, whatever the HTTP status (usually 500).
#ifndef WSSTEP_SOAP_RESPONSE_H_
#define WSSTEP_SOAP_RESPONSE_H_

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "soap/envelope.h"

namespace wsstep::soap {

// One element of a parsed response.
struct XmlElement {
  std::string name;    // local name
  std::string prefix;  // as written ("" if none)
  std::string ns;      // resolved namespace URI ("" if none)
  // Attributes by their name as written ("id", "xsi:type"); namespace declarations
  // (xmlns, xmlns:*) are left out.
  std::map<std::string, std::string> attributes;
  std::string text;  // the character data directly inside (text and CDATA), unmodified
  std::vector<XmlElement> children;

  // The first child with this local name, or null.
  const XmlElement* Child(std::string_view local_name) const;
};

// The workflow-friendly JSON of an element's content:
// - an element without attributes or child elements -> its text as a string
//   ("" when empty; null when xsi:nil="true");
// - otherwise an object: attributes as "@name", child elements by local name (one
//   occurrence -> its value, repeated siblings -> an array in document order), and
//   non-blank text beside children as "#text".
// Namespaces are left out; every value is a string (XML carries no types).
std::string ToJson(const XmlElement& element);

struct SoapFault {
  // 1.1 faultcode / 1.2 Code/Value, as written ("soap:Server", "env:Sender").
  std::string code;
  // The namespace the code's prefix is bound to (the envelope's for standard codes).
  std::string code_namespace;
  // 1.2 Subcode/Value chain, outermost first, as written. Empty for 1.1.
  std::vector<std::string> subcodes;
  // 1.1 faultstring / 1.2 the first Reason/Text.
  std::string reason;
  std::string lang;   // xml:lang of the reason ("" if none)
  std::string actor;  // 1.1 faultactor / 1.2 Role
  std::string node;   // 1.2 Node
  bool has_detail = false;
  // The children of 1.1 detail / 1.2 Detail, serialized, each with the namespace
  // declarations it inherits. Empty when there is no detail.
  std::string detail_xml;
};

struct SoapResponse {
  SoapVersion version = SoapVersion::k11;
  // Each child element of the Header, serialized standalone.
  std::vector<std::string> headers;
  // The Body's child elements, serialized standalone and concatenated.
  std::string body_xml;
  // The Body element itself; its children are the payload (or the Fault).
  XmlElement body;
  std::optional<SoapFault> fault;
  // True for an HTTP 202/204 without a body (one-way operations): nothing else is set.
  bool empty = false;

  // JSON object of the Body's content (see ToJson(XmlElement)), e.g.
  // {"GetPriceResponse":{"Price":"1.5","Item":["a","b"]}}.
  std::string ToJson() const;
};

// Parses a response body. Errors:
// - RESPONSE_TOO_LARGE: body longer than max_bytes;
// - INVALID_RESPONSE, with an excerpt of the body (at most 200 characters, control
//   characters escaped; detail "excerpt"): empty body (except HTTP 202/204); an HTML page
//   ("the server returned an HTML page, not a SOAP envelope: <title>"); not XML (with
//   pugixml's description and the offset, detail "offset"); "DOCTYPE is not allowed"
//   (never processed, so no entity is ever expanded); XML that is not a SOAP envelope;
//   "expected a SOAP 1.2 envelope, got SOAP 1.1" (and vice versa); no Body; elements
//   nested deeper than 256.
Result<SoapResponse> ParseResponse(int http_status, std::string_view content_type,
                                   std::string_view body, SoapVersion expected, size_t max_bytes);

// The SOAP_FAULT outcome for a fault: message "SOAP fault <code>: <reason>", side client
// for Client/Sender codes and server otherwise, details "fault_code", "fault_subcodes"
// (joined with " "), "fault_reason", "fault_actor", "fault_detail".
Error FaultError(const SoapFault& fault);

}  // namespace wsstep::soap

#endif  // WSSTEP_SOAP_RESPONSE_H_

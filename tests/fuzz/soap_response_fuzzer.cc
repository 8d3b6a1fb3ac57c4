// SOAP response parsing (soap::ParseResponse) for both versions, as a 200 with an XML
// content type, a 500 fault and a 202 one-way answer, then everything a step does with a
// result: the JSON view, the fault outcome, the serialized headers and body.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <pugixml.hpp>

#include "soap/response.h"
#include "tests/fuzz/fuzz_util.h"

using namespace wsstep;

namespace {

constexpr size_t kLimit = 1 << 20;

// What ParseResponse serializes must read back as XML (a fragment: several elements).
void CheckXml(const std::string& xml, std::string_view what) {
  if (xml.empty()) return;
  pugi::xml_document doc;
  const unsigned flags = pugi::parse_default | pugi::parse_fragment;
  if (!doc.load_buffer(xml.data(), xml.size(), flags, pugi::encoding_utf8)) {
    fuzz::Fail(std::string(what) + " does not read back as XML");
  }
}

void CheckJson(const std::string& json, std::string_view what) {
  if (!nlohmann::json::accept(json)) fuzz::Fail(std::string(what) + " is not valid JSON");
}

void Check(const Result<soap::SoapResponse>& r) {
  fuzz::Note("ParseResponse", r);
  if (!r.ok()) {
    Code c = r.error().code;
    if (c != Code::kInvalidResponse && c != Code::kResponseTooLarge) {
      fuzz::Fail("undocumented response error " + std::string(CodeName(c)));
    }
    return;
  }
  if (r->empty) return;
  CheckJson(r->ToJson(), "SoapResponse::ToJson");
  CheckJson(soap::ToJson(r->body), "ToJson(body)");
  for (const std::string& h : r->headers) CheckXml(h, "a serialized header");
  CheckXml(r->body_xml, "body_xml");
  if (r->fault) {
    Error e = soap::FaultError(*r->fault);
    if (e.code != Code::kSoapFault) fuzz::Fail("FaultError without SOAP_FAULT");
    CheckXml(r->fault->detail_xml, "fault detail_xml");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body = fuzz::AsView(data, size);
  for (soap::SoapVersion v : {soap::SoapVersion::k11, soap::SoapVersion::k12}) {
    std::string_view type = v == soap::SoapVersion::k11 ? "text/xml; charset=utf-8"
                                                        : "application/soap+xml; charset=utf-8";
    Check(soap::ParseResponse(200, type, body, v, kLimit));
    Check(soap::ParseResponse(500, type, body, v, kLimit));
  }
  Check(soap::ParseResponse(202, "", body, soap::SoapVersion::k11, kLimit));
  Check(soap::ParseResponse(200, "text/html", body, soap::SoapVersion::k12, kLimit));
  Check(soap::ParseResponse(200, "text/xml", body, soap::SoapVersion::k11, size / 2));
  return 0;
}

// WSDL 1.1 reading (soap/wsdl.h), compared with an independent reading: python3-zeep
// (soap/testdata/wsdl_zeep_dump.py) on hand-made WSDLs (document/literal wrapped, rpc/literal,
// SOAP 1.2, imports across files) in soap/testdata/wsdl; and bad input, each a clear
// INVALID_WSDL naming the document and the element.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "soap/soap_test_util.h"
#include "soap/wsdl.h"
#include "tests/support/pki.h"
#include "tests/support/process.h"

namespace wsstep::soap {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

using testutil::SourceDir;

std::string TestData() { return SourceDir() + "/soap/testdata/wsdl/"; }

// Documents read from soap/testdata/wsdl by their path under it.
class TestDataDocuments final : public WsdlDocumentSource {
 public:
  Result<std::string> Load(const std::string& location) override {
    const std::string path = TestData() + location;
    if (!std::filesystem::exists(path)) {
      return Error(Code::kInvalidWsdl, location + " not found").With("missing_document", location);
    }
    return wsstep::testing::ReadFile(path);
  }
};

Result<WsdlDescription> ReadTestData(const std::string& location) {
  TestDataDocuments source;
  return ReadWsdl(location, source);
}

// zeep's reading of the same file.
nlohmann::json Zeep(const std::string& location) {
  auto r = wsstep::testing::RunCommand({"/usr/bin/python3",
                                        SourceDir() + "/soap/testdata/wsdl_zeep_dump.py",
                                        TestData() + location});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return nlohmann::json::parse(r.output, nullptr, false);
}

std::vector<std::string> ElementNames(const std::vector<WsdlParameter>& params) {
  std::vector<std::string> out;
  for (const auto& p : params) {
    if (!p.attribute) out.push_back(p.name);
  }
  return out;
}

// Ours in the shape of wsdl_zeep_dump.py's output.
nlohmann::json AsZeepShape(const WsdlDescription& d) {
  nlohmann::json out = {{"services", nlohmann::json::array()}};
  for (const auto& s : d.services) {
    nlohmann::json service = {{"name", s.name}, {"ports", nlohmann::json::array()}};
    for (const auto& p : s.ports) {
      nlohmann::json port = {{"name", p.name},
                             {"address", p.address},
                             {"binding", p.binding},
                             {"version", std::string(SoapVersionName(p.version))},
                             {"operations", nlohmann::json::array()}};
      std::vector<nlohmann::json> ops;
      for (const auto& op : p.operations) {
        ops.push_back({{"name", op.name},
                       {"action", op.soap_action},
                       {"style", op.style},
                       {"input", ElementNames(op.input)},
                       {"output", ElementNames(op.output)}});
      }
      std::sort(ops.begin(), ops.end(),
                [](const auto& a, const auto& b) { return a["name"] < b["name"]; });
      for (auto& op : ops) port["operations"].push_back(op);
      service["ports"].push_back(port);
    }
    out["services"].push_back(service);
  }
  return out;
}

class WsdlAgainstZeep : public ::testing::TestWithParam<std::string> {};

TEST_P(WsdlAgainstZeep, SameServicesPortsOperationsActionsAndParameters) {
  auto ours = ReadTestData(GetParam());
  ASSERT_TRUE(ours.ok()) << ours.error().ToString();
  const nlohmann::json zeep = Zeep(GetParam());
  ASSERT_FALSE(zeep.is_discarded());
  EXPECT_EQ(AsZeepShape(*ours).dump(1), zeep.dump(1));
}

INSTANTIATE_TEST_SUITE_P(HandMade, WsdlAgainstZeep,
                         ::testing::Values("wrapped/bank.wsdl", "rpc/calc.wsdl",
                                           "soap12/quote.wsdl", "multi/main.wsdl"));

TEST(Wsdl, DocumentLiteralWrappedParameterTree) {
  auto d = ReadTestData("wrapped/bank.wsdl");
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_EQ(d->target_namespace, "urn:example:bank");
  EXPECT_THAT(d->documents, ElementsAre("wrapped/bank.wsdl", "wrapped/common.xsd"));
  const WsdlPort* port = nullptr;
  const WsdlOperation* op = FindOperation(*d, "Transfer", "", &port);
  ASSERT_NE(op, nullptr);
  EXPECT_EQ(port->name, "BankSoap");
  EXPECT_EQ(op->documentation, "Moves money between two accounts.");
  EXPECT_EQ(op->input_element, "Transfer");
  EXPECT_EQ(op->input_namespace, "urn:example:bank");
  EXPECT_EQ(op->use, "literal");
  ASSERT_EQ(op->input.size(), 6u);
  const WsdlParameter& from = op->input[0];
  EXPECT_EQ(from.ns, "urn:example:bank");
  EXPECT_EQ(from.type, "{urn:example:common}Account");
  ASSERT_EQ(from.children.size(), 2u);
  EXPECT_EQ(from.children[0].name, "iban");
  EXPECT_EQ(from.children[0].ns, "urn:example:common");
  EXPECT_EQ(from.children[1].min_occurs, 0);
  const WsdlParameter& amount = op->input[2];
  EXPECT_EQ(amount.type, "{urn:example:common}Money");
  ASSERT_EQ(amount.children.size(), 1u);
  EXPECT_TRUE(amount.children[0].attribute);
  EXPECT_EQ(amount.children[0].name, "currency");
  EXPECT_EQ(amount.children[0].min_occurs, 1);
  EXPECT_EQ(op->input[3].min_occurs, 0);
  EXPECT_THAT(op->input[4].enumeration, ElementsAre("NORMAL", "URGENT"));
  EXPECT_EQ(op->input[5].max_occurs, -1);
  EXPECT_EQ(op->output_element, "TransferResponse");
}

TEST(Wsdl, RpcLiteralPartsAreUnqualifiedChildrenOfTheOperation) {
  auto d = ReadTestData("rpc/calc.wsdl");
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  const WsdlOperation* op = FindOperation(*d, "Swap", "", nullptr);
  ASSERT_NE(op, nullptr);
  EXPECT_EQ(op->style, "rpc");
  EXPECT_EQ(op->input_element, "Swap");
  EXPECT_EQ(op->input_namespace, "urn:example:calc:rpc");
  EXPECT_EQ(op->output_element, "SwapResponse");
  ASSERT_EQ(op->input.size(), 1u);
  EXPECT_EQ(op->input[0].name, "pair");
  EXPECT_EQ(op->input[0].ns, "");
  EXPECT_EQ(op->input[0].type, "{urn:example:calc}Pair");
  EXPECT_THAT(ElementNames(op->input[0].children), ElementsAre("left", "right"));
  EXPECT_EQ(op->input[0].children[0].ns, "");  // elementFormDefault unqualified
}

TEST(Wsdl, Soap12BindingAndRecursiveTypes) {
  auto d = ReadTestData("soap12/quote.wsdl");
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  ASSERT_EQ(d->services.size(), 1u);
  ASSERT_EQ(d->services[0].ports.size(), 1u);  // the HTTP binding's port is left out
  const WsdlPort& port = d->services[0].ports[0];
  EXPECT_EQ(port.version, SoapVersion::k12);
  const WsdlOperation& op = port.operations.at(0);
  ASSERT_EQ(op.input.size(), 3u);
  EXPECT_EQ(op.input[0].ns, "");  // unqualified local elements
  const WsdlParameter& node = op.input[1];
  ASSERT_EQ(node.children.size(), 2u);
  EXPECT_EQ(node.children[1].name, "next");
  EXPECT_TRUE(node.children[1].recursive);
  EXPECT_TRUE(op.input[2].attribute);
  EXPECT_EQ(op.input[2].name, "market");
}

TEST(Wsdl, ImportsAcrossFiles) {
  auto d = ReadTestData("multi/main.wsdl");
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_THAT(d->documents, ElementsAre("multi/main.wsdl", "multi/abstract/interface.wsdl",
                                        "multi/schemas/order.xsd", "multi/schemas/parts.xsd"));
  const WsdlOperation* op = FindOperation(*d, "PlaceOrder", "OrdersPort", nullptr);
  ASSERT_NE(op, nullptr);
  const WsdlParameter& line = op->input.at(1);
  EXPECT_EQ(line.max_occurs, -1);
  EXPECT_THAT(ElementNames(line.children), ElementsAre("sku", "quantity"));  // base first
}

TEST(Wsdl, ReadyStepAndItsCheck) {
  auto d = ReadTestData("wrapped/bank.wsdl");
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  const WsdlPort* port = nullptr;
  const WsdlOperation* op = FindOperation(*d, "Transfer", "", &port);
  ASSERT_NE(op, nullptr);
  SoapStep step = StepForOperation(*port, *op);
  EXPECT_EQ(step.endpoint, "https://bank.example:8443/soap/bank");
  EXPECT_EQ(step.action, "urn:example:bank:Transfer");
  const auto& body = std::get<SoapOperation>(step.body);
  EXPECT_EQ(body.name, "Transfer");
  EXPECT_EQ(body.ns, "urn:example:bank");
  ASSERT_EQ(body.parameters.size(), 6u);
  EXPECT_EQ(body.parameters[0].children.at(0).ns, "urn:example:common");
  EXPECT_EQ(body.parameters[2].attributes.at(0).name, "currency");
  EXPECT_EQ(body.parameters[4].text, "NORMAL");
  EXPECT_TRUE(ValidateSoapStep(step).ok());
  EXPECT_TRUE(CheckStepAgainstOperation(step, *op).ok());

  auto& params = std::get<SoapOperation>(step.body).parameters;
  params[4].text = "LATER";
  Status bad_enum = CheckStepAgainstOperation(step, *op);
  ASSERT_FALSE(bad_enum.ok());
  EXPECT_EQ(bad_enum.error().detail.at("field"), "parameters.priority");
  EXPECT_THAT(bad_enum.error().message, HasSubstr("\"LATER\" is not one of the values"));
  params[4].text = "URGENT";
  params[0].children[0].name = "ibn";
  Status unknown = CheckStepAgainstOperation(step, *op);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().detail.at("field"), "parameters.from.ibn");
  params[0].children[0].name = "iban";
  params.erase(params.begin() + 1);  // "to" is required
  Status missing = CheckStepAgainstOperation(step, *op);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().detail.at("field"), "parameters.to");
  EXPECT_THAT(missing.error().message, HasSubstr("required"));
}

// --- Bad input ------------------------------------------------------------------------

constexpr char kHead[] =
    "<definitions xmlns=\"http://schemas.xmlsoap.org/wsdl/\" "
    "xmlns:soap=\"http://schemas.xmlsoap.org/wsdl/soap/\" xmlns:tns=\"urn:t\" "
    "targetNamespace=\"urn:t\">";

Error Bad(std::vector<std::pair<std::string, std::string>> docs, WsdlLimits limits = {}) {
  const std::string root = docs.front().first;
  UploadedDocuments source(std::move(docs));
  auto r = ReadWsdl(root, source, limits);
  EXPECT_FALSE(r.ok());
  return r.ok() ? Error(Code::kOk, "") : r.error();
}

TEST(WsdlBadInput, NotXml) {
  Error e = Bad({{"a.wsdl", "<definitions><oops></definitions>"}});
  EXPECT_EQ(e.code, Code::kInvalidWsdl);
  EXPECT_EQ(e.side, Side::kConfiguration);
  EXPECT_THAT(e.message, HasSubstr("a.wsdl: not well-formed XML at offset"));
  EXPECT_EQ(e.detail.at("document"), "a.wsdl");
}

TEST(WsdlBadInput, DoctypeIsRefused) {
  Error e = Bad({{"a.wsdl", "<!DOCTYPE definitions [<!ENTITY x \"y\">]>" + std::string(kHead) +
                                "</definitions>"}});
  EXPECT_EQ(e.code, Code::kInvalidWsdl);
  EXPECT_THAT(e.message, HasSubstr("a.wsdl: <!DOCTYPE>: a DOCTYPE is refused"));
}

TEST(WsdlBadInput, NotWsdl) {
  Error e = Bad({{"a.wsdl", "<html><body/></html>"}});
  EXPECT_THAT(e.message, HasSubstr("a.wsdl: <html>: not a WSDL 1.1 document"));
  Error two = Bad({{"b.wsdl", "<description xmlns=\"http://www.w3.org/ns/wsdl\"/>"}});
  EXPECT_THAT(two.message, HasSubstr("this is WSDL 2.0"));
}

TEST(WsdlBadInput, UnresolvedImportNamesTheImportAndTheMissingDocument) {
  Error e = Bad(
      {{"dir/a.wsdl", std::string(kHead) + "<import namespace=\"urn:x\" location=\"../x/b.wsdl\"/>"
                                           "</definitions>"}});
  EXPECT_EQ(e.code, Code::kInvalidWsdl);
  EXPECT_THAT(e.message, HasSubstr("dir/a.wsdl: <import location=\"../x/b.wsdl\">: cannot load "
                                   "x/b.wsdl"));
  EXPECT_EQ(e.detail.at("missing_document"), "x/b.wsdl");
  EXPECT_EQ(e.detail.at("element"), "<import location=\"../x/b.wsdl\">");
}

TEST(WsdlBadInput, ImportCycle) {
  Error e = Bad({{"a.wsdl", std::string(kHead) + "<import location=\"b.wsdl\"/></definitions>"},
                 {"b.wsdl", std::string(kHead) + "<import location=\"a.wsdl\"/></definitions>"}});
  EXPECT_THAT(e.message, HasSubstr("b.wsdl: <import location=\"a.wsdl\">: import cycle: a.wsdl "
                                   "-> b.wsdl -> a.wsdl"));
}

TEST(WsdlBadInput, TooLargeAndTooDeep) {
  WsdlLimits limits;
  limits.max_document_bytes = 100;
  const std::string large = std::string(kHead) + std::string(200, ' ') + "</definitions>";
  Error big = Bad({{"a.wsdl", large}}, limits);
  EXPECT_THAT(big.message, HasSubstr("a.wsdl: " + std::to_string(large.size()) +
                                     " bytes, more than the 100 a document may have"));
  limits = {};
  limits.max_import_depth = 1;
  Error deep = Bad({{"a.wsdl", std::string(kHead) + "<import location=\"b.wsdl\"/></definitions>"},
                    {"b.wsdl", std::string(kHead) + "<import location=\"c.wsdl\"/></definitions>"},
                    {"c.wsdl", std::string(kHead) + "</definitions>"}},
                   limits);
  EXPECT_THAT(deep.message, HasSubstr("b.wsdl: <import location=\"c.wsdl\">: imports are nested "
                                      "deeper than 1"));
}

TEST(WsdlBadInput, UndefinedReferenceNamesTheElement) {
  Error e = Bad(
      {{"a.wsdl", std::string(kHead) + "<binding name=\"B\" type=\"tns:Missing\">"
                                       "<soap:binding style=\"document\"/></binding>"
                                       "<service name=\"S\"><port name=\"P\" binding=\"tns:B\">"
                                       "<soap:address location=\"https://x/\"/></port></service>"
                                       "</definitions>"}});
  EXPECT_THAT(e.message, HasSubstr("a.wsdl: <binding name=\"B\">: portType {urn:t}Missing is "
                                   "not defined in any document read"));
}

TEST(WsdlLocations, ResolveAgainstTheImportingDocument) {
  EXPECT_EQ(ResolveLocation("https://h:8443/a/b/svc?wsdl", "x.xsd"), "https://h:8443/a/b/x.xsd");
  EXPECT_EQ(ResolveLocation("https://h/a/b/svc.wsdl", "../c/x.xsd"), "https://h/a/c/x.xsd");
  EXPECT_EQ(ResolveLocation("https://h/a/svc.wsdl", "/root.xsd"), "https://h/root.xsd");
  EXPECT_EQ(ResolveLocation("https://h/a/svc.wsdl", "https://other/x.xsd"), "https://other/x.xsd");
  EXPECT_EQ(ResolveLocation("dir/a.wsdl", "./sub/../b.xsd"), "dir/b.xsd");
  EXPECT_EQ(ResolveLocation("a.wsdl", "b.xsd"), "b.xsd");
}

}  // namespace
}  // namespace wsstep::soap

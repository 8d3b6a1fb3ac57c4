#include "plugin/cli/wsdl_command.h"

#include <filesystem>
#include <set>

#include "plugin/server/status_map.h"

namespace wsstep::plugin {
namespace {

struct WsdlFlags {
  std::string source, operation, port;
  double timeout = 0;
  TlsFlags tls;
};

// Uploaded documents are asked for one at a time; a WSDL with more imports than this is
// refused by the plugin first (soap::WsdlLimits::max_documents).
constexpr int kMaxUploadRounds = 40;

std::string Occurs(const v1::WsdlParameter& p) {
  const int64_t max = p.max_occurs();
  if (p.min_occurs() == 1 && max == 1) return "";
  return " [" + std::to_string(p.min_occurs()) + ".." + (max < 0 ? "*" : std::to_string(max)) + "]";
}

void PrintParameters(const google::protobuf::RepeatedPtrField<v1::WsdlParameter>& params,
                     int indent) {
  for (const auto& p : params) {
    std::cout << std::string(indent, ' ') << (p.attribute() ? "@" : "") << p.name();
    if (!p.type().empty()) std::cout << ": " << p.type();
    std::cout << Occurs(p);
    if (p.enumeration_size() > 0) {
      std::cout << " one of";
      for (const auto& e : p.enumeration()) std::cout << " " << e;
    }
    if (p.recursive()) std::cout << " (recursive)";
    std::cout << "\n";
    PrintParameters(p.children(), indent + 2);
  }
}

void PrintDescription(const v1::DescribeWsdlResponse& r) {
  std::cout << "WSDL " << r.target_namespace() << " (" << r.documents_size() << " document"
            << (r.documents_size() == 1 ? "" : "s") << ")\n";
  for (const auto& s : r.services()) {
    std::cout << "service " << s.name() << "\n";
    for (const auto& p : s.ports()) {
      std::cout << "  port " << p.name() << "  SOAP "
                << (p.version() == v1::SOAP_VERSION_1_2 ? "1.2" : "1.1") << "  " << p.style()
                << "  " << p.address() << "\n";
      for (const auto& op : p.operations()) {
        std::cout << "    operation " << op.name() << "  action \"" << op.soap_action() << "\""
                  << (op.style() != p.style() ? "  " + op.style() : "") << "\n";
        std::cout << "      in  {" << op.input_namespace() << "}" << op.input_element() << "\n";
        PrintParameters(op.input(), 8);
        std::cout << "      out {" << op.output_namespace() << "}" << op.output_element() << "\n";
        PrintParameters(op.output(), 8);
      }
    }
  }
  if (r.has_step()) std::cout << "step:\n" << ToJson(r.step()) << "\n";
}

bool IsUrl(const std::string& s) {
  return s.rfind("https://", 0) == 0 || s.rfind("http://", 0) == 0;
}

int DescribeWsdl(Client& client, const WsdlFlags& f) {
  v1::DescribeWsdlRequest req;
  req.set_operation(f.operation);
  req.set_port(f.port);
  f.tls.Fill(req.mutable_tls());
  req.set_environment(f.tls.environment);
  if (f.timeout > 0)
    TransportFlags::SetDuration(f.timeout, req.mutable_timeouts()->mutable_total());
  v1::DescribeWsdlResponse resp;
  if (IsUrl(f.source)) {
    req.set_url(f.source);
    if (auto rc =
            client.Call("DescribeWsdl", &v1::StepPluginService::Stub::DescribeWsdl, req, &resp))
      return *rc;
    return PrintResult(client.options(), resp, [&] { PrintDescription(resp); });
  }
  // A local file: upload it, then each document the plugin reports missing, read
  // relative to the WSDL's directory (and never from above it).
  const std::filesystem::path root(f.source);
  const std::filesystem::path dir = root.parent_path();
  auto content = ReadWholeFile(f.source);
  if (!content.ok()) return UsageError(content.error().message);
  auto* first = req.add_documents();
  first->set_location(root.filename().string());
  first->set_content(*content);
  std::set<std::string> sent = {first->location()};
  for (int round = 0; round < kMaxUploadRounds; ++round) {
    resp.Clear();
    std::optional<int> rc;
    grpc::Status s =
        client.CallQuietly(&v1::StepPluginService::Stub::DescribeWsdl, req, &resp, &rc);
    if (rc) return *rc;
    if (s.ok()) return PrintResult(client.options(), resp, [&] { PrintDescription(resp); });
    const StatusDetails details = DecodeStatusDetails(s);
    auto missing = details.metadata.find("missing_document");
    if (details.reason != "INVALID_WSDL" || missing == details.metadata.end() ||
        IsUrl(missing->second) || missing->second.rfind("../", 0) == 0 ||
        !sent.insert(missing->second).second) {
      return ReportRpcError(client.options(), "DescribeWsdl", s);
    }
    auto imported = ReadWholeFile((dir / missing->second).string());
    if (!imported.ok()) return ReportRpcError(client.options(), "DescribeWsdl", s);
    auto* doc = req.add_documents();
    doc->set_location(missing->second);
    doc->set_content(*imported);
  }
  return UsageError("wsdl: " + f.source + " imports more than " + std::to_string(kMaxUploadRounds) +
                    " documents");
}

}  // namespace

void AddWsdlCommand(CLI::App& app, CommandLine& line) {
  auto f = std::make_shared<WsdlFlags>();
  auto* cmd =
      app.add_subcommand("wsdl",
                         "describe a WSDL 1.1: services, ports, operations, actions, parameters\n"
                         "  wsstep wsdl https://bank.example/soap?wsdl\n"
                         "  wsstep wsdl bank.wsdl --operation Transfer --json");
  cmd->add_option("source", f->source, "URL of the WSDL, or a local file")->required();
  cmd->add_option("--operation", f->operation, "also print a ready SOAP step for it");
  cmd->add_option("--port", f->port, "the port, when several have the operation");
  cmd->add_option("--max-time", f->timeout, "seconds for each fetch");
  f->tls.Add(cmd);
  AddClientCommand(cmd, line, [f](Client& client) { return DescribeWsdl(client, *f); });
}

}  // namespace wsstep::plugin

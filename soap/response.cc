#include "soap/response.h"

#include <nlohmann/json.hpp>
#include <pugixml.hpp>

#include "soap/xml_util.h"

namespace wsstep::soap {
namespace {

using Json = nlohmann::ordered_json;  // keeps document order

constexpr size_t kExcerptChars = 200;

std::string_view Trim(std::string_view s) {
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

class ResponseErrors {
 public:
  ResponseErrors(int http_status, std::string_view content_type, std::string_view body)
      : status_(http_status), content_type_(content_type), body_(body) {}

  // INVALID_RESPONSE with the HTTP status, Content-Type and an excerpt of the body in
  // its details; `with_excerpt` also puts the excerpt in the message.
  Error Invalid(std::string message, std::string hint, bool with_excerpt = false) const {
    const std::string excerpt = xml::Excerpt(body_, kExcerptChars);
    message += " (HTTP " + std::to_string(status_);
    if (!content_type_.empty()) message += ", " + xml::Excerpt(content_type_, 80);
    message += ")";
    if (with_excerpt) message += "; the body starts with \"" + excerpt + "\"";
    Error e(Code::kInvalidResponse, std::move(message), std::move(hint), Side::kServer);
    e.With("excerpt", excerpt);
    e.With("http_status", std::to_string(status_));
    if (!content_type_.empty()) e.With("content_type", xml::Excerpt(content_type_, 80));
    return e;
  }

 private:
  int status_;
  std::string_view content_type_;
  std::string_view body_;
};

// Judged from the content: some SOAP stacks label real envelopes (faults especially)
// text/html, so the Content-Type alone only counts once the body failed as SOAP.
bool LooksLikeHtml(std::string_view body) {
  if (body.starts_with("\xEF\xBB\xBF")) body.remove_prefix(3);
  body = Trim(body);
  const std::string_view head = body.substr(0, 64);
  return xml::FindNoCase(head, "<!doctype html") == 0 || xml::FindNoCase(head, "<html") == 0;
}

std::string HtmlTitle(std::string_view body) {
  const size_t open = xml::FindNoCase(body, "<title");
  if (open == std::string_view::npos) return "(no title)";
  const size_t gt = body.find('>', open);
  if (gt == std::string_view::npos) return "(no title)";
  const size_t close = xml::FindNoCase(body, "</title", gt);
  std::string_view raw = body.substr(
      gt + 1, close == std::string_view::npos ? std::string_view::npos : close - gt - 1);
  std::string title;
  bool space = false;
  for (char c : Trim(raw.substr(0, 400))) {
    const bool blank = c == ' ' || c == '\t' || c == '\r' || c == '\n';
    if (blank) {
      space = true;
      continue;
    }
    if (space && !title.empty()) title += ' ';
    space = false;
    title += c;
  }
  return title.empty() ? "(no title)" : xml::Excerpt(title, 120);
}

std::string DirectText(pugi::xml_node element) {
  std::string text;
  for (pugi::xml_node c : element.children()) {
    if (c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) text += c.value();
  }
  return text;
}

std::string_view LocalName(pugi::xml_node element) {
  return xml::SplitQName(element.name()).second;
}

pugi::xml_node ChildByLocal(pugi::xml_node parent, std::string_view local) {
  for (pugi::xml_node c : parent.children()) {
    if (c.type() == pugi::node_element && LocalName(c) == local) return c;
  }
  return pugi::xml_node();
}

// The namespace scope in force inside `element` (its own declarations included).
// Depth is bounded by the caller's ElementDepth check.
xml::NamespaceScope ScopeAt(pugi::xml_node element) {
  std::vector<pugi::xml_node> chain;
  for (pugi::xml_node n = element; n && n.type() == pugi::node_element; n = n.parent()) {
    chain.push_back(n);
  }
  xml::NamespaceScope scope;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) scope.BindDeclared(*it);
  return scope;
}

std::string NamespaceOf(const xml::NamespaceScope& scope, std::string_view qname) {
  const auto ns = scope.Lookup(xml::SplitQName(qname).first);
  return ns ? std::string(*ns) : std::string();
}

// The children of `element`, each serialized standalone, concatenated.
std::string SerializeChildren(pugi::xml_node element) {
  const xml::NamespaceScope scope = ScopeAt(element);
  std::string out;
  for (pugi::xml_node c : element.children()) {
    if (c.type() == pugi::node_element) out += xml::SerializeStandalone(c, scope);
  }
  return out;
}

XmlElement Convert(pugi::xml_node element, xml::NamespaceScope& scope) {
  const size_t mark = scope.Mark();
  scope.BindDeclared(element);
  XmlElement out;
  const auto [prefix, local] = xml::SplitQName(element.name());
  out.prefix = std::string(prefix);
  out.name = std::string(local);
  out.ns = NamespaceOf(scope, element.name());
  for (pugi::xml_attribute a : element.attributes()) {
    const std::string_view name = a.name();
    if (name == "xmlns" || name.starts_with("xmlns:")) continue;
    out.attributes.emplace(std::string(name), a.value());
  }
  for (pugi::xml_node c : element.children()) {
    if (c.type() == pugi::node_element) {
      out.children.push_back(Convert(c, scope));
    } else if (c.type() == pugi::node_pcdata || c.type() == pugi::node_cdata) {
      out.text += c.value();
    }
  }
  scope.Release(mark);
  return out;
}

SoapFault ParseFault(pugi::xml_node fault, SoapVersion version) {
  SoapFault f;
  auto code_from = [&f](pugi::xml_node value) {
    f.code = std::string(Trim(DirectText(value)));
    f.code_namespace = NamespaceOf(ScopeAt(value), f.code);
  };
  pugi::xml_node detail;
  if (version == SoapVersion::k11) {
    // faultcode etc. are unqualified by the spec; some stacks qualify them anyway.
    if (pugi::xml_node c = ChildByLocal(fault, "faultcode")) code_from(c);
    if (pugi::xml_node s = ChildByLocal(fault, "faultstring")) {
      f.reason = std::string(Trim(DirectText(s)));
      f.lang = s.attribute("xml:lang").value();
    }
    f.actor = std::string(Trim(DirectText(ChildByLocal(fault, "faultactor"))));
    detail = ChildByLocal(fault, "detail");
  } else {
    pugi::xml_node code = ChildByLocal(fault, "Code");
    code_from(ChildByLocal(code, "Value"));
    for (pugi::xml_node sub = ChildByLocal(code, "Subcode"); sub;
         sub = ChildByLocal(sub, "Subcode")) {
      f.subcodes.emplace_back(Trim(DirectText(ChildByLocal(sub, "Value"))));
    }
    if (pugi::xml_node text = ChildByLocal(ChildByLocal(fault, "Reason"), "Text")) {
      f.reason = std::string(Trim(DirectText(text)));
      f.lang = text.attribute("xml:lang").value();
    }
    f.node = std::string(Trim(DirectText(ChildByLocal(fault, "Node"))));
    f.actor = std::string(Trim(DirectText(ChildByLocal(fault, "Role"))));
    detail = ChildByLocal(fault, "Detail");
  }
  if (detail) {
    f.has_detail = true;
    f.detail_xml = SerializeChildren(detail);
  }
  return f;
}

bool IsNil(const XmlElement& e) {
  for (const auto& [name, value] : e.attributes) {
    if (xml::SplitQName(name).second == "nil" && name.find(':') != std::string::npos &&
        (value == "true" || value == "1")) {
      return true;
    }
  }
  return false;
}

Json ValueOf(const XmlElement& e);

Json ObjectOf(const XmlElement& e) {
  Json obj = Json::object();
  for (const auto& [name, value] : e.attributes) obj["@" + name] = value;
  std::map<std::string_view, int> totals;
  for (const XmlElement& c : e.children) ++totals[c.name];
  for (const XmlElement& c : e.children) {
    if (totals[c.name] > 1) {
      Json& list = obj[c.name];
      if (!list.is_array()) list = Json::array();
      list.push_back(ValueOf(c));
    } else {
      obj[c.name] = ValueOf(c);
    }
  }
  if (!Trim(e.text).empty()) obj["#text"] = e.text;
  return obj;
}

Json ValueOf(const XmlElement& e) {
  if (IsNil(e)) return nullptr;
  if (e.attributes.empty() && e.children.empty()) return e.text;
  return ObjectOf(e);
}

std::string Dump(const Json& j) {
  // Invalid UTF-8 in a response must not throw: replace it.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

const XmlElement* XmlElement::Child(std::string_view local_name) const {
  for (const XmlElement& c : children) {
    if (c.name == local_name) return &c;
  }
  return nullptr;
}

std::string ToJson(const XmlElement& element) { return Dump(ValueOf(element)); }

std::string SoapResponse::ToJson() const { return Dump(ObjectOf(body)); }

Result<SoapResponse> ParseResponse(int http_status, std::string_view content_type,
                                   std::string_view body, SoapVersion expected, size_t max_bytes) {
  const ResponseErrors errors(http_status, content_type, body);
  if (body.size() > max_bytes) {
    return Error(Code::kResponseTooLarge,
                 "the SOAP response body is " + std::to_string(body.size()) +
                     " bytes, above the step's limit of " + std::to_string(max_bytes) + " bytes",
                 "Raise the step's maximum response size, or request less data.", Side::kServer)
        .With("limit", std::to_string(max_bytes))
        .With("size", std::to_string(body.size()));
  }
  if (Trim(body).empty()) {
    if (http_status == 202 || http_status == 204) {
      SoapResponse r;
      r.version = expected;
      r.empty = true;
      return r;
    }
    return errors.Invalid("the server returned an empty body, not a SOAP envelope",
                          "Check the endpoint URL and the SOAP action.");
  }
  const bool labelled_html = xml::FindNoCase(content_type, "text/html") != std::string_view::npos;
  const auto html_error = [&] {
    return errors.Invalid(
        "the server returned an HTML page, not a SOAP envelope: " + HtmlTitle(body),
        "Check the endpoint URL; a proxy, gateway or error page answered instead of the "
        "SOAP service.");
  };
  if (LooksLikeHtml(body)) return html_error();

  pugi::xml_document doc;
  // parse_doctype keeps a DOCTYPE as a node so it can be refused; pugixml never expands
  // entities declared in one (it only decodes the five predefined ones and character
  // references), and we refuse the document before reading anything from it.
  const unsigned flags = pugi::parse_default | pugi::parse_doctype;
  const pugi::xml_parse_result parsed =
      doc.load_buffer(body.data(), body.size(), flags, pugi::encoding_auto);
  const std::string doctype_hint =
      "SOAP messages must not carry a DOCTYPE; the server (or something in front of it) is "
      "not answering with SOAP.";
  if (parsed.status == pugi::status_bad_doctype) {
    return errors.Invalid("DOCTYPE is not allowed in a SOAP response", doctype_hint);
  }
  if (!parsed) {
    if (labelled_html) return html_error();
    return errors
        .Invalid("the response is not XML: " + std::string(parsed.description()) + " at offset " +
                     std::to_string(parsed.offset),
                 "Check the endpoint URL: the server did not answer with SOAP.",
                 /*with_excerpt=*/true)
        .With("offset", std::to_string(parsed.offset));
  }
  for (pugi::xml_node n : doc.children()) {
    if (n.type() == pugi::node_doctype) {
      return errors.Invalid("DOCTYPE is not allowed in a SOAP response", doctype_hint);
    }
  }
  if (xml::ElementDepth(doc, xml::kMaxDepth) > xml::kMaxDepth) {
    return errors.Invalid(
        "the response nests elements deeper than " + std::to_string(xml::kMaxDepth) + " levels",
        "The service's answer is not a plausible SOAP message.");
  }

  const pugi::xml_node envelope = doc.document_element();
  const xml::NamespaceScope env_scope = ScopeAt(envelope);
  const std::string root_ns = NamespaceOf(env_scope, envelope.name());
  const std::string root = xml::Excerpt(envelope.name(), 60);
  const bool html_root =
      LocalName(envelope).size() == 4 && xml::FindNoCase(LocalName(envelope), "html") == 0;
  if (LocalName(envelope) != "Envelope" && (html_root || labelled_html)) return html_error();
  if (LocalName(envelope) != "Envelope") {
    return errors.Invalid(
        "the response is XML but not a SOAP envelope: the root element is <" + root + ">",
        "Check the endpoint URL and that the service speaks SOAP.",
        /*with_excerpt=*/true);
  }
  SoapVersion got;
  if (root_ns == kSoap11Namespace) {
    got = SoapVersion::k11;
  } else if (root_ns == kSoap12Namespace) {
    got = SoapVersion::k12;
  } else {
    return errors.Invalid("the response is XML but not a SOAP envelope: <" + root +
                              "> is in namespace \"" + xml::Excerpt(root_ns, 100) + "\"",
                          "Check the endpoint URL and that the service speaks SOAP.",
                          /*with_excerpt=*/true);
  }
  if (got != expected) {
    return errors.Invalid("expected a SOAP " + std::string(SoapVersionName(expected)) +
                              " envelope, got SOAP " + std::string(SoapVersionName(got)),
                          "Set the step's SOAP version to " + std::string(SoapVersionName(got)) +
                              ", or use the service's SOAP " +
                              std::string(SoapVersionName(expected)) + " endpoint.");
  }

  const std::string env_ns(EnvelopeNamespace(got));
  auto is_env_child = [&](pugi::xml_node n, std::string_view local) {
    return n.type() == pugi::node_element && LocalName(n) == local &&
           NamespaceOf(ScopeAt(n), n.name()) == env_ns;
  };
  pugi::xml_node header;
  pugi::xml_node body_el;
  for (pugi::xml_node c : envelope.children()) {
    if (!header && !body_el && is_env_child(c, "Header")) header = c;
    if (!body_el && is_env_child(c, "Body")) body_el = c;
  }
  if (!body_el) {
    return errors.Invalid("the SOAP envelope has no Body",
                          "The service's answer is not a complete SOAP message.");
  }

  SoapResponse r;
  r.version = got;
  if (header) {
    const xml::NamespaceScope header_scope = ScopeAt(header);
    for (pugi::xml_node c : header.children()) {
      if (c.type() == pugi::node_element) {
        r.headers.push_back(xml::SerializeStandalone(c, header_scope));
      }
    }
  }
  r.body_xml = SerializeChildren(body_el);
  xml::NamespaceScope scope = env_scope;
  r.body = Convert(body_el, scope);
  for (pugi::xml_node c : body_el.children()) {
    if (c.type() != pugi::node_element) continue;
    if (is_env_child(c, "Fault")) r.fault = ParseFault(c, got);
    break;  // only the first element can be a Fault
  }
  return r;
}

Error FaultError(const SoapFault& fault) {
  const std::string_view local = xml::SplitQName(fault.code).second;
  // 1.1 codes may be dotted ("Client.Authentication").
  const bool sender = local == "Sender" || local == "Client" || local.starts_with("Client.");
  std::string message = "SOAP fault " + (fault.code.empty() ? "(no code)" : fault.code);
  if (!fault.reason.empty()) message += ": " + fault.reason;
  Error e(Code::kSoapFault, std::move(message),
          sender ? "The service rejected the request: check the parameters and credentials "
                   "named in the fault."
                 : "The service failed to process the request: retry later or contact its "
                   "owner with the fault details.",
          sender ? Side::kClient : Side::kServer);
  e.With("fault_code", fault.code);
  if (!fault.subcodes.empty()) {
    std::string joined;
    for (const auto& s : fault.subcodes) joined += (joined.empty() ? "" : " ") + s;
    e.With("fault_subcodes", joined);
  }
  e.With("fault_reason", fault.reason);
  if (!fault.actor.empty()) e.With("fault_actor", fault.actor);
  if (fault.has_detail) e.With("fault_detail", fault.detail_xml);
  return e;
}

}  // namespace wsstep::soap

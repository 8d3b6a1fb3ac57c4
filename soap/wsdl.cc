#include "soap/wsdl.h"

#include <algorithm>
#include <deque>
#include <memory>
#include <optional>
#include <pugixml.hpp>
#include <set>

#include "soap/xml_util.h"

namespace wsstep::soap {
namespace {

// A QName as "{namespace}local": the key of every definition table.
std::string Key(std::string_view ns, std::string_view local) {
  return "{" + std::string(ns) + "}" + std::string(local);
}

std::string_view Local(std::string_view qname) { return xml::SplitQName(qname).second; }

// The URI `prefix` is bound to at `node` ("" prefix: the default namespace), walking the
// ancestors' xmlns attributes (pugixml is not namespace-aware).
std::optional<std::string> LookupPrefix(pugi::xml_node node, std::string_view prefix) {
  if (prefix == "xml") return std::string(xml::kXmlNamespace);
  const std::string attr = prefix.empty() ? "xmlns" : "xmlns:" + std::string(prefix);
  for (pugi::xml_node n = node; n; n = n.parent()) {
    if (n.type() != pugi::node_element) continue;
    if (pugi::xml_attribute a = n.attribute(attr.c_str())) return std::string(a.value());
  }
  if (prefix.empty()) return std::string();
  return std::nullopt;
}

// The namespace of an element node's own name.
std::string NamespaceOf(pugi::xml_node node) {
  return LookupPrefix(node, xml::SplitQName(node.name()).first).value_or("");
}

bool Is(pugi::xml_node node, std::string_view ns, std::string_view local) {
  return node.type() == pugi::node_element && Local(node.name()) == local &&
         NamespaceOf(node) == ns;
}

// Element children of `node` in namespace `ns` named `local` ("" = any name).
std::vector<pugi::xml_node> Children(pugi::xml_node node, std::string_view ns,
                                     std::string_view local = {}) {
  std::vector<pugi::xml_node> out;
  for (pugi::xml_node c : node.children()) {
    if (c.type() != pugi::node_element) continue;
    if (!local.empty() && Local(c.name()) != local) continue;
    if (NamespaceOf(c) == ns) out.push_back(c);
  }
  return out;
}

pugi::xml_node Child(pugi::xml_node node, std::string_view ns, std::string_view local) {
  for (pugi::xml_node c : node.children()) {
    if (Is(c, ns, local)) return c;
  }
  return {};
}

// How an element is named in messages: <wsdl:binding name="X">.
std::string Describe(pugi::xml_node node) {
  std::string out = "<" + xml::Excerpt(node.name(), 60);
  for (const char* attr : {"name", "ref", "element", "type", "message", "binding", "location",
                           "schemaLocation", "namespace"}) {
    if (pugi::xml_attribute a = node.attribute(attr)) {
      out += " " + std::string(attr) + "=\"" + xml::Excerpt(a.value(), 80) + "\"";
      break;
    }
  }
  return out + ">";
}

Error WsdlError(const std::string& document, const std::string& element, std::string problem,
                std::string hint = {}) {
  std::string message = document + ": ";
  if (!element.empty()) message += element + ": ";
  message += problem;
  Error e(Code::kInvalidWsdl, std::move(message),
          hint.empty() ? "Check the WSDL and the documents it imports." : std::move(hint),
          Side::kConfiguration);
  e.With("document", document);
  if (!element.empty()) e.With("element", element);
  return e;
}

struct Document {
  std::string location;
  pugi::xml_document xml;
};

// A schema as read: its node, target namespace and form defaults.
struct Schema {
  pugi::xml_node node;
  const Document* document = nullptr;
  std::string tns;
  bool qualified_elements = false;
  bool qualified_attributes = false;
};

// A global schema component and the schema it belongs to.
struct Component {
  pugi::xml_node node;
  const Schema* schema = nullptr;
};

struct WsdlComponent {
  pugi::xml_node node;
  const Document* document = nullptr;
  std::string tns;
};

class Reader {
 public:
  Reader(WsdlDocumentSource& source, const WsdlLimits& limits) : source_(source), limits_(limits) {}

  Result<WsdlDescription> Read(const std::string& location) {
    WSSTEP_ASSIGN_OR_RETURN(const Document* root, Load(location, "", ""));
    pugi::xml_node definitions = root->xml.document_element();
    if (Is(definitions, "http://www.w3.org/ns/wsdl", "description")) {
      return WsdlError(location, Describe(definitions), "this is WSDL 2.0; only WSDL 1.1 is read",
                       "Ask the service for its WSDL 1.1 (many publish both, e.g. ?wsdl).");
    }
    if (!Is(definitions, kWsdlNamespace, "definitions")) {
      return WsdlError(location, Describe(definitions),
                       "not a WSDL 1.1 document (the root element is not "
                       "{http://schemas.xmlsoap.org/wsdl/}definitions)");
    }
    std::vector<std::string> stack;
    WSSTEP_RETURN_IF_ERROR(ReadDefinitions(root, stack, 0));
    WsdlDescription d;
    d.target_namespace = definitions.attribute("targetNamespace").value();
    for (const auto& doc : documents_) d.documents.push_back(doc->location);
    WSSTEP_RETURN_IF_ERROR(DescribeServices(d));
    return d;
  }

 private:
  // Loads and parses one document, counted against the limits. `from`/`element` name the
  // import that asked for it, for errors.
  Result<const Document*> Load(const std::string& location, const std::string& from,
                               const std::string& element) {
    if (static_cast<int>(documents_.size()) >= limits_.max_documents) {
      return WsdlError(
          from, element,
          "more than " + std::to_string(limits_.max_documents) + " documents are imported");
    }
    Result<std::string> bytes = source_.Load(location);
    if (!bytes.ok()) {
      Error e = bytes.error();
      if (from.empty()) return e;
      e.message = from + ": " + element + ": cannot load " + location + ": " + e.message;
      e.With("document", from).With("element", element);
      return e;
    }
    if (bytes->size() > limits_.max_document_bytes) {
      return WsdlError(location, "",
                       std::to_string(bytes->size()) + " bytes, more than the " +
                           std::to_string(limits_.max_document_bytes) + " a document may have");
    }
    total_bytes_ += bytes->size();
    if (total_bytes_ > limits_.max_total_bytes) {
      return WsdlError(location, "",
                       "the WSDL and its imports exceed " +
                           std::to_string(limits_.max_total_bytes) + " bytes together");
    }
    auto doc = std::make_unique<Document>();
    doc->location = location;
    const unsigned flags = pugi::parse_default | pugi::parse_doctype | pugi::parse_pi;
    pugi::xml_parse_result parsed = doc->xml.load_buffer(bytes->data(), bytes->size(), flags);
    if (!parsed) {
      return WsdlError(location, "",
                       "not well-formed XML at offset " + std::to_string(parsed.offset) + ": " +
                           parsed.description())
          .With("offset", std::to_string(parsed.offset));
    }
    for (pugi::xml_node c : doc->xml.children()) {
      if (c.type() == pugi::node_doctype) {
        return WsdlError(location, "<!DOCTYPE>",
                         "a DOCTYPE is refused (entities are never expanded)",
                         "Remove the DOCTYPE declaration; WSDL and XML Schema do not need one.");
      }
    }
    if (!doc->xml.document_element()) return WsdlError(location, "", "no root element");
    if (xml::ElementDepth(doc->xml, xml::kMaxDepth * 2) > xml::kMaxDepth * 2) {
      return WsdlError(location, "",
                       "elements are nested deeper than " + std::to_string(xml::kMaxDepth * 2));
    }
    documents_.push_back(std::move(doc));
    loaded_.insert(location);
    return documents_.back().get();
  }

  Status ReadDefinitions(const Document* doc, std::vector<std::string>& stack, int depth) {
    pugi::xml_node defs = doc->xml.document_element();
    const std::string tns = defs.attribute("targetNamespace").value();
    stack.push_back(doc->location);
    for (pugi::xml_node imp : Children(defs, kWsdlNamespace, "import")) {
      const std::string loc_attr = imp.attribute("location").value();
      if (loc_attr.empty()) {
        return WsdlError(doc->location, Describe(imp), "wsdl:import has no location");
      }
      const std::string loc = ResolveLocation(doc->location, loc_attr);
      if (std::find(stack.begin(), stack.end(), loc) != stack.end()) {
        std::string chain;
        for (const auto& s : stack) chain += s + " -> ";
        return WsdlError(doc->location, Describe(imp), "import cycle: " + chain + loc,
                         "Remove one of the imports; a WSDL cannot import itself.");
      }
      if (loaded_.count(loc) != 0) continue;
      if (depth + 1 > limits_.max_import_depth) {
        return WsdlError(
            doc->location, Describe(imp),
            "imports are nested deeper than " + std::to_string(limits_.max_import_depth));
      }
      WSSTEP_ASSIGN_OR_RETURN(const Document* child, Load(loc, doc->location, Describe(imp)));
      pugi::xml_node root = child->xml.document_element();
      if (Is(root, kXsdNamespace, "schema")) {
        WSSTEP_RETURN_IF_ERROR(AddSchema(child, root, std::nullopt, depth + 1));
      } else if (Is(root, kWsdlNamespace, "definitions")) {
        WSSTEP_RETURN_IF_ERROR(ReadDefinitions(child, stack, depth + 1));
      } else {
        return WsdlError(loc, Describe(root),
                         "imported by " + doc->location + " but neither WSDL 1.1 nor XML Schema");
      }
    }
    for (pugi::xml_node types : Children(defs, kWsdlNamespace, "types")) {
      for (pugi::xml_node schema : Children(types, kXsdNamespace, "schema")) {
        WSSTEP_RETURN_IF_ERROR(AddSchema(doc, schema, std::nullopt, depth));
      }
    }
    auto add = [&](std::string_view kind, std::map<std::string, WsdlComponent>& table) -> Status {
      for (pugi::xml_node n : Children(defs, kWsdlNamespace, kind)) {
        const std::string name = n.attribute("name").value();
        if (name.empty()) return WsdlError(doc->location, Describe(n), "has no name");
        table.emplace(Key(tns, name), WsdlComponent{n, doc, tns});
      }
      return Status();
    };
    WSSTEP_RETURN_IF_ERROR(add("message", messages_));
    WSSTEP_RETURN_IF_ERROR(add("portType", port_types_));
    WSSTEP_RETURN_IF_ERROR(add("binding", bindings_));
    WSSTEP_RETURN_IF_ERROR(add("service", services_));
    stack.pop_back();
    return Status();
  }

  // Registers a schema's global components and reads what it imports and includes.
  // `chameleon_tns`: for an included schema without a targetNamespace, the includer's.
  Status AddSchema(const Document* doc, pugi::xml_node node,
                   std::optional<std::string> chameleon_tns, int depth) {
    auto schema = std::make_unique<Schema>();
    schema->node = node;
    schema->document = doc;
    schema->tns = node.attribute("targetNamespace").value();
    if (schema->tns.empty() && chameleon_tns) schema->tns = *chameleon_tns;
    schema->qualified_elements =
        std::string_view(node.attribute("elementFormDefault").value()) == "qualified";
    schema->qualified_attributes =
        std::string_view(node.attribute("attributeFormDefault").value()) == "qualified";
    const Schema* s = schema.get();
    schemas_.push_back(std::move(schema));
    for (pugi::xml_node c : node.children()) {
      if (c.type() != pugi::node_element || NamespaceOf(c) != kXsdNamespace) continue;
      const std::string_view kind = Local(c.name());
      const std::string name = c.attribute("name").value();
      if (kind == "element") {
        elements_.emplace(Key(s->tns, name), Component{c, s});
      } else if (kind == "complexType" || kind == "simpleType") {
        types_.emplace(Key(s->tns, name), Component{c, s});
      } else if (kind == "group") {
        groups_.emplace(Key(s->tns, name), Component{c, s});
      } else if (kind == "attributeGroup") {
        attribute_groups_.emplace(Key(s->tns, name), Component{c, s});
      } else if (kind == "attribute") {
        attributes_.emplace(Key(s->tns, name), Component{c, s});
      } else if (kind == "import" || kind == "include" || kind == "redefine") {
        const std::string loc_attr = c.attribute("schemaLocation").value();
        if (loc_attr.empty()) continue;  // a namespace known otherwise (often inline)
        const std::string loc = ResolveLocation(doc->location, loc_attr);
        if (loaded_.count(loc) != 0) continue;  // XML Schema allows mutual imports
        if (depth + 1 > limits_.max_import_depth) {
          return WsdlError(
              doc->location, Describe(c),
              "imports are nested deeper than " + std::to_string(limits_.max_import_depth));
        }
        WSSTEP_ASSIGN_OR_RETURN(const Document* child, Load(loc, doc->location, Describe(c)));
        pugi::xml_node root = child->xml.document_element();
        if (!Is(root, kXsdNamespace, "schema")) {
          return WsdlError(loc, Describe(root),
                           "imported by " + doc->location + " as a schema, but not XML Schema");
        }
        std::optional<std::string> chameleon;
        if (kind != "import") chameleon = s->tns;
        WSSTEP_RETURN_IF_ERROR(AddSchema(child, root, chameleon, depth + 1));
      }
    }
    return Status();
  }

  // --- QNames --------------------------------------------------------------------------

  // The "{ns}local" key of a QName attribute value at `node`, or an error naming it.
  Result<std::string> QNameKey(pugi::xml_node node, const char* attr, const Document* doc,
                               std::optional<std::string> chameleon_tns = std::nullopt) {
    const std::string value = node.attribute(attr).value();
    const auto [prefix, local] = xml::SplitQName(value);
    std::optional<std::string> ns = LookupPrefix(node, prefix);
    if (!ns) {
      return WsdlError(doc->location, Describe(node),
                       "prefix \"" + std::string(prefix) + "\" of " + attr + "=\"" + value +
                           "\" is not declared");
    }
    if (ns->empty() && prefix.empty() && chameleon_tns) ns = chameleon_tns;
    return Key(*ns, local);
  }

  template <typename Table>
  Result<typename Table::mapped_type> Lookup(const Table& table, pugi::xml_node node,
                                             const char* attr, const Document* doc,
                                             std::string_view what) {
    WSSTEP_ASSIGN_OR_RETURN(std::string key, QNameKey(node, attr, doc));
    auto it = table.find(key);
    if (it == table.end()) {
      return WsdlError(doc->location, Describe(node),
                       std::string(what) + " " + key + " is not defined in any document read",
                       "Check the namespace prefix, and that the document defining it is "
                       "imported (wsdl:import, xsd:import with a schemaLocation).");
    }
    return it->second;
  }

  // --- Parameter trees -----------------------------------------------------------------

  static int Occurs(pugi::xml_node node, const char* attr) {
    pugi::xml_attribute a = node.attribute(attr);
    if (!a) return 1;
    if (std::string_view(a.value()) == "unbounded") return -1;
    return a.as_int(1);
  }

  Error TypeError(const Schema* s, pugi::xml_node node, std::string problem) {
    return WsdlError(s->document->location, Describe(node), std::move(problem));
  }

  // The parameter for an element declaration (global or local, or a ref).
  Result<WsdlParameter> ElementParam(pugi::xml_node el, const Schema* s, bool global, int depth) {
    WsdlParameter p;
    if (!global) {
      p.min_occurs = Occurs(el, "minOccurs");
      p.max_occurs = Occurs(el, "maxOccurs");
    }
    if (el.attribute("ref")) {
      WSSTEP_ASSIGN_OR_RETURN(Component target,
                              Lookup(elements_, el, "ref", s->document, "element"));
      WSSTEP_ASSIGN_OR_RETURN(WsdlParameter referenced,
                              ElementParam(target.node, target.schema, true, depth));
      referenced.min_occurs = p.min_occurs;
      referenced.max_occurs = p.max_occurs;
      return referenced;
    }
    p.name = el.attribute("name").value();
    if (p.name.empty()) return TypeError(s, el, "an element without name or ref");
    const std::string_view form = el.attribute("form").value();
    const bool qualified = global || form == "qualified" || (form.empty() && s->qualified_elements);
    p.ns = qualified ? s->tns : "";
    p.nillable = std::string_view(el.attribute("nillable").value()) == "true";
    WSSTEP_RETURN_IF_ERROR(FillFromType(el, s, depth, p));
    return p;
  }

  // Fills type, enumeration and children from the type of `decl` (an element or
  // attribute): a type attribute, or an inline complexType / simpleType.
  Status FillFromType(pugi::xml_node decl, const Schema* s, int depth, WsdlParameter& p) {
    if (depth > limits_.max_type_depth) return Status();  // cut, see WsdlLimits
    if (decl.attribute("type")) {
      WSSTEP_ASSIGN_OR_RETURN(std::string key, QNameKey(decl, "type", s->document, s->tns));
      p.type = key;
      return FillFromNamedType(decl, key, s, depth, p);
    }
    if (pugi::xml_node ct = Child(decl, kXsdNamespace, "complexType")) {
      return ComplexContent(ct, s, depth, p);
    }
    if (pugi::xml_node st = Child(decl, kXsdNamespace, "simpleType")) {
      return SimpleType(st, s, depth, p);
    }
    if (p.type.empty() && !p.attribute) p.type = Key(kXsdNamespace, "anyType");
    return Status();
  }

  Status FillFromNamedType(pugi::xml_node at, const std::string& key, const Schema* s, int depth,
                           WsdlParameter& p) {
    if (key.starts_with("{" + std::string(kXsdNamespace) + "}")) return Status();  // built-in
    auto it = types_.find(key);
    if (it == types_.end()) {
      return TypeError(s, at, "type " + key + " is not defined in any document read");
    }
    if (std::find(type_stack_.begin(), type_stack_.end(), key) != type_stack_.end()) {
      p.recursive = true;
      return Status();
    }
    type_stack_.push_back(key);
    const Component& t = it->second;
    Status st = Local(t.node.name()) == "complexType" ? ComplexContent(t.node, t.schema, depth, p)
                                                      : SimpleType(t.node, t.schema, depth, p);
    type_stack_.pop_back();
    return st;
  }

  Status SimpleType(pugi::xml_node st, const Schema* s, int depth, WsdlParameter& p) {
    pugi::xml_node restriction = Child(st, kXsdNamespace, "restriction");
    if (!restriction) return Status();  // list / union: a text value
    for (pugi::xml_node e : Children(restriction, kXsdNamespace, "enumeration")) {
      p.enumeration.push_back(e.attribute("value").value());
    }
    if (restriction.attribute("base") && p.enumeration.empty()) {
      WSSTEP_ASSIGN_OR_RETURN(std::string base, QNameKey(restriction, "base", s->document, s->tns));
      if (p.type.empty()) p.type = base;
      return FillFromNamedType(restriction, base, s, depth, p);
    }
    return Status();
  }

  // Children and attributes of a complexType (or its content model) into `p`.
  Status ComplexContent(pugi::xml_node ct, const Schema* s, int depth, WsdlParameter& p) {
    for (pugi::xml_node c : ct.children()) {
      if (c.type() != pugi::node_element || NamespaceOf(c) != kXsdNamespace) continue;
      const std::string_view kind = Local(c.name());
      if (kind == "sequence" || kind == "all" || kind == "choice" || kind == "group") {
        WSSTEP_RETURN_IF_ERROR(Particle(c, s, depth, kind == "choice", p));
      } else if (kind == "attribute" || kind == "attributeGroup") {
        WSSTEP_RETURN_IF_ERROR(Attribute(c, s, depth, p));
      } else if (kind == "complexContent" || kind == "simpleContent") {
        pugi::xml_node derivation = Child(c, kXsdNamespace, "extension");
        if (!derivation) derivation = Child(c, kXsdNamespace, "restriction");
        if (!derivation) continue;
        if (derivation.attribute("base")) {
          WSSTEP_ASSIGN_OR_RETURN(std::string base,
                                  QNameKey(derivation, "base", s->document, s->tns));
          // An extension has its base's content first; a restriction restates it.
          if (Local(derivation.name()) == "extension" || kind == "simpleContent") {
            std::vector<WsdlParameter> own = std::move(p.children);
            p.children.clear();
            std::string type = p.type;
            WSSTEP_RETURN_IF_ERROR(FillFromNamedType(derivation, base, s, depth, p));
            p.type = type;
            for (auto& o : own) p.children.push_back(std::move(o));
          }
        }
        WSSTEP_RETURN_IF_ERROR(ComplexContent(derivation, s, depth, p));
      }
    }
    return Status();
  }

  Status Particle(pugi::xml_node group, const Schema* s, int depth, bool in_choice,
                  WsdlParameter& p) {
    if (Local(group.name()) == "group" && group.attribute("ref")) {
      WSSTEP_ASSIGN_OR_RETURN(Component g, Lookup(groups_, group, "ref", s->document, "group"));
      return ComplexContent(g.node, g.schema, depth, p);
    }
    const bool optional = in_choice || Occurs(group, "minOccurs") == 0;
    const bool repeated = Occurs(group, "maxOccurs") != 1;
    for (pugi::xml_node c : group.children()) {
      if (c.type() != pugi::node_element || NamespaceOf(c) != kXsdNamespace) continue;
      const std::string_view kind = Local(c.name());
      if (kind == "element") {
        WSSTEP_ASSIGN_OR_RETURN(WsdlParameter child, ElementParam(c, s, false, depth + 1));
        if (optional) child.min_occurs = 0;
        if (repeated) child.max_occurs = -1;
        p.children.push_back(std::move(child));
      } else if (kind == "sequence" || kind == "choice" || kind == "all" || kind == "group") {
        WsdlParameter inner;
        WSSTEP_RETURN_IF_ERROR(Particle(c, s, depth, kind == "choice" || optional, inner));
        for (auto& child : inner.children) {
          if (optional) child.min_occurs = 0;
          if (repeated) child.max_occurs = -1;
          p.children.push_back(std::move(child));
        }
      }
    }
    return Status();
  }

  Status Attribute(pugi::xml_node a, const Schema* s, int depth, WsdlParameter& p) {
    if (Local(a.name()) == "attributeGroup") {
      if (!a.attribute("ref")) return Status();
      WSSTEP_ASSIGN_OR_RETURN(Component g,
                              Lookup(attribute_groups_, a, "ref", s->document, "attributeGroup"));
      for (pugi::xml_node c : g.node.children()) {
        if (Is(c, kXsdNamespace, "attribute") || Is(c, kXsdNamespace, "attributeGroup")) {
          WSSTEP_RETURN_IF_ERROR(Attribute(c, g.schema, depth, p));
        }
      }
      return Status();
    }
    if (std::string_view(a.attribute("use").value()) == "prohibited") return Status();
    WsdlParameter attr;
    attr.attribute = true;
    attr.min_occurs = std::string_view(a.attribute("use").value()) == "required" ? 1 : 0;
    if (a.attribute("ref")) {
      WSSTEP_ASSIGN_OR_RETURN(std::string key, QNameKey(a, "ref", s->document));
      auto it = attributes_.find(key);
      const size_t close = key.find('}');
      attr.name = key.substr(close + 1);
      attr.ns = key.substr(1, close - 1);
      if (it != attributes_.end()) {
        WSSTEP_RETURN_IF_ERROR(FillFromType(it->second.node, it->second.schema, depth, attr));
      }
    } else {
      attr.name = a.attribute("name").value();
      const std::string_view form = a.attribute("form").value();
      attr.ns = form == "qualified" || (form.empty() && s->qualified_attributes) ? s->tns : "";
      WSSTEP_RETURN_IF_ERROR(FillFromType(a, s, depth, attr));
    }
    p.children.push_back(std::move(attr));
    return Status();
  }

  // --- Bindings and services -------------------------------------------------------------

  struct Body {
    std::string element, ns;
    std::vector<WsdlParameter> parameters;
  };

  // The soap:Body content of one direction of an operation.
  Result<Body> MessageBody(const WsdlComponent& message, pugi::xml_node soap_body,
                           const std::string& style, const std::string& operation_name,
                           bool output) {
    Body body;
    std::set<std::string> only;
    for (std::string_view parts = soap_body.attribute("parts").value(); !parts.empty();) {
      const size_t space = parts.find(' ');
      if (space != 0) only.insert(std::string(parts.substr(0, space)));
      if (space == std::string_view::npos) break;
      parts.remove_prefix(space + 1);
    }
    std::vector<pugi::xml_node> parts;
    for (pugi::xml_node part : Children(message.node, kWsdlNamespace, "part")) {
      if (only.empty() || only.count(part.attribute("name").value()) != 0) parts.push_back(part);
    }
    if (style == "rpc") {
      body.element = operation_name + (output ? "Response" : "");
      body.ns = soap_body.attribute("namespace").value();
      for (pugi::xml_node part : parts) {
        WsdlParameter p;
        if (part.attribute("element")) {
          WSSTEP_ASSIGN_OR_RETURN(Component el,
                                  Lookup(elements_, part, "element", message.document, "element"));
          WSSTEP_ASSIGN_OR_RETURN(p, ElementParam(el.node, el.schema, true, 1));
        } else {
          p.name = part.attribute("name").value();
          WSSTEP_RETURN_IF_ERROR(PartType(part, message.document, p));
        }
        body.parameters.push_back(std::move(p));
      }
      return body;
    }
    if (parts.empty()) return body;  // an empty body
    pugi::xml_node part = parts.front();
    if (!part.attribute("element")) {
      // document style with a type part: the part is the element, unqualified.
      WsdlParameter p;
      p.name = part.attribute("name").value();
      WSSTEP_RETURN_IF_ERROR(PartType(part, message.document, p));
      body.element = p.name;
      body.parameters = std::move(p.children);
      return body;
    }
    WSSTEP_ASSIGN_OR_RETURN(Component el,
                            Lookup(elements_, part, "element", message.document, "element"));
    WSSTEP_ASSIGN_OR_RETURN(WsdlParameter wrapper, ElementParam(el.node, el.schema, true, 0));
    body.element = wrapper.name;
    body.ns = wrapper.ns;
    body.parameters = std::move(wrapper.children);
    return body;
  }

  // A part's type="..." into `p`.
  Status PartType(pugi::xml_node part, const Document* doc, WsdlParameter& p) {
    if (!part.attribute("type")) {
      return WsdlError(doc->location, Describe(part), "a part needs element= or type=");
    }
    WSSTEP_ASSIGN_OR_RETURN(std::string key, QNameKey(part, "type", doc));
    p.type = key;
    if (key.starts_with("{" + std::string(kXsdNamespace) + "}")) return Status();
    auto it = types_.find(key);
    if (it == types_.end()) {
      return WsdlError(doc->location, Describe(part),
                       "type " + key + " is not defined in any document read");
    }
    return FillFromNamedType(part, key, it->second.schema, 1, p);
  }

  Result<WsdlPort> DescribePort(pugi::xml_node port, const Document* doc, bool* is_soap) {
    WsdlPort out;
    out.name = port.attribute("name").value();
    WSSTEP_ASSIGN_OR_RETURN(WsdlComponent binding,
                            Lookup(bindings_, port, "binding", doc, "binding"));
    out.binding = Key(binding.tns, binding.node.attribute("name").value());
    std::string soap_ns;
    pugi::xml_node soap_binding;
    for (std::string_view ns : {kWsdlSoap11Namespace, kWsdlSoap12Namespace}) {
      if ((soap_binding = Child(binding.node, ns, "binding"))) {
        soap_ns = std::string(ns);
        break;
      }
    }
    *is_soap = static_cast<bool>(soap_binding);
    if (!soap_binding) return out;
    out.version = soap_ns == kWsdlSoap12Namespace ? SoapVersion::k12 : SoapVersion::k11;
    out.style = soap_binding.attribute("style").value();
    if (out.style.empty()) out.style = "document";
    if (pugi::xml_node address = Child(port, soap_ns, "address")) {
      out.address = address.attribute("location").value();
    }
    WSSTEP_ASSIGN_OR_RETURN(WsdlComponent port_type, Lookup(port_types_, binding.node, "type",
                                                            binding.document, "portType"));
    for (pugi::xml_node bop : Children(binding.node, kWsdlNamespace, "operation")) {
      WsdlOperation op;
      op.name = bop.attribute("name").value();
      pugi::xml_node soap_op = Child(bop, soap_ns, "operation");
      op.soap_action = soap_op.attribute("soapAction").value();
      op.style = soap_op.attribute("style").value();
      if (op.style.empty()) op.style = out.style;
      pugi::xml_node pop;
      for (pugi::xml_node candidate : Children(port_type.node, kWsdlNamespace, "operation")) {
        if (op.name == candidate.attribute("name").value()) pop = candidate;
      }
      if (!pop) {
        return WsdlError(binding.document->location, Describe(bop),
                         "portType " +
                             Key(port_type.tns, port_type.node.attribute("name").value()) +
                             " has no operation \"" + op.name + "\"");
      }
      if (pugi::xml_node doc_node = Child(pop, kWsdlNamespace, "documentation")) {
        op.documentation = doc_node.text().get();
      }
      for (const bool output : {false, true}) {
        const char* dir = output ? "output" : "input";
        pugi::xml_node abstract = Child(pop, kWsdlNamespace, dir);
        if (!abstract) continue;
        pugi::xml_node concrete = Child(bop, kWsdlNamespace, dir);
        pugi::xml_node soap_body = Child(concrete, soap_ns, "body");
        if (!output) op.use = soap_body.attribute("use").value();
        WSSTEP_ASSIGN_OR_RETURN(WsdlComponent message, Lookup(messages_, abstract, "message",
                                                              port_type.document, "message"));
        WSSTEP_ASSIGN_OR_RETURN(Body body,
                                MessageBody(message, soap_body, op.style, op.name, output));
        if (output) {
          op.output_element = std::move(body.element);
          op.output_namespace = std::move(body.ns);
          op.output = std::move(body.parameters);
        } else {
          op.input_element = std::move(body.element);
          op.input_namespace = std::move(body.ns);
          op.input = std::move(body.parameters);
        }
      }
      if (op.use.empty()) op.use = "literal";
      out.operations.push_back(std::move(op));
    }
    return out;
  }

  Status DescribeServices(WsdlDescription& d) {
    for (const auto& [key, service] : services_) {
      WsdlService s;
      s.name = service.node.attribute("name").value();
      for (pugi::xml_node port : Children(service.node, kWsdlNamespace, "port")) {
        bool is_soap = false;
        WSSTEP_ASSIGN_OR_RETURN(WsdlPort p, DescribePort(port, service.document, &is_soap));
        if (is_soap) s.ports.push_back(std::move(p));
      }
      d.services.push_back(std::move(s));
    }
    return Status();
  }

  WsdlDocumentSource& source_;
  const WsdlLimits& limits_;
  std::deque<std::unique_ptr<Document>> documents_;
  std::deque<std::unique_ptr<Schema>> schemas_;
  std::set<std::string> loaded_;
  size_t total_bytes_ = 0;
  std::map<std::string, WsdlComponent> messages_, port_types_, bindings_, services_;
  std::map<std::string, Component> elements_, types_, groups_, attribute_groups_, attributes_;
  std::vector<std::string> type_stack_;
};

// Removes "." and ".." segments from a '/'-separated path.
std::string NormalizePath(std::string_view path) {
  std::vector<std::string> out;
  const bool absolute = path.starts_with("/");
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    const std::string_view seg = path.substr(start, slash - start);
    if (seg == "..") {
      if (!out.empty() && out.back() != "..") {
        out.pop_back();
      } else if (!absolute) {
        out.emplace_back("..");
      }
    } else if (!seg.empty() && seg != ".") {
      out.emplace_back(seg);
    }
    start = slash + 1;
  }
  std::string joined = absolute ? "/" : "";
  for (size_t i = 0; i < out.size(); ++i) joined += (i ? "/" : "") + out[i];
  if (path.ends_with("/") && !out.empty()) joined += "/";
  return joined;
}

// XmlNodes for a designer to fill: every element once, optional attributes left out.
std::vector<XmlNode> TemplateNodes(const std::vector<WsdlParameter>& params,
                                   const std::string& parent_ns) {
  std::vector<XmlNode> out;
  for (const WsdlParameter& p : params) {
    if (p.attribute) continue;
    XmlNode n;
    n.name = p.name;
    if (p.ns != parent_ns) n.ns = p.ns;
    for (const WsdlParameter& a : p.children) {
      if (a.attribute && a.min_occurs > 0) n.attributes.push_back({.name = a.name, .ns = a.ns});
    }
    if (!p.enumeration.empty()) n.text = p.enumeration.front();
    n.children = TemplateNodes(p.children, p.ns);
    out.push_back(std::move(n));
  }
  return out;
}

Status CheckNodes(const std::vector<XmlNode>& nodes, const std::vector<WsdlParameter>& params,
                  const std::string& parent_ns, const std::string& path) {
  std::map<std::string, int> counts;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const XmlNode& n = nodes[i];
    const std::string ns = n.ns ? *n.ns : parent_ns;
    const WsdlParameter* match = nullptr;
    for (const WsdlParameter& p : params) {
      if (!p.attribute && p.name == n.name) match = &p;
    }
    int k = counts[n.name]++;
    int total = 0;
    for (const XmlNode& o : nodes) total += o.name == n.name ? 1 : 0;
    const std::string field =
        path + "." + n.name + (total > 1 ? "[" + std::to_string(k) + "]" : "");
    if (match == nullptr) {
      std::string expected;
      for (const WsdlParameter& p : params) {
        if (!p.attribute) expected += (expected.empty() ? "" : ", ") + p.name;
      }
      return xml::ConfigError(field, "the operation has no element \"" + n.name + "\" here",
                              expected.empty() ? "The WSDL expects no element here."
                                               : "The WSDL expects: " + expected + ".");
    }
    if (ns != match->ns) {
      return xml::ConfigError(
          field, "is in namespace \"" + ns + "\", the WSDL expects \"" + match->ns + "\"");
    }
    if (!match->enumeration.empty() && n.children.empty() &&
        std::find(match->enumeration.begin(), match->enumeration.end(), n.text) ==
            match->enumeration.end()) {
      std::string allowed;
      for (const auto& v : match->enumeration) allowed += (allowed.empty() ? "" : ", ") + v;
      return xml::ConfigError(
          field, "\"" + xml::Excerpt(n.text, 60) + "\" is not one of the values the WSDL allows",
          "Use one of: " + allowed + ".");
    }
    if (!match->recursive) {
      WSSTEP_RETURN_IF_ERROR(CheckNodes(n.children, match->children, match->ns, field));
    }
  }
  for (const WsdlParameter& p : params) {
    if (p.attribute) continue;
    const int have = counts.count(p.name) ? counts[p.name] : 0;
    if (have < p.min_occurs) {
      return xml::ConfigError(
          path + "." + p.name,
          "is required by the WSDL (at least " + std::to_string(p.min_occurs) + ") but missing");
    }
    if (p.max_occurs >= 0 && have > p.max_occurs) {
      return xml::ConfigError(path + "." + p.name, "appears " + std::to_string(have) +
                                                       " times; the WSDL allows " +
                                                       std::to_string(p.max_occurs));
    }
  }
  return Status();
}

}  // namespace

UploadedDocuments::UploadedDocuments(std::vector<std::pair<std::string, std::string>> documents) {
  for (auto& [name, content] : documents) {
    documents_.emplace(NormalizePath(name), std::move(content));
  }
}

Result<std::string> UploadedDocuments::Load(const std::string& location) {
  auto it = documents_.find(NormalizePath(location));
  if (it == documents_.end()) {
    return Error(Code::kInvalidWsdl, location + " was not uploaded",
                 "Upload it with the WSDL, under the location the import names.",
                 Side::kConfiguration)
        .With("missing_document", location);
  }
  return it->second;
}

std::string ResolveLocation(std::string_view base, std::string_view relative) {
  const size_t scheme = relative.find("://");
  if (scheme != std::string_view::npos && relative.find('/') > scheme) return std::string(relative);
  const size_t base_scheme = base.find("://");
  if (base_scheme != std::string_view::npos) {
    const size_t path_start = base.find('/', base_scheme + 3);
    const std::string origin(base.substr(0, path_start));
    std::string_view base_path =
        path_start == std::string_view::npos ? "/" : base.substr(path_start);
    base_path = base_path.substr(0, base_path.find_first_of("?#"));
    if (relative.starts_with("/")) return origin + NormalizePath(relative);
    const std::string dir(base_path.substr(0, base_path.rfind('/') + 1));
    return origin + NormalizePath(dir + std::string(relative));
  }
  if (relative.starts_with("/")) return NormalizePath(relative);
  const size_t slash = base.rfind('/');
  const std::string dir =
      slash == std::string_view::npos ? "" : std::string(base.substr(0, slash + 1));
  return NormalizePath(dir + std::string(relative));
}

Result<WsdlDescription> ReadWsdl(const std::string& location, WsdlDocumentSource& source,
                                 const WsdlLimits& limits) {
  Reader reader(source, limits);
  return reader.Read(location);
}

const WsdlOperation* FindOperation(const WsdlDescription& d, std::string_view operation,
                                   std::string_view port, const WsdlPort** port_out) {
  for (const WsdlService& s : d.services) {
    for (const WsdlPort& p : s.ports) {
      if (!port.empty() && p.name != port) continue;
      for (const WsdlOperation& op : p.operations) {
        if (op.name != operation) continue;
        if (port_out != nullptr) *port_out = &p;
        return &op;
      }
    }
  }
  return nullptr;
}

SoapStep StepForOperation(const WsdlPort& port, const WsdlOperation& op) {
  SoapStep step;
  step.endpoint = port.address;
  step.version = port.version;
  step.action = op.soap_action;
  SoapOperation body;
  body.name = op.input_element;
  body.ns = op.input_namespace;
  body.prefix = op.input_namespace.empty() ? "" : "ns";
  body.parameters = TemplateNodes(op.input, op.input_namespace);
  step.body = std::move(body);
  return step;
}

Status CheckStepAgainstOperation(const SoapStep& step, const WsdlOperation& op) {
  const auto* body = std::get_if<SoapOperation>(&step.body);
  if (body == nullptr) return Status();  // a raw body is the designer's own
  if (body->name != op.input_element) {
    return xml::ConfigError("operation.name", "\"" + xml::Excerpt(body->name, 60) +
                                                  "\" is not the element the "
                                                  "WSDL's operation " +
                                                  op.name + " expects (\"" + op.input_element +
                                                  "\")");
  }
  if (body->ns != op.input_namespace) {
    return xml::ConfigError("operation.namespace",
                            "\"" + xml::Excerpt(body->ns, 80) + "\" is not the namespace of " +
                                op.name + " in the WSDL (\"" + op.input_namespace + "\")");
  }
  if (!op.soap_action.empty() && step.action != op.soap_action) {
    return xml::ConfigError("action", "\"" + xml::Excerpt(step.action, 80) +
                                          "\" is not the WSDL's soapAction \"" + op.soap_action +
                                          "\" for " + op.name);
  }
  return CheckNodes(body->parameters, op.input, op.input_namespace, "parameters");
}

}  // namespace wsstep::soap

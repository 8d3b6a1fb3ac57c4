#include "soap/envelope.h"

#include <openssl/crypto.h>

#include <array>
#include <map>
#include <optional>
#include <pugixml.hpp>
#include <set>

#include "core/resolver.h"
#include "soap/xml_util.h"

namespace wsstep::soap {
namespace {

// The envelope's own prefix. Raw fragments may use it (e.g. soap:mustUnderstand).
constexpr std::string_view kEnvPrefix = "soap";
constexpr int64_t kMaxTtlSeconds = 7 * 24 * 3600;
constexpr size_t kNonceBytes = 16;

// A name quoted for a message: short, control characters escaped.
std::string Quoted(std::string_view name) { return "\"" + xml::Excerpt(name, 60) + "\""; }

Status CheckText(std::string_view text, const std::string& field, std::string_view what) {
  if (auto problem = xml::TextProblem(text)) {
    return xml::ConfigError(field, std::string(what) + " " + *problem,
                            "Remove the character: XML 1.0 cannot transport control characters or "
                            "invalid UTF-8 (send binary data Base64-encoded).");
  }
  return Status();
}

Status CheckNcName(std::string_view name, const std::string& field, std::string_view what) {
  if (!xml::IsNcName(name)) {
    return xml::ConfigError(field,
                            std::string(what) + " " + Quoted(name) + " is not a valid XML name",
                            "XML names start with a letter or '_', continue with letters, digits, "
                            "'-', '_' or '.', and have no ':' (set the prefix separately).");
  }
  return Status();
}

// The SOAP action goes between quotes in an HTTP header: printable ASCII only, and no
// quote or backslash, so no escaping is ever needed (a URI never contains them).
Status CheckAction(std::string_view action) {
  for (size_t i = 0; i < action.size(); ++i) {
    const auto c = static_cast<unsigned char>(action[i]);
    if (c <= 0x20 || c >= 0x7F || c == '"' || c == '\\') {
      return xml::ConfigError(
          "action",
          "character at byte " + std::to_string(i) +
              " is not allowed in a SOAP action (only visible ASCII without '\"' "
              "and '\\')",
          "The action is a URI: percent-encode spaces and non-ASCII characters.");
    }
  }
  return Status();
}

struct Stamp {
  std::string created;
  std::string expires;
  std::array<uint8_t, kNonceBytes> nonce{};
};

// Field names for the three parts of an element's name.
struct NameFields {
  std::string name;
  std::string ns;
  std::string prefix;
};

class Builder {
 public:
  explicit Builder(const SoapStep& step) : step_(step) {
    env_ns_ = std::string(EnvelopeNamespace(step.version));
    scope_.Bind(std::string(kEnvPrefix), env_ns_);
  }
  ~Builder() { WipeSecretText(); }

  Status Build(const Stamp& stamp) {
    WSSTEP_RETURN_IF_ERROR(CheckAction(step_.action));
    pugi::xml_node decl = doc_.append_child(pugi::node_declaration);
    decl.append_attribute("version").set_value("1.0");
    decl.append_attribute("encoding").set_value("utf-8");
    const std::string env_q = Q(kEnvPrefix, "Envelope");
    pugi::xml_node envelope = doc_.append_child(env_q.c_str());
    envelope.append_attribute(("xmlns:" + std::string(kEnvPrefix)).c_str())
        .set_value(env_ns_.c_str());

    const WsSecurity& sec = step_.security;
    if (sec.signature) {
      for (const std::string& part : sec.signature->EffectiveParts()) {
        sign_timestamp_ = sign_timestamp_ || part == kPartTimestamp;
      }
    }
    const bool has_security =
        sec.username_token.has_value() || sec.timestamp.enabled || sec.signature.has_value();
    pugi::xml_node header;
    if (has_security || !step_.header_blocks.empty()) {
      header = envelope.append_child(Q(kEnvPrefix, "Header").c_str());
      if (has_security) WSSTEP_RETURN_IF_ERROR(AppendSecurity(header, stamp));
      for (size_t i = 0; i < step_.header_blocks.size(); ++i) {
        WSSTEP_RETURN_IF_ERROR(AppendFragment(header, step_.header_blocks[i],
                                              "header_blocks[" + std::to_string(i) + "]",
                                              /*allow_empty=*/false));
      }
    }
    pugi::xml_node body = envelope.append_child(Q(kEnvPrefix, "Body").c_str());
    if (const auto* op = std::get_if<SoapOperation>(&step_.body)) {
      WSSTEP_RETURN_IF_ERROR(AppendOperation(body, *op));
    } else {
      WSSTEP_RETURN_IF_ERROR(
          AppendFragment(body, std::get<RawXml>(step_.body).xml, "body", /*allow_empty=*/true));
    }
    if (sec.signature) WSSTEP_RETURN_IF_ERROR(MarkSignedParts(header, body));
    return Status();
  }

  const std::vector<std::string>& signed_ids() const { return signed_ids_; }

  // Serializes into a string sized up front, so a PasswordText password is never left
  // behind in a buffer freed by reallocation.
  std::string Serialize() {
    struct Counter : pugi::xml_writer {
      size_t n = 0;
      void write(const void*, size_t size) override { n += size; }
    } counter;
    doc_.save(counter, "", pugi::format_raw, pugi::encoding_utf8);
    struct Filler : pugi::xml_writer {
      std::string* out;
      void write(const void* data, size_t size) override {
        out->append(static_cast<const char*>(data), size);
      }
    } filler;
    std::string out;
    out.reserve(counter.n);
    filler.out = &out;
    doc_.save(filler, "", pugi::format_raw, pugi::encoding_utf8);
    return out;
  }

  bool contains_secret() const { return static_cast<bool>(secret_text_); }

 private:
  static std::string Q(std::string_view prefix, std::string_view local) {
    return prefix.empty() ? std::string(local) : std::string(prefix) + ":" + std::string(local);
  }

  // Overwrites the password inside the DOM in place (same length: pugixml reuses the
  // buffer) before the document frees it.
  void WipeSecretText() {
    if (!secret_text_) return;
    std::string filler(std::string_view(secret_text_.value()).size(), 'x');
    secret_text_.set_value(filler.c_str());
    secret_text_ = pugi::xml_node();
  }

  // Prefix bindings fixed on the element being written: declared on it, or used by its
  // name or an attribute's. A second, different binding of the same prefix is a conflict.
  using Fixed = std::vector<std::pair<std::string, std::string>>;

  Status Use(const std::string& prefix, const std::string& uri, Fixed& fixed,
             std::vector<std::pair<std::string, std::string>>& decls, const std::string& field) {
    for (const auto& [p, u] : fixed) {
      if (p == prefix) {
        if (u == uri) return Status();
        return xml::ConfigError(field,
                                "prefix " + Quoted(prefix) + " is bound to two namespaces (" +
                                    Quoted(u) + " and " + Quoted(uri) + ") on one element",
                                "Use a different prefix for one of them, or leave it empty.");
      }
    }
    fixed.emplace_back(prefix, uri);
    if (scope_.Lookup(prefix) != std::optional<std::string_view>(uri)) {
      decls.emplace_back(prefix, uri);
      scope_.Bind(prefix, uri);
    }
    return Status();
  }

  Status CheckNamespace(std::string_view ns, const std::string& field) {
    WSSTEP_RETURN_IF_ERROR(CheckText(ns, field, "namespace"));
    if (ns == xml::kXmlNamespace || ns == xml::kXmlnsNamespace) {
      return xml::ConfigError(field, "namespace " + Quoted(ns) + " is reserved by XML");
    }
    return Status();
  }

  // The qualified name of an element `name` in `ns`, binding what it needs on `decls`.
  Result<std::string> QualifyElement(std::string_view name, std::string_view ns,
                                     const std::string& prefix, const NameFields& f, Fixed& fixed,
                                     std::vector<std::pair<std::string, std::string>>& decls) {
    WSSTEP_RETURN_IF_ERROR(CheckNcName(name, f.name, "element name"));
    WSSTEP_RETURN_IF_ERROR(CheckNamespace(ns, f.ns));
    if (!prefix.empty()) {
      WSSTEP_RETURN_IF_ERROR(CheckNcName(prefix, f.prefix, "prefix"));
      if (prefix == "xml" || prefix == "xmlns") {
        return xml::ConfigError(f.prefix, "prefix " + Quoted(prefix) + " is reserved by XML");
      }
      if (ns.empty()) {
        return xml::ConfigError(f.prefix, "prefix " + Quoted(prefix) + " needs a namespace",
                                "Set the namespace, or leave the prefix empty.");
      }
      WSSTEP_RETURN_IF_ERROR(Use(prefix, std::string(ns), fixed, decls, f.prefix));
      return Q(prefix, name);
    }
    if (scope_.Lookup("") == ns) {
      WSSTEP_RETURN_IF_ERROR(Use("", std::string(ns), fixed, decls, f.ns));
      return std::string(name);
    }
    if (!ns.empty()) {
      if (auto p = scope_.PrefixFor(ns)) {
        const std::string reuse(*p);
        WSSTEP_RETURN_IF_ERROR(Use(reuse, std::string(ns), fixed, decls, f.ns));
        return Q(reuse, name);
      }
    }
    WSSTEP_RETURN_IF_ERROR(Use("", std::string(ns), fixed, decls, f.ns));
    return std::string(name);
  }

  // Writes `attrs` after resolving their names; `fixed`/`decls` already hold the
  // element's own bindings.
  Status AppendWithAttributes(pugi::xml_node element, const std::vector<XmlAttribute>& attrs,
                              const std::string& path, Fixed& fixed,
                              std::vector<std::pair<std::string, std::string>>& decls) {
    std::vector<std::pair<std::string, const std::string*>> written;
    std::set<std::pair<std::string, std::string>> expanded;
    for (size_t j = 0; j < attrs.size(); ++j) {
      const XmlAttribute& a = attrs[j];
      const std::string field =
          path + "@" + (xml::IsNcName(a.name) ? a.name : "#" + std::to_string(j));
      WSSTEP_RETURN_IF_ERROR(CheckNcName(a.name, field, "attribute name"));
      if ((a.name == "xmlns" && a.prefix.empty()) || a.prefix == "xmlns" ||
          a.ns == xml::kXmlnsNamespace) {
        return xml::ConfigError(field, "namespace declarations are written by the builder",
                                "Set the namespace field of the element or attribute instead.");
      }
      WSSTEP_RETURN_IF_ERROR(CheckText(a.ns, field + ".namespace", "namespace"));
      WSSTEP_RETURN_IF_ERROR(CheckText(a.value, field, "value"));
      std::string qname;
      std::string uri = a.ns;
      if (a.prefix == "xml" || a.ns == xml::kXmlNamespace) {
        if (!a.ns.empty() && a.ns != xml::kXmlNamespace) {
          return xml::ConfigError(field + ".prefix", "prefix \"xml\" is reserved for " +
                                                         std::string(xml::kXmlNamespace));
        }
        uri = std::string(xml::kXmlNamespace);
        qname = Q("xml", a.name);
      } else if (a.ns.empty()) {
        if (!a.prefix.empty()) {
          return xml::ConfigError(field + ".prefix",
                                  "prefix " + Quoted(a.prefix) + " needs a namespace",
                                  "Set the namespace, or leave the prefix empty.");
        }
        qname = a.name;
      } else {
        std::string prefix = a.prefix;
        if (!prefix.empty()) {
          WSSTEP_RETURN_IF_ERROR(CheckNcName(prefix, field + ".prefix", "prefix"));
        } else if (auto p = scope_.PrefixFor(a.ns)) {
          prefix = std::string(*p);
        } else {
          // Unprefixed attributes are in no namespace, so a namespaced one needs a prefix.
          for (int k = 1; prefix.empty(); ++k) {
            std::string candidate = "ns" + std::to_string(k);
            bool taken = scope_.Lookup(candidate).has_value();
            for (const auto& fx : fixed) taken = taken || fx.first == candidate;
            if (!taken) prefix = std::move(candidate);
          }
        }
        WSSTEP_RETURN_IF_ERROR(Use(prefix, a.ns, fixed, decls, field + ".prefix"));
        qname = Q(prefix, a.name);
      }
      if (!expanded.emplace(uri, a.name).second) {
        return xml::ConfigError(field, "attribute " + Quoted(a.name) + " is given twice");
      }
      written.emplace_back(std::move(qname), &a.value);
    }
    for (const auto& [prefix, uri] : decls) {
      const std::string attr = prefix.empty() ? "xmlns" : "xmlns:" + prefix;
      element.append_attribute(attr.c_str()).set_value(uri.c_str());
    }
    for (const auto& [qname, value] : written) {
      element.append_attribute(qname.c_str()).set_value(value->c_str());
    }
    return Status();
  }

  Status AppendOperation(pugi::xml_node body, const SoapOperation& op) {
    const size_t mark = scope_.Mark();
    Fixed fixed;
    std::vector<std::pair<std::string, std::string>> decls;
    const NameFields fields{"operation.name", "operation.namespace", "operation.prefix"};
    WSSTEP_ASSIGN_OR_RETURN(std::string qname,
                            QualifyElement(op.name, op.ns, op.prefix, fields, fixed, decls));
    pugi::xml_node element = body.append_child(qname.c_str());
    WSSTEP_RETURN_IF_ERROR(AppendWithAttributes(element, {}, "operation", fixed, decls));
    WSSTEP_RETURN_IF_ERROR(AppendChildren(element, op.parameters, op.ns, "parameters", 1));
    scope_.Release(mark);
    return Status();
  }

  Status AppendChildren(pugi::xml_node parent, const std::vector<XmlNode>& children,
                        const std::string& parent_ns, const std::string& path, int depth) {
    std::map<std::string_view, int> totals;
    for (const XmlNode& c : children) ++totals[c.name];
    std::map<std::string_view, int> seen;
    for (size_t i = 0; i < children.size(); ++i) {
      const XmlNode& c = children[i];
      std::string segment;
      if (!xml::IsNcName(c.name)) {
        segment = "#" + std::to_string(i);
      } else {
        segment = c.name;
        const int k = seen[c.name]++;
        if (totals[c.name] > 1) segment += "[" + std::to_string(k) + "]";
      }
      WSSTEP_RETURN_IF_ERROR(AppendNode(parent, c, parent_ns, path + "." + segment, depth));
    }
    return Status();
  }

  Status AppendNode(pugi::xml_node parent, const XmlNode& n, const std::string& parent_ns,
                    const std::string& path, int depth) {
    if (depth > xml::kMaxDepth) {
      return xml::ConfigError(path, "parameters are nested deeper than " +
                                        std::to_string(xml::kMaxDepth) + " elements");
    }
    const size_t mark = scope_.Mark();
    Fixed fixed;
    std::vector<std::pair<std::string, std::string>> decls;
    const std::string& ns = n.ns ? *n.ns : parent_ns;
    const NameFields fields{path, path + ".namespace", path + ".prefix"};
    WSSTEP_ASSIGN_OR_RETURN(std::string qname,
                            QualifyElement(n.name, ns, n.prefix, fields, fixed, decls));
    WSSTEP_RETURN_IF_ERROR(CheckText(n.text, path, "text"));
    pugi::xml_node element = parent.append_child(qname.c_str());
    WSSTEP_RETURN_IF_ERROR(AppendWithAttributes(element, n.attributes, path, fixed, decls));
    if (!n.text.empty()) element.append_child(pugi::node_pcdata).set_value(n.text.c_str());
    WSSTEP_RETURN_IF_ERROR(AppendChildren(element, n.children, ns, path, depth + 1));
    scope_.Release(mark);
    return Status();
  }

  // Checks one element of a raw fragment (and, recursively, its content) against the
  // envelope's namespace scope. Depth is bounded by the caller.
  Status CheckFragmentElement(pugi::xml_node element, const std::string& field) {
    const size_t mark = scope_.Mark();
    const std::string_view qname = element.name();
    if (!xml::IsQName(qname)) {
      return xml::ConfigError(field, "element name " + Quoted(qname) + " is not a valid XML name");
    }
    std::set<std::string_view> names;
    for (pugi::xml_attribute a : element.attributes()) {
      const std::string_view an = a.name();
      if (!xml::IsQName(an)) {
        return xml::ConfigError(field, "attribute name " + Quoted(an) + " on <" +
                                           xml::Excerpt(qname, 60) + "> is not a valid XML name");
      }
      if (!names.insert(an).second) {
        return xml::ConfigError(field, "attribute " + Quoted(an) + " appears twice on <" +
                                           xml::Excerpt(qname, 60) + ">");
      }
      WSSTEP_RETURN_IF_ERROR(CheckText(a.value(), field, "attribute " + Quoted(an) + " value"));
    }
    scope_.BindDeclared(element);
    auto check_prefix = [&](std::string_view name) -> Status {
      const std::string_view prefix = xml::SplitQName(name).first;
      if (prefix.empty() || prefix == "xmlns" || name == "xmlns") return Status();
      if (!scope_.Lookup(prefix)) {
        return xml::ConfigError(
            field,
            "prefix " + Quoted(prefix) + " of <" + xml::Excerpt(qname, 60) + "> is not declared",
            "Declare it in the fragment, e.g. xmlns:" + xml::Excerpt(prefix, 60) +
                "=\"...\" (only \"" + std::string(kEnvPrefix) + "\" is predeclared).");
      }
      return Status();
    };
    WSSTEP_RETURN_IF_ERROR(check_prefix(qname));
    for (pugi::xml_attribute a : element.attributes()) {
      WSSTEP_RETURN_IF_ERROR(check_prefix(a.name()));
    }
    for (pugi::xml_node c : element.children()) {
      switch (c.type()) {
        case pugi::node_element:
          WSSTEP_RETURN_IF_ERROR(CheckFragmentElement(c, field));
          break;
        case pugi::node_pcdata:
        case pugi::node_cdata:
        case pugi::node_comment:
          WSSTEP_RETURN_IF_ERROR(CheckText(c.value(), field, "text"));
          break;
        default:
          return xml::ConfigError(field,
                                  "processing instructions and DOCTYPE are not allowed in "
                                  "a SOAP message");
      }
    }
    scope_.Release(mark);
    return Status();
  }

  Status AppendFragment(pugi::xml_node parent, std::string_view fragment, const std::string& field,
                        bool allow_empty) {
    WSSTEP_RETURN_IF_ERROR(CheckText(fragment, field, "XML"));
    pugi::xml_document frag;
    const unsigned flags = pugi::parse_default | pugi::parse_fragment | pugi::parse_pi |
                           pugi::parse_doctype | pugi::parse_declaration | pugi::parse_comments;
    const pugi::xml_parse_result parsed =
        frag.load_buffer(fragment.data(), fragment.size(), flags, pugi::encoding_utf8);
    if (!parsed) {
      return xml::ConfigError(
                 field,
                 "not well-formed XML at offset " + std::to_string(parsed.offset) + ": " +
                     parsed.description(),
                 "Fix the XML: every element closed, attributes quoted, '<' and '&' in "
                 "text written as &lt; and &amp;.")
          .With("offset", std::to_string(parsed.offset));
    }
    if (xml::ElementDepth(frag, xml::kMaxDepth) > xml::kMaxDepth) {
      return xml::ConfigError(
          field, "XML is nested deeper than " + std::to_string(xml::kMaxDepth) + " elements");
    }
    int elements = 0;
    for (pugi::xml_node c : frag.children()) {
      switch (c.type()) {
        case pugi::node_element:
          ++elements;
          WSSTEP_RETURN_IF_ERROR(CheckFragmentElement(c, field));
          break;
        case pugi::node_comment:
          WSSTEP_RETURN_IF_ERROR(CheckText(c.value(), field, "comment"));
          break;
        case pugi::node_pcdata:
        case pugi::node_cdata:
          return xml::ConfigError(field, "text outside an element is not allowed here",
                                  "Put the text inside an element.");
        default:
          return xml::ConfigError(field,
                                  "XML declarations, processing instructions and DOCTYPE "
                                  "are not allowed inside a SOAP message");
      }
    }
    if (elements == 0 && !allow_empty) {
      return xml::ConfigError(field, "contains no element");
    }
    for (pugi::xml_node c : frag.children()) parent.append_copy(c);
    return Status();
  }

  Status AppendSecurity(pugi::xml_node header, const Stamp& stamp) {
    const WsSecurity& sec = step_.security;
    pugi::xml_node security = header.append_child("wsse:Security");
    security.append_attribute("xmlns:wsse").set_value(std::string(kWsseNamespace).c_str());
    security.append_attribute("xmlns:wsu").set_value(std::string(kWsuNamespace).c_str());
    if (sec.must_understand) {
      security.append_attribute(Q(kEnvPrefix, "mustUnderstand").c_str())
          .set_value(step_.version == SoapVersion::k11 ? "1" : "true");
    }
    if (sec.timestamp.enabled || sign_timestamp_) {
      const int64_t ttl = sec.timestamp.ttl_seconds;
      if (ttl < 1 || ttl > kMaxTtlSeconds) {
        return xml::ConfigError("security.timestamp.ttl_seconds",
                                std::to_string(ttl) + " is out of range (1.." +
                                    std::to_string(kMaxTtlSeconds) + " seconds)");
      }
      pugi::xml_node ts = security.append_child("wsu:Timestamp");
      timestamp_ = ts;
      ts.append_child("wsu:Created").text().set(stamp.created.c_str());
      ts.append_child("wsu:Expires").text().set(stamp.expires.c_str());
    }
    if (!sec.username_token) return Status();
    const UsernameToken& token = *sec.username_token;
    const std::string username_field = "security.username_token.username";
    if (token.username.empty()) return xml::ConfigError(username_field, "is empty");
    WSSTEP_RETURN_IF_ERROR(CheckText(token.username, username_field, "text"));
    pugi::xml_node ut = security.append_child("wsse:UsernameToken");
    ut.append_child("wsse:Username").text().set(token.username.c_str());
    pugi::xml_node password = ut.append_child("wsse:Password");
    if (token.type == PasswordType::kText) {
      WSSTEP_RETURN_IF_ERROR(
          CheckText(token.password.view(), "security.username_token.password", "password"));
      password.append_attribute("Type").set_value(std::string(kPasswordTextType).c_str());
      secret_text_ = password.append_child(pugi::node_pcdata);
      // pugixml copies up to the terminator; the password has no NUL (checked above).
      std::string copy(token.password.view());
      secret_text_.set_value(copy.c_str());
      OPENSSL_cleanse(copy.data(), copy.size());
      return Status();
    }
    WSSTEP_ASSIGN_OR_RETURN(std::string digest,
                            PasswordDigest(stamp.nonce, stamp.created, token.password));
    password.append_attribute("Type").set_value(std::string(kPasswordDigestType).c_str());
    password.text().set(digest.c_str());
    pugi::xml_node nonce = ut.append_child("wsse:Nonce");
    nonce.append_attribute("EncodingType").set_value(std::string(kBase64BinaryEncoding).c_str());
    nonce.text().set(Base64Encode(stamp.nonce).c_str());
    ut.append_child("wsu:Created").text().set(stamp.created.c_str());
    return Status();
  }

  // The namespace of a header block's top element: declared on it, or the envelope's.
  std::string HeaderElementNamespace(pugi::xml_node element) const {
    const std::string_view prefix = xml::SplitQName(element.name()).first;
    const std::string decl = prefix.empty() ? "xmlns" : "xmlns:" + std::string(prefix);
    if (pugi::xml_attribute a = element.attribute(decl.c_str())) return a.value();
    if (prefix == kEnvPrefix) return env_ns_;
    return {};
  }

  // Gives `element` a wsu:Id (keeping one it already has) and records it for signing.
  Status MarkForSigning(pugi::xml_node element, std::string id, const std::string& field) {
    for (pugi::xml_attribute a : element.attributes()) {
      const auto [prefix, local] = xml::SplitQName(a.name());
      if (local != "Id" || prefix.empty()) continue;
      const std::string decl = "xmlns:" + std::string(prefix);
      pugi::xml_attribute ns = element.attribute(decl.c_str());
      if (ns && std::string_view(ns.value()) == kWsuNamespace) {
        signed_ids_.emplace_back(a.value());
        return Status();
      }
    }
    pugi::xml_attribute declared = element.attribute("xmlns:wsu");
    if (declared && std::string_view(declared.value()) != kWsuNamespace) {
      return xml::ConfigError(field, "the element binds prefix \"wsu\" to another namespace",
                              "Use another prefix for it: the signature marks the element "
                              "with wsu:Id.");
    }
    if (!declared && element != timestamp_) {
      element.append_attribute("xmlns:wsu").set_value(std::string(kWsuNamespace).c_str());
    }
    element.append_attribute("wsu:Id").set_value(id.c_str());
    signed_ids_.push_back(std::move(id));
    return Status();
  }

  Status MarkSignedParts(pugi::xml_node header, pugi::xml_node body) {
    const std::vector<std::string> parts = step_.security.signature->EffectiveParts();
    int header_count = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
      const std::string field = "security.signature.parts[" + std::to_string(i) + "]";
      const std::string& part = parts[i];
      for (size_t j = 0; j < i; ++j) {
        if (parts[j] == part) return xml::ConfigError(field, Quoted(part) + " is named twice");
      }
      if (part == kPartBody) {
        WSSTEP_RETURN_IF_ERROR(MarkForSigning(body, std::string(kBodyId), field));
        continue;
      }
      if (part == kPartTimestamp) {
        WSSTEP_RETURN_IF_ERROR(MarkForSigning(timestamp_, std::string(kTimestampId), field));
        continue;
      }
      // "{namespace}local" or "local": a top-level element of a header block.
      std::optional<std::string> ns;
      std::string local = part;
      if (part.starts_with("{")) {
        const size_t close = part.find('}');
        if (close == std::string::npos) {
          return xml::ConfigError(field, Quoted(part) + " has no closing '}'",
                                  "Write a header block as {namespace}name or name.");
        }
        ns = part.substr(1, close - 1);
        local = part.substr(close + 1);
      }
      pugi::xml_node found;
      for (pugi::xml_node c : header.children()) {
        if (c.type() != pugi::node_element) continue;
        const std::string_view name = c.name();
        if (name == "wsse:Security") continue;
        if (xml::SplitQName(name).second != local) continue;
        if (ns && HeaderElementNamespace(c) != *ns) continue;
        found = c;
        break;
      }
      if (!found) {
        return xml::ConfigError(field, "no header block " + Quoted(part) + " to sign",
                                "Name \"Body\", \"Timestamp\", or the element of one of the "
                                "step's header blocks, as name or {namespace}name.");
      }
      WSSTEP_RETURN_IF_ERROR(MarkForSigning(
          found, std::string(kHeaderIdPrefix) + std::to_string(header_count++), field));
    }
    return Status();
  }

  const SoapStep& step_;
  bool sign_timestamp_ = false;
  pugi::xml_node timestamp_;
  std::vector<std::string> signed_ids_;
  std::string env_ns_;
  xml::NamespaceScope scope_;
  pugi::xml_document doc_;
  pugi::xml_node secret_text_;
};

Result<Stamp> MakeStamp(const SoapStep& step, const core::Clock& clock, RandomSource& random) {
  Stamp stamp;
  const core::UnixSeconds now = clock();
  stamp.created = core::Iso8601Utc(now);
  const int64_t ttl = step.security.timestamp.ttl_seconds;
  if (ttl >= 1 && ttl <= kMaxTtlSeconds) stamp.expires = core::Iso8601Utc(now + ttl);
  const auto& token = step.security.username_token;
  if (token && token->type == PasswordType::kDigest) {
    WSSTEP_RETURN_IF_ERROR(random.Fill(stamp.nonce));
  }
  return stamp;
}

}  // namespace

std::string_view SoapVersionName(SoapVersion v) { return v == SoapVersion::k11 ? "1.1" : "1.2"; }

std::string_view EnvelopeNamespace(SoapVersion v) {
  return v == SoapVersion::k11 ? kSoap11Namespace : kSoap12Namespace;
}

BuiltEnvelope::~BuiltEnvelope() {
  if (contains_secret) OPENSSL_cleanse(body.data(), body.size());
}

Result<BuiltEnvelope> BuildEnvelope(const SoapStep& step, const core::Clock& clock,
                                    RandomSource& random) {
  WSSTEP_ASSIGN_OR_RETURN(Stamp stamp, MakeStamp(step, clock, random));
  Builder builder(step);
  WSSTEP_RETURN_IF_ERROR(builder.Build(stamp));
  BuiltEnvelope out;
  out.contains_secret = builder.contains_secret();
  out.signed_ids = builder.signed_ids();
  out.body = builder.Serialize();
  if (step.version == SoapVersion::k11) {
    out.content_type = "text/xml; charset=utf-8";
    out.headers.emplace_back("SOAPAction", "\"" + step.action + "\"");
  } else {
    out.content_type = "application/soap+xml; charset=utf-8";
    if (!step.action.empty()) out.content_type += "; action=\"" + step.action + "\"";
  }
  return out;
}

Status ValidateSoapStep(const SoapStep& step) {
  Stamp stamp;
  stamp.created = stamp.expires = core::Iso8601Utc(0);
  Builder builder(step);
  return builder.Build(stamp);
}

}  // namespace wsstep::soap

// Internal helpers shared by the envelope builder and the response parser: what XML 1.0
// can carry, XML names, namespace scopes over pugixml (which is not namespace-aware), and
// the short excerpts used in error messages. Not part of the soap/ public API.
#ifndef WSSTEP_SOAP_XML_UTIL_H_
#define WSSTEP_SOAP_XML_UTIL_H_

#include <optional>
#include <pugixml.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"

namespace wsstep::soap::xml {

inline constexpr std::string_view kXmlNamespace = "http://www.w3.org/XML/1998/namespace";
inline constexpr std::string_view kXmlnsNamespace = "http://www.w3.org/2000/xmlns/";
// Elements nested deeper than this are refused, in requests and in responses, so no
// recursive walk over a hostile tree can exhaust the stack, and so that every tree the
// plugin returns fits a host's protobuf parser: C++, Java, Go and Python all refuse
// messages nested deeper than 100, and a SOAP result's body tree sits 3 messages down
// (a deeper one reaches the host as a response it cannot read, not as an outcome).
inline constexpr int kMaxDepth = 64;

// nullopt if `text` is valid UTF-8 made only of XML 1.0 characters (tab, CR, LF,
// U+0020..U+D7FF, U+E000..U+FFFD, U+10000..U+10FFFF); otherwise what is wrong and where,
// e.g. "contains U+0001 at byte 5, which XML 1.0 cannot carry". Never quotes the text,
// so it is safe for passwords.
std::optional<std::string> TextProblem(std::string_view text);

// XML Namespaces NCName: an XML Name without colons.
bool IsNcName(std::string_view name);
// "prefix:local" or "local", both parts NCNames.
bool IsQName(std::string_view name);
// Splits a QName at its colon: {"", name} when unprefixed.
std::pair<std::string_view, std::string_view> SplitQName(std::string_view qname);

// In-scope namespace bindings while walking a tree: prefix ("" = default) -> URI.
// Innermost bindings last; Mark/Release scope them to one element.
class NamespaceScope {
 public:
  NamespaceScope();  // binds "xml" to its reserved namespace
  // The URI `prefix` is bound to, nullopt if unbound ("" for the default namespace when
  // none is declared, which means "no namespace").
  std::optional<std::string_view> Lookup(std::string_view prefix) const;
  // The innermost prefix other than "" currently bound to `uri`.
  std::optional<std::string_view> PrefixFor(std::string_view uri) const;
  void Bind(std::string prefix, std::string uri) {
    bindings_.emplace_back(std::move(prefix), std::move(uri));
  }
  size_t Mark() const { return bindings_.size(); }
  void Release(size_t mark) { bindings_.resize(mark); }
  // Pushes the xmlns / xmlns:p attributes declared on `element`.
  void BindDeclared(pugi::xml_node element);
  const std::vector<std::pair<std::string, std::string>>& bindings() const { return bindings_; }

 private:
  std::vector<std::pair<std::string, std::string>> bindings_;
};

// The greatest element nesting depth below `node` (an element directly below is depth 1),
// walked without recursion; stops counting once `limit` is exceeded.
int ElementDepth(pugi::xml_node node, int limit);

// Serializes `element` alone, without declaration or indentation, adding the namespace
// declarations it inherits from its ancestors (as recorded in `scope`, which must be the
// scope of its parent) so that the text stands on its own.
std::string SerializeStandalone(pugi::xml_node element, const NamespaceScope& scope);

// Serializes a whole document, with its declaration, without indentation.
std::string SerializeDocument(const pugi::xml_document& doc);

// At most `max_chars` characters from the start of `text` for an error message, control
// characters escaped (\n, \t, \xNN), invalid UTF-8 shown as \xNN, "..." when cut.
std::string Excerpt(std::string_view text, size_t max_chars = 200);

// INVALID_STEP_CONFIG "<field>: <problem>" with detail "field", side configuration: the
// shape of every step-configuration error soap/ reports.
Error ConfigError(std::string field, std::string problem, std::string hint = {});

// ASCII case-insensitive search; npos if absent.
size_t FindNoCase(std::string_view haystack, std::string_view needle, size_t from = 0);

}  // namespace wsstep::soap::xml

#endif  // WSSTEP_SOAP_XML_UTIL_H_

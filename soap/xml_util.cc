#include "soap/xml_util.h"

#include <cstdint>
#include <cstdio>

namespace wsstep::soap::xml {
namespace {

// Decodes one UTF-8 sequence at s[i], advancing i. Returns the code point, or -1 for an
// invalid sequence (bad lead byte, truncated, overlong, surrogate, above U+10FFFF), in
// which case i advances by one byte.
int32_t DecodeUtf8(std::string_view s, size_t& i) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  int len = 0;
  int32_t cp = 0;
  int32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    ++i;
    return -1;
  }
  if (i + len > s.size()) {
    ++i;
    return -1;
  }
  for (int k = 1; k < len; ++k) {
    const auto b = static_cast<uint8_t>(s[i + k]);
    if ((b & 0xC0) != 0x80) {
      ++i;
      return -1;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++i;
    return -1;
  }
  i += len;
  return cp;
}

bool IsXmlChar(int32_t c) {
  return c == 0x9 || c == 0xA || c == 0xD || (c >= 0x20 && c <= 0xD7FF) ||
         (c >= 0xE000 && c <= 0xFFFD) || (c >= 0x10000 && c <= 0x10FFFF);
}

bool IsNameStartChar(int32_t c) {
  return (c >= 'A' && c <= 'Z') || c == '_' || (c >= 'a' && c <= 'z') || (c >= 0xC0 && c <= 0xD6) ||
         (c >= 0xD8 && c <= 0xF6) || (c >= 0xF8 && c <= 0x2FF) || (c >= 0x370 && c <= 0x37D) ||
         (c >= 0x37F && c <= 0x1FFF) || (c >= 0x200C && c <= 0x200D) ||
         (c >= 0x2070 && c <= 0x218F) || (c >= 0x2C00 && c <= 0x2FEF) ||
         (c >= 0x3001 && c <= 0xD7FF) || (c >= 0xF900 && c <= 0xFDCF) ||
         (c >= 0xFDF0 && c <= 0xFFFD) || (c >= 0x10000 && c <= 0xEFFFF);
}

bool IsNameChar(int32_t c) {
  return IsNameStartChar(c) || c == '-' || c == '.' || (c >= '0' && c <= '9') || c == 0xB7 ||
         (c >= 0x300 && c <= 0x36F) || (c >= 0x203F && c <= 0x2040);
}

std::string CodePointName(int32_t c) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(c));
  return buf;
}

class StringWriter : public pugi::xml_writer {
 public:
  explicit StringWriter(std::string& out) : out_(out) {}
  void write(const void* data, size_t size) override {
    out_.append(static_cast<const char*>(data), size);
  }

 private:
  std::string& out_;
};

}  // namespace

std::optional<std::string> TextProblem(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const size_t at = i;
    const int32_t c = DecodeUtf8(text, i);
    if (c < 0) {
      return "is not valid UTF-8 at byte " + std::to_string(at);
    }
    if (!IsXmlChar(c)) {
      return "contains " + CodePointName(c) + " at byte " + std::to_string(at) +
             ", which XML 1.0 cannot carry";
    }
  }
  return std::nullopt;
}

bool IsNcName(std::string_view name) {
  if (name.empty()) return false;
  size_t i = 0;
  bool first = true;
  while (i < name.size()) {
    const int32_t c = DecodeUtf8(name, i);
    if (c < 0 || c == ':') return false;
    if (first ? !IsNameStartChar(c) : !IsNameChar(c)) return false;
    first = false;
  }
  return true;
}

std::pair<std::string_view, std::string_view> SplitQName(std::string_view qname) {
  const size_t colon = qname.find(':');
  if (colon == std::string_view::npos) return {std::string_view(), qname};
  return {qname.substr(0, colon), qname.substr(colon + 1)};
}

bool IsQName(std::string_view name) {
  const auto [prefix, local] = SplitQName(name);
  if (!IsNcName(local)) return false;
  return prefix.empty() ? name.find(':') == std::string_view::npos : IsNcName(prefix);
}

NamespaceScope::NamespaceScope() { Bind("xml", std::string(kXmlNamespace)); }

std::optional<std::string_view> NamespaceScope::Lookup(std::string_view prefix) const {
  for (auto it = bindings_.rbegin(); it != bindings_.rend(); ++it) {
    if (it->first == prefix) return std::string_view(it->second);
  }
  if (prefix.empty()) return std::string_view();
  return std::nullopt;
}

std::optional<std::string_view> NamespaceScope::PrefixFor(std::string_view uri) const {
  for (auto it = bindings_.rbegin(); it != bindings_.rend(); ++it) {
    // A prefix counts only if no inner binding shadows it.
    if (!it->first.empty() && it->second == uri && Lookup(it->first) == uri) {
      return std::string_view(it->first);
    }
  }
  return std::nullopt;
}

void NamespaceScope::BindDeclared(pugi::xml_node element) {
  for (pugi::xml_attribute a : element.attributes()) {
    const std::string_view name = a.name();
    if (name == "xmlns") {
      Bind("", a.value());
    } else if (name.starts_with("xmlns:")) {
      Bind(std::string(name.substr(6)), a.value());
    }
  }
}

int ElementDepth(pugi::xml_node node, int limit) {
  int depth = 0;
  int max_depth = 0;
  pugi::xml_node cur = node.first_child();
  if (!cur) return 0;
  depth = 1;
  while (cur) {
    if (cur.type() == pugi::node_element) {
      if (depth > max_depth) max_depth = depth;
      if (max_depth > limit) return max_depth;
      if (cur.first_child()) {
        cur = cur.first_child();
        ++depth;
        continue;
      }
    }
    while (cur && !cur.next_sibling()) {
      cur = cur.parent();
      --depth;
      if (cur == node) return max_depth;
    }
    if (cur) cur = cur.next_sibling();
  }
  return max_depth;
}

std::string SerializeStandalone(pugi::xml_node element, const NamespaceScope& scope) {
  pugi::xml_document doc;
  pugi::xml_node copy = doc.append_copy(element);
  // Innermost binding per prefix, outermost first, so the output reads naturally.
  std::vector<std::pair<std::string, std::string>> inherited;
  const auto& bindings = scope.bindings();
  for (auto it = bindings.rbegin(); it != bindings.rend(); ++it) {
    if (it->first == "xml") continue;
    bool seen = false;
    for (const auto& b : inherited) seen = seen || b.first == it->first;
    if (!seen) inherited.push_back(*it);
  }
  for (const auto& [prefix, uri] : inherited) {
    const std::string attr = prefix.empty() ? "xmlns" : "xmlns:" + prefix;
    if (copy.attribute(attr.c_str())) continue;   // redeclared on the element itself
    if (prefix.empty() && uri.empty()) continue;  // no default namespace: nothing to say
    copy.prepend_attribute(attr.c_str()).set_value(uri.c_str());
  }
  std::string out;
  StringWriter writer(out);
  doc.save(writer, "", pugi::format_raw | pugi::format_no_declaration, pugi::encoding_utf8);
  return out;
}

std::string SerializeDocument(const pugi::xml_document& doc) {
  std::string out;
  StringWriter writer(out);
  doc.save(writer, "", pugi::format_raw, pugi::encoding_utf8);
  return out;
}

std::string Excerpt(std::string_view text, size_t max_chars) {
  // Escaped pieces with their width in characters, until the text ends or overflows.
  std::vector<std::pair<std::string, size_t>> pieces;
  size_t chars = 0;
  size_t i = 0;
  while (i < text.size() && chars <= max_chars) {
    const size_t at = i;
    const int32_t c = DecodeUtf8(text, i);
    std::string piece;
    if (c == '\n') {
      piece = "\\n";
    } else if (c == '\r') {
      piece = "\\r";
    } else if (c == '\t') {
      piece = "\\t";
    } else if (c < 0x20 || c == 0x7F) {  // also c < 0: invalid UTF-8
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X",
                    static_cast<unsigned>(static_cast<uint8_t>(text[at])));
      piece = buf;
    } else {
      piece.assign(text.substr(at, i - at));
    }
    const size_t width = (c >= 0x20 && c != 0x7F) ? 1 : piece.size();
    chars += width;
    pieces.emplace_back(std::move(piece), width);
  }
  const bool cut = i < text.size() || chars > max_chars;
  if (cut) {
    const size_t budget = max_chars > 3 ? max_chars - 3 : 0;
    while (!pieces.empty() && chars > budget) {
      chars -= pieces.back().second;
      pieces.pop_back();
    }
  }
  std::string out;
  for (const auto& p : pieces) out += p.first;
  if (cut) out += "...";
  return out;
}

Error ConfigError(std::string field, std::string problem, std::string hint) {
  Error e(Code::kInvalidStepConfig, field + ": " + problem, std::move(hint), Side::kConfiguration);
  e.With("field", std::move(field));
  return e;
}

size_t FindNoCase(std::string_view haystack, std::string_view needle, size_t from) {
  auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
  if (needle.size() > haystack.size()) return std::string_view::npos;
  for (size_t i = from; i + needle.size() <= haystack.size(); ++i) {
    size_t k = 0;
    while (k < needle.size() && lower(haystack[i + k]) == lower(needle[k])) ++k;
    if (k == needle.size()) return i;
  }
  return std::string_view::npos;
}

}  // namespace wsstep::soap::xml

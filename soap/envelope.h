// SOAP 1.1 / 1.2 request envelopes (PRODUCT.md §3): the step's request model and the
// builder that turns it into the bytes, Content-Type and headers of one HTTP POST.
//
// Usage:
//   soap::SoapStep step;
//   step.version = soap::SoapVersion::k12;
//   step.action = "urn:example:GetPrice";
//   soap::SoapOperation op{.name = "GetPrice", .ns = "urn:example", .prefix = "m"};
//   op.parameters.push_back({.name = "Item", .text = "apple"});
//   step.body = std::move(op);
//   Result<soap::BuiltEnvelope> built =
//       soap::BuildEnvelope(step, core::SystemClock(), soap::SystemRandom());
//
// The envelope is built with pugixml's DOM; user text is never concatenated into XML, so
// `<`, `&`, `]]>` and quotes arrive as the characters they are. Whatever XML 1.0 cannot
// carry (C0 controls other than tab/CR/LF, U+FFFE/U+FFFF, lone surrogates, invalid
// UTF-8) and names that are not XML names are refused with INVALID_STEP_CONFIG naming
// the field (Error::detail["field"]), e.g. "parameters.order.items[2].name".
//
// Field paths: "parameters" then one segment per element, its name, with "[k]" (0-based)
// when that name repeats among its siblings, or "#i" (position) when the name itself is
// invalid. Attributes add "@name"; ".namespace" / ".prefix" name those fields. Other
// fields: "action", "operation.name", "operation.namespace", "operation.prefix", "body",
// "header_blocks[i]", "security.username_token.username",
// "security.username_token.password", "security.timestamp.ttl_seconds",
// "security.signature.parts[i]".
//
// Note: XML parsers turn a CR in element text into LF (XML end-of-line handling), so a CR
// in a text value reaches the service as LF; in attribute values it is kept (&#13;).
#ifndef WSSTEP_SOAP_ENVELOPE_H_
#define WSSTEP_SOAP_ENVELOPE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/error.h"
#include "core/model.h"
#include "core/secret.h"
#include "soap/signature.h"
#include "soap/wssecurity.h"

namespace wsstep::soap {

enum class SoapVersion { k11, k12 };
std::string_view SoapVersionName(SoapVersion v);    // "1.1", "1.2"
std::string_view EnvelopeNamespace(SoapVersion v);  // the Envelope's namespace URI

inline constexpr std::string_view kSoap11Namespace = "http://schemas.xmlsoap.org/soap/envelope/";
inline constexpr std::string_view kSoap12Namespace = "http://www.w3.org/2003/05/soap-envelope";

// An attribute of a parameter element, written in the order given.
struct XmlAttribute {
  std::string name{};    // NCName, without prefix
  std::string ns{};      // namespace URI; empty: no namespace (the usual case)
  std::string prefix{};  // optional; a namespaced attribute without one gets a generated prefix
  std::string value{};
};

// One parameter element. Repeated elements are repeated children with the same name.
struct XmlNode {
  std::string name{};  // NCName, without prefix
  // nullopt: the parent's namespace (the operation's for top-level parameters), which is
  // what services with elementFormDefault="qualified" expect; "": no namespace
  // (unqualified children, as rpc-style and many JAX-WS services expect); else that URI.
  std::optional<std::string> ns{};
  std::string prefix{};  // optional; reuses an in-scope prefix or the default namespace if empty
  std::vector<XmlAttribute> attributes{};
  std::string text{};  // character data, written before the children
  std::vector<XmlNode> children{};
};

// The body as one operation element with parameters.
struct SoapOperation {
  std::string name{};    // NCName
  std::string ns{};      // namespace URI of the operation element (may be empty)
  std::string prefix{};  // optional: "m" gives <m:GetPrice xmlns:m="...">; else xmlns="..."
  std::vector<XmlNode> parameters{};
};

// The body as a designer-written XML fragment: zero or more elements (and comments),
// placed inside soap:Body as given. Checked to be well-formed, to carry only XML 1.0
// characters, to use only declared prefixes ("soap" is the envelope's), and to hold no
// DOCTYPE, processing instruction or top-level text.
struct RawXml {
  std::string xml{};
};

enum class PasswordType { kText, kDigest };

struct UsernameToken {
  std::string username{};
  SecretBytes password{};
  PasswordType type = PasswordType::kText;
};

struct WsTimestamp {
  bool enabled = false;
  int64_t ttl_seconds = 300;  // Expires = Created + ttl; 1 s .. 7 days
};

// WS-Security 1.0 (UsernameToken Profile 1.0, X.509 Token Profile). A Security header is
// written when a username token, a timestamp or a signature is configured.
struct WsSecurity {
  std::optional<UsernameToken> username_token{};
  WsTimestamp timestamp{};
  // Sign the message with the certificate bound to the endpoint (soap/signature.h). The
  // builder marks each part with a wsu:Id (BuiltEnvelope::signed_ids) and adds a
  // Timestamp when one is signed; SoapClient signs once the endpoint's identity is known.
  std::optional<SignatureOptions> signature{};
  bool must_understand = true;  // soap:mustUnderstand="1" (1.1) / "true" (1.2) on Security
};

// A SOAP step's request. Move-only (the password is a SecretBytes).
struct SoapStep {
  std::string endpoint{};  // the URL the REST engine posts to; not used by BuildEnvelope
  SoapVersion version = SoapVersion::k11;
  // The SOAP action URI. Visible ASCII only, no '"' and no '\' (a URI never needs them),
  // so it can be put between quotes in a header unchanged; anything else is refused.
  std::string action{};
  std::variant<SoapOperation, RawXml> body{};
  std::vector<std::string> header_blocks{};  // raw fragments, checked like RawXml
  WsSecurity security{};
};

struct BuiltEnvelope {
  std::string body{};          // UTF-8 XML with declaration, no indentation
  std::string content_type{};  // 1.1: text/xml; charset=utf-8
                               // 1.2: application/soap+xml; charset=utf-8; action="..."
  // Extra request headers: 1.1 `SOAPAction: "<action>"` (quoted, also when empty);
  // 1.2 none (an empty action leaves the action parameter out of the Content-Type).
  std::vector<std::pair<std::string, std::string>> headers{};
  // The body carries a PasswordText password: never log it. Wiped on destruction.
  bool contains_secret = false;
  // With a signature: the wsu:Id of each part to sign, in the order the step names them.
  std::vector<std::string> signed_ids{};

  BuiltEnvelope() = default;
  BuiltEnvelope(BuiltEnvelope&&) = default;
  BuiltEnvelope& operator=(BuiltEnvelope&&) = default;
  BuiltEnvelope(const BuiltEnvelope&) = delete;
  BuiltEnvelope& operator=(const BuiltEnvelope&) = delete;
  ~BuiltEnvelope();
};

// Builds the request. `clock` gives wsu:Created (UTC, whole seconds,
// "YYYY-MM-DDTHH:MM:SSZ"); `random` gives the 16-byte UsernameToken nonce. Errors:
// INVALID_STEP_CONFIG naming the field, as described at the top of this file.
Result<BuiltEnvelope> BuildEnvelope(const SoapStep& step, const core::Clock& clock,
                                    RandomSource& random);

// Checks a step as BuildEnvelope would, without a clock or randomness: for design-time
// validation.
Status ValidateSoapStep(const SoapStep& step);

}  // namespace wsstep::soap

#endif  // WSSTEP_SOAP_ENVELOPE_H_

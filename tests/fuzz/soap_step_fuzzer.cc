// SOAP step configuration (soap::ValidateSoapStep and soap::BuildEnvelope): operation
// and parameter names, namespaces and prefixes, attribute values, raw XML bodies and
// header blocks, the action, WS-Security. Properties: validation and building agree; a
// built envelope reads back as a SOAP envelope of its version; a digest password never
// appears in the envelope and no password appears in an error.
//
// Input: "name=value" lines (tests/fuzz/fuzz_util.h), e.g.
//   version=1.2
//   action=urn:example:GetPrice
//   op.name=GetPrice
//   op.ns=urn:example
//   op.prefix=m
//   param=Item:apple            (a parameter element and its text; name up to ':')
//   param.ns=                   (the last parameter's namespace; "" = none)
//   attr=currency=EUR           (an attribute of the last parameter)
//   child=Size:large            (a child element of the last parameter)
//   raw=<m:Ping xmlns:m="urn:x"/>   (the body as raw XML instead of the operation)
//   header_block=<h:Trace xmlns:h="urn:t">1</h:Trace>
//   username=alice  password=...  digest=1  timestamp=300  must_understand=0
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "soap/envelope.h"
#include "soap/response.h"
#include "tests/fuzz/fuzz_util.h"

using namespace wsstep;
using namespace wsstep::soap;

namespace {

// Nonces without the system RNG, so runs reproduce.
class CountingRandom : public RandomSource {
 public:
  Status Fill(std::span<uint8_t> out) override {
    for (uint8_t& b : out) b = static_cast<uint8_t>(next_++);
    return Status();
  }

 private:
  unsigned next_ = 1;
};

struct Parsed {
  SoapStep step;
  std::string password;
};

// vary_password: the password replaced by its fuzz::SecretVariant.
Parsed Build(std::string_view input, bool vary_password = false) {
  Parsed p;
  SoapStep& s = p.step;
  SoapOperation op;
  std::optional<std::string> raw;
  std::optional<UsernameToken> token;
  for (const fuzz::Field& f : fuzz::ParseFields(input)) {
    const std::string& n = f.name;
    const std::string& v = f.value;
    XmlNode* last = op.parameters.empty() ? nullptr : &op.parameters.back();
    if (n == "version") {
      s.version = v == "1.2" ? SoapVersion::k12 : SoapVersion::k11;
    } else if (n == "action") {
      s.action = v;
    } else if (n == "op.name") {
      op.name = v;
    } else if (n == "op.ns") {
      op.ns = v;
    } else if (n == "op.prefix") {
      op.prefix = v;
    } else if (n == "param") {
      auto [name, text] = fuzz::NameValue(v, ":");
      op.parameters.push_back(XmlNode{.name = name, .text = text});
    } else if (n == "raw") {
      raw = v;
    } else if (n == "header_block") {
      s.header_blocks.push_back(v);
    } else if (n == "timestamp") {
      s.security.timestamp.enabled = true;
      s.security.timestamp.ttl_seconds = fuzz::ParseInt(v);
    } else if (n == "must_understand") {
      s.security.must_understand = fuzz::ParseBool(v);
    } else if (n == "username" || n == "password" || n == "digest") {
      if (!token) token.emplace();
      if (n == "username") {
        token->username = v;
      } else if (n == "password") {
        p.password = vary_password ? fuzz::SecretVariant(v) : v;
        token->password = SecretBytes(p.password);
      } else {
        token->type = fuzz::ParseBool(v) ? PasswordType::kDigest : PasswordType::kText;
      }
    } else if (last == nullptr) {
      continue;  // the remaining fields qualify the last parameter
    } else if (n == "param.ns") {
      last->ns = v;
    } else if (n == "param.prefix") {
      last->prefix = v;
    } else if (n == "attr") {
      auto [name, value] = fuzz::NameValue(v, "=");
      last->attributes.push_back({.name = name, .value = value});
    } else if (n == "attr.ns" && !last->attributes.empty()) {
      last->attributes.back().ns = v;
    } else if (n == "attr.prefix" && !last->attributes.empty()) {
      last->attributes.back().prefix = v;
    } else if (n == "child") {
      auto [name, text] = fuzz::NameValue(v, ":");
      last->children.push_back(XmlNode{.name = name, .text = text});
    } else if (n == "child.ns" && !last->children.empty()) {
      last->children.back().ns = v;
    }
  }
  if (raw) {
    s.body = RawXml{*raw};
  } else {
    s.body = std::move(op);
  }
  s.security.username_token = std::move(token);
  return p;
}

BuiltEnvelope BuildOrDie(const SoapStep& step) {
  CountingRandom random;
  Result<BuiltEnvelope> built = BuildEnvelope(
      step, [] { return core::UnixSeconds{1767225600}; }, random);
  if (!built.ok()) fuzz::Fail("BuildEnvelope failed for a step it built before");
  return std::move(built).value();
}

// A PasswordDigest envelope must not carry the password. The password text may also be
// spelled by the envelope's own markup or other values, so the check is differential: a
// leak is where the envelope built with the SecretVariant password carries the variant
// at the very offset the original carries the original (the nonce and the digest have
// fixed lengths, so offsets line up).
void CheckDigestHidesPassword(const Parsed& p, const BuiltEnvelope& env, std::string_view input) {
  std::string variant_password = fuzz::SecretVariant(p.password);
  if (p.password.size() < 4 || variant_password == p.password) return;
  Parsed variant = Build(input, /*vary_password=*/true);
  BuiltEnvelope other = BuildOrDie(variant.step);
  for (size_t at = env.body.find(p.password); at != std::string::npos;
       at = env.body.find(p.password, at + 1)) {
    if (at < other.body.size() &&
        other.body.compare(at, variant_password.size(), variant_password) == 0) {
      fuzz::Fail("a PasswordDigest envelope carries the plain password");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Parsed p = Build(fuzz::AsView(data, size));
  const SoapStep& step = p.step;

  Status valid = ValidateSoapStep(step);
  CountingRandom random;
  Result<BuiltEnvelope> built = BuildEnvelope(
      step, [] { return core::UnixSeconds{1767225600}; }, random);
  fuzz::Note("BuildEnvelope", built);
  if (valid.ok() != built.ok()) fuzz::Fail("ValidateSoapStep and BuildEnvelope disagree");
  if (!valid.ok()) {
    const Error& e = valid.error();
    if (e.code != Code::kInvalidStepConfig || !e.detail.contains("field")) {
      fuzz::Fail("a step error without INVALID_STEP_CONFIG and its field");
    }
    if (built.error().detail.at("field") != e.detail.at("field")) {
      fuzz::Fail("ValidateSoapStep and BuildEnvelope blame different fields");
    }
    // The same step with another password (same length and shape) must fail the same way.
    Parsed variant = Build(fuzz::AsView(data, size), /*vary_password=*/true);
    fuzz::SameError(valid, ValidateSoapStep(variant.step));
    return 0;
  }
  const BuiltEnvelope& env = *built;
  if (step.security.username_token && step.security.username_token->type == PasswordType::kDigest) {
    CheckDigestHidesPassword(p, env, std::string_view(reinterpret_cast<const char*>(data), size));
  }
  Result<SoapResponse> back =
      ParseResponse(200, env.content_type, env.body, step.version, env.body.size() + 1);
  fuzz::Note("ParseResponse(built)", back);
  if (!back.ok() && back.error().message.find("deeper") == std::string::npos) {
    fuzz::Fail("a built envelope does not read back as SOAP " +
               std::string(SoapVersionName(step.version)) + ": " + back.error().message);
  }
  return 0;
}

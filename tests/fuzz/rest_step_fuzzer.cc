// REST step configuration checks (rest::RestEngine::Validate: method, URL, headers,
// query, auth, TLS options), then what the engine does with a step that passed before
// anything is sent: appending the query (and a query API key) to the URL, parsing the
// result, and swapping in tls_server_name.
//
// Input: "name=value" lines (tests/fuzz/fuzz_util.h), e.g.
//   method=POST
//   url=https://api.example.com/v1/items?x=1
//   header=X-Request-Id:42          (name up to the first ':')
//   query=page=2                    (name up to the first '=')
//   auth=basic                      (none|basic|bearer|api_key|api_key_query|oauth2)
//   auth.username=alice
//   auth.password=s3cret
//   tls.ssl_verification=1
// Every RestStep field has a line; see Apply below for the names.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string_view>

#include "rest/engine.h"
#include "rest/http_text.h"
#include "rest/tls_util.h"
#include "tests/fuzz/fuzz_util.h"

using namespace wsstep;
using namespace wsstep::rest;

namespace {

struct AuthFields {
  std::string type = "none";
  std::string username, password, token, name, value, token_url, client_id, client_secret, scope,
      audience;
};

void Apply(const fuzz::Field& f, RestStep& s, AuthFields& a) {
  const std::map<std::string_view, std::string*> text = {
      {"method", &s.method},
      {"url", &s.url},
      {"body", &s.body},
      {"content_type", &s.content_type},
      {"auth", &a.type},
      {"auth.username", &a.username},
      {"auth.password", &a.password},
      {"auth.token", &a.token},
      {"auth.name", &a.name},
      {"auth.value", &a.value},
      {"auth.token_url", &a.token_url},
      {"auth.client_id", &a.client_id},
      {"auth.client_secret", &a.client_secret},
      {"auth.scope", &a.scope},
      {"auth.audience", &a.audience},
      {"tls.certificate_name", &s.tls.certificate_name},
      {"tls.environment", &s.tls.environment},
      {"tls.tls_server_name", &s.tls.tls_server_name},
      {"tls.min_tls_version", &s.tls.min_tls_version},
      {"tls.pinned_public_key", &s.tls.pinned_public_key},
      {"step_id", &s.step_id},
      {"workflow_id", &s.workflow_id},
  };
  const std::map<std::string_view, bool*> flags = {
      {"tls.ssl_verification", &s.tls.ssl_verification},
      {"tls.verify_peer", &s.tls.verify_peer},
      {"tls.verify_host", &s.tls.verify_host},
      {"tls.private_trust_only", &s.tls.private_trust_only},
      {"follow_redirects", &s.follow_redirects},
      {"reuse_connections", &s.reuse_connections},
      {"resume_tls_sessions", &s.resume_tls_sessions},
  };
  const std::string& v = f.value;
  if (auto it = text.find(f.name); it != text.end()) {
    *it->second = v;
  } else if (auto flag = flags.find(f.name); flag != flags.end()) {
    *flag->second = fuzz::ParseBool(v);
  } else if (f.name == "header") {
    auto [name, value] = fuzz::NameValue(v, ":");
    s.headers.push_back({name, value});
  } else if (f.name == "query") {
    auto [name, value] = fuzz::NameValue(v, "=");
    s.query.push_back({name, value});
  } else if (f.name == "timeouts.connect_ms") {
    s.timeouts.connect = std::chrono::milliseconds(fuzz::ParseInt(v));
  } else if (f.name == "timeouts.total_ms") {
    s.timeouts.total = std::chrono::milliseconds(fuzz::ParseInt(v));
  } else if (f.name == "max_redirects") {
    s.max_redirects = static_cast<int>(fuzz::ParseInt(v));
  } else if (f.name == "max_response_bytes") {
    s.max_response_bytes = static_cast<size_t>(fuzz::ParseInt(v));
  }
}

Auth MakeAuth(const AuthFields& a) {
  if (a.type == "basic") return BasicAuth{a.username, SecretBytes(a.password)};
  if (a.type == "bearer") return BearerAuth{SecretBytes(a.token)};
  if (a.type == "api_key") return ApiKeyAuth{a.name, SecretBytes(a.value), ApiKeyLocation::kHeader};
  if (a.type == "api_key_query") {
    return ApiKeyAuth{a.name, SecretBytes(a.value), ApiKeyLocation::kQuery};
  }
  if (a.type == "oauth2") {
    return OAuth2ClientCredentials{a.token_url, a.client_id, SecretBytes(a.client_secret), a.scope,
                                   a.audience};
  }
  return NoAuth{};
}

// Validate builds no connection; one engine with one idle worker serves every input.
const RestEngine& Engine() {
  static RestEngine* engine = [] {
    EngineOptions options;
    options.workers = 1;
    return new RestEngine(std::move(options));
  }();
  return *engine;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// What Run() does with a valid step before the first byte goes out; none of it may fail
// or move the request to another origin than the one credentials were resolved for.
void CheckValidStep(const RestStep& s, const AuthFields& a) {
  Result<UrlParts> origin = ParseHttpUrl(s.url);
  if (!origin.ok()) fuzz::Fail("Validate accepted a URL ParseHttpUrl refuses");
  std::vector<QueryParam> query = s.query;
  if (a.type == "api_key_query") query.push_back({a.name, a.value});
  Result<std::string> url = AppendQuery(s.url, query);
  if (!url.ok()) fuzz::Fail("a valid step's query cannot be appended");
  Result<UrlParts> sent = ParseHttpUrl(*url);
  if (!sent.ok()) fuzz::Fail("the URL with the query appended does not parse");
  if (sent->Origin() != origin->Origin()) fuzz::Fail("appending the query changed the origin");
  if (!s.tls.tls_server_name.empty()) {
    Result<std::string> renamed = ReplaceHost(*url, s.tls.tls_server_name);
    if (renamed.ok()) {
      Result<UrlParts> target = ParseHttpUrl(*renamed);
      if (!target.ok()) fuzz::Fail("the URL with tls_server_name does not parse");
      std::string want = Lower(s.tls.tls_server_name);
      if (!want.empty() && want.back() == '.') want.pop_back();
      if (target->host != want || target->port != origin->port) {
        fuzz::Fail("tls_server_name did not become the host, or the port changed");
      }
    }
  }
  if (!s.tls.pinned_public_key.empty()) {
    Result<std::string> pin = NormalizePin(s.tls.pinned_public_key);
    if (!pin.ok()) fuzz::Fail("Validate accepted a pin NormalizePin refuses");
    Result<std::string> again = NormalizePin(*pin);
    if (!again.ok() || *again != *pin) fuzz::Fail("NormalizePin is not idempotent");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<fuzz::Field> fields = fuzz::ParseFields(fuzz::AsView(data, size));
  RestStep step;
  AuthFields auth;
  for (const fuzz::Field& f : fields) Apply(f, step, auth);
  step.auth = MakeAuth(auth);

  Status valid = Engine().Validate(step);
  fuzz::Note("Validate", valid);
  if (valid.ok()) {
    CheckValidStep(step, auth);
  } else {
    const Error& e = valid.error();
    if (e.code != Code::kInvalidStepConfig)
      fuzz::Fail("Validate failed without INVALID_STEP_CONFIG");
    if (!e.detail.contains("field")) fuzz::Fail("INVALID_STEP_CONFIG without detail field");
  }

  // The same step with other secrets (same length and shape) must fail the same way.
  AuthFields other = auth;
  for (std::string* secret : {&other.password, &other.token, &other.value, &other.client_secret}) {
    *secret = fuzz::SecretVariant(*secret);
  }
  step.auth = MakeAuth(other);
  fuzz::SameError(valid, Engine().Validate(step));
  return 0;
}

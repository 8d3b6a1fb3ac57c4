#include "plugin/adapters/step_convert.h"

#include <algorithm>
#include <cctype>

#include "plugin/adapters/proto_convert.h"
#include "plugin/process/utf8.h"
#include "plugin/server/status_map.h"
#include "rest/http_text.h"

namespace wsstep::plugin {
namespace {

Error Invalid(std::string field, std::string message) {
  return Error(Code::kInvalidStepConfig, field + ": " + message, {}, Side::kConfiguration)
      .With("field", field);
}

// Far beyond any real API and far below what makes a server refuse the request (nginx
// answers 400 past 32 KiB of headers by default) or the plugin build megabytes of header
// text per step: a request carrying more is a configuration error, not a transfer to try.
constexpr int kMaxHeaders = 1000;
constexpr size_t kMaxHeaderBytes = 256 * 1024;

Status CheckHeaderVolume(const google::protobuf::RepeatedPtrField<v1::Header>& headers,
                         const std::string& field) {
  if (headers.size() > kMaxHeaders) {
    return Error(Code::kInvalidStepConfig,
                 field + ": " + std::to_string(headers.size()) + " headers, above the limit of " +
                     std::to_string(kMaxHeaders),
                 "Send fewer headers; nothing was sent.", Side::kConfiguration)
        .With("field", field)
        .With("limit", std::to_string(kMaxHeaders));
  }
  size_t bytes = 0;
  for (const auto& h : headers) bytes += h.name().size() + h.value().size();
  if (bytes > kMaxHeaderBytes) {
    return Error(Code::kInvalidStepConfig,
                 field + ": " + std::to_string(bytes) + " bytes of headers, above the limit of " +
                     std::to_string(kMaxHeaderBytes),
                 "Move large values into the body; nothing was sent.", Side::kConfiguration)
        .With("field", field)
        .With("limit", std::to_string(kMaxHeaderBytes));
  }
  return Status();
}

// Longer URLs are refused by servers (nginx: 8 KiB request lines) long before this. The
// URL's syntax is the engine's to check, once (rest::RestEngine::Prepare, before the
// certificate is resolved: a host name longer than DNS allows never reaches the store).
constexpr size_t kMaxUrlBytes = 64 * 1024;

Status CheckUrl(const std::string& url, const std::string& field) {
  if (url.size() > kMaxUrlBytes) {
    return Error(Code::kInvalidStepConfig,
                 field + ": " + std::to_string(url.size()) + " bytes, above the limit of " +
                     std::to_string(kMaxUrlBytes),
                 "Give the endpoint's URL; send data in the body or query parameters.",
                 Side::kConfiguration)
        .With("field", field);
  }
  return Status();
}

// What a request body (or the part of a SOAP envelope the step gives verbatim) may not
// exceed: refused before anything is built or sent.
// `size` says what is too large, e.g. "9000000 bytes".
Error BodyTooLarge(const std::string& field, const std::string& size, const StepLimits& limits) {
  return Error(Code::kInvalidStepConfig,
               field + ": " + size + ", above the plugin's max_body_bytes of " +
                   std::to_string(limits.max_body_bytes),
               "Send a smaller body, or raise limits.max_body_bytes in the plugin's "
               "configuration; nothing was sent.",
               Side::kConfiguration)
      .With("field", field)
      .With("limit", std::to_string(limits.max_body_bytes));
}

std::string Replace(std::string_view field, std::string_view from, std::string_view to) {
  if (!field.starts_with(from)) return std::string(field);
  return std::string(to) + std::string(field.substr(from.size()));
}

std::chrono::milliseconds FromDuration(const google::protobuf::Duration& d) {
  return std::chrono::milliseconds(d.seconds() * 1000 + d.nanos() / 1'000'000);
}

void SetDuration(int64_t us, google::protobuf::Duration* out) {
  out->set_seconds(us / 1'000'000);
  out->set_nanos(static_cast<int32_t>((us % 1'000'000) * 1000));
}

bool IsHexPin(std::string_view pin) {
  int digits = 0;
  for (char c : pin) {
    if (std::isxdigit(static_cast<unsigned char>(c))) {
      ++digits;
    } else if (c != ':' && c != ' ') {
      return false;
    }
  }
  return digits == 64;
}

// The proto allows bare base64 pins; the engine wants "sha256//" or hex.
std::string NormalizeProtoPins(std::string_view pins) {
  std::string out;
  size_t start = 0;
  while (start <= pins.size()) {
    size_t end = pins.find(';', start);
    if (end == std::string_view::npos) end = pins.size();
    std::string_view one = pins.substr(start, end - start);
    while (!one.empty() && one.front() == ' ') one.remove_prefix(1);
    while (!one.empty() && one.back() == ' ') one.remove_suffix(1);
    if (!one.empty()) {
      if (!out.empty()) out += ';';
      if (!one.starts_with("sha256//") && !IsHexPin(one)) out += "sha256//";
      out += one;
    }
    start = end + 1;
  }
  return out;
}

soap::XmlNode NodeFromProto(const v1::XmlElement& e) {
  soap::XmlNode n;
  n.name = e.name();
  if (!e.namespace_uri().empty()) n.ns = e.namespace_uri();
  if (e.unqualified()) n.ns = "";  // no namespace, whatever namespace_uri says
  for (const auto& a : e.attributes()) {
    n.attributes.push_back({.name = a.name(), .ns = a.namespace_uri(), .prefix = {}, .value = a.value()});
  }
  if (e.nil()) {
    n.attributes.push_back({.name = "nil",
                            .ns = "http://www.w3.org/2001/XMLSchema-instance",
                            .prefix = "xsi",
                            .value = "true"});
  } else {
    n.text = e.text();
    for (const auto& c : e.children()) n.children.push_back(NodeFromProto(c));
  }
  return n;
}

void ElementToProto(const soap::XmlElement& e, v1::XmlElement* out) {
  out->set_name(ValidUtf8(e.name));
  out->set_namespace_uri(ValidUtf8(e.ns));
  for (const auto& [name, value] : e.attributes) {
    const auto colon = name.find(':');
    if (colon != std::string::npos && name.substr(colon + 1) == "nil" && value == "true") {
      out->set_nil(true);
      continue;
    }
    auto* a = out->add_attributes();
    a->set_name(ValidUtf8(name));
    a->set_value(ValidUtf8(value));
  }
  out->set_text(ValidUtf8(e.text));
  for (const auto& c : e.children) ElementToProto(c, out->add_children());
}

}  // namespace

std::string RestFieldToProto(std::string_view field) {
  if (field == "max_redirects") return "redirects.max_redirects";
  if (field.starts_with("auth.oauth2.")) {
    return Replace(field, "auth.oauth2.", "auth.oauth2_client_credentials.");
  }
  if (field == "tls.certificate_name") return "tls.certificate";
  return std::string(field);
}

std::string SoapFieldToProto(std::string_view field) {
  if (field.starts_with("transport.")) {
    std::string rest = RestFieldToProto(field.substr(10));
    return Replace(rest, "headers[", "http_headers[");
  }
  if (field == "body") return "raw_body";
  if (field == "operation.namespace") return "operation.namespace_uri";
  if (field.starts_with("parameters")) return "operation." + std::string(field);
  if (field == "security.timestamp.ttl_seconds") return "ws_security.timestamp_ttl";
  if (field.starts_with("security.")) return Replace(field, "security.", "ws_security.");
  if (field.starts_with("headers[")) return Replace(field, "headers[", "http_headers[");
  return RestFieldToProto(field);
}

Error TranslateField(Error e, std::string (*translate)(std::string_view)) {
  auto it = e.detail.find("field");
  if (it == e.detail.end()) return e;
  const std::string old = it->second;
  it->second = translate(old);
  if (old != it->second && e.message.starts_with(old + ":")) {
    e.message = it->second + e.message.substr(old.size());
  }
  return e;
}

Result<rest::RestStep> TransportFromProto(const v1::HttpAuth& auth, const v1::TlsOptions& tls,
                                          const v1::Timeouts& timeouts,
                                          const v1::RedirectPolicy& redirects,
                                          int64_t max_response_bytes,
                                          const std::string& environment,
                                          const StepLimits& limits) {
  rest::RestStep s;
  switch (auth.method_case()) {
    case v1::HttpAuth::kBasic:
      s.auth = rest::BasicAuth{auth.basic().username(), SecretBytes(auth.basic().password())};
      break;
    case v1::HttpAuth::kBearer:
      s.auth = rest::BearerAuth{SecretBytes(auth.bearer().token())};
      break;
    case v1::HttpAuth::kApiKey:
      s.auth = rest::ApiKeyAuth{auth.api_key().name(), SecretBytes(auth.api_key().value()),
                                auth.api_key().location() == v1::ApiKeyAuth::LOCATION_QUERY
                                    ? rest::ApiKeyLocation::kQuery
                                    : rest::ApiKeyLocation::kHeader};
      break;
    case v1::HttpAuth::kOauth2ClientCredentials: {
      const auto& o = auth.oauth2_client_credentials();
      std::string scope;
      for (const auto& sc : o.scopes()) scope += (scope.empty() ? "" : " ") + sc;
      rest::OAuth2ClientAuth method = rest::OAuth2ClientAuth::kUnspecified;
      switch (o.client_authentication()) {
        case v1::OAuth2ClientCredentials::CLIENT_AUTHENTICATION_CLIENT_SECRET_BASIC:
          method = rest::OAuth2ClientAuth::kClientSecretBasic;
          break;
        case v1::OAuth2ClientCredentials::CLIENT_AUTHENTICATION_CLIENT_SECRET_POST:
          method = rest::OAuth2ClientAuth::kClientSecretPost;
          break;
        case v1::OAuth2ClientCredentials::CLIENT_AUTHENTICATION_TLS_CLIENT_AUTH:
          method = rest::OAuth2ClientAuth::kTlsClientAuth;
          break;
        case v1::OAuth2ClientCredentials::CLIENT_AUTHENTICATION_UNSPECIFIED:
          break;
        default:
          // An enum value from a newer proto: guessing a method could leak the secret to a
          // server expecting another one.
          return Invalid("auth.oauth2_client_credentials.client_authentication",
                         "unknown value " + std::to_string(o.client_authentication()));
      }
      s.auth = rest::OAuth2ClientCredentials{o.token_url(),   o.client_id(),
                                             SecretBytes(o.client_secret()), scope,
                                             o.audience(),    method};
      break;
    }
    default:
      break;
  }
  s.tls.ssl_verification = tls.ssl_verification();
  s.tls.certificate_name = tls.certificate();
  if (!tls.certificate().empty() && !tls.ssl_verification()) {
    return Invalid("tls.certificate", "naming a certificate requires tls.ssl_verification");
  }
  s.tls.environment = !tls.environment().empty() ? tls.environment()
                      : !environment.empty()     ? environment
                                                 : std::string(core::kDefaultEnvironment);
  if (tls.has_verify_peer()) s.tls.verify_peer = tls.verify_peer().value();
  if (tls.has_verify_host()) s.tls.verify_host = tls.verify_host().value();
  s.tls.tls_server_name = tls.tls_server_name();
  if (tls.min_tls_version() == v1::TLS_VERSION_1_2) s.tls.min_tls_version = "1.2";
  if (tls.min_tls_version() == v1::TLS_VERSION_1_3) s.tls.min_tls_version = "1.3";
  s.tls.pinned_public_key = NormalizeProtoPins(tls.pinned_public_key());
  s.tls.private_trust_only = tls.private_trust_only();
  if (tls.private_trust_only() && !tls.ssl_verification()) {
    // Off means the system CAs only: trusting nothing but bound trust stores that are not
    // used would fail every call.
    return Invalid("tls.private_trust_only",
                   "trusting only the bound trust stores requires tls.ssl_verification");
  }
  if (timeouts.has_connect()) s.timeouts.connect = FromDuration(timeouts.connect());
  if (timeouts.has_total()) s.timeouts.total = FromDuration(timeouts.total());
  s.follow_redirects = redirects.follow();
  if (redirects.max_redirects() < 0) return Invalid("redirects.max_redirects", "must be >= 0");
  if (redirects.max_redirects() > 0) s.max_redirects = redirects.max_redirects();
  if (max_response_bytes < 0) return Invalid("max_response_bytes", "must be >= 0");
  s.max_response_bytes = max_response_bytes == 0
                             ? limits.max_body_bytes
                             : std::min<size_t>(static_cast<size_t>(max_response_bytes),
                                                limits.max_body_bytes);
  return s;
}

Status NetworkFromProto(const v1::ProxySettings& proxy, const v1::RetryPolicy& retry,
                        rest::RestStep* out) {
  out->proxy.url = proxy.url();
  out->proxy.username = proxy.username();
  if (!proxy.password().empty()) {
    out->proxy.password = std::make_shared<const SecretBytes>(SecretBytes(proxy.password()));
  }
  out->proxy.no_proxy.assign(proxy.no_proxy().begin(), proxy.no_proxy().end());
  out->proxy.direct = proxy.direct();
  if (proxy.direct() && !proxy.url().empty()) {
    return Invalid("proxy.direct", "a step cannot both name a proxy and go direct");
  }
  if (!proxy.credential().empty()) {
    if (!proxy.username().empty() || !proxy.password().empty()) {
      return Invalid("proxy.credential",
                     "names the store's proxy credential, so proxy.username and "
                     "proxy.password must be empty");
    }
    if (proxy.direct()) {
      return Invalid("proxy.credential", "a step that goes direct uses no proxy credential");
    }
  }
  if (retry.max_attempts() < 0) return Invalid("retry.max_attempts", "must be >= 0");
  out->retry.max_attempts = std::max(retry.max_attempts(), 1);
  if (retry.has_base_delay()) out->retry.base_delay = FromDuration(retry.base_delay());
  if (retry.has_max_delay()) out->retry.max_delay = FromDuration(retry.max_delay());
  out->retry.idempotent = retry.idempotent();
  if (out->retry.max_attempts > 1) out->attempts = std::make_shared<rest::AttemptLog>();
  return Status();
}

Status HttpVersionFromProto(v1::HttpVersion version, rest::RestStep* out) {
  switch (version) {
    case v1::HTTP_VERSION_UNSPECIFIED: out->http_version = rest::HttpVersion::kDefault; break;
    case v1::HTTP_VERSION_1_1: out->http_version = rest::HttpVersion::kHttp11; break;
    case v1::HTTP_VERSION_2: out->http_version = rest::HttpVersion::kHttp2; break;
    default:
      return Invalid("http_version", "unknown value " + std::to_string(version));
  }
  return Status();
}

void FillAttempts(const rest::AttemptLog& attempts, v1::StepOutcome* out) {
  for (const auto& a : attempts) {
    v1::Attempt* x = out->add_attempts();
    x->set_number(a.number);
    x->set_http_status(a.http_status);
    if (a.error) FillStepError(TranslateField(*a.error, RestFieldToProto), x->mutable_error());
    SetDuration(a.duration.count(), x->mutable_duration());
    SetDuration(a.delay.count() * 1000, x->mutable_delay());
    x->set_delay_from_retry_after(a.delay_from_retry_after);
    x->set_retry_reason(a.retry_reason);
  }
}

Result<rest::RestStep> RestStepFromProto(const v1::RestStep& step, const std::string& environment,
                                         const StepLimits& limits) {
  WSSTEP_ASSIGN_OR_RETURN(rest::RestStep s,
                          TransportFromProto(step.auth(), step.tls(), step.timeouts(),
                                             step.redirects(), step.max_response_bytes(),
                                             environment, limits));
  WSSTEP_RETURN_IF_ERROR(NetworkFromProto(step.proxy(), step.retry(), &s));
  WSSTEP_RETURN_IF_ERROR(HttpVersionFromProto(step.http_version(), &s));
  s.method = step.method().empty() ? "GET" : step.method();
  s.url = step.url();
  // limits.max_body_bytes bounds request bodies as well as responses (PluginLimits says
  // so); a larger one is refused before anything is sent.
  if (step.body().size() > limits.max_body_bytes) {
    return BodyTooLarge("body", std::to_string(step.body().size()) + " bytes", limits);
  }
  WSSTEP_RETURN_IF_ERROR(CheckHeaderVolume(step.headers(), "headers"));
  WSSTEP_RETURN_IF_ERROR(CheckUrl(s.url, "url"));
  for (const auto& q : step.query()) s.query.push_back({q.name(), q.value()});
  bool has_content_type = false;
  for (int i = 0; i < step.headers_size(); ++i) {
    const auto& h = step.headers(i);
    std::string lower = h.name();
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (lower == "host" || lower == "content-length" || lower == "transfer-encoding") {
      return Invalid("headers[" + std::to_string(i) + "].name",
                     "'" + h.name() + "' is set by the plugin and cannot be given");
    }
    has_content_type = has_content_type || lower == "content-type";
    s.headers.push_back({h.name(), h.value()});
  }
  s.body = step.body();
  s.content_type = step.content_type();
  // The proto promises application/octet-stream for a body without a type.
  if (!s.body.empty() && s.content_type.empty() && !has_content_type) {
    s.content_type = "application/octet-stream";
  }
  return s;
}

namespace {

Result<soap::SignatureOptions> SignatureFromProto(const v1::WsSignature& sig) {
  soap::SignatureOptions o;
  for (const auto& p : sig.parts()) o.parts.push_back(p);
  switch (sig.token_reference()) {
    case v1::WsSignature::TOKEN_REFERENCE_UNSPECIFIED:
    case v1::WsSignature::TOKEN_REFERENCE_DIRECT:
      o.reference = soap::TokenReference::kDirect;
      break;
    case v1::WsSignature::TOKEN_REFERENCE_ISSUER_SERIAL:
      o.reference = soap::TokenReference::kIssuerSerial;
      break;
    default:
      return Invalid("ws_security.signature.token_reference", "unknown value");
  }
  using SA = soap::SignatureAlgorithm;
  switch (sig.signature_algorithm()) {
    case v1::WsSignature::SIGNATURE_ALGORITHM_UNSPECIFIED: o.algorithm = SA::kByKeyType; break;
    case v1::WsSignature::SIGNATURE_ALGORITHM_RSA_SHA256: o.algorithm = SA::kRsaSha256; break;
    case v1::WsSignature::SIGNATURE_ALGORITHM_RSA_SHA384: o.algorithm = SA::kRsaSha384; break;
    case v1::WsSignature::SIGNATURE_ALGORITHM_RSA_SHA512: o.algorithm = SA::kRsaSha512; break;
    case v1::WsSignature::SIGNATURE_ALGORITHM_ECDSA_SHA256: o.algorithm = SA::kEcdsaSha256; break;
    case v1::WsSignature::SIGNATURE_ALGORITHM_ECDSA_SHA384: o.algorithm = SA::kEcdsaSha384; break;
    case v1::WsSignature::SIGNATURE_ALGORITHM_ECDSA_SHA512: o.algorithm = SA::kEcdsaSha512; break;
    default:
      return Invalid("ws_security.signature.signature_algorithm",
                     "not one of the allowed algorithms (RSA-SHA256/384/512, "
                     "ECDSA-SHA256/384/512)");
  }
  switch (sig.digest_algorithm()) {
    case v1::WsSignature::DIGEST_ALGORITHM_UNSPECIFIED:
    case v1::WsSignature::DIGEST_ALGORITHM_SHA256:
      o.digest = soap::DigestAlgorithm::kSha256;
      break;
    case v1::WsSignature::DIGEST_ALGORITHM_SHA384: o.digest = soap::DigestAlgorithm::kSha384; break;
    case v1::WsSignature::DIGEST_ALGORITHM_SHA512: o.digest = soap::DigestAlgorithm::kSha512; break;
    default:
      return Invalid("ws_security.signature.digest_algorithm",
                     "not one of the allowed digests (SHA256, SHA384, SHA512)");
  }
  return o;
}

}  // namespace

Result<soap::SoapStep> SoapStepFromProto(const v1::SoapStep& step, const StepLimits& limits) {
  WSSTEP_RETURN_IF_ERROR(CheckHeaderVolume(step.http_headers(), "http_headers"));
  // raw_body and the header blocks are copied into the envelope verbatim: together they
  // are the request body, bounded like a REST body. The field named is the one that
  // takes the total over the limit.
  size_t envelope_bytes = step.raw_body().size();
  if (envelope_bytes > limits.max_body_bytes) {
    return BodyTooLarge("raw_body", std::to_string(envelope_bytes) + " bytes", limits);
  }
  for (int i = 0; i < step.header_blocks_size(); ++i) {
    envelope_bytes += step.header_blocks(i).size();
    if (envelope_bytes > limits.max_body_bytes) {
      return BodyTooLarge("header_blocks[" + std::to_string(i) + "]",
                          "with raw_body and the blocks before it, " +
                              std::to_string(envelope_bytes) + " bytes",
                          limits);
    }
  }
  WSSTEP_RETURN_IF_ERROR(CheckUrl(step.endpoint(), "endpoint"));
  soap::SoapStep s;
  s.endpoint = step.endpoint();
  s.version = step.version() == v1::SOAP_VERSION_1_2 ? soap::SoapVersion::k12
                                                     : soap::SoapVersion::k11;
  s.action = step.action();
  if (step.has_operation()) {
    const auto& op = step.operation();
    soap::SoapOperation o;
    o.name = op.name();
    o.ns = op.namespace_uri();
    // The proto's empty prefix means "ns" (a prefix can only be bound to a namespace).
    o.prefix = !op.prefix().empty() ? op.prefix() : (op.namespace_uri().empty() ? "" : "ns");
    for (const auto& p : op.parameters()) o.parameters.push_back(NodeFromProto(p));
    s.body = std::move(o);
  } else {
    s.body = soap::RawXml{step.raw_body()};
  }
  for (const auto& h : step.header_blocks()) s.header_blocks.push_back(h);
  if (step.has_ws_security()) {
    const auto& ws = step.ws_security();
    if (ws.has_username_token()) {
      const auto& t = ws.username_token();
      if (t.include_nonce_and_created() &&
          t.password_type() != v1::WsSecurity::UsernameToken::PASSWORD_TYPE_DIGEST) {
        return Invalid("ws_security.username_token.include_nonce_and_created",
                       "not supported yet for PasswordText tokens");
      }
      s.security.username_token = soap::UsernameToken{
          t.username(), SecretBytes(t.password()),
          t.password_type() == v1::WsSecurity::UsernameToken::PASSWORD_TYPE_DIGEST
              ? soap::PasswordType::kDigest
              : soap::PasswordType::kText};
    }
    if (ws.has_timestamp_ttl()) {
      s.security.timestamp.enabled = true;
      s.security.timestamp.ttl_seconds = ws.timestamp_ttl().seconds();
    }
    s.security.must_understand = ws.must_understand();
    if (ws.has_signature()) {
      WSSTEP_ASSIGN_OR_RETURN(s.security.signature, SignatureFromProto(ws.signature()));
    }
  }
  return s;
}

void FillTimings(const rest::Timings& t, v1::Timings* out) {
  // The engine reports phase durations; the proto counts from the step start.
  int64_t at = 0;
  if (t.dns_us > 0) SetDuration(at += t.dns_us, out->mutable_dns());
  if (t.connect_us > 0) SetDuration(at += t.connect_us, out->mutable_connect());
  if (t.tls_us > 0) SetDuration(at += t.tls_us, out->mutable_tls());
  if (t.first_byte_us > 0) SetDuration(t.first_byte_us, out->mutable_first_byte());
  SetDuration(t.total_us, out->mutable_total());
}

void FillTlsFacts(rest::TlsFacts tls, uint64_t client_version, const std::string& server_name,
                  v1::TlsFacts* out) {
  // The route is a fact also when the proxy failed before any TLS: which proxy it was.
  out->set_proxy(std::move(tls.proxy));
  if (!tls.used_tls) return;
  out->set_protocol(std::move(tls.protocol));
  out->set_cipher(std::move(tls.cipher));
  if (!tls.server_subject.empty()) {
    auto* sc = out->mutable_server_certificate();
    // The server's certificate says what it likes in its names.
    sc->set_subject(TakeValidUtf8(std::move(tls.server_subject)));
    sc->set_issuer(TakeValidUtf8(std::move(tls.server_issuer)));
    if (tls.server_not_after != 0) SetTimestamp(tls.server_not_after, sc->mutable_not_after());
    out->add_server_chain_subjects(sc->subject());
  }
  if (tls.client_certificate) {
    auto* c = out->mutable_client_certificate();
    c->set_certificate_id(std::move(tls.client_certificate->entry_id));
    c->set_name(std::move(tls.client_certificate->name));
    c->set_sha256_fingerprint(std::move(tls.client_certificate->fingerprint));
    c->set_version(client_version);
  }
  out->set_client_certificate_requested(tls.client_certificate_requested);
  out->set_connection_reused(tls.connection_reused);
  out->set_session_resumed(tls.session_resumed);
  out->set_server_name(server_name);
  out->set_http_version(std::move(tls.http_version));
}

void FillPeerCertificate(const rest::PeerCertificateFacts& cert, v1::CertificateInfo* out) {
  // The server's certificate says what it likes in its names.
  out->set_subject(ValidUtf8(cert.subject));
  out->set_issuer(ValidUtf8(cert.issuer));
  if (cert.not_before != 0) SetTimestamp(cert.not_before, out->mutable_not_before());
  if (cert.not_after != 0) SetTimestamp(cert.not_after, out->mutable_not_after());
  for (const auto& san : cert.sans) out->add_sans(ValidUtf8(san));
}

v1::WarningCode ToProtoWarningCode(rest::WarningCode code) {
  switch (code) {
    case rest::WarningCode::kVerifyPeerDisabled: return v1::WARNING_CODE_VERIFY_PEER_DISABLED;
    case rest::WarningCode::kVerifyHostDisabled: return v1::WARNING_CODE_VERIFY_HOST_DISABLED;
    case rest::WarningCode::kClientCertRequestedNoneSent:
      return v1::WARNING_CODE_CLIENT_CERT_REQUESTED_NONE_SENT;
  }
  return v1::WARNING_CODE_UNSPECIFIED;  // unreachable: -Wswitch names a missing value
}

void FillWarnings(const std::vector<rest::Warning>& warnings,
                  google::protobuf::RepeatedPtrField<v1::Diagnostic>* out) {
  for (const auto& w : warnings) {
    FillWarningDiagnostic(ToProtoWarningCode(w.code), v1::SEVERITY_WARNING, w.message,
                          rest::WarningField(w.code), out->Add());
  }
}

void FillHttpOutcome(rest::RestResult&& r, uint64_t client_version,
                     const std::string& server_name, v1::StepOutcome* out) {
  auto* h = out->mutable_http();
  h->set_status(r.status);
  // What the server sent may be in any encoding (HTTP allows obs-text in header values).
  // The result is the caller's to give up: its strings move into the outcome.
  h->mutable_headers()->Reserve(static_cast<int>(r.headers.size()));
  for (auto& hd : r.headers) {
    auto* x = h->add_headers();
    x->set_name(TakeValidUtf8(std::move(hd.name)));
    x->set_value(TakeValidUtf8(std::move(hd.value)));
  }
  h->set_body(std::move(r.body));
  h->set_body_chunked(r.body_streamed);
  h->set_body_bytes(static_cast<int64_t>(r.body_bytes));
  h->set_content_type(TakeValidUtf8(std::move(r.content_type)));
  h->set_application_refused(r.application_refused);
  h->set_effective_url(TakeValidUtf8(std::move(r.effective_url)));
  h->set_redirect_count(r.redirects_followed);
  FillTimings(r.timings, out->mutable_timings());
  FillTlsFacts(std::move(r.tls), client_version, server_name, out->mutable_tls());
  FillWarnings(r.warnings, out->mutable_warnings());
  if (r.application_refused && !r.application_refused_message.empty()) {
    FillWarningDiagnostic(v1::WARNING_CODE_APPLICATION_REFUSED, v1::SEVERITY_INFO,
                          r.application_refused_message, "", out->add_warnings());
  }
}

void FillSoapResult(const soap::SoapResult& r, v1::SoapResult* out) {
  out->set_http_status(r.http.status);
  for (const auto& hd : r.http.headers) {
    auto* x = out->add_http_headers();
    x->set_name(ValidUtf8(hd.name));
    x->set_value(ValidUtf8(hd.value));
  }
  out->set_version(r.response.version == soap::SoapVersion::k12 ? v1::SOAP_VERSION_1_2
                                                                : v1::SOAP_VERSION_1_1);
  for (const auto& h : r.response.headers) out->add_header_blocks(ValidUtf8(h));
  if (r.signature) {
    auto* sf = out->mutable_signature();
    sf->set_signature_algorithm(r.signature->signature_algorithm);
    sf->set_digest_algorithm(r.signature->digest_algorithm);
    sf->set_certificate_fingerprint(r.signature->certificate_fingerprint);
    sf->set_token_reference(r.signature->reference == soap::TokenReference::kIssuerSerial
                                ? v1::WsSignature::TOKEN_REFERENCE_ISSUER_SERIAL
                                : v1::WsSignature::TOKEN_REFERENCE_DIRECT);
    for (const auto& id : r.signature->signed_ids) sf->add_signed_ids(id);
  }
  if (r.response.fault) {
    const auto& f = *r.response.fault;
    auto* pf = out->mutable_fault();
    const auto colon = f.code.find(':');
    const std::string local = colon == std::string::npos ? f.code : f.code.substr(colon + 1);
    pf->set_code(ValidUtf8(f.code_namespace.empty() ? f.code : "{" + f.code_namespace + "}" + local));
    for (const auto& s : f.subcodes) pf->add_subcodes(ValidUtf8(s));
    pf->set_reason(ValidUtf8(f.reason));
    pf->set_reason_lang(ValidUtf8(f.lang));
    pf->set_actor(ValidUtf8(f.actor));
    pf->set_node(ValidUtf8(f.node));
    pf->set_detail_xml(ValidUtf8(f.detail_xml));
    return;
  }
  out->set_body_xml(ValidUtf8(r.response.body_xml));
  for (const auto& c : r.response.body.children) ElementToProto(c, out->add_body());
}

}  // namespace wsstep::plugin

namespace wsstep::plugin {
namespace {

void NodeToProto(const soap::XmlNode& n, v1::XmlElement* out) {
  out->set_name(n.name);
  if (n.ns) {
    if (n.ns->empty()) {
      out->set_unqualified(true);
    } else {
      out->set_namespace_uri(*n.ns);
    }
  }
  for (const auto& a : n.attributes) {
    auto* pa = out->add_attributes();
    pa->set_name(a.name);
    pa->set_namespace_uri(a.ns);
    pa->set_value(a.value);
  }
  out->set_text(n.text);
  for (const auto& c : n.children) NodeToProto(c, out->add_children());
}

void ParameterToProto(const soap::WsdlParameter& p, v1::WsdlParameter* out) {
  out->set_name(ValidUtf8(p.name));
  out->set_namespace_uri(ValidUtf8(p.ns));
  out->set_type(ValidUtf8(p.type));
  out->set_attribute(p.attribute);
  out->set_min_occurs(static_cast<uint32_t>(std::max(p.min_occurs, 0)));
  out->set_max_occurs(p.max_occurs);
  out->set_nillable(p.nillable);
  for (const auto& e : p.enumeration) out->add_enumeration(ValidUtf8(e));
  out->set_recursive(p.recursive);
  for (const auto& c : p.children) ParameterToProto(c, out->add_children());
}

v1::SoapVersion VersionToProto(soap::SoapVersion v) {
  return v == soap::SoapVersion::k12 ? v1::SOAP_VERSION_1_2 : v1::SOAP_VERSION_1_1;
}

}  // namespace

void SoapStepToProto(const soap::SoapStep& step, v1::SoapStep* out) {
  out->set_endpoint(step.endpoint);
  out->set_version(VersionToProto(step.version));
  out->set_action(step.action);
  if (const auto* op = std::get_if<soap::SoapOperation>(&step.body)) {
    auto* po = out->mutable_operation();
    po->set_name(op->name);
    po->set_namespace_uri(op->ns);
    po->set_prefix(op->prefix);
    for (const auto& p : op->parameters) NodeToProto(p, po->add_parameters());
  } else {
    out->set_raw_body(std::get<soap::RawXml>(step.body).xml);
  }
}

void FillWsdlDescription(const soap::WsdlDescription& d, v1::DescribeWsdlResponse* out) {
  out->set_target_namespace(ValidUtf8(d.target_namespace));
  for (const auto& doc : d.documents) out->add_documents(ValidUtf8(doc));
  for (const auto& s : d.services) {
    auto* ps = out->add_services();
    ps->set_name(ValidUtf8(s.name));
    for (const auto& port : s.ports) {
      auto* pp = ps->add_ports();
      pp->set_name(ValidUtf8(port.name));
      pp->set_binding(ValidUtf8(port.binding));
      pp->set_address(ValidUtf8(port.address));
      pp->set_version(VersionToProto(port.version));
      pp->set_style(ValidUtf8(port.style));
      for (const auto& op : port.operations) {
        auto* po = pp->add_operations();
        po->set_name(ValidUtf8(op.name));
        po->set_soap_action(ValidUtf8(op.soap_action));
        po->set_style(ValidUtf8(op.style));
        po->set_use(ValidUtf8(op.use));
        po->set_input_element(ValidUtf8(op.input_element));
        po->set_input_namespace(ValidUtf8(op.input_namespace));
        for (const auto& p : op.input) ParameterToProto(p, po->add_input());
        po->set_output_element(ValidUtf8(op.output_element));
        po->set_output_namespace(ValidUtf8(op.output_namespace));
        for (const auto& p : op.output) ParameterToProto(p, po->add_output());
        po->set_documentation(ValidUtf8(op.documentation));
      }
    }
  }
}

}  // namespace wsstep::plugin

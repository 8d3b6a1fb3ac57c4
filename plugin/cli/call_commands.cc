#include "plugin/cli/call_commands.h"

#include <cctype>
#include <cstdio>
#include <fstream>
#include <optional>

#include "plugin/cli/command.h"

namespace wsstep::plugin {
namespace {

struct RestFlags {
  std::string method = "GET", url, data, data_file, content_type, output;
  std::vector<std::string> query;
  bool fail = false;
  TlsFlags tls;
  TransportFlags transport;
};

int PrintOutcome(const ClientOptions& o, const google::protobuf::Message& response,
                 const v1::StepOutcome& outcome, bool fail, const std::string& output) {
  if (o.json && !outcome.has_error()) std::cout << ToJson(response) << std::endl;
  if (!o.json) PrintWarnings(outcome.warnings());
  switch (outcome.result_case()) {
    case v1::StepOutcome::kError:
      return ReportStepError(o, outcome.error(), response);
    case v1::StepOutcome::kHttp: {
      const auto& h = outcome.http();
      if (!o.json) {
        std::cerr << "HTTP " << h.status()
                  << (h.application_refused() ? " (TLS succeeded; the application refused)" : "")
                  << "\n";
        if (output.empty()) {
          std::cout << h.body();
          std::cout.flush();
        } else {
          std::ofstream(output, std::ios::binary) << h.body();
        }
      }
      return fail && h.status() >= 400 ? kExitStepFailed : kExitOk;
    }
    case v1::StepOutcome::kSoap: {
      const auto& s = outcome.soap();
      if (!o.json) {
        if (s.has_fault()) {
          std::cerr << "SOAP Fault " << s.fault().code() << ": " << s.fault().reason() << "\n";
          std::cout << s.fault().detail_xml() << "\n";
        } else {
          std::cout << s.body_xml() << "\n";
        }
      }
      return fail && s.has_fault() ? kExitStepFailed : kExitOk;
    }
    default:
      return kExitOk;
  }
}

// `call rest --output FILE`: the call goes on an ExecuteSteps stream with its 2xx body in
// chunks (StepCall.response_body_chunks), each written to FILE.part as it comes; FILE.part
// becomes FILE when the last chunk came, and is removed otherwise. So a body larger than a
// gRPC message (a statement, an export) arrives, up to the plugin's
// limits.max_chunked_body_bytes, and neither the plugin nor this command holds it whole.
// Other statuses' bodies (error pages) come whole in the result, as from ExecuteRestStep.
int CallRestToFile(Client& client, const v1::ExecuteRestStepRequest& req, bool fail,
                   const std::string& output) {
  if (auto rc = client.Connect()) return *rc;
  const std::string part = output + ".part";
  std::ofstream file(part, std::ios::binary | std::ios::trunc);
  if (!file) return UsageError("--output " + output + ": cannot write " + part);
  grpc::ClientContext ctx;
  PrepareContext(client.options(), &ctx);
  auto stream = client.steps().ExecuteSteps(&ctx);
  v1::ExecuteStepsRequest send;
  v1::StepCall* call = send.add_calls();
  call->set_call_id(1);
  *call->mutable_rest() = req;
  call->set_response_body_chunks(true);
  stream->Write(send);
  stream->WritesDone();

  int64_t written = 0;
  bool complete = false;
  std::optional<std::string> broken;  // why the file is not the body
  std::optional<v1::StepCallResult> result;
  v1::ExecuteStepsResponse message;
  while (stream->Read(&message)) {
    for (const auto& chunk : message.body_chunks()) {
      if (chunk.call_id() != 1 || broken) continue;
      if (chunk.offset() != written) {
        broken = "a chunk at offset " + std::to_string(chunk.offset()) + " after " +
                 std::to_string(written) + " bytes";
      } else if (!file.write(chunk.data().data(),
                             static_cast<std::streamsize>(chunk.data().size()))) {
        broken = "cannot write " + part;
        ctx.TryCancel();
      }
      written += static_cast<int64_t>(chunk.data().size());
      complete = chunk.last();
    }
    for (const auto& r : message.results()) {
      if (r.call_id() == 1) result = r;
    }
  }
  const grpc::Status status = stream->Finish();
  file.close();
  const bool keep = complete && !broken && file;
  if (!keep) std::remove(part.c_str());
  if (broken) return UsageError("--output " + output + ": " + *broken);
  if (!status.ok()) return ReportRpcError(client.options(), "ExecuteSteps", status);
  if (!result) return UsageError("ExecuteSteps ended without the call's result");
  if (result->code() != 0) {
    return ReportRpcError(client.options(), "ExecuteSteps",
                          grpc::Status(static_cast<grpc::StatusCode>(result->code()),
                                       result->message(), result->details()));
  }
  const v1::ExecuteRestStepResponse& resp = result->rest();
  const v1::StepOutcome& outcome = resp.outcome();
  if (keep && outcome.has_http() && outcome.http().body_chunked()) {
    if (std::rename(part.c_str(), output.c_str()) != 0) {
      std::remove(part.c_str());
      return UsageError("--output " + output + ": cannot rename " + part + " to it");
    }
    if (!client.options().json) {
      std::cerr << "wrote " << written << " bytes to " << output << "\n";
    }
    return PrintOutcome(client.options(), resp, outcome, fail, "");
  }
  if (keep) std::remove(part.c_str());
  return PrintOutcome(client.options(), resp, outcome, fail, output);
}

int CallRest(Client& client, const RestFlags& f) {
  v1::ExecuteRestStepRequest req;
  auto* step = req.mutable_step();
  step->set_method(f.method);
  step->set_url(f.url);
  for (const auto& q : f.query) {
    const size_t eq = q.find('=');
    auto* p = step->add_query();
    p->set_name(q.substr(0, eq));
    if (eq != std::string::npos) p->set_value(q.substr(eq + 1));
  }
  if (!f.data_file.empty()) {
    auto body = ReadWholeFile(f.data_file);
    if (!body.ok()) return UsageError(body.error().message);
    step->set_body(*body);
  } else {
    step->set_body(f.data);
  }
  step->set_content_type(f.content_type);
  if (auto st = FillTransport(f.tls, f.transport, step, step->mutable_headers()); !st.ok()) {
    return UsageError(st.error().message);
  }
  if (!f.output.empty()) return CallRestToFile(client, req, f.fail, f.output);
  v1::ExecuteRestStepResponse resp;
  if (auto rc =
          client.Call("ExecuteRestStep", &v1::StepPluginService::Stub::ExecuteRestStep, req, &resp))
    return *rc;
  return PrintOutcome(client.options(), resp, resp.outcome(), f.fail, f.output);
}

struct SoapFlags {
  std::string endpoint, version = "1.1", action, body_file, operation, ns;
  std::vector<std::string> params, header_block_files;
  std::string ws_user, ws_password_env;
  bool ws_digest = false, must_understand = false, fail = false;
  int ws_timestamp_seconds = 0;
  bool sign = false;
  std::vector<std::string> sign_parts;
  std::string sign_reference = "direct", sign_algorithm, sign_digest;
  TlsFlags tls;
  TransportFlags transport;
};

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

int CallSoap(Client& client, const SoapFlags& f) {
  v1::ExecuteSoapStepRequest req;
  auto* step = req.mutable_step();
  step->set_endpoint(f.endpoint);
  step->set_version(f.version == "1.2" ? v1::SOAP_VERSION_1_2 : v1::SOAP_VERSION_1_1);
  step->set_action(f.action);
  if (!f.body_file.empty()) {
    auto body = ReadWholeFile(f.body_file);
    if (!body.ok()) return UsageError(body.error().message);
    step->set_raw_body(*body);
  } else if (!f.operation.empty()) {
    auto* op = step->mutable_operation();
    op->set_name(f.operation);
    op->set_namespace_uri(f.ns);
    for (const auto& p : f.params) {
      const size_t eq = p.find('=');
      auto* e = op->add_parameters();
      e->set_name(p.substr(0, eq));
      if (eq != std::string::npos) e->set_text(p.substr(eq + 1));
    }
  } else {
    return UsageError("call soap: give --body-file or --operation");
  }
  for (const auto& file : f.header_block_files) {
    auto block = ReadWholeFile(file);
    if (!block.ok()) return UsageError(block.error().message);
    step->add_header_blocks(*block);
  }
  if (!f.ws_user.empty()) {
    auto* ut = step->mutable_ws_security()->mutable_username_token();
    ut->set_username(f.ws_user);
    if (!f.ws_password_env.empty()) {
      const char* v = std::getenv(f.ws_password_env.c_str());
      if (v == nullptr)
        return UsageError("--ws-password-env: " + f.ws_password_env + " is not set");
      ut->set_password(v);
    }
    ut->set_password_type(f.ws_digest ? v1::WsSecurity::UsernameToken::PASSWORD_TYPE_DIGEST
                                      : v1::WsSecurity::UsernameToken::PASSWORD_TYPE_TEXT);
  }
  if (f.ws_timestamp_seconds > 0) {
    step->mutable_ws_security()->mutable_timestamp_ttl()->set_seconds(f.ws_timestamp_seconds);
  }
  if (f.sign || !f.sign_parts.empty()) {
    auto* sig = step->mutable_ws_security()->mutable_signature();
    for (const auto& p : f.sign_parts) sig->add_parts(p);
    sig->set_token_reference(f.sign_reference == "issuer-serial"
                                 ? v1::WsSignature::TOKEN_REFERENCE_ISSUER_SERIAL
                                 : v1::WsSignature::TOKEN_REFERENCE_DIRECT);
    v1::WsSignature::SignatureAlgorithm algorithm{};
    if (!f.sign_algorithm.empty() &&
        !v1::WsSignature::SignatureAlgorithm_Parse("SIGNATURE_ALGORITHM_" + Upper(f.sign_algorithm),
                                                   &algorithm)) {
      return UsageError("--sign-algorithm: " + f.sign_algorithm + " is not an allowed algorithm");
    }
    sig->set_signature_algorithm(algorithm);
    v1::WsSignature::DigestAlgorithm digest{};
    if (!f.sign_digest.empty() && !v1::WsSignature::DigestAlgorithm_Parse(
                                      "DIGEST_ALGORITHM_" + Upper(f.sign_digest), &digest)) {
      return UsageError("--sign-digest: " + f.sign_digest + " is not an allowed digest");
    }
    sig->set_digest_algorithm(digest);
  }
  if (step->has_ws_security()) step->mutable_ws_security()->set_must_understand(f.must_understand);
  if (auto st = FillTransport(f.tls, f.transport, step, step->mutable_http_headers()); !st.ok()) {
    return UsageError(st.error().message);
  }
  v1::ExecuteSoapStepResponse resp;
  if (auto rc =
          client.Call("ExecuteSoapStep", &v1::StepPluginService::Stub::ExecuteSoapStep, req, &resp))
    return *rc;
  return PrintOutcome(client.options(), resp, resp.outcome(), f.fail, "");
}

// What fired, in the words of the flags that set it.
std::string ProbeTimeoutName(v1::ProbeTimeout t) {
  switch (t) {
    case v1::PROBE_TIMEOUT_HANDSHAKE:
      return "the handshake timeout (--handshake-timeout)";
    case v1::PROBE_TIMEOUT_CALLER_DEADLINE:
      return "the call's deadline (--timeout)";
    case v1::PROBE_TIMEOUT_ANSWER_WAIT:
      return "the answer wait (--answer-wait)";
    default:
      return "";
  }
}

int64_t Millis(const google::protobuf::Duration& d) {
  return d.seconds() * 1000 + d.nanos() / 1'000'000;
}

int TestConnection(Client& client, const std::string& target, const TlsFlags& tls,
                   const ProxyFlags& proxy, double timeout_seconds, double answer_wait_seconds) {
  v1::TestConnectionRequest req;
  std::string host;
  uint32_t port = 0;
  if (!SplitHostPort(target, &host, &port))
    return UsageError("expected HOST:PORT, got '" + target + "'");
  req.set_host(host);
  req.set_port(port);
  req.set_environment(tls.environment);
  tls.Fill(req.mutable_tls());
  if (Status filled = proxy.Fill(req.mutable_proxy()); !filled.ok()) {
    return UsageError(filled.error().message);
  }
  if (timeout_seconds > 0) TransportFlags::SetDuration(timeout_seconds, req.mutable_timeout());
  if (answer_wait_seconds > 0) {
    TransportFlags::SetDuration(answer_wait_seconds, req.mutable_answer_wait());
  }
  v1::TestConnectionResponse resp;
  if (auto rc =
          client.Call("TestConnection", &v1::CertificateService::Stub::TestConnection, req, &resp))
    return *rc;
  if (client.options().json && !resp.ok()) {
    return ReportStepError(client.options(), resp.error(), resp);
  }
  PrintResult(client.options(), resp, [&] {
    PrintWarnings(resp.warnings());
    const auto& t = resp.tls();
    std::cout << (resp.ok() ? "handshake OK" : "handshake FAILED") << "\n";
    if (!t.proxy().empty()) std::cout << "through proxy: " << t.proxy() << "\n";
    if (!t.protocol().empty())
      std::cout << "protocol: " << t.protocol() << " " << t.cipher() << "\n";
    for (const auto& c : resp.server_chain()) std::cout << "server chain: " << c.subject() << "\n";
    std::cout << "client certificate requested: "
              << (t.client_certificate_requested() ? "yes" : "no") << "\n";
    std::cout << "client certificate offered: "
              << (t.has_client_certificate() ? t.client_certificate().name() : "(none)") << "\n";
    if (resp.http_status() != 0) {
      std::cout << "HTTP answer: " << resp.http_status() << "\n";
    } else if (resp.timed_out() == v1::PROBE_TIMEOUT_ANSWER_WAIT) {
      std::cout << "HTTP answer: none within " << ProbeTimeoutName(resp.timed_out()) << " ("
                << Millis(resp.timeout_limit()) << " ms); nothing was refused\n";
    }
    if (resp.timed_out() == v1::PROBE_TIMEOUT_HANDSHAKE ||
        resp.timed_out() == v1::PROBE_TIMEOUT_CALLER_DEADLINE) {
      std::cout << "timed out: " << ProbeTimeoutName(resp.timed_out()) << " ("
                << Millis(resp.timeout_limit()) << " ms)\n";
    }
  });
  return resp.ok() ? kExitOk : ReportStepError(client.options(), resp.error(), resp);
}

}  // namespace

void AddCallCommands(CLI::App& app, CommandLine& line) {
  auto* call = app.add_subcommand("call", "execute a step through the plugin");
  call->require_subcommand(1);

  auto rf = std::make_shared<RestFlags>();
  auto* call_rest = call->add_subcommand("rest", "execute a REST step");
  call_rest->add_option("--url", rf->url, "https URL")->required();
  call_rest->add_option("--method,-X", rf->method, "HTTP method");
  call_rest->add_option("--query", rf->query, "name=value (repeatable)");
  call_rest->add_option("--data,-d", rf->data, "request body");
  call_rest->add_option("--data-file", rf->data_file, "request body from a file");
  call_rest->add_option("--content-type", rf->content_type, "Content-Type of the body");
  call_rest->add_option("--output,-o", rf->output,
                        "write the response body to a file, streamed: any size the plugin "
                        "allows (limits.max_chunked_body_bytes)");
  call_rest->add_flag("--fail,-f", rf->fail, "exit 1 on HTTP status >= 400");
  rf->tls.Add(call_rest);
  rf->transport.Add(call_rest);
  AddClientCommand(call_rest, line, [rf](Client& client) { return CallRest(client, *rf); });

  auto sf = std::make_shared<SoapFlags>();
  auto* call_soap = call->add_subcommand("soap", "execute a SOAP step");
  call_soap->add_option("--endpoint", sf->endpoint, "https URL")->required();
  call_soap->add_option("--soap-version", sf->version, "1.1 or 1.2")
      ->check(CLI::IsMember({"1.1", "1.2"}));
  call_soap->add_option("--action", sf->action, "SOAP action");
  call_soap->add_option("--body-file", sf->body_file, "raw XML body fragment");
  call_soap->add_option("--operation", sf->operation, "operation element name");
  call_soap->add_option("--namespace", sf->ns, "operation namespace URI");
  call_soap->add_option("--param", sf->params, "name=value parameter (repeatable)");
  call_soap->add_option("--header-block-file", sf->header_block_files,
                        "SOAP header block (repeatable)");
  call_soap->add_option("--ws-username", sf->ws_user, "WS-Security UsernameToken user");
  call_soap->add_option("--ws-password-env", sf->ws_password_env, "its password, from a variable");
  call_soap->add_flag("--ws-digest", sf->ws_digest, "PasswordDigest instead of PasswordText");
  call_soap->add_option("--ws-timestamp", sf->ws_timestamp_seconds,
                        "add a Timestamp valid N seconds");
  call_soap->add_flag("--must-understand", sf->must_understand, "mustUnderstand on Security");
  call_soap->add_flag("--sign", sf->sign,
                      "sign Body and Timestamp with the certificate bound to the endpoint");
  call_soap->add_option("--sign-part", sf->sign_parts,
                        "sign this part instead: Body, Timestamp, or a header block's element "
                        "as name or {namespace}name (repeatable; implies --sign)");
  call_soap->add_option("--sign-reference", sf->sign_reference, "direct or issuer-serial")
      ->check(CLI::IsMember({"direct", "issuer-serial"}, CLI::ignore_case));
  call_soap->add_option("--sign-algorithm", sf->sign_algorithm,
                        "RSA_SHA256, RSA_SHA384, RSA_SHA512, ECDSA_SHA256, ECDSA_SHA384 or "
                        "ECDSA_SHA512 (default: by the key's type)");
  call_soap->add_option("--sign-digest", sf->sign_digest, "SHA256 (default), SHA384 or SHA512");
  call_soap->add_flag("--fail,-f", sf->fail, "exit 1 on a SOAP Fault");
  sf->tls.Add(call_soap);
  sf->transport.Add(call_soap);
  AddClientCommand(call_soap, line, [sf](Client& client) { return CallSoap(client, *sf); });
}

void AddTestConnectionCommand(CLI::App& app, CommandLine& line) {
  struct TestFlags {
    std::string target;
    double timeout = 0;
    double answer_wait = 0;
    TlsFlags tls;
    ProxyFlags proxy;
  };
  auto tf = std::make_shared<TestFlags>();
  auto* test = app.add_subcommand("test-connection", "diagnose a TLS handshake to HOST:PORT");
  test->add_option("target", tf->target, "HOST:PORT")->required();
  test->add_option("--handshake-timeout", tf->timeout,
                   "seconds for connect + handshake (default 10)");
  test->add_option("--answer-wait", tf->answer_wait,
                   "seconds to wait after the handshake for a refusal or the answer to "
                   "GET / (default 1)");
  tf->tls.Add(test);
  tf->proxy.Add(test);
  AddClientCommand(test, line, [tf](Client& client) {
    return TestConnection(client, tf->target, tf->tls, tf->proxy, tf->timeout, tf->answer_wait);
  });
}

}  // namespace wsstep::plugin

// wsstep's REST engine measured in-process (no gRPC): the same step the plugin runs, at
// 1 and N in flight, with keep-alive or with a new connection per step. An extra row
// beside the plugin's figures: the difference is what gRPC and the plugin add.
#ifndef WSSTEP_TESTS_BENCH_ENGINE_BENCH_H_
#define WSSTEP_TESTS_BENCH_ENGINE_BENCH_H_

#include <string>

#include "core/error.h"
#include "core/identity.h"
#include "rest/engine.h"
#include "tests/bench/baselines.h"
#include "tests/bench/closed_loop.h"

namespace wsstep::bench {

// Client identity + private trust built from PEM files through the real importer
// (core::ParseMaterial), as the store builds them on first use.
Result<core::CallCredentials> CredentialsFromFiles(const TlsFiles& files);

// How a step gets its connection.
enum class Connections {
  kKeepAlive,         // the engine's default: reuse a connection of the identity
  kNewResumed,        // reuse_connections=false: a new connection, the TLS session resumed
  kNewFullHandshake,  // and resume_tls_sessions=false: a new connection, a full handshake
};

// The benchmark's step: GET `url` with the certificate store's credentials
// (ssl_verification on, verification of the server on).
// `version`: the HTTP version the step asks for (the engine's default offers h2).
rest::RestStep BenchStep(const std::string& url, Connections connections,
                         rest::HttpVersion version = rest::HttpVersion::kDefault);

// Checks a step's result the same way for every subject: HTTP 200 and our client
// certificate presented. "" when it is fine, else what was wrong.
std::string CheckStepResult(const Result<rest::RestResult>& result);

// Closed loop of engine.Submit at `in_flight`. The engine needs at least `in_flight`
// workers to really run that many at once.
LoopOutcome RunEngineLoop(rest::RestEngine& engine, const std::string& url,
                          const core::CallCredentials& credentials, int in_flight,
                          Connections connections, Nanos duration, uint64_t max_count,
                          rest::HttpVersion version = rest::HttpVersion::kDefault);

}  // namespace wsstep::bench

#endif  // WSSTEP_TESTS_BENCH_ENGINE_BENCH_H_

// The one HTTP transfer path: REST steps, SOAP envelopes and OAuth2 token calls all end
// here. One request over one partition's connections, driven by the calling worker's
// curl multi handle, with TLS material installed from memory in CURLOPT_SSL_CTX_FUNCTION
// and every failure classified by rest/tls_diagnosis.
#ifndef WSSTEP_REST_TRANSFER_H_
#define WSSTEP_REST_TRANSFER_H_

#include <curl/curl.h>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/secret.h"
#include "rest/engine.h"
#include "rest/http_text.h"
#include "rest/partition.h"
#include "rest/step.h"

namespace wsstep::rest {

struct SecretHeader {
  std::string name;
  SecretBytes value;
};

struct HttpRequest {
  std::string method = "GET";
  std::string url;  // absolute, query included; validated by the caller
  // `url` already parsed by the caller (not owned); null: Perform parses it.
  const UrlParts* url_parts = nullptr;
  // The URL as errors and results show it, when `url` carries a secret (an API key in
  // the query). Empty: `url`.
  std::string display_url;
  std::vector<Header> headers;             // validated by the caller
  std::vector<SecretHeader> secret_headers;  // Authorization and the like
  std::string_view body;                   // not owned; must outlive the transfer
  std::string content_type;                // added unless a header sets Content-Type
};

struct TransferLimits {
  Deadline deadline;             // absolute end of this transfer
  bool deadline_is_caller = true;  // the deadline is the caller's (else the step timeout)
  std::chrono::milliseconds connect_timeout{0};  // 0: none of its own
  size_t max_response_bytes = kDefaultMaxResponseBytes;
  const CancelToken* cancel = nullptr;
  bool reuse_connections = true;
  bool resume_sessions = true;
  std::string user_agent;
  size_t max_idle_handles = 64;  // per partition, kept for reuse
  // Called between waits for the socket (at most poll_interval apart) while the transfer
  // runs; the engine uses it to answer queued steps that were cancelled meanwhile.
  std::function<void()> while_waiting;
  std::chrono::milliseconds poll_interval{50};
  // Before each wait for the socket, look at it without sleeping for up to this long:
  // an answer that comes within it is taken without a sleep and a wake-up (tens of
  // microseconds each on a virtual machine). Only for a thread with nothing else to do.
  std::chrono::microseconds spin{0};
};

struct HttpResponse {
  int status = 0;
  std::vector<Header> headers;
  std::string body;
  std::string content_type;
  std::string redirect_url;  // absolute Location target for 3xx, "" otherwise
  std::string effective_url;
  Timings timings;
  TlsFacts tls;
};

// A curl multi handle owned by one worker thread; transfers borrow it one at a time.
class TransferDriver {
 public:
  // `max_cached_connections` bounds the idle connections a partition keeps after a
  // transfer (libcurl's CURLMOPT_MAXCONNECTS, applied to the partition's shared cache).
  explicit TransferDriver(size_t max_cached_connections = 64);
  ~TransferDriver();
  TransferDriver(const TransferDriver&) = delete;
  TransferDriver& operator=(const TransferDriver&) = delete;

  // Sends `request` over `partition`. Non-2xx statuses are responses; failures are
  // catalog errors (tls_diagnosis::Classify).
  Result<HttpResponse> Perform(Partition& partition, const HttpRequest& request,
                               const TransferLimits& limits);

  // Tests the connection to `request`'s URL over `partition`'s TLS setup (step.h
  // HandshakeProbe): a new connection, a full handshake, `request.method` of "/" with
  // "Connection: close", and what comes back within probe.answer_wait. Runs on the
  // calling thread (not on this driver's multi handle). connect_timeout is ignored:
  // probe.handshake_timeout bounds connect + handshake, limits.deadline everything. The
  // verdict is in the result's `probe` (a failure is classified there, not returned);
  // an error only when the probe could not be set up.
  Result<RestResult> Probe(Partition& partition, const HttpRequest& request,
                           const TransferLimits& limits, const HandshakeProbe& probe);

 private:
  CURLM* multi_;
};

}  // namespace wsstep::rest

#endif  // WSSTEP_REST_TRANSFER_H_

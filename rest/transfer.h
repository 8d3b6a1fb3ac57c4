// The one HTTP transfer path: REST steps, SOAP envelopes and OAuth2 token calls all end
// here. One request over one partition's connections, driven by the calling worker's
// curl multi handle, with TLS material installed from memory in CURLOPT_SSL_CTX_FUNCTION
// and every failure classified by rest/tls_diagnosis.
#ifndef WSSTEP_REST_TRANSFER_H_
#define WSSTEP_REST_TRANSFER_H_

#include <curl/curl.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/secret.h"
#include "rest/curl_handles.h"
#include "rest/engine.h"
#include "rest/http_text.h"
#include "rest/partition.h"
#include "rest/socket_budget.h"
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
  // Instead of `body`: read as the transfer goes (not owned; must outlive the transfer).
  RequestBodySource* body_source = nullptr;
  // A 2xx response's body goes here instead of into HttpResponse::body (not owned; must
  // outlive the transfer).
  ResponseBodySink* response_body = nullptr;
  std::string content_type;                // added unless a header sets Content-Type
};

struct TransferLimits {
  Deadline deadline;             // absolute end of this transfer
  // The limit `deadline` stands for, as a TIMEOUT names it (a step's timeout counts from
  // its admission, before this transfer began); 0: the time left when it began.
  std::chrono::milliseconds time_limit{0};
  bool deadline_is_caller = true;  // the deadline is the caller's (else the step timeout)
  std::chrono::milliseconds connect_timeout{0};  // 0: none of its own
  size_t max_response_bytes = kDefaultMaxResponseBytes;
  const CancelToken* cancel = nullptr;
  bool reuse_connections = true;
  bool resume_sessions = true;
  bool http2 = false;  // offer h2 by ALPN (TLS only); else HTTP/1.1
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
  // Counts the sockets this transfer opens and closes; null: not counted.
  SocketBudget* sockets = nullptr;
};

struct HttpResponse {
  int status = 0;
  std::vector<Header> headers;
  std::string body;
  bool body_streamed = false;  // the body went to HttpRequest::response_body
  uint64_t body_bytes = 0;     // kept or streamed
  std::string content_type;
  std::string redirect_url;  // absolute Location target for 3xx, "" otherwise
  std::string effective_url;
  Timings timings;
  TlsFacts tls;
};

// One transfer, set up and ready for a multi handle (a TransferDriver's or an
// EventLoop's): the easy handle it borrowed from its partition and everything libcurl's
// callbacks write into. Not movable: libcurl holds pointers into it.
class Transfer {
 public:
  // Sets up `request` over `partition`. Errors are answers: a request that cannot be
  // built, or no time left (TIMEOUT).
  static Result<std::unique_ptr<Transfer>> Begin(std::shared_ptr<Partition> partition,
                                                 const HttpRequest& request,
                                                 TransferLimits limits);
  ~Transfer();  // gives the easy handle back to its partition when End was not called
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;

  CURL* easy() const;
  const TransferLimits& limits() const;
  // How a streamed body un-pauses this transfer (rest/body_stream.h): set by the event
  // loop that drives it, before it starts.
  void SetResume(ResumeTransfer resume);
  // Expires when the transfer is destroyed: a resume posted to the loop checks it.
  std::weak_ptr<void> alive() const;
  // Whether a body streams (HttpRequest::body_source or response_body): only then can
  // the transfer pause, and need SetResume.
  bool streams_body() const;

  // Why the driving multi handle let go of the transfer.
  enum class Stop {
    kFinished,   // libcurl finished it with `result`
    kCancelled,  // limits().cancel fired
    kDeadline,   // limits().deadline passed
  };
  // After the easy handle left its multi handle: the response, or the classified
  // failure. Gives the easy handle back to its partition. Call once.
  Result<HttpResponse> End(Stop stop, CURLcode result);

  struct State;

 private:
  explicit Transfer(std::unique_ptr<State> state);
  std::unique_ptr<State> s_;
};

// A curl multi handle owned by one thread (a lent one); transfers borrow it one at a time.
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
  Result<HttpResponse> Perform(std::shared_ptr<Partition> partition, const HttpRequest& request,
                               const TransferLimits& limits);
  // Drives a transfer already begun to its end, on this thread.
  Result<HttpResponse> Drive(Transfer& transfer);

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
  curl::MultiPtr multi_;
};

}  // namespace wsstep::rest

#endif  // WSSTEP_REST_TRANSFER_H_

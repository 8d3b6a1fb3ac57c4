// Bodies that do not sit whole in memory: a response body handed to the caller piece by
// piece as it arrives (ResponseBodySink), and a request body read from the caller as it
// comes (RequestBodySource). Memory stays bounded by backpressure in both directions:
// when the sink has no room, or the source has no bytes yet, the transfer pauses
// (CURL_WRITEFUNC_PAUSE / CURL_READFUNC_PAUSE) and the caller resumes it with the
// ResumeTransfer it was given once there is room or data again.
//
//   class ToHost : public ResponseBodySink {
//     void Begin(int status, const std::vector<Header>& headers, ResumeTransfer r) override {
//       resume_ = std::move(r);  // called later from the thread that drains the queue
//     }
//     bool Write(std::string_view bytes) override { return queue_.TryPush(bytes); }
//   };
//   step.response_body = std::make_shared<ToHost>();
//
// A step with either runs on an event loop (never on a lent thread) and is tried once when
// bytes of either body have moved: a body already handed over cannot be taken back, nor
// one already read be sent again (no retry after that; with a request source, no redirect
// that would send the body again). Only a 2xx response's body goes to the sink; other
// answers (error pages, redirects) are kept whole as usual, bounded by max_response_bytes.
#ifndef WSSTEP_REST_BODY_STREAM_H_
#define WSSTEP_REST_BODY_STREAM_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <vector>

namespace wsstep::rest {

struct Header;

// Un-pauses a transfer, on its own event loop's thread (libcurl handles are not
// thread-safe). Callable from any thread, any number of times; after the transfer ended it
// does nothing. Drop it when the step has answered: it refers to the engine's loop.
using ResumeTransfer = std::function<void()>;

class ResponseBodySink {
 public:
  virtual ~ResponseBodySink() = default;
  // A 2xx response's head is in and its first body byte is here (called once per step,
  // on the transfer's thread, before the first Write).
  virtual void Begin(int status, const std::vector<Header>& headers, ResumeTransfer resume) = 0;
  // The next bytes of the body, in order, on the transfer's thread. False: no room now;
  // the transfer pauses and offers the same bytes again after `resume` was called.
  virtual bool Write(std::string_view bytes) = 0;
};

class RequestBodySource {
 public:
  virtual ~RequestBodySource() = default;
  // The body's length when the caller declared it (sent as Content-Length); nullopt: not
  // known, sent with Transfer-Encoding: chunked.
  virtual std::optional<uint64_t> length() const = 0;
  enum class State {
    kData,    // `bytes` bytes were copied
    kWait,    // nothing yet: the transfer pauses until `resume` is called
    kEnd,     // the body is complete
    kFailed,  // the caller's body is bad or gone: the transfer is aborted
  };
  struct Read {
    State state = State::kWait;
    size_t bytes = 0;
  };
  // Copies up to `max` bytes of the body into `out`, on the transfer's thread.
  virtual Read ReadSome(char* out, size_t max, const ResumeTransfer& resume) = 0;
};

}  // namespace wsstep::rest

#endif  // WSSTEP_REST_BODY_STREAM_H_

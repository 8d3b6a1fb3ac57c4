// ExecuteSteps: many steps, and their bodies in chunks, on one bidirectional stream
// served from the step queue (see step_service.h for the queue and its threads).
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/proto_buffer_writer.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <type_traits>

#include "plugin/process/log.h"
#include "plugin/process/utf8.h"
#include "plugin/server/status_map.h"
#include "plugin/server/step_queue.h"
#include "plugin/server/step_service.h"
#include "rest/http_text.h"

namespace wsstep::plugin {
namespace {

// One ExecuteSteps stream. Every event of the stream (arrival, each read, each write,
// finish, end) comes on the step queue, so the next read is started as soon as one
// completes, by the thread that takes calls. Steps run as unary calls do (Execute); each
// result joins the batch that the next write sends, and a write is started whenever none
// is on its way. Lives until the stream ended, no operation is outstanding and no step of
// it runs.
class StepStream {
 public:
  static void Listen(StepPluginServiceImpl* service, grpc::ServerCompletionQueue* cq,
                     CallCounts* counts) {
    auto* stream = new StepStream(service, cq, counts);
    stream->context_.AsyncNotifyWhenDone(&stream->ended_);
    service->RequestExecuteSteps(&stream->context_, &stream->io_, cq, cq, &stream->arrived_);
  }

 private:
  template <void (StepStream::*kHandler)(bool)>
  using Event = MemberEvent<StepStream, kHandler>;

  StepStream(StepPluginServiceImpl* service, grpc::ServerCompletionQueue* cq, CallCounts* counts)
      : service_(service), cq_(cq), counts_(counts) {}

  // A message read from the host, parsed on an arena of its own: its calls' requests
  // stay there while the calls run (`users` counts them), then the arena is reset and
  // kept for a later message. Under the stream's mutex.
  struct ReadMessage {
    StepArena arena;
    v1::ExecuteStepsRequest* message = nullptr;  // on `arena`
    int users = 0;                               // its running calls, and OnRead
  };
  // One call from its start until a write took its result. Kept afterwards for the
  // stream's next call: the context's strings, the request's messages and the arena's
  // block keep their room, so a warm call allocates next to nothing here.
  struct RunningCall {
    CallContext call;
    const v1::StepCall* request = nullptr;  // in `read`'s message
    ReadMessage* read = nullptr;
    StepArena arena;
    v1::StepCallResult* result = nullptr;  // on `arena`
  };

  // Bodies in chunks (StepCall response_body_chunks, request_body_chunks). Memory per call
  // stays within a small window in both directions: the transfer pauses when the host
  // reads slowly (a response) or has not sent the next bytes yet (a request), and the
  // stream stops reading while a call's request body has more waiting than its window.
  static constexpr size_t kDefaultChunkBytes = 256 * 1024;
  static constexpr size_t kMinChunkBytes = 16 * 1024;
  static constexpr size_t kMaxChunkBytes = 1024 * 1024;
  static constexpr size_t kWindowChunks = 4;  // response chunks waiting for the host
  static constexpr size_t kUploadWindowBytes = 1024 * 1024;
  static constexpr size_t kMaxChunkBytesPerMessage = 4 * 1024 * 1024;

  // A call's 2xx response body on its way to the host: cut into chunks of chunk_bytes in
  // the stream's outbound queue. With kWindowChunks chunks' worth queued or being written,
  // Write says no and the transfer pauses until OnWritten releases some. Under the
  // stream's mutex throughout.
  class ResponseFlow final : public rest::ResponseBodySink,
                             public std::enable_shared_from_this<ResponseFlow> {
   public:
    ResponseFlow(StepStream* stream, uint64_t call_id, size_t chunk_bytes)
        : stream_(stream),
          call_id_(call_id),
          chunk_bytes_(chunk_bytes),
          window_(kWindowChunks * chunk_bytes) {}

    void Begin(int status, const std::vector<rest::Header>& headers,
               rest::ResumeTransfer resume) override {
      std::lock_guard<std::mutex> lock(stream_->mu_);
      resume_ = std::move(resume);
      head_ = std::make_unique<v1::HttpResult>();
      head_->set_status(status);
      for (const auto& h : headers) {
        v1::Header* x = head_->add_headers();
        x->set_name(ValidUtf8(h.name));
        x->set_value(ValidUtf8(h.value));
        if (head_->content_type().empty() && rest::EqualsIgnoreCase(h.name, "Content-Type")) {
          head_->set_content_type(ValidUtf8(h.value));
        }
      }
    }

    bool Write(std::string_view bytes) override {
      std::unique_lock<std::mutex> lock(stream_->mu_);
      // A dead stream cancels its calls: nothing more is taken meanwhile.
      if (stream_->dead_ || finished_) return false;
      if (outstanding_ >= window_) {
        paused_ = true;
        return false;
      }
      outstanding_ += bytes.size();
      while (!bytes.empty()) {
        const size_t take = std::min(bytes.size(), chunk_bytes_ - pending_.size());
        pending_.append(bytes.substr(0, take));
        bytes.remove_prefix(take);
        if (pending_.size() == chunk_bytes_) EmitLocked(/*last=*/false);
      }
      stream_->Flush(lock);
      return true;
    }

    // A write took `size` bytes of this call's chunks: what to call to resume its
    // transfer, when it was paused and half the window is free again.
    rest::ResumeTransfer ReleaseLocked(size_t size) {
      outstanding_ -= std::min(size, outstanding_);
      if (!paused_ || outstanding_ > window_ / 2 || !resume_) return {};
      paused_ = false;
      return resume_;
    }

    // The call answered. A body that came whole gets its last chunk (before the result,
    // which the caller queues next); a failed one (RESPONSE_TOO_LARGE, a reset, a cancel)
    // gets nothing more: its chunks not yet written are dropped.
    void FinishLocked(const v1::StepOutcome* outcome) {
      finished_ = true;
      resume_ = nullptr;  // refers to the engine's loop
      if (outcome != nullptr && outcome->has_http() && outcome->http().body_chunked()) {
        EmitLocked(/*last=*/true);
        return;
      }
      pending_.clear();
      auto& out = stream_->out_;
      out.erase(std::remove_if(out.begin(), out.end(),
                               [this](const Outbound& o) { return o.flow.get() == this; }),
                out.end());
    }

   private:
    void EmitLocked(bool last) {
      auto chunk = std::make_unique<v1::BodyChunk>();
      chunk->set_call_id(call_id_);
      chunk->set_offset(offset_);
      chunk->set_last(last);
      offset_ += static_cast<int64_t>(pending_.size());
      chunk->set_data(std::move(pending_));
      pending_.clear();
      if (head_) chunk->set_allocated_head(head_.release());
      stream_->out_.push_back(Outbound{nullptr, nullptr, std::move(chunk), shared_from_this()});
    }

    StepStream* stream_;
    const uint64_t call_id_;
    const size_t chunk_bytes_;
    const size_t window_;
    std::unique_ptr<v1::HttpResult> head_;  // until the first chunk carries it
    std::string pending_;                   // the chunk being filled
    int64_t offset_ = 0;
    size_t outstanding_ = 0;  // taken and not yet written to the host
    bool paused_ = false;
    bool finished_ = false;
    rest::ResumeTransfer resume_;
  };

  // A call's request body as the host sends it (BodyChunk messages), for its transfer to
  // read. Checks the host's chunks (order, declared length, the plugin's limit); a bad one
  // fails the call with INVALID_ARGUMENT naming it. Under the stream's mutex throughout.
  class RequestFlow final : public rest::RequestBodySource {
   public:
    RequestFlow(StepStream* stream, uint64_t call_id, int64_t declared)
        : stream_(stream), call_id_(call_id), declared_(declared) {}

    std::optional<uint64_t> length() const override {
      if (declared_ <= 0) return std::nullopt;
      return static_cast<uint64_t>(declared_);
    }

    Read ReadSome(char* out, size_t max, const rest::ResumeTransfer& resume) override {
      std::lock_guard<std::mutex> lock(stream_->mu_);
      if (!problem.empty()) return {State::kFailed, 0};
      if (queue_.empty()) {
        if (last) return {State::kEnd, 0};
        resume_ = resume;
        waiting_ = true;
        return {State::kWait, 0};
      }
      std::string& front = queue_.front();
      const size_t n = std::min(max, front.size() - front_taken_);
      std::memcpy(out, front.data() + front_taken_, n);
      front_taken_ += n;
      queued_ -= n;
      if (front_taken_ == front.size()) {
        queue_.pop_front();
        front_taken_ = 0;
      }
      // Room again: the stream reads the host's next message.
      if (stream_->read_held_ && !stream_->UploadsFullLocked()) {
        stream_->read_held_ = false;
        if (stream_->dead_) {
          stream_->reading_done_ = true;
        } else {
          stream_->StartReadLocked();
        }
      }
      return {State::kData, n};
    }

    // The host's next chunk; false when it was bad (the call fails, `problem` says why).
    bool TakeLocked(v1::BodyChunk& chunk, int64_t limit) {
      const std::string call = "call " + std::to_string(call_id_) + ": ";
      const int64_t size = static_cast<int64_t>(chunk.data().size());
      if (last) return FailLocked(call + "a body chunk came after the one with `last`");
      if (chunk.offset() != 0 && chunk.offset() != received) {
        return FailLocked(call + "a body chunk at offset " + std::to_string(chunk.offset()) +
                          ", but " + std::to_string(received) + " bytes came before it");
      }
      received += size;
      if (declared_ > 0 && received > declared_) {
        return FailLocked(call + "more body bytes than request_body_bytes (" +
                          std::to_string(declared_) + ")");
      }
      if (received > limit) {
        return FailLocked(call +
                          "the request body exceeds the plugin's "
                          "limits.max_chunked_body_bytes (" +
                          std::to_string(limit) + ")");
      }
      if (chunk.last() && declared_ > 0 && received < declared_) {
        return FailLocked(call + "the last body chunk came after " + std::to_string(received) +
                          " bytes, but request_body_bytes is " + std::to_string(declared_));
      }
      last = chunk.last();
      if (size > 0) {
        queued_ += static_cast<size_t>(size);
        queue_.push_back(std::move(*chunk.mutable_data()));
      }
      WakeLocked();
      return true;
    }

    bool FailLocked(std::string why) {
      problem = std::move(why);
      queue_.clear();
      queued_ = 0;
      WakeLocked();  // the transfer reads the failure and aborts
      return false;
    }

    bool FullLocked() const { return queued_ > kUploadWindowBytes; }

    std::string problem;  // set: the host's body was bad; the call fails with it
    bool last = false;    // the chunk with `last` came
    int64_t received = 0;
    rest::ResumeTransfer resume_;

   private:
    void WakeLocked() {
      if (!waiting_ || !resume_) return;
      waiting_ = false;
      resume_();  // posts to the transfer's loop; that thread takes this mutex later
    }

    StepStream* stream_;
    const uint64_t call_id_;
    const int64_t declared_;
    std::deque<std::string> queue_;
    size_t front_taken_ = 0;
    size_t queued_ = 0;
    bool waiting_ = false;  // the transfer is paused for data
  };

  // Chunk bytes one message carries at most (it may go over by one chunk, no larger than
  // this): well inside the plugin's max_message_bytes, which the host's channel matches.
  size_t MessageChunkCap() const {
    const auto message = static_cast<size_t>(service_->facts().limits.max_message_bytes);
    return std::min(kMaxChunkBytesPerMessage, message / 4);
  }

  bool UploadsFullLocked() const {
    return std::any_of(requests_.begin(), requests_.end(),
                       [](const auto& r) { return r.second->FullLocked(); });
  }

  // A request body chunk from the host: for a running call that waits for its body, else
  // an INVALID_ARGUMENT result naming the call (nothing else changes).
  void TakeRequestChunkLocked(v1::BodyChunk& chunk) {
    auto it = requests_.find(chunk.call_id());
    if (it != requests_.end()) {
      it->second->TakeLocked(chunk, service_->facts().limits.max_chunked_body_bytes);
      return;
    }
    const std::string problem = "a body chunk for call " + std::to_string(chunk.call_id()) +
                                ", which is not a running call waiting for its request body "
                                "(request_body_chunks)";
    auto result = std::make_unique<v1::StepCallResult>();
    result->set_call_id(chunk.call_id());
    SetStatus(InvalidArgument("ExecuteSteps: " + problem, {{"body_chunks.call_id", problem}}),
              result.get());
    QueueLocked(std::move(result));
  }

  // The chunk options of a call, before it starts: "" when fine, else what is wrong (and
  // `field` names it).
  std::string CheckBodyOptions(const v1::StepCall& c, std::string* field) const {
    const std::string call = "call " + std::to_string(c.call_id()) + ": ";
    const int64_t limit = service_->facts().limits.max_chunked_body_bytes;
    if (c.request_case() == v1::StepCall::kSoap) {
      if (c.response_body_chunks()) {
        *field = "calls.response_body_chunks";
        return call +
               "response_body_chunks is for REST calls: a SOAP response is parsed as XML "
               "and comes whole";
      }
      if (c.request_body_chunks()) {
        *field = "calls.request_body_chunks";
        return call +
               "request_body_chunks is for REST calls: the plugin builds a SOAP envelope "
               "itself";
      }
    }
    if (c.chunk_bytes() != 0 && (c.chunk_bytes() < kMinChunkBytes ||
                                 c.chunk_bytes() > kMaxChunkBytes || !c.response_body_chunks())) {
      *field = "calls.chunk_bytes";
      return call + "chunk_bytes must be 0 or between " + std::to_string(kMinChunkBytes) + " and " +
             std::to_string(kMaxChunkBytes) + ", with response_body_chunks";
    }
    if (c.request_body_bytes() != 0 &&
        (c.request_body_bytes() < 0 || c.request_body_bytes() > limit ||
         !c.request_body_chunks())) {
      *field = "calls.request_body_bytes";
      return call +
             "request_body_bytes must be 0 or between 1 and the plugin's "
             "limits.max_chunked_body_bytes (" +
             std::to_string(limit) + "), with request_body_chunks";
    }
    if (c.request_body_chunks() && c.has_rest() && !c.rest().step().body().empty()) {
      *field = "calls.rest.step.body";
      return call +
             "the body comes in chunks (request_body_chunks): the step's body must be "
             "empty";
    }
    return "";
  }

  void OnArrived(bool ok) {
    if (!ok) {  // shutting down: no call came, and the notification will not either
      delete this;
      return;
    }
    Listen(service_, cq_, counts_);
    counts_->replying.fetch_add(1);
    stream_call_ = ReadCallContext(context_, Method("ExecuteSteps"));
    std::lock_guard<std::mutex> lock(mu_);
    StartReadLocked();
  }

  void StartReadLocked() {
    ++ops_;
    io_.Read(&in_, &read_);
  }

  void OnRead(bool ok) {
    std::unique_lock<std::mutex> lock(mu_);
    --ops_;
    if (!ok) {  // half-closed by the client, or the stream is gone
      reading_done_ = true;
      Settle(lock);
      return;
    }
    ReadMessage* read = TakeReadMessageLocked();
    v1::ExecuteStepsRequest& request = *read->message;
    if (!grpc::SerializationTraits<v1::ExecuteStepsRequest>::Deserialize(&in_, &request).ok()) {
      ReleaseReadMessageLocked(read);
      // Nothing of this message ran; the calls already running are cancelled.
      end_status_ = UnparseableRequestStatus("/" + stream_call_.method);
      reading_done_ = true;
      for (auto& [id, cancelled] : running_) cancelled->store(true);
      Settle(lock);
      return;
    }
    for (uint64_t id : request.cancel_call_ids()) {
      if (auto it = running_.find(id); it != running_.end()) it->second->store(true);
    }
    std::vector<RunningCall*> starts;
    starts.swap(starts_spare_);  // its room, unless another read uses it right now
    for (auto& c : *request.mutable_calls()) {
      if (dead_) break;
      std::string field = "calls.call_id";
      std::string problem;
      if (c.call_id() == 0) {
        problem = "call_id is required (non-zero)";
      } else if (running_.count(c.call_id()) != 0) {
        problem = "call_id " + std::to_string(c.call_id()) + " is already running on this stream";
      } else {
        problem = CheckBodyOptions(c, &field);
      }
      if (!problem.empty()) {
        auto result = std::make_unique<v1::StepCallResult>();
        result->set_call_id(c.call_id());
        SetStatus(InvalidArgument("ExecuteSteps: " + problem, {{field, problem}}), result.get());
        QueueLocked(std::move(result));
        continue;
      }
      RunningCall* running = TakeRunningCallLocked();
      CallContext& call = running->call;
      if (call.trace.valid()) call.trace.span_id = NewSpanId();  // a span per call
      call.started = std::chrono::steady_clock::now();
      if (!c.step_id().empty()) call.step_id = SanitizeClientValue(c.step_id());
      if (!c.workflow_id().empty()) call.workflow_id = SanitizeClientValue(c.workflow_id());
      if (c.has_timeout() && (c.timeout().seconds() > 0 || c.timeout().nanos() > 0)) {
        const auto timeout = std::chrono::seconds(c.timeout().seconds()) +
                             std::chrono::nanoseconds(c.timeout().nanos());
        const auto own = std::chrono::system_clock::now() +
                         std::chrono::duration_cast<std::chrono::system_clock::duration>(timeout);
        call.deadline = std::min(call.deadline, own);
      }
      running_.emplace(c.call_id(), call.cancelled);
      if (c.response_body_chunks()) {
        const size_t chunk = std::min<size_t>(
            c.chunk_bytes() == 0 ? kDefaultChunkBytes : c.chunk_bytes(), MessageChunkCap());
        auto flow = std::make_shared<ResponseFlow>(this, c.call_id(), chunk);
        responses_.emplace(c.call_id(), flow);
        call.response_body = flow;
      }
      if (c.request_body_chunks()) {
        auto flow = std::make_shared<RequestFlow>(this, c.call_id(), c.request_body_bytes());
        requests_.emplace(c.call_id(), flow);
        call.request_body = flow;
      }
      running->request = &c;
      running->read = read;
      ++read->users;
      starts.push_back(running);
    }
    for (auto& chunk : *request.mutable_body_chunks()) {
      if (dead_) break;
      TakeRequestChunkLocked(chunk);
    }
    // The next message is read while these calls run (one may run on this thread), unless
    // a call's request body has more waiting than its window: then gRPC's flow control
    // holds the host back until the transfer has taken some (RequestFlow::ReadSome).
    if (dead_) {
      reading_done_ = true;
    } else if (UploadsFullLocked()) {
      read_held_ = true;
    } else {
      StartReadLocked();
    }
    Flush(lock);
    // This handler counts as an operation while it starts calls: a call that finishes
    // at once must not free the stream under it.
    ++ops_;
    lock.unlock();
    for (size_t i = 0; i < starts.size(); ++i) {
      // Only the message's last call may run on the dispatching thread: the calls after
      // one running there would not start until it finished.
      if (t_dispatching.lease != nullptr) {
        t_dispatching.lease->AllowInline(i + 1 == starts.size() && t_dispatching.allow_inline);
      }
      Start(starts[i]);
    }
    lock.lock();
    starts.clear();
    if (starts_spare_.capacity() == 0) starts_spare_.swap(starts);
    ReleaseReadMessageLocked(read);  // its calls hold it from here
    --ops_;
    Settle(lock);
  }

  // A spare RunningCall (or a new one) with the stream's context: the call's own
  // cancelled flag, no body flows, the method still to set.
  RunningCall* TakeRunningCallLocked() {
    std::unique_ptr<RunningCall> running;
    if (spare_.empty()) {
      running = std::make_unique<RunningCall>();
    } else {
      running = std::move(spare_.back());
      spare_.pop_back();
    }
    // The flag of the spare's last call, when nothing else holds it any more (the
    // engine's step keeps its copy while it lives).
    std::shared_ptr<std::atomic<bool>> flag = std::move(running->call.cancelled);
    running->call = stream_call_;  // copied into the spare's strings: their room stays
    if (flag && flag.use_count() == 1) {
      flag->store(false);
    } else {
      flag = std::make_shared<std::atomic<bool>>(false);
    }
    running->call.cancelled = std::move(flag);
    return running.release();
  }

  // A ReadMessage with an empty message on its arena, held by the caller.
  ReadMessage* TakeReadMessageLocked() {
    ReadMessage* read = nullptr;
    if (free_reads_.empty()) {
      reads_.push_back(std::make_unique<ReadMessage>());
      read = reads_.back().get();
    } else {
      read = free_reads_.back();
      free_reads_.pop_back();
    }
    read->message =
        google::protobuf::Arena::CreateMessage<v1::ExecuteStepsRequest>(read->arena.get());
    read->users = 1;
    return read;
  }

  // One user less; the last frees what the message held (bodies too) and keeps the rest.
  void ReleaseReadMessageLocked(ReadMessage* read) {
    if (--read->users > 0) return;
    read->message = nullptr;
    read->arena.Reset();
    free_reads_.push_back(read);
  }

  // A call whose result was written (or dropped): its request's message released, the
  // call cleared and kept for a next call.
  void RecycleLocked(std::unique_ptr<RunningCall> running) {
    if (running->read != nullptr) ReleaseReadMessageLocked(running->read);
    running->read = nullptr;
    running->request = nullptr;
    if (spare_.size() >= kSpareCalls) return;
    running->result = nullptr;
    running->arena.Reset();
    running->call.response_body.reset();
    running->call.request_body.reset();
    spare_.push_back(std::move(running));
  }

  // Runs one call as the unary method would; its result joins the next write. The
  // call (its context, request and result) lives until a write took its result.
  void Start(RunningCall* running) {
    const v1::StepCall& c = *running->request;
    CallContext& call = running->call;
    running->result =
        google::protobuf::Arena::CreateMessage<v1::StepCallResult>(running->arena.get());
    v1::StepCallResult* const result = running->result;
    result->set_call_id(c.call_id());
    // Two pointers: std::function keeps them without a heap allocation.
    auto done = [this, running](grpc::Status status) {
      std::unique_lock<std::mutex> lock(mu_);
      std::unique_ptr<RunningCall> owned(running);
      v1::StepCallResult* const result = running->result;
      const uint64_t id = result->call_id();
      // A request body the host got wrong, or never finished, is the call's contract error.
      if (auto it = requests_.find(id); it != requests_.end()) {
        RequestFlow& flow = *it->second;
        if (!flow.problem.empty()) {
          status =
              InvalidArgument("ExecuteSteps: " + flow.problem, {{"body_chunks", flow.problem}});
        } else if (!flow.last && status.ok() && result->rest().outcome().has_error() &&
                   result->rest().outcome().error().error_code() == v1::ERROR_CODE_TIMEOUT) {
          status = grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                "ExecuteSteps: call " + std::to_string(id) +
                                    ": its request body did not end (no "
                                    "BodyChunk with last) before the call's deadline; " +
                                    std::to_string(flow.received) + " bytes had come");
        }
        flow.resume_ = nullptr;  // refers to the engine's loop
        requests_.erase(it);
        if (read_held_ && !UploadsFullLocked()) {
          read_held_ = false;
          if (dead_) {
            reading_done_ = true;
          } else {
            StartReadLocked();
          }
        }
      }
      if (auto it = responses_.find(id); it != responses_.end()) {
        it->second->FinishLocked(status.ok() ? &result->rest().outcome() : nullptr);
        responses_.erase(it);
      }
      SetStatus(status, result);
      running_.erase(id);
      QueueCallLocked(std::move(owned));
      Flush(lock);
      Settle(lock);
    };
    const Backends& backends = service_->backends();
    switch (c.request_case()) {
      case v1::StepCall::kRest:
        call.method.assign(kService).append("ExecuteRestStep");
        service_->Execute(call, backends.rest, "the REST engine", c.rest(), result->mutable_rest(),
                          std::move(done));
        break;
      case v1::StepCall::kSoap:
        call.method.assign(kService).append("ExecuteSoapStep");
        service_->Execute(call, backends.soap, "the SOAP engine", c.soap(), result->mutable_soap(),
                          std::move(done));
        break;
      default:
        done(InvalidArgument(
            "ExecuteSteps: set `rest` or `soap` in call " + std::to_string(c.call_id()),
            {{"calls.request", "exactly one of rest or soap is required"}}));
    }
  }

  static void SetStatus(const grpc::Status& status, v1::StepCallResult* result) {
    result->set_code(static_cast<int32_t>(status.error_code()));
    if (status.ok()) return;
    result->clear_response();
    result->set_message(status.error_message());
    result->set_details(status.error_details());
  }

  void QueueLocked(std::unique_ptr<v1::StepCallResult> result) {
    if (dead_) return;  // nobody left to read it
    out_.push_back(Outbound{std::move(result), nullptr, nullptr, nullptr});
  }

  // A finished call: its result (on the call's arena) waits for the next write.
  void QueueCallLocked(std::unique_ptr<RunningCall> running) {
    if (dead_) return RecycleLocked(std::move(running));  // nobody left to read it
    out_.push_back(Outbound{nullptr, std::move(running), nullptr, nullptr});
  }

  // Starts a write of what waits, in order, when none is on its way: every result, and
  // body chunks up to MessageChunkCap (the rest goes in the next message, and so
  // does every result behind them, so that a call's chunks come before its result).
  void Flush(std::unique_lock<std::mutex>& /*held*/) {
    if (writing_ || dead_ || out_.empty()) return;
    v1::ExecuteStepsResponse& batch = batch_;
    size_t chunk_bytes = 0;
    const size_t cap = MessageChunkCap();
    while (!out_.empty() && chunk_bytes < cap) {
      Outbound item = std::move(out_.front());
      out_.pop_front();
      if (item.result || item.call) {
        // Lent to the batch, not given: taken back below, right after serializing.
        batch.mutable_results()->UnsafeArenaAddAllocated(item.result ? item.result.get()
                                                                     : item.call->result);
        batched_.push_back(std::move(item));
      } else {
        const size_t size = item.chunk->data().size();
        chunk_bytes += size;
        in_write_.emplace_back(std::move(item.flow), size);
        batch.mutable_body_chunks()->AddAllocated(item.chunk.release());
      }
    }
    grpc::ByteBuffer out;
    bool own = false;
    const bool serialized =
        grpc::SerializationTraits<v1::ExecuteStepsResponse>::Serialize(batch, &out, &own).ok();
    // The results go back to their owners (a finished call's to the spares), the chunks
    // are freed; the batch keeps its room for the next write.
    batch.mutable_results()->UnsafeArenaExtractSubrange(0, batch.results_size(), nullptr);
    batch.mutable_body_chunks()->DeleteSubrange(0, batch.body_chunks_size());
    for (Outbound& item : batched_) {
      if (item.call) RecycleLocked(std::move(item.call));
    }
    batched_.clear();
    if (!serialized) {
      end_status_ = grpc::Status(grpc::StatusCode::INTERNAL, "a result could not be serialized");
      dead_ = true;
      return;
    }
    writing_ = true;
    ++ops_;
    io_.Write(out, &written_);
  }

  void OnWritten(bool ok) {
    std::unique_lock<std::mutex> lock(mu_);
    --ops_;
    writing_ = false;
    // The chunks just written leave their calls' windows: a paused transfer may go on.
    std::vector<rest::ResumeTransfer> resumes;
    for (auto& [flow, size] : in_write_) {
      if (rest::ResumeTransfer r = flow->ReleaseLocked(size)) resumes.push_back(std::move(r));
    }
    in_write_.clear();
    if (!ok) {  // the stream is gone: stop writing, cancel what runs
      MarkDeadLocked();
    } else {
      Flush(lock);
    }
    Settle(lock);
    for (auto& resume : resumes) resume();
  }

  void OnFinished(bool /*ok*/) {
    std::unique_lock<std::mutex> lock(mu_);
    --ops_;
    Settle(lock);
  }

  void OnEnded(bool /*ok*/) {
    std::unique_lock<std::mutex> lock(mu_);
    ended_seen_ = true;
    if (context_.IsCancelled()) MarkDeadLocked();
    Settle(lock);
  }

  void MarkDeadLocked() {
    dead_ = true;
    out_.clear();
    for (auto& [id, cancelled] : running_) cancelled->store(true);
  }

  // Finishes the stream when there is nothing more to send, gives up the stream's claim
  // on the queue when it will start no more operations, and frees it at the very end.
  // Called with the lock held; unlocks it.
  void Settle(std::unique_lock<std::mutex>& lock) {
    const bool quiet = reading_done_ && running_.empty() && !writing_ && out_.empty();
    if (quiet && !dead_ && !finishing_) {
      finishing_ = true;
      ++ops_;
      io_.Finish(end_status_, &finished_);
    }
    const bool no_more_ops = running_.empty() && (finishing_ || (dead_ && reading_done_));
    if (no_more_ops && !released_claim_) {
      released_claim_ = true;
      counts_->replying.fetch_sub(1);
    }
    const bool gone = ended_seen_ && ops_ == 0 && running_.empty() && (finishing_ || dead_);
    lock.unlock();
    if (gone) delete this;
  }

  StepPluginServiceImpl* service_;
  grpc::ServerCompletionQueue* cq_;
  CallCounts* counts_;
  grpc::ServerContext context_;
  grpc::ServerAsyncReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer> io_{&context_};
  CallContext stream_call_;
  grpc::ByteBuffer in_;

  std::mutex mu_;
  int ops_ = 0;  // read, write and finish operations on their way
  bool reading_done_ = false;
  bool writing_ = false;
  bool finishing_ = false;
  bool dead_ = false;  // cancelled, or a write failed: nothing more is sent
  bool ended_seen_ = false;
  bool released_claim_ = false;
  grpc::Status end_status_;  // OK, or why the stream was ended
  std::map<uint64_t, std::shared_ptr<std::atomic<bool>>> running_;  // call id -> cancelled
  static constexpr size_t kSpareCalls = 32;                         // ~7 KiB each
  std::vector<std::unique_ptr<RunningCall>> spare_;
  std::vector<RunningCall*> starts_spare_;  // OnRead's list of calls to start, for its room
  // Every ReadMessage of the stream (a message's arena lives as long as the stream), and
  // those no call uses.
  std::vector<std::unique_ptr<ReadMessage>> reads_;
  std::vector<ReadMessage*> free_reads_;
  // Results and body chunks waiting for the next write, in the order they came.
  struct Outbound {
    std::unique_ptr<v1::StepCallResult> result;  // a call refused by the stream itself
    std::unique_ptr<RunningCall> call;           // or a finished call, its result on its arena
    std::unique_ptr<v1::BodyChunk> chunk;
    std::shared_ptr<ResponseFlow> flow;  // the chunk's
  };
  std::deque<Outbound> out_;
  v1::ExecuteStepsResponse batch_;  // the write being built (Flush)
  std::vector<Outbound> batched_;   // its results' owners until it is serialized
  // The chunks of the write on its way, by call, to release from their windows.
  std::vector<std::pair<std::shared_ptr<ResponseFlow>, size_t>> in_write_;
  std::map<uint64_t, std::shared_ptr<ResponseFlow>> responses_;  // running calls with chunks
  std::map<uint64_t, std::shared_ptr<RequestFlow>> requests_;    // running calls with uploads
  bool read_held_ = false;  // no read on its way: an upload's window is full

  Event<&StepStream::OnArrived> arrived_{this};
  Event<&StepStream::OnRead> read_{this};
  Event<&StepStream::OnWritten> written_{this, /*may_start_steps=*/false};
  Event<&StepStream::OnFinished> finished_{this, /*may_start_steps=*/false};
  Event<&StepStream::OnEnded> ended_{this, /*may_start_steps=*/false};
};

}  // namespace

void ListenForStepStream(StepPluginServiceImpl* service, grpc::ServerCompletionQueue* cq,
                         CallCounts* counts) {
  StepStream::Listen(service, cq, counts);
}

}  // namespace wsstep::plugin

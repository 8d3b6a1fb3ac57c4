// The step queue's pieces that the unary step calls (step_service.cc) and the
// ExecuteSteps stream (step_stream.cc) share: the events its threads hand back, the
// dispatching thread's state, and the full method names calls are logged under. Internal
// to plugin/server.
#ifndef WSSTEP_PLUGIN_SERVER_STEP_QUEUE_H_
#define WSSTEP_PLUGIN_SERVER_STEP_QUEUE_H_

#include <google/protobuf/arena.h>
#include <grpcpp/completion_queue.h>

#include <array>
#include <cstdlib>
#include <string>
#include <string_view>

#include "plugin/server/backends.h"
#include "plugin/server/step_service.h"

namespace wsstep::plugin {

// On the dispatching thread: its lease, and whether the event it is handling may run a
// step on it (StepPluginServiceImpl::Dispatch). Elsewhere: no lease.
struct DispatchingThread {
  StepThreadLease* lease = nullptr;
  bool allow_inline = false;
};
extern thread_local DispatchingThread t_dispatching;  // step_service.cc

// Something the step queue's threads hand back: a call arrived, its reply went out, or
// it ended (completed or cancelled by the client).
class QueueEvent {
 public:
  virtual void Handle(bool ok) = 0;
  // False for events that only complete an operation (a stream's write or finish, a
  // call's end) and never start a step: the dispatching thread may run a step itself
  // while one of those waits behind it.
  virtual bool MayStartSteps() const = 0;

 protected:
  ~QueueEvent() = default;
};

// A QueueEvent that calls a member function of the call or stream it belongs to.
template <typename Owner, void (Owner::*kHandler)(bool)>
class MemberEvent final : public QueueEvent {
 public:
  explicit MemberEvent(Owner* owner, bool may_start_steps = true)
      : owner_(owner), may_start_steps_(may_start_steps) {}
  void Handle(bool ok) override { (owner_->*kHandler)(ok); }
  bool MayStartSteps() const override { return may_start_steps_; }

 private:
  Owner* owner_;
  bool may_start_steps_;
};

// The protobuf messages of one running step (its parsed request, its response) live on
// an arena whose first block is part of this object: building a warm step's result (its
// headers, TLS facts, timings) and parsing its request cost no heap allocation per
// message, and everything goes at once when the arena is reset or destroyed.
//
// A protobuf arena gives each thread that allocates on it blocks of its own, and a
// result is built on the thread that finished the step (an event loop), not the one
// that made the arena: those blocks come from a small cache of the thread's, which the
// blocks of reset arenas refill, so that a warm step mallocs none of them either.
class StepArena {
 public:
  StepArena() : arena_(Options(block_, sizeof block_)) {}
  StepArena(const StepArena&) = delete;
  StepArena& operator=(const StepArena&) = delete;
  google::protobuf::Arena* get() { return &arena_; }
  // Frees every message on it; the first block is used again.
  void Reset() { arena_.Reset(); }

 private:
  // A warm GET's request and result take about 3 KiB.
  static constexpr size_t kBlockBytes = 6 * 1024;
  static constexpr size_t kThreadBlockBytes = 4 * 1024;  // each further block
  static constexpr size_t kCachedBlocks = 32;            // per thread

  static google::protobuf::ArenaOptions Options(char* block, size_t size) {
    google::protobuf::ArenaOptions o;
    o.initial_block = block;
    o.initial_block_size = size;
    o.start_block_size = kThreadBlockBytes;
    o.max_block_size = kThreadBlockBytes;
    o.block_alloc = &TakeBlock;
    o.block_dealloc = &GiveBlock;
    return o;
  }
  struct BlockCache {
    std::array<void*, kCachedBlocks> blocks{};
    size_t count = 0;
    ~BlockCache() {
      for (size_t i = 0; i < count; ++i) std::free(blocks[i]);
    }
  };
  static BlockCache& Cache() {
    thread_local BlockCache cache;
    return cache;
  }
  // Behave as malloc and free (ArenaOptions asks so); only blocks of the usual size are
  // kept, a few per thread.
  static void* TakeBlock(size_t size) {
    BlockCache& cache = Cache();
    if (size == kThreadBlockBytes && cache.count > 0) return cache.blocks[--cache.count];
    return std::malloc(size);
  }
  static void GiveBlock(void* block, size_t size) {
    BlockCache& cache = Cache();
    if (size == kThreadBlockBytes && cache.count < kCachedBlocks) {
      cache.blocks[cache.count++] = block;
      return;
    }
    std::free(block);
  }

  alignas(16) char block_[kBlockBytes];
  google::protobuf::Arena arena_;  // after block_, which it uses
};

inline constexpr std::string_view kService = "wsstep.v1.StepPluginService/";

// "wsstep.v1.StepPluginService/<name>".
inline std::string Method(std::string_view name) {
  return std::string(kService) + std::string(name);
}

// Listens for one ExecuteSteps stream on `cq` (step_stream.cc); each stream listens for
// the next when it arrives.
void ListenForStepStream(StepPluginServiceImpl* service, grpc::ServerCompletionQueue* cq,
                         CallCounts* counts);

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_SERVER_STEP_QUEUE_H_

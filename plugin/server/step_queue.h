// The step queue's pieces that the unary step calls (step_service.cc) and the
// ExecuteSteps stream (step_stream.cc) share: the events its threads hand back, the
// dispatching thread's state, and the full method names calls are logged under. Internal
// to plugin/server.
#ifndef WSSTEP_PLUGIN_SERVER_STEP_QUEUE_H_
#define WSSTEP_PLUGIN_SERVER_STEP_QUEUE_H_

#include <grpcpp/completion_queue.h>

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

// A small fixed pool of threads for work that may block (store calls: SQLite, PBKDF2,
// key generation), so that gRPC's callback threads never do. Not for steps: the REST
// engine has its own workers.
//
//   WorkerPool pool(2);
//   if (!pool.Post([=] { ...; reactor->Finish(status); })) reactor->Finish(UNAVAILABLE);
//   pool.Shutdown();   // runs what was queued, then joins
#ifndef WSSTEP_PLUGIN_WORKER_POOL_H_
#define WSSTEP_PLUGIN_WORKER_POOL_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace wsstep::plugin {

class WorkerPool {
 public:
  explicit WorkerPool(int threads);
  ~WorkerPool();  // Shutdown()
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task`. False (and `task` dropped) once Shutdown has begun.
  bool Post(std::function<void()> task);
  // Stops accepting tasks, runs the queued ones, joins the threads. Idempotent.
  void Shutdown();

 private:
  void Run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_WORKER_POOL_H_

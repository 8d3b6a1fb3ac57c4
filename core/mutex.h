// Mutex, MutexLock and CondVar: std::mutex and std::condition_variable with clang's
// thread-safety annotations, so that `clang -Wthread-safety` (scripts/thread_safety.sh,
// run by CI) proves every member marked ABSL_GUARDED_BY(mu_) is touched only with mu_
// held. No cost over the std types: the annotations are attributes, the calls inline.
//
//   class Queue {
//     void Push(int v) {
//       MutexLock lock(mu_);
//       items_.push_back(v);
//       ready_.NotifyOne();
//     }
//     int Pop() {
//       MutexLock lock(mu_);
//       while (items_.empty()) ready_.Wait(lock);   // a loop, not a predicate: the
//       ...                                          // analysis sees the lock held here
//     }
//     Mutex mu_;
//     CondVar ready_;
//     std::deque<int> items_ ABSL_GUARDED_BY(mu_);
//   };
#ifndef WSSTEP_CORE_MUTEX_H_
#define WSSTEP_CORE_MUTEX_H_

#include <absl/base/thread_annotations.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace wsstep {

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  bool TryLock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) { return mu_.try_lock(); }
  // For code the analysis cannot follow (a lock taken in one callback and released in
  // another): tells it the caller holds this mutex.
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}

 private:
  friend class CondVar;
  friend class MutexLock;
  std::mutex mu_;
};

// Holds `mu` for its scope; Unlock()/Lock() release and take it again inside the scope.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : lock_(mu.mu_) {}
  ~MutexLock() ABSL_UNLOCK_FUNCTION() = default;
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void Unlock() ABSL_UNLOCK_FUNCTION() { lock_.unlock(); }
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { lock_.lock(); }

 private:
  friend class CondVar;
  std::unique_lock<std::mutex> lock_;
};

// Waits release the lock while they sleep and hold it again when they return, as
// std::condition_variable does. Wake-ups may be spurious: wait in a loop on the condition.
class CondVar {
 public:
  void Wait(MutexLock& held) { cv_.wait(held.lock_); }
  // False when `deadline` passed.
  template <typename Clock, typename Duration>
  bool WaitUntil(MutexLock& held, std::chrono::time_point<Clock, Duration> deadline) {
    return cv_.wait_until(held.lock_, deadline) == std::cv_status::no_timeout;
  }
  template <typename Rep, typename Period>
  bool WaitFor(MutexLock& held, std::chrono::duration<Rep, Period> timeout) {
    return cv_.wait_for(held.lock_, timeout) == std::cv_status::no_timeout;
  }
  void NotifyOne() { cv_.notify_one(); }
  void NotifyAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace wsstep

#endif  // WSSTEP_CORE_MUTEX_H_

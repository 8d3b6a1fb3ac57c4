// SpinAdvisor: whether a thread that is about to wait for a socket should first look at it
// for a moment without sleeping. On the virtual machines we run on, a sleep and the wake-up
// that ends it cost tens of microseconds — as much as a whole keep-alive request to a
// nearby origin — so a thread with nothing else to do reads an answer that comes within
// the spin without ever sleeping. The advisor learns how long the waits last (a running
// average) and stops spinning when they are longer than spinning could cover, so a far
// origin or a host that calls once a second costs no CPU.
//
//   SpinAdvisor advisor(options.spin_wait);   // one per waiting thread; 0: never spins
//   auto spin = advisor.Budget();             // 0: sleep at once
//   ... wait, spinning up to `spin` first ...
//   advisor.Observe(how_long_it_took);        // or ObserveFailure()
//
// Not thread-safe: one per thread.
#ifndef WSSTEP_REST_SPIN_WAIT_H_
#define WSSTEP_REST_SPIN_WAIT_H_

#include <chrono>
#include <cstdint>

namespace wsstep::rest {

class SpinAdvisor {
 public:
  // How long a spin lasts unless told otherwise (EngineOptions::spin_wait, the plugin's
  // spin_wait_us setting).
  static constexpr std::chrono::microseconds kDefaultSpin{250};
  // Waits that average more than this many spins are too long to be worth one.
  static constexpr int kWorthItSpins = 4;

  explicit SpinAdvisor(std::chrono::microseconds spin = kDefaultSpin)
      : spin_(spin.count() > 0 ? spin : std::chrono::microseconds(0)) {}

  std::chrono::microseconds spin() const { return spin_; }
  // Waits longer than this (on average) stop the spin.
  double worth_it_us() const { return static_cast<double>(kWorthItSpins * spin_.count()); }

  // spin() while the recent waits averaged at most worth_it_us(); otherwise zero, except
  // for one wait in 64, which spins anyway to notice that the waits became short again.
  std::chrono::microseconds Budget() {
    const bool probe = (++waits_ & 63) == 0;
    return probe || average_us_ <= worth_it_us() ? spin_ : std::chrono::microseconds(0);
  }

  // How long a wait (or the operation around it) took.
  void Observe(std::chrono::microseconds took) {
    average_us_ += (static_cast<double>(took.count()) - average_us_) / 8;
  }
  // A wait that ended in an error: counts as a long one.
  void ObserveFailure() { Observe(10 * kWorthItSpins * spin_); }

  double average_us() const { return average_us_; }

 private:
  std::chrono::microseconds spin_;
  uint64_t waits_ = 0;
  double average_us_ = 0;  // optimistic at first: the first waits spin
};

}  // namespace wsstep::rest

#endif  // WSSTEP_REST_SPIN_WAIT_H_

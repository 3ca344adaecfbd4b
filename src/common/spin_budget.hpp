#pragma once
// How long a waiter polls before it sleeps, learned from its own recent waits.
//
// Polling pays only while the party we wait for is running. With more busy
// parties than CPUs it usually is not: our polling then takes the CPU it needs,
// and every waiter burns its whole window before sleeping anyway. A waiter
// cannot see whether its peer runs, but it can see whether polling has been
// paying off: each window that ends in sleep halves the next one, a wait that
// polling ends restores the whole window. Every kProbeEvery-th wait while
// shrunk polls the whole window again, so a waiter whose peers got CPUs back
// returns to polling within a few waits.

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace vdtu {

class SpinBudget {
 public:
  static constexpr std::uint32_t kMaxHalvings = 6;  // 50 µs -> under 1 µs: a few looks, no more
  static constexpr std::uint32_t kProbeEvery = 16;

  // The window for the next wait, for a caller whose full window is `full`.
  [[nodiscard]] std::chrono::nanoseconds window(std::chrono::nanoseconds full) {
    if (halvings_ == 0 || ++waits_since_shrunk_ % kProbeEvery == 0) return full;
    return full / (std::int64_t{1} << halvings_);
  }

  // The wait ended while polling: the peer was running.
  void paid_off() {
    halvings_ = 0;
    waits_since_shrunk_ = 0;
  }

  // The window passed and the waiter is about to sleep.
  void wasted() { halvings_ = std::min(halvings_ + 1, kMaxHalvings); }

  [[nodiscard]] std::uint32_t halvings() const { return halvings_; }

 private:
  std::uint32_t halvings_ = 0;
  std::uint32_t waits_since_shrunk_ = 0;
};

}  // namespace vdtu

#pragma once
// The waiting discipline shared by both channel sides: poll for a while, then
// announce sleep in a wait word, re-check, and sleep on the futex.
//
// Invariant ("signal only when needed"): the waiter stores kSleepingOnFutex
// (seq_cst) *before* its final check of the ring; the other side publishes its
// index (seq_cst) *before* it loads the wait word. In the single total order of
// seq_cst operations one of the two must see the other: either the waiter's
// check sees the new index, or the publisher sees the announcement and wakes.
// A publisher that sees kAwake makes no system call.

#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>

#include "channel_control.hpp"
#include "common/futex.hpp"
#include "vdtu/channel.hpp"

namespace vdtu::detail {

inline void cpu_relax() { __builtin_ia32_pause(); }

// Linux likes to wake a task on its waker's CPU, so two parties polling for
// each other can end up on one CPU, where pure spinning starves the very peer
// it waits for (measured here: 60 µs per memory request instead of 1 µs).
// After kPureSpin, a polite spinner yields every 64th step; sched_yield
// returns at once when nothing else wants this CPU.
inline constexpr auto kPureSpin = std::chrono::microseconds(5);

class Spinner {
 public:
  void pause() {
    if (++round_ % 64 == 0 && std::chrono::steady_clock::now() - start_ > kPureSpin) {
      ::sched_yield();
    } else {
      cpu_relax();
    }
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::uint32_t round_ = 0;
};

// For a loop whose every round makes system calls (a node's loop, a socket
// poller): 64 of its rounds take 100 µs or more, far too long to keep a CPU
// from a party that shares it, so after kPureSpin it yields every round.
class HeavySpinner {
 public:
  void pause() {
    if (std::chrono::steady_clock::now() - start_ > kPureSpin) {
      ::sched_yield();
    } else {
      cpu_relax();
    }
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// For a service loop: keeps polling for `window` after it last found work,
// because sleeping and waking costs more than that here.
class PollAfterWork {
 public:
  explicit PollAfterWork(std::chrono::nanoseconds window) : window_(window) {}

  // After one round of the loop: true to go round again at once, false when
  // the loop has been idle for the window and may sleep.
  bool poll_again(bool worked) {
    const auto now = std::chrono::steady_clock::now();
    if (worked) {
      last_work_ = now;
      spinner_ = HeavySpinner{};
      return true;
    }
    if (now - last_work_ < window_) {
      spinner_.pause();
      return true;
    }
    return false;
  }

 private:
  std::chrono::nanoseconds window_;
  std::chrono::steady_clock::time_point last_work_ = std::chrono::steady_clock::now();
  HeavySpinner spinner_;
};

// Saturates instead of overflowing, in the caller's own unit: converting
// milliseconds::max() to nanoseconds first would wrap around.
template <class Rep, class Period>
std::chrono::steady_clock::time_point deadline_after(std::chrono::duration<Rep, Period> timeout) {
  using Clock = std::chrono::steady_clock;
  const auto now = Clock::now();
  const auto room =
      std::chrono::duration_cast<std::chrono::duration<Rep, Period>>(Clock::time_point::max() - now);
  return timeout >= room ? Clock::time_point::max()
                         : now + std::chrono::duration_cast<Clock::duration>(timeout);
}

// `check` returns a status when the wait is over, nullopt to keep waiting.
template <class Check>
Status spin_then_sleep(WaitPolicy policy, std::chrono::nanoseconds timeout, std::uint32_t& wait_word,
                       Check check) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto deadline = deadline_after(timeout);
  constexpr std::uint32_t kClockEvery = 64;  // reading the clock costs more than a pause
  for (std::uint32_t round = 1;; ++round) {
    if (auto done = check()) return *done;
    if (round % kClockEvery == 0) {
      const auto now = Clock::now();
      if (now >= deadline) return Status::kTimeout;
      if (policy.allow_sleep && now - start >= policy.spin) break;
      if (now - start > kPureSpin) ::sched_yield();
    }
    cpu_relax();
  }
  std::atomic_ref<std::uint32_t> word(wait_word);
  for (;;) {
    word.store(kSleepingOnFutex, std::memory_order_seq_cst);
    if (auto done = check()) {
      word.store(kAwake, std::memory_order_relaxed);
      return *done;
    }
    const auto now = Clock::now();
    if (now >= deadline) {
      word.store(kAwake, std::memory_order_relaxed);
      return Status::kTimeout;
    }
    futex_wait(&wait_word, kSleepingOnFutex, deadline - now);
  }
}

// Publisher side of the protocol: wake the peer only if it announced sleep.
// Returns the mode the peer was waiting in.
inline std::uint32_t take_waiter(std::uint32_t& wait_word) {
  std::atomic_ref<std::uint32_t> word(wait_word);
  if (word.load(std::memory_order_seq_cst) == kAwake) return kAwake;
  return word.exchange(kAwake, std::memory_order_seq_cst);
}

}  // namespace vdtu::detail

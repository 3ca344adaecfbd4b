#pragma once
// A budget for work that others can make us do: `burst` at once, then one
// more per `interval`. Time comes from the caller.

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace vdtu::bridge {

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  TokenBucket(std::uint32_t burst, std::chrono::milliseconds interval)
      : burst_(burst), interval_(std::max(interval, std::chrono::milliseconds{1})), tokens_(burst) {}

  // True (and one token spent) if the budget allows one more now.
  bool take(Clock::time_point now) {
    if (!started_) {
      started_ = true;
      last_refill_ = now;
    }
    if (now > last_refill_) {
      const auto earned = (now - last_refill_) / interval_;
      if (earned > 0) {
        tokens_ = static_cast<std::uint32_t>(std::min<std::int64_t>(burst_, tokens_ + earned));
        last_refill_ += earned * interval_;
      }
    }
    if (tokens_ == 0) return false;
    --tokens_;
    return true;
  }

 private:
  std::uint32_t burst_;
  Clock::duration interval_;
  std::uint32_t tokens_;
  Clock::time_point last_refill_{};
  bool started_ = false;
};

}  // namespace vdtu::bridge

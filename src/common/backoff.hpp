#pragma once
// Sleeping between tries of something that is not ready yet: the first pause,
// then twice as long each time, at most `longest`. Waiters that poll at a
// fixed short interval add up: a thousand processes retrying every 1-5 ms are
// hundreds of thousands of wake-ups a second, more than two vCPUs do besides.

#include <algorithm>
#include <chrono>
#include <thread>

namespace vdtu {

class Backoff {
 public:
  Backoff(std::chrono::milliseconds first, std::chrono::milliseconds longest)
      : next_(first), longest_(longest) {}

  void sleep() {
    std::this_thread::sleep_for(next_);
    next_ = std::min(2 * next_, longest_);
  }

 private:
  std::chrono::milliseconds next_;
  std::chrono::milliseconds longest_;
};

}  // namespace vdtu

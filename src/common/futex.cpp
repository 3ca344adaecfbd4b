#include "futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <ctime>

namespace vdtu::detail {

void futex_wait(std::uint32_t* word, std::uint32_t expected, std::chrono::nanoseconds timeout) {
  constexpr auto kMaxSleep = std::chrono::seconds(1);  // bounded, so deadlines are re-checked
  const auto bounded = timeout < kMaxSleep ? timeout : std::chrono::nanoseconds(kMaxSleep);
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(bounded);
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(secs.count());
  ts.tv_nsec = static_cast<long>((bounded - secs).count());
  ::syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, nullptr, 0);
}

void futex_wake_all(std::uint32_t* word) {
  ::syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

}  // namespace vdtu::detail

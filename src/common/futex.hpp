#pragma once
// Process-shared futex calls (no FUTEX_PRIVATE_FLAG: the word lives in a
// MAP_SHARED mapping that several processes see).

#include <chrono>
#include <cstdint>

namespace vdtu::detail {

// Sleeps while *word == expected, at most `timeout`. Spurious returns happen;
// callers re-check their condition.
void futex_wait(std::uint32_t* word, std::uint32_t expected, std::chrono::nanoseconds timeout);
void futex_wake_all(std::uint32_t* word);

}  // namespace vdtu::detail

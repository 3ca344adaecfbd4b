#pragma once
// Stress sizes: full in optimised builds, smaller under sanitizers (which
// slow the data path 5-50x) so the default suite stays short.

#include <cstdint>

namespace vdtu::testing {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

constexpr std::uint64_t scaled(std::uint64_t full) { return kSanitized ? full / 16 : full; }

}  // namespace vdtu::testing

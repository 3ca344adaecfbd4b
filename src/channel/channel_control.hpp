#pragma once
// Shared-memory layout of a channel. Plain integers, accessed only through
// std::atomic_ref, so the same struct can be mapped by any process.

#include <cstddef>
#include <cstdint>

#include "vdtu/channel.hpp"

namespace vdtu::detail {

inline constexpr std::uint64_t kChannelMagic = 0x314e484355544456ULL;  // "VDTUCHN1"
inline constexpr std::uint32_t kChannelVersion = 1;
inline constexpr std::size_t kCacheLine = 64;

// Values of the two wait words (futex words).
enum WaitMode : std::uint32_t {
  kAwake = 0,
  kSleepingOnFutex = 1,
  kWaitingOnEvent = 2,  // consumer only: wake it through the eventfd
};

struct ChannelControl {
  // Line 0: written once by the creator; peers check it on attach, then never
  // read it again (each side keeps its own copy of the geometry).
  alignas(kCacheLine) std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t slot_count;
  std::uint32_t slot_size;

  // Line 1, written by the producer: (state << 32) | head. Publishing and
  // terminating both compare-and-swap this word, which makes termination
  // atomic with respect to publication.
  alignas(kCacheLine) std::uint64_t producer_word;

  // Line 2, written by the consumer: index of the oldest unacked message.
  alignas(kCacheLine) std::uint32_t consumer_index;

  // Line 3: the consumer announces it sleeps; the producer clears and wakes.
  alignas(kCacheLine) std::uint32_t consumer_wait;

  // Line 4: the producer announces it sleeps (ring full); the consumer wakes.
  alignas(kCacheLine) std::uint32_t producer_wait;
};

static_assert(sizeof(ChannelControl) == 5 * kCacheLine);
static_assert(offsetof(ChannelControl, producer_word) == 1 * kCacheLine);
static_assert(offsetof(ChannelControl, consumer_index) == 2 * kCacheLine);
static_assert(offsetof(ChannelControl, consumer_wait) == 3 * kCacheLine);
static_assert(offsetof(ChannelControl, producer_wait) == 4 * kCacheLine);

inline constexpr std::size_t kSlotsOffset = sizeof(ChannelControl);

constexpr std::uint64_t pack_producer_word(ChannelState state, std::uint32_t head) {
  return (static_cast<std::uint64_t>(state) << 32U) | head;
}
constexpr std::uint32_t head_of(std::uint64_t word) { return static_cast<std::uint32_t>(word); }
constexpr std::uint32_t state_of(std::uint64_t word) { return static_cast<std::uint32_t>(word >> 32U); }
constexpr bool is_known_state(std::uint32_t raw) {
  return raw >= static_cast<std::uint32_t>(ChannelState::kConfigured) &&
         raw <= static_cast<std::uint32_t>(ChannelState::kTerminated);
}

}  // namespace vdtu::detail

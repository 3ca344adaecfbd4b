#pragma once
// Shared-memory layout of a channel. Plain integers, accessed only through
// std::atomic_ref, so the same struct can be mapped by any process.

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

#include "vdtu/channel.hpp"

namespace vdtu::detail {

inline constexpr std::uint64_t kChannelMagic = 0x314e484355544456ULL;  // "VDTUCHN1"
inline constexpr std::uint32_t kChannelVersion = 3;
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

  // Line 1, written by the creator when it activates or terminates the
  // channel: a ChannelState. Read on every send, written twice in a life, so
  // it stays in both sides' caches.
  alignas(kCacheLine) std::uint32_t state;

  // Line 2, written by the consumer: index of the oldest unacked message.
  alignas(kCacheLine) std::uint32_t consumer_index;

  // Line 3: the consumer announces it sleeps; the producer clears and wakes.
  alignas(kCacheLine) std::uint32_t consumer_wait;

  // Line 4: the producer announces it sleeps (ring full); the consumer wakes.
  alignas(kCacheLine) std::uint32_t producer_wait;
};

static_assert(sizeof(ChannelControl) == 5 * kCacheLine);
static_assert(offsetof(ChannelControl, state) == 1 * kCacheLine);
static_assert(offsetof(ChannelControl, consumer_index) == 2 * kCacheLine);
static_assert(offsetof(ChannelControl, consumer_wait) == 3 * kCacheLine);
static_assert(offsetof(ChannelControl, producer_wait) == 4 * kCacheLine);

inline constexpr std::size_t kSlotsOffset = sizeof(ChannelControl);

// Every slot starts on a cache line with its sequence word, followed by the
// message (header and payload), so a consumer that polls the sequence word
// finds a short message in the line it just pulled over.
inline constexpr std::size_t kSequenceSize = sizeof(std::uint32_t);
constexpr std::size_t slot_stride(std::uint32_t slot_size) {
  return (kSequenceSize + slot_size + kCacheLine - 1) / kCacheLine * kCacheLine;
}

// A sequence word holds the lap of the message in the slot, plus one: with n
// slots (a power of two, at least 2), index i is in lap i / n, and its slot
// holds published(i) = (i / n + 1) mod 2^32/n once i is published and
// published(i - n) (the previous lap's message) while it is free. For the
// first lap that free value is 0, so a fresh, zero-filled ring needs no
// writing: its pages stay untouched until messages pass through them. The
// top bit marks the end of the stream: terminate() sets it on the free slot
// where the stream ends, with the same compare-and-swap that the producer
// uses to publish, so a message is either published before the end or refused.
inline constexpr std::uint32_t kEndOfStream = 1U << 31U;
inline constexpr std::uint32_t kSequenceMask = kEndOfStream - 1;

// All values a sequence word takes for `slot_count` slots (at most 2^31).
constexpr std::uint32_t lap_mask(std::uint32_t slot_count) {
  return ~std::uint32_t{0} >> std::countr_zero(slot_count);
}

constexpr std::uint32_t published(std::uint32_t index, std::uint32_t slot_count) {
  return ((index >> std::countr_zero(slot_count)) + 1) & lap_mask(slot_count);
}

enum class SlotState { kMessage, kFree, kEnd, kCorrupt };

// What the slot of `index` says about that index. A slot marked for the end
// of the stream one lap later still carries its own message.
constexpr SlotState classify(std::uint32_t word, std::uint32_t index, std::uint32_t slot_count) {
  const auto sequence = word & kSequenceMask;
  if (sequence == published(index, slot_count)) return SlotState::kMessage;
  if (sequence == published(index - slot_count, slot_count)) {
    return (word & kEndOfStream) != 0 ? SlotState::kEnd : SlotState::kFree;
  }
  return SlotState::kCorrupt;
}

// seq_cst, not just acquire: a waiter's last look before it sleeps must be
// in the single order with its wait-word store (spin_then_sleep.hpp). On x86
// both are the same plain load.
inline std::uint32_t load_sequence(const SharedChannel& channel, std::uint32_t index) {
  return std::atomic_ref<std::uint32_t>(channel.sequence(index)).load(std::memory_order_seq_cst);
}

inline std::uint32_t load_state(const SharedChannel& channel) {
  return std::atomic_ref<std::uint32_t>(channel.control().state).load(std::memory_order_seq_cst);
}

constexpr std::uint32_t as_raw(ChannelState state) { return static_cast<std::uint32_t>(state); }

// Acquire pairs with the consumer's store in ack(): once the index is seen,
// the consumer has finished reading the slots before it.
inline std::uint32_t load_consumer_index(const SharedChannel& channel) {
  return std::atomic_ref<std::uint32_t>(channel.control().consumer_index).load(std::memory_order_acquire);
}

inline SlotState slot_state(const SharedChannel& channel, std::uint32_t index) {
  return classify(load_sequence(channel, index), index, channel.geometry().slot_count);
}

// The first index from `from` on whose slot holds no message: one past the
// newest published message, as far as shared memory says (at most a lap on).
inline std::uint32_t published_end(const SharedChannel& channel, std::uint32_t from) {
  const auto slots = channel.geometry().slot_count;
  auto index = from;
  while (index - from < slots && slot_state(channel, index) == SlotState::kMessage) ++index;
  return index;
}

constexpr bool is_known_state(std::uint32_t raw) {
  return raw >= as_raw(ChannelState::kConfigured) && raw <= as_raw(ChannelState::kTerminated);
}

}  // namespace vdtu::detail

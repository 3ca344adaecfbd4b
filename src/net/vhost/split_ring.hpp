#pragma once
// One split virtqueue as the device (the switch) sees it. The rings live in
// guest memory, so everything read from them is untrusted: the available
// index may not run more than a ring ahead, heads and next fields stay below
// the queue size, a chain has at most queue-size descriptors (a loop cannot
// go on), every buffer is translated through GuestMemory, and each
// descriptor is copied out once before it is looked at. Indirect tables are
// not negotiated, so a descriptor asking for one is a violation too.
//
// Interrupt suppression both ways: with EVENT_IDX the used_event/avail_event
// words, without it the NO_INTERRUPT/NO_NOTIFY flags.

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "guest_memory.hpp"

namespace vdtu::net::vhost {

inline constexpr std::uint32_t kMaxQueueSize = 32768;

struct Segment {
  std::byte* data = nullptr;
  std::uint32_t length = 0;
};

enum class ChainError : std::uint8_t {
  kNone,
  kHeadOutOfRange,
  kNextOutOfRange,
  kTooLong,  // more descriptors than the queue has: a loop
  kBadAddress,
  kWrongDirection,  // a device-writable buffer where the device reads, or the reverse
  kIndirect,        // not negotiated
};
std::string_view to_string(ChainError e);

// The three parts of a split ring, already translated.
struct RingLayout {
  std::uint32_t entries = 0;  // a power of two, 1 to 32768
  std::byte* descriptors = nullptr;
  std::byte* available = nullptr;
  std::byte* used = nullptr;
};

// Bytes of each part for `entries` descriptors (with the event words).
constexpr std::uint64_t descriptor_table_bytes(std::uint32_t entries) { return std::uint64_t{16} * entries; }
constexpr std::uint64_t available_ring_bytes(std::uint32_t entries) { return 6 + std::uint64_t{2} * entries; }
constexpr std::uint64_t used_ring_bytes(std::uint32_t entries) { return 6 + std::uint64_t{8} * entries; }

// Walks the chain starting at `head` in the descriptor table (`entries`
// descriptors at `table`) and appends its buffers to `out` (cleared first).
// `writable`: the device writes these buffers (receive) or reads them.
// Zero-length descriptors are skipped. `total` gets the sum of lengths.
ChainError walk_chain(const std::byte* table, std::uint32_t entries, std::uint32_t head, bool writable,
                      const GuestMemory& memory, std::vector<Segment>& out, std::uint64_t& total);

class SplitRing {
 public:
  SplitRing() = default;
  // `next_available`: where to resume (SET_VRING_BASE); the used index
  // resumes there too.
  SplitRing(const RingLayout& layout, std::uint16_t next_available, bool event_index);

  // Heads the guest has made available, or nullopt when its index jumped
  // more than a ring ahead (a broken or hostile guest).
  [[nodiscard]] std::optional<std::uint32_t> available() const;
  // The head `offset` places after the next one (offset < available()).
  [[nodiscard]] std::uint16_t head_at(std::uint32_t offset) const;
  // Moves past `count` heads (each then given back with put_used()).
  void consume(std::uint32_t count) { next_available_ = static_cast<std::uint16_t>(next_available_ + count); }
  // Gives `head` back with `written` bytes; visible after publish().
  void put_used(std::uint16_t head, std::uint32_t written);
  // Makes the used entries visible; true when the guest wants an interrupt.
  bool publish();

  // Kicks: off while the switch polls, on before it sleeps. enable_kicks()
  // returns false when buffers arrived meanwhile (the caller polls on).
  bool enable_kicks();
  void disable_kicks();

  [[nodiscard]] std::uint16_t next_available() const { return next_available_; }
  [[nodiscard]] std::uint32_t entries() const { return layout_.entries; }
  [[nodiscard]] const std::byte* descriptors() const { return layout_.descriptors; }

 private:
  [[nodiscard]] std::uint16_t load_available_index() const;
  [[nodiscard]] std::uint16_t load_available_flags() const;
  [[nodiscard]] std::uint16_t load_used_event() const;
  void store_used_index(std::uint16_t value);
  void store_used_flags(std::uint16_t value);
  void store_available_event(std::uint16_t value);

  RingLayout layout_;
  bool event_index_ = false;
  std::uint16_t next_available_ = 0;
  std::uint16_t used_index_ = 0;       // ours: entries put so far
  std::uint16_t published_index_ = 0;  // what the guest has seen at the last publish
};

}  // namespace vdtu::net::vhost

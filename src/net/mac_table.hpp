#pragma once
// The switch's forwarding database: (VLAN, MAC) -> port.
//
// Size and eviction policy:
// - `capacity` entries (default 4096, at most 1 << 20), static ones included,
//   in an open-addressing table of 2 x capacity slots rounded up to a power of
//   two (load factor at most 1/2), linear probing, deletion by backward shift
//   (no tombstones), so a lookup costs a few slot reads whatever happened before.
// - The hash is keyed with a random seed per table, so frames with chosen
//   source MACs cannot pile entries into one probe run.
// - Learned entries sit on a list ordered by the second they were last seen
//   (refreshed at most once per second per entry, so a busy source costs no
//   writes). An entry not seen for `aging` (default 300 s) is removed by
//   expire(); one that old is already ignored by lookup().
// - When the table is full, learning a new address evicts the learned entry
//   seen longest ago (the list's head): a full table keeps learning, and what
//   it forgot is flooded, as if it had aged out.
// - Static entries (configuration) are never aged, evicted or moved; a frame
//   from a static address on another port is refused (kPinnedElsewhere).
//
// Time is passed in by the caller (whole seconds of any monotonic clock), so
// tests drive aging without waiting.

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

namespace vdtu::net {

using PortId = std::uint16_t;
// A 48-bit MAC with its 12-bit VLAN id above it.
using MacKey = std::uint64_t;
using Seconds = std::uint32_t;

constexpr MacKey make_mac_key(std::uint64_t mac, std::uint16_t vlan) {
  return (static_cast<std::uint64_t>(vlan & 0xfffU) << 48U) | (mac & 0xffff'ffff'ffffULL);
}

struct MacTableSettings {
  static constexpr std::uint32_t kMaxCapacity = 1U << 20U;
  std::uint32_t capacity = 4096;
  std::chrono::seconds aging{300};
  std::uint64_t seed = 0;  // 0: random
};

struct MacTableCounters {
  std::uint64_t learned = 0;
  std::uint64_t moved = 0;
  std::uint64_t aged = 0;
  std::uint64_t evicted = 0;
};

enum class LearnOutcome : std::uint8_t {
  kRefreshed,        // known on this port
  kLearned,          // new (perhaps after evicting the oldest entry)
  kMoved,            // known on another port; now on this one
  kPinnedElsewhere,  // a static entry on another port; nothing changed
  kTableFull,        // every entry is static: forwarded, not learned
};

class MacTable {
 public:
  // Throws std::invalid_argument for a capacity of 0 or over kMaxCapacity.
  explicit MacTable(MacTableSettings settings);

  LearnOutcome learn(MacKey key, PortId port, Seconds now);
  // The port a destination lives on, unless unknown or aged.
  [[nodiscard]] std::optional<PortId> lookup(MacKey key, Seconds now) const;
  // False when the table is full of static entries or the key is static on
  // another port. Replaces a learned entry for the key.
  bool add_static(MacKey key, PortId port);
  // Removes the learned entries of a port that went away (static ones stay).
  std::size_t forget_port(PortId port);
  // Removes entries not seen for `aging`; returns how many.
  std::size_t expire(Seconds now);

  [[nodiscard]] std::size_t size() const { return used_; }
  [[nodiscard]] std::size_t static_entries() const { return static_count_; }
  [[nodiscard]] std::uint32_t capacity() const { return capacity_; }
  [[nodiscard]] std::size_t slot_count() const { return slots_.size(); }
  [[nodiscard]] const MacTableCounters& counters() const { return counters_; }

 private:
  static constexpr std::uint32_t kNone = UINT32_MAX;
  enum class Kind : std::uint8_t { kEmpty, kLearned, kStatic };
  struct Slot {
    MacKey key = 0;
    Seconds last_seen = 0;
    PortId port = 0;
    Kind kind = Kind::kEmpty;
    std::uint32_t older = kNone;  // age list neighbours (learned entries only)
    std::uint32_t newer = kNone;
  };

  [[nodiscard]] std::uint32_t home(MacKey key) const;
  // The slot holding `key`, or the empty slot where it would go.
  [[nodiscard]] std::uint32_t find(MacKey key) const;
  [[nodiscard]] bool expired(const Slot& s, Seconds now) const;
  void insert_learned(std::uint32_t at, MacKey key, PortId port, Seconds now);
  void erase(std::uint32_t at);
  void unlink(std::uint32_t at);
  void link_newest(std::uint32_t at);
  void relink(std::uint32_t to);

  std::vector<Slot> slots_;
  std::uint32_t mask_;
  std::uint32_t capacity_;
  Seconds aging_;
  std::uint64_t seed_;
  std::uint64_t multiplier_;
  std::size_t used_ = 0;
  std::size_t static_count_ = 0;
  std::uint32_t oldest_ = kNone;
  std::uint32_t newest_ = kNone;
  MacTableCounters counters_;
};

}  // namespace vdtu::net

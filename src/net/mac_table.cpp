#include "mac_table.hpp"

#include <bit>
#include <random>
#include <stdexcept>
#include <string>

namespace vdtu::net {
namespace {

std::uint64_t random_word() {
  std::random_device device;
  return (static_cast<std::uint64_t>(device()) << 32U) ^ device();
}

// A stream of well-mixed words from one seed (splitmix64).
std::uint64_t mix(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e37'79b9'7f4a'7c15ULL);
  z = (z ^ (z >> 30U)) * 0xbf58'476d'1ce4'e5b9ULL;
  z = (z ^ (z >> 27U)) * 0x94d0'49bb'1331'11ebULL;
  return z ^ (z >> 31U);
}

}  // namespace

MacTable::MacTable(MacTableSettings settings)
    : capacity_(settings.capacity),
      aging_(static_cast<Seconds>(std::min<std::chrono::seconds::rep>(settings.aging.count(), UINT32_MAX))) {
  if (settings.capacity == 0 || settings.capacity > MacTableSettings::kMaxCapacity) {
    throw std::invalid_argument("MAC table capacity must be 1 to " +
                                std::to_string(MacTableSettings::kMaxCapacity));
  }
  if (settings.aging.count() <= 0) throw std::invalid_argument("MAC aging time must be positive");
  std::uint64_t state = settings.seed != 0 ? settings.seed : random_word();
  seed_ = mix(state);
  multiplier_ = mix(state) | 1U;
  const auto slots = std::bit_ceil(std::max<std::uint32_t>(16, settings.capacity * 2));
  slots_.resize(slots);
  mask_ = slots - 1;
}

std::uint32_t MacTable::home(MacKey key) const {
  std::uint64_t h = (key ^ seed_) * multiplier_;
  h ^= h >> 29U;
  h *= 0xbf58'476d'1ce4'e5b9ULL;
  return static_cast<std::uint32_t>(h >> 32U) & mask_;
}

std::uint32_t MacTable::find(MacKey key) const {
  // Terminates: the load factor stays at most 1/2, so an empty slot exists.
  for (std::uint32_t i = home(key);; i = (i + 1) & mask_) {
    const auto& s = slots_[i];
    if (s.kind == Kind::kEmpty || s.key == key) return i;
  }
}

bool MacTable::expired(const Slot& s, Seconds now) const {
  return s.kind == Kind::kLearned && now - s.last_seen >= aging_;
}

LearnOutcome MacTable::learn(MacKey key, PortId port, Seconds now) {
  const auto at = find(key);
  auto& s = slots_[at];
  if (s.kind == Kind::kStatic)
    return s.port == port ? LearnOutcome::kRefreshed : LearnOutcome::kPinnedElsewhere;
  if (s.kind == Kind::kLearned) {
    const bool moved = s.port != port && !expired(s, now);
    s.port = port;
    if (s.last_seen != now) {  // at most one list move per entry and second
      s.last_seen = now;
      unlink(at);
      link_newest(at);
    }
    if (moved) ++counters_.moved;
    return moved ? LearnOutcome::kMoved : LearnOutcome::kRefreshed;
  }
  if (used_ < capacity_) {
    insert_learned(at, key, port, now);
    return LearnOutcome::kLearned;
  }
  if (oldest_ == kNone) return LearnOutcome::kTableFull;  // nothing but static entries
  erase(oldest_);                                         // may shift entries, so look for the place again
  ++counters_.evicted;
  insert_learned(find(key), key, port, now);
  return LearnOutcome::kLearned;
}

void MacTable::insert_learned(std::uint32_t at, MacKey key, PortId port, Seconds now) {
  slots_[at] = Slot{key, now, port, Kind::kLearned, kNone, kNone};
  link_newest(at);
  ++used_;
  ++counters_.learned;
}

std::optional<PortId> MacTable::lookup(MacKey key, Seconds now) const {
  const auto& s = slots_[find(key)];
  if (s.kind == Kind::kEmpty || expired(s, now)) return std::nullopt;
  return s.port;
}

bool MacTable::add_static(MacKey key, PortId port) {
  const auto at = find(key);
  auto& s = slots_[at];
  if (s.kind == Kind::kStatic) return s.port == port;
  if (s.kind == Kind::kLearned) {
    unlink(at);
    s.kind = Kind::kStatic;
    s.port = port;
    ++static_count_;
    return true;
  }
  if (used_ >= capacity_) {
    if (oldest_ == kNone) return false;
    erase(oldest_);
    ++counters_.evicted;
    return add_static(key, port);
  }
  s = Slot{key, 0, port, Kind::kStatic, kNone, kNone};
  ++used_;
  ++static_count_;
  return true;
}

std::size_t MacTable::forget_port(PortId port) {
  // Keys first: erasing shifts entries between slots.
  std::vector<MacKey> keys;
  for (std::uint32_t i = oldest_; i != kNone; i = slots_[i].newer) {
    if (slots_[i].port == port) keys.push_back(slots_[i].key);
  }
  for (const auto key : keys) erase(find(key));
  return keys.size();
}

std::size_t MacTable::expire(Seconds now) {
  std::size_t removed = 0;
  while (oldest_ != kNone && expired(slots_[oldest_], now)) {
    erase(oldest_);
    ++removed;
  }
  counters_.aged += removed;
  return removed;
}

void MacTable::unlink(std::uint32_t at) {
  auto& s = slots_[at];
  (s.older != kNone ? slots_[s.older].newer : oldest_) = s.newer;
  (s.newer != kNone ? slots_[s.newer].older : newest_) = s.older;
  s.older = s.newer = kNone;
}

void MacTable::link_newest(std::uint32_t at) {
  auto& s = slots_[at];
  s.older = newest_;
  s.newer = kNone;
  (newest_ != kNone ? slots_[newest_].newer : oldest_) = at;
  newest_ = at;
}

// An entry was copied into slot `to`: its age-list neighbours follow it.
void MacTable::relink(std::uint32_t to) {
  const auto& s = slots_[to];
  if (s.kind != Kind::kLearned) return;
  (s.older != kNone ? slots_[s.older].newer : oldest_) = to;
  (s.newer != kNone ? slots_[s.newer].older : newest_) = to;
}

// Backward-shift deletion: later entries of the probe run move up into the
// hole when their home allows, so no tombstones are needed.
void MacTable::erase(std::uint32_t at) {
  if (slots_[at].kind == Kind::kLearned) unlink(at);
  if (slots_[at].kind == Kind::kStatic) --static_count_;
  --used_;
  std::uint32_t hole = at;
  for (std::uint32_t j = (hole + 1) & mask_; slots_[j].kind != Kind::kEmpty; j = (j + 1) & mask_) {
    const auto want = home(slots_[j].key);
    // Distance from home to j versus from home to the hole (both cyclic):
    // the entry may move back only if the hole lies on its probe path.
    if (((j - want) & mask_) >= ((j - hole) & mask_)) {
      slots_[hole] = slots_[j];
      relink(hole);
      hole = j;
    }
  }
  slots_[hole] = Slot{};
}

}  // namespace vdtu::net

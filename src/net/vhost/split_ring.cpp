#include "split_ring.hpp"

#include <atomic>
#include <cstring>

namespace vdtu::net::vhost {
namespace {

constexpr std::uint16_t kDescNext = 1;
constexpr std::uint16_t kDescWrite = 2;
constexpr std::uint16_t kDescIndirect = 4;
constexpr std::uint16_t kUsedNoNotify = 1;
constexpr std::uint16_t kAvailNoInterrupt = 1;

struct Descriptor {
  std::uint64_t address;
  std::uint32_t length;
  std::uint16_t flags;
  std::uint16_t next;
};
static_assert(sizeof(Descriptor) == 16);

// Guest memory words are shared with another process: atomic accesses only.
std::uint16_t load16(const std::byte* at, std::memory_order order) {
  return std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(const_cast<std::byte*>(at)))
      .load(order);
}
void store16(std::byte* at, std::uint16_t value, std::memory_order order) {
  std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(at)).store(value, order);
}

// The event-index test of the virtio spec: did [old, new) cross `event`?
bool crossed(std::uint16_t event, std::uint16_t new_index, std::uint16_t old_index) {
  return static_cast<std::uint16_t>(new_index - event - 1) <
         static_cast<std::uint16_t>(new_index - old_index);
}

}  // namespace

std::string_view to_string(ChainError e) {
  switch (e) {
    case ChainError::kNone: return "no error";
    case ChainError::kHeadOutOfRange: return "descriptor head beyond the queue";
    case ChainError::kNextOutOfRange: return "descriptor next beyond the queue";
    case ChainError::kTooLong: return "descriptor chain longer than the queue (a loop)";
    case ChainError::kBadAddress: return "descriptor buffer outside guest memory";
    case ChainError::kWrongDirection: return "descriptor with the wrong direction";
    case ChainError::kIndirect: return "indirect descriptor (not negotiated)";
  }
  return "unknown";
}

ChainError walk_chain(const std::byte* table, std::uint32_t entries, std::uint32_t head, bool writable,
                      const GuestMemory& memory, std::vector<Segment>& out, std::uint64_t& total) {
  out.clear();
  total = 0;
  if (head >= entries) return ChainError::kHeadOutOfRange;
  std::uint32_t index = head;
  for (std::uint32_t count = 0;; ++count) {
    if (count >= entries) return ChainError::kTooLong;
    Descriptor d{};
    std::memcpy(&d, table + std::size_t{16} * index, sizeof(d));  // once: the guest may change it
    if ((d.flags & kDescIndirect) != 0) return ChainError::kIndirect;
    if (((d.flags & kDescWrite) != 0) != writable) return ChainError::kWrongDirection;
    if (d.length != 0) {
      auto* host = memory.translate(d.address, d.length);
      if (host == nullptr) return ChainError::kBadAddress;
      out.push_back({host, d.length});
      total += d.length;
    }
    if ((d.flags & kDescNext) == 0) return ChainError::kNone;
    if (d.next >= entries) return ChainError::kNextOutOfRange;
    index = d.next;
  }
}

SplitRing::SplitRing(const RingLayout& layout, std::uint16_t next_available, bool event_index)
    : layout_(layout),
      event_index_(event_index),
      next_available_(next_available),
      used_index_(next_available),
      published_index_(next_available) {
  store_used_index(used_index_);
  disable_kicks();
}

std::uint16_t SplitRing::load_available_flags() const {
  return load16(layout_.available, std::memory_order_relaxed);
}
std::uint16_t SplitRing::load_available_index() const {
  return load16(layout_.available + 2, std::memory_order_acquire);  // pairs with the guest's release
}
std::uint16_t SplitRing::load_used_event() const {
  return load16(layout_.available + 4 + std::size_t{2} * layout_.entries, std::memory_order_relaxed);
}
void SplitRing::store_used_flags(std::uint16_t value) {
  store16(layout_.used, value, std::memory_order_relaxed);
}
void SplitRing::store_used_index(std::uint16_t value) {
  store16(layout_.used + 2, value, std::memory_order_release);  // the entries before the index
}
void SplitRing::store_available_event(std::uint16_t value) {
  store16(layout_.used + 4 + std::size_t{8} * layout_.entries, value, std::memory_order_relaxed);
}

std::optional<std::uint32_t> SplitRing::available() const {
  const auto pending = static_cast<std::uint16_t>(load_available_index() - next_available_);
  if (pending > layout_.entries) return std::nullopt;
  return pending;
}

std::uint16_t SplitRing::head_at(std::uint32_t offset) const {
  const auto slot = (next_available_ + offset) & (layout_.entries - 1);
  return load16(layout_.available + 4 + std::size_t{2} * slot, std::memory_order_relaxed);
}

void SplitRing::put_used(std::uint16_t head, std::uint32_t written) {
  auto* element = layout_.used + 4 + std::size_t{8} * (used_index_ & (layout_.entries - 1));
  const std::uint32_t id = head;
  std::memcpy(element, &id, sizeof(id));
  std::memcpy(element + 4, &written, sizeof(written));
  ++used_index_;
}

bool SplitRing::publish() {
  if (used_index_ == published_index_) return false;
  store_used_index(used_index_);
  const auto old = published_index_;
  published_index_ = used_index_;
  // The index must be visible before the guest's wish is read, or both
  // sides may decide the other one will act.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (event_index_) return crossed(load_used_event(), used_index_, old);
  return (load_available_flags() & kAvailNoInterrupt) == 0;
}

bool SplitRing::enable_kicks() {
  if (event_index_) {
    store_available_event(next_available_);
  } else {
    store_used_flags(0);
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return load_available_index() == next_available_;
}

// With EVENT_IDX the stale avail_event already keeps the guest quiet.
void SplitRing::disable_kicks() {
  if (!event_index_) store_used_flags(kUsedNoNotify);
}

}  // namespace vdtu::net::vhost

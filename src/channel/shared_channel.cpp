#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <new>
#include <stdexcept>
#include <system_error>

#include "channel_control.hpp"
#include "common/futex.hpp"
#include "common/sealed_memfd.hpp"
#include "spin_then_sleep.hpp"
#include "vdtu/channel.hpp"

namespace vdtu {

using detail::ChannelControl;

namespace {

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

}  // namespace

std::optional<std::string> ChannelGeometry::problem() const {
  if (!std::has_single_bit(slot_count) || slot_count < kMinSlotCount || slot_count > kMaxSlotCount) {
    return "slot count must be a power of two in [2, 65536], got " + std::to_string(slot_count);
  }
  if (!std::has_single_bit(slot_size) || slot_size < kMinSlotSize || slot_size > kMaxSlotSize) {
    return "slot size must be a power of two in [32, 65536], got " + std::to_string(slot_size);
  }
  if (std::size_t{slot_count} * slot_size > kMaxRingBytes) {  // message bytes, without the sequence lines
    return "ring larger than 256 MiB";
  }
  return std::nullopt;
}

std::size_t ChannelGeometry::total_bytes() const {
  return detail::kSlotsOffset + std::size_t{slot_count} * detail::slot_stride(slot_size);
}

std::string_view to_string(ChannelState s) {
  switch (s) {
    case ChannelState::kConfigured: return "configured";
    case ChannelState::kActive: return "active";
    case ChannelState::kTerminated: return "terminated";
  }
  return "invalid";
}

SharedChannel::SharedChannel(UniqueFd memfd, UniqueFd eventfd, MappedRegion region, ChannelGeometry geometry)
    : memfd_(std::move(memfd)),
      eventfd_(std::move(eventfd)),
      region_(std::move(region)),
      geometry_(geometry) {}

SharedChannel SharedChannel::create(ChannelGeometry geometry) {
  if (auto why = geometry.problem()) throw std::invalid_argument(*why);
  UniqueFd memfd = make_sealed_memfd("vdtu-channel", geometry.total_bytes());
  UniqueFd eventfd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!eventfd) throw_errno("eventfd");
  MappedRegion region(memfd.get(), geometry.total_bytes());
  auto* control = new (region.data()) ChannelControl{};
  control->magic = detail::kChannelMagic;
  control->version = detail::kChannelVersion;
  control->slot_count = geometry.slot_count;
  control->slot_size = geometry.slot_size;
  control->state = detail::as_raw(ChannelState::kConfigured);
  SharedChannel channel{std::move(memfd), std::move(eventfd), std::move(region), geometry};
  // Every slot starts out free: the zeros of a new memfd are the first lap's
  // free value (channel_control.hpp), so the ring's pages are not touched here.
  static_assert(detail::published(0U - 2U, 2) == 0 && detail::published(0U - 65536U, 65536) == 0);
  return channel;
}

SharedChannel SharedChannel::attach(UniqueFd memfd, UniqueFd eventfd, ChannelGeometry expected) {
  if (auto why = expected.problem()) throw std::invalid_argument(*why);
  if (!memfd) throw std::invalid_argument("no channel memory fd");
  check_sealed_memfd(memfd.get(), expected.total_bytes(), "channel memory");
  MappedRegion region(memfd.get(), expected.total_bytes());
  ChannelControl header{};
  std::memcpy(&header, region.data(), sizeof(header));  // copy out, then validate
  if (header.magic != detail::kChannelMagic || header.version != detail::kChannelVersion) {
    throw std::runtime_error("channel memory has no valid vdtu channel header");
  }
  if (header.slot_count != expected.slot_count || header.slot_size != expected.slot_size) {
    throw std::runtime_error("channel geometry in memory differs from the configured one");
  }
  return {std::move(memfd), std::move(eventfd), std::move(region), expected};
}

ChannelControl& SharedChannel::control() const {
  return *std::launder(reinterpret_cast<ChannelControl*>(region_.data()));
}

std::byte* SharedChannel::slot_base(std::uint32_t index) const {
  return region_.data() + detail::kSlotsOffset +
         std::size_t{index & (geometry_.slot_count - 1)} * detail::slot_stride(geometry_.slot_size);
}

std::byte* SharedChannel::slot(std::uint32_t index) const { return slot_base(index) + detail::kSequenceSize; }

std::uint32_t& SharedChannel::sequence(std::uint32_t index) const {
  return *std::launder(reinterpret_cast<std::uint32_t*>(slot_base(index)));
}

ChannelState SharedChannel::state() const {
  const auto raw = std::atomic_ref<std::uint32_t>(control().state).load(std::memory_order_acquire);
  return detail::is_known_state(raw) ? static_cast<ChannelState>(raw) : ChannelState::kTerminated;
}

std::uint32_t SharedChannel::queued() const {
  const auto tail = detail::load_consumer_index(*this);
  return detail::published_end(*this, tail) - tail;
}

Status SharedChannel::activate() {
  std::atomic_ref<std::uint32_t> word(control().state);
  auto expected = detail::as_raw(ChannelState::kConfigured);
  return word.compare_exchange_strong(expected, detail::as_raw(ChannelState::kActive))
             ? Status::kOk
             : Status::kInvalidArgument;
}

void SharedChannel::terminate() {
  // The state word stops honest producers before they reserve; the mark in
  // the ring is what makes the end exact.
  std::atomic_ref<std::uint32_t>(control().state)
      .store(detail::as_raw(ChannelState::kTerminated), std::memory_order_seq_cst);
  mark_end_of_stream();
  wake_all();
}

// Marks the first free slot after the published messages as the end. Bounded
// (about two laps of looks): a peer that rewrites indices forever must not
// hold the node up; if it wins, a consumer that finds the state terminated
// marks the end itself (Consumer::end_if_terminated).
bool SharedChannel::mark_end_of_stream() {
  using detail::SlotState;
  const auto slots = geometry_.slot_count;
  std::size_t looks_left = 2 * (std::size_t{slots} + 1) + 64;
  while (looks_left > 0) {
    const auto tail = detail::load_consumer_index(*this);
    // A full ring ends one lap after the oldest message, in that message's slot.
    for (auto index = tail; index - tail <= slots && looks_left > 0;) {
      --looks_left;  // here, not in the loop header: a `break` below must count too
      std::atomic_ref<std::uint32_t> word(sequence(index));
      auto current = word.load(std::memory_order_acquire);
      if ((current & detail::kEndOfStream) != 0) return true;
      const auto state = detail::classify(current, index, slots);
      if (state == SlotState::kCorrupt) break;  // a stale tail (the ring moved on) or a lie
      if (state == SlotState::kMessage) {
        ++index;
      } else if (word.compare_exchange_strong(current, current | detail::kEndOfStream,
                                              std::memory_order_seq_cst)) {
        return true;
      }
      // else the producer published this slot meanwhile: look at it again
    }
  }
  return false;
}

void SharedChannel::wake_all() const {
  auto& c = control();
  detail::take_waiter(c.consumer_wait);
  detail::take_waiter(c.producer_wait);
  detail::futex_wake_all(&c.consumer_wait);
  detail::futex_wake_all(&c.producer_wait);
  if (eventfd_) {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(eventfd_.get(), &one, sizeof(one));
  }
}

}  // namespace vdtu

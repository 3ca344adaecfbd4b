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
  if (std::size_t{slot_count} * slot_size > kMaxRingBytes) {
    return "ring larger than 256 MiB";
  }
  return std::nullopt;
}

std::size_t ChannelGeometry::total_bytes() const {
  return detail::kSlotsOffset + std::size_t{slot_count} * slot_size;
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
  std::atomic_ref<std::uint64_t>(control->producer_word)
      .store(detail::pack_producer_word(ChannelState::kConfigured, 0), std::memory_order_release);
  return {std::move(memfd), std::move(eventfd), std::move(region), geometry};
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

std::byte* SharedChannel::slot(std::uint32_t index) const {
  return region_.data() + detail::kSlotsOffset +
         std::size_t{index & (geometry_.slot_count - 1)} * geometry_.slot_size;
}

ChannelState SharedChannel::state() const {
  const auto word = std::atomic_ref<std::uint64_t>(control().producer_word).load(std::memory_order_acquire);
  const auto raw = detail::state_of(word);
  return detail::is_known_state(raw) ? static_cast<ChannelState>(raw) : ChannelState::kTerminated;
}

std::uint32_t SharedChannel::queued() const {
  auto& c = control();
  const auto head =
      detail::head_of(std::atomic_ref<std::uint64_t>(c.producer_word).load(std::memory_order_acquire));
  const auto tail = std::atomic_ref<std::uint32_t>(c.consumer_index).load(std::memory_order_acquire);
  const auto n = head - tail;
  return n <= geometry_.slot_count ? n : 0;
}

Status SharedChannel::activate() {
  std::atomic_ref<std::uint64_t> word(control().producer_word);
  auto current = word.load(std::memory_order_acquire);
  if (detail::state_of(current) != static_cast<std::uint32_t>(ChannelState::kConfigured)) {
    return Status::kInvalidArgument;
  }
  const auto next = detail::pack_producer_word(ChannelState::kActive, detail::head_of(current));
  return word.compare_exchange_strong(current, next) ? Status::kOk : Status::kInvalidArgument;
}

void SharedChannel::terminate() {
  std::atomic_ref<std::uint64_t> word(control().producer_word);
  // Bounded: a hostile peer rewriting the word forever must not hang us. If it
  // wins every round, our own side still reports the channel as broken.
  constexpr int kAttempts = 64;
  auto current = word.load(std::memory_order_acquire);
  for (int i = 0; i < kAttempts; ++i) {
    const auto next = detail::pack_producer_word(ChannelState::kTerminated, detail::head_of(current));
    if (current == next || word.compare_exchange_weak(current, next)) break;
  }
  wake_all();
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

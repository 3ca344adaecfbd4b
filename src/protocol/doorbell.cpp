#include "doorbell.hpp"

#include <atomic>
#include <stdexcept>

#include "common/futex.hpp"
#include "common/sealed_memfd.hpp"

namespace vdtu::dtu {
namespace {

constexpr std::size_t kLine = 64;

std::atomic_ref<std::uint32_t> word32(std::byte* at) {
  return std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(at));
}
std::atomic_ref<std::uint64_t> word64(std::byte* at) {
  return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(at));
}
std::byte* pending_line(const MappedRegion& region, std::uint32_t ep) {
  return region.data() + kLine + kPendingBytes * ep;
}

}  // namespace

std::size_t DoorbellLayout::bytes_for(std::uint32_t endpoints) { return kLine + kPendingBytes * endpoints; }

Doorbell Doorbell::create(std::uint32_t endpoints) {
  const auto size = DoorbellLayout::bytes_for(endpoints);
  UniqueFd fd = make_sealed_memfd("vdtu-doorbell", size);
  MappedRegion region(fd.get(), size);
  return {std::move(fd), std::move(region), endpoints};
}

Doorbell Doorbell::attach(UniqueFd fd, std::uint32_t endpoints) {
  const auto size = DoorbellLayout::bytes_for(endpoints);
  check_sealed_memfd(fd.get(), size, "doorbell page");
  MappedRegion region(fd.get(), size);
  return {std::move(fd), std::move(region), endpoints};
}

Doorbell Doorbell::attach_any(UniqueFd fd) {
  const auto size = sealed_memfd_size(fd.get(), "doorbell page");
  if (size < kLine || (size - kLine) % kPendingBytes != 0 || (size - kLine) / kPendingBytes == 0 ||
      (size - kLine) / kPendingBytes > kMaxDoorbellEndpoints) {
    throw std::runtime_error("doorbell page has the wrong size");
  }
  const auto endpoints = static_cast<std::uint32_t>((size - kLine) / kPendingBytes);
  MappedRegion region(fd.get(), size);
  return {std::move(fd), std::move(region), endpoints};
}

std::uint32_t* Doorbell::sleeping_word() const { return reinterpret_cast<std::uint32_t*>(region_.data()); }

// seq_cst everywhere: the sender's channel publication, its bit and its look at
// the sleeping word must be ordered against the receiver's announcement and
// re-check (the same argument as in the channel's spin_then_sleep.hpp).
void Doorbell::ring(std::uint32_t ep, std::uint32_t channel) {
  if (ep >= endpoints_ || channel >= kChannelsPerEndpoint) return;
  auto bits = word64(pending_line(region_, ep) + std::size_t{8} * (channel / 64));
  const std::uint64_t mask = std::uint64_t{1} << (channel % 64);
  if ((bits.load(std::memory_order_seq_cst) & mask) == 0) bits.fetch_or(mask, std::memory_order_seq_cst);
  auto sleeping = word32(region_.data());
  if (sleeping.load(std::memory_order_seq_cst) != 0 && sleeping.exchange(0, std::memory_order_seq_cst) != 0) {
    detail::futex_wake_all(sleeping_word());
  }
}

bool Doorbell::take_pending(std::uint32_t ep, std::span<std::uint64_t, kPendingWords> into) {
  if (ep >= endpoints_) return false;
  bool any = false;
  for (std::uint32_t w = 0; w < kPendingWords; ++w) {
    auto bits = word64(pending_line(region_, ep) + std::size_t{8} * w);
    if (bits.load(std::memory_order_seq_cst) == 0) continue;
    const auto taken = bits.exchange(0, std::memory_order_seq_cst);
    into[w] |= taken;
    any = any || taken != 0;
  }
  return any;
}

bool Doorbell::anything_pending(std::uint64_t endpoint_mask) const {
  for (std::uint32_t ep = 0; ep < endpoints_; ++ep) {
    if (ep < 64 && (endpoint_mask & (std::uint64_t{1} << ep)) == 0) continue;
    for (std::uint32_t w = 0; w < kPendingWords; ++w) {
      if (word64(pending_line(region_, ep) + std::size_t{8} * w).load(std::memory_order_seq_cst) != 0)
        return true;
    }
  }
  return false;
}

void Doorbell::wake() {
  word32(region_.data()).store(0, std::memory_order_seq_cst);
  detail::futex_wake_all(sleeping_word());
}

void Doorbell::announce_sleep() { word32(region_.data()).store(1, std::memory_order_seq_cst); }
void Doorbell::cancel_sleep() { word32(region_.data()).store(0, std::memory_order_relaxed); }
void Doorbell::futex_sleep(std::chrono::nanoseconds timeout) {
  detail::futex_wait(sleeping_word(), 1, timeout);
}

}  // namespace vdtu::dtu

#pragma once
// A PE's doorbell page: how senders tell a receiver *which* of its channels
// may hold messages, so it never scans all of them, and how it sleeps.
//
//   line 0         sleeping (futex word)
//   lines 1+2e..   pending bits of receive endpoint e (two lines): bit c =
//                  channel c may have messages (1024 channels per endpoint,
//                  so one receive endpoint can hear every PE of a full node)
//
// Every sender to the PE maps this page, so everything in it is a hint, not
// truth: a hostile sender can set bits (the receiver finds the channel empty),
// clear them (the receiver rescans every channel whenever a sleep times out,
// so such a sender delays other senders' messages by at most kRescanInterval,
// and never loses them) or play with the sleeping word (spurious or missed
// wake-ups, bounded the same way). Channels themselves are never shared
// between senders, and what must not be forged (the config epoch) is in the
// PE's private page (pe_page.hpp).

#include <chrono>
#include <cstdint>
#include <span>

#include "vdtu/mapped_region.hpp"
#include "vdtu/unique_fd.hpp"

namespace vdtu::dtu {

inline constexpr std::uint32_t kChannelsPerEndpoint = 1024;
inline constexpr std::uint32_t kPendingWords = kChannelsPerEndpoint / 64;
inline constexpr std::size_t kPendingBytes = std::size_t{kPendingWords} * 8;
inline constexpr std::uint32_t kMaxDoorbellEndpoints = 255;  // endpoint ids are 8 bits
// A waiting receiver rescans every channel after its first sleep of
// kRescanInterval, then after sleeps twice as long each time nothing turned
// up, at most kMaxRescanInterval: an idle PE costs a handful of wake-ups a
// second (a thousand waiting PEs at 10 ms each were 100 000 a second, more
// than two vCPUs do), and a sender that suppresses wake-ups delays the
// others' messages by at most kMaxRescanInterval.
inline constexpr auto kRescanInterval = std::chrono::milliseconds(10);
inline constexpr auto kMaxRescanInterval = std::chrono::milliseconds(80);

struct DoorbellLayout {
  static std::size_t bytes_for(std::uint32_t endpoints);
};

// One mapping of a doorbell page; senders and the receiver each hold one.
class Doorbell {
 public:
  Doorbell() = default;
  // Creator (the node): a fresh page for `endpoints` receive endpoints.
  static Doorbell create(std::uint32_t endpoints);
  // Anyone else: map a page received as an fd. Throws on a bad size.
  static Doorbell attach(UniqueFd fd, std::uint32_t endpoints);
  // Another PE's page: PEs differ in endpoints (a kernel has more), so the
  // count comes from the sealed page's size. Throws on a size no doorbell has.
  static Doorbell attach_any(UniqueFd fd);

  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] bool valid() const { return fd_.valid(); }
  [[nodiscard]] std::uint32_t endpoints() const { return endpoints_; }

  // Sender: after publishing into channel `channel` of endpoint `ep`.
  void ring(std::uint32_t ep, std::uint32_t channel);
  // Receiver: moves the pending bits of `ep` into `into` (ORed) and clears them.
  // Returns true if any bit was set.
  bool take_pending(std::uint32_t ep, std::span<std::uint64_t, kPendingWords> into);
  // Receiver: true if any endpoint in `endpoint_mask` (bit e: endpoint e) has
  // pending bits.
  [[nodiscard]] bool anything_pending(std::uint64_t endpoint_mask = ~std::uint64_t{0}) const;
  // Node (after an update): wake the receiver. Unconditional, unlike a
  // sender's ring: the sleep word is in a page senders can write, and the
  // node's wake-ups must not depend on it.
  void wake();
  // Receiver: sleep until rung, woken or `timeout`. `still_idle` is the final
  // check after announcing sleep (see the channel's spin_then_sleep.hpp).
  template <class StillIdle>
  void sleep(std::chrono::nanoseconds timeout, StillIdle still_idle);

 private:
  Doorbell(UniqueFd fd, MappedRegion region, std::uint32_t endpoints)
      : fd_(std::move(fd)), region_(std::move(region)), endpoints_(endpoints) {}
  [[nodiscard]] std::uint32_t* sleeping_word() const;
  void announce_sleep();
  void cancel_sleep();
  void futex_sleep(std::chrono::nanoseconds timeout);

  UniqueFd fd_;
  MappedRegion region_;
  std::uint32_t endpoints_ = 0;
};

template <class StillIdle>
void Doorbell::sleep(std::chrono::nanoseconds timeout, StillIdle still_idle) {
  announce_sleep();
  if (!still_idle()) {
    cancel_sleep();
    return;
  }
  futex_sleep(timeout);
  cancel_sleep();
}

}  // namespace vdtu::dtu

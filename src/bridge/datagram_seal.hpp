#pragma once
// Optional protection of every bridge datagram with a key the whole cluster
// shares: ChaCha20-Poly1305 (IETF, libsodium) authenticated encryption, and a
// replay window per sending node. A sealed datagram is
//
//   sender node (u32 LE) | counter (u64 LE) | ciphertext | 16-byte tag
//
// where the nonce is sender||counter. Counters start at the sender's wall
// clock in nanoseconds, so a restarted node keeps counting upwards.

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vdtu::bridge {

using ClusterKey = std::array<std::byte, 32>;

// 64 hex digits. Throws std::invalid_argument otherwise.
ClusterKey parse_cluster_key(std::string_view hex);
// A fresh random key as 64 hex digits.
std::string random_cluster_key_hex();

// Which counters of one sender were seen: the highest and a 64-wide window
// below it, so datagrams reordered by the network still pass, once.
class ReplayWindow {
 public:
  static constexpr std::uint64_t kWidth = 64;
  // True (and remembered) if `counter` is new and not too old.
  bool accept(std::uint64_t counter);

 private:
  std::uint64_t highest_ = 0;
  std::uint64_t seen_ = 0;  // bit i: highest_ - i was seen
};

class DatagramSealer {
 public:
  static constexpr std::size_t kHeaderBytes = 12;
  static constexpr std::size_t kTagBytes = 16;
  static constexpr std::size_t kOverhead = kHeaderBytes + kTagBytes;

  enum class Opened { kOk, kForged, kReplayed, kTruncated };

  DatagramSealer(const ClusterKey& key, std::uint32_t self_node);

  // The sealed form of `plain` in `out`.
  void seal(std::span<const std::byte> plain, std::vector<std::byte>& out);
  // On kOk, `plain` holds the content and `sender` the sealing node.
  Opened open(std::span<const std::byte> sealed, std::vector<std::byte>& plain, std::uint32_t& sender);

 private:
  ClusterKey key_;
  std::uint32_t self_;
  std::uint64_t next_counter_;
  std::map<std::uint32_t, ReplayWindow> windows_;
};

}  // namespace vdtu::bridge

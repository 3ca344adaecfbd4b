#pragma once
// The first form of sealed bridge datagrams, still used by the node bridge
// until it moves to secure sessions (session_endpoint.hpp), which replace it:
// every datagram protected with the key the whole cluster shares,
// ChaCha20-Poly1305 (IETF, libsodium), and a replay window per sending node.
// A sealed datagram is
//
//   sender node (u32 LE) | counter (u64 LE) | ciphertext | 16-byte tag
//
// where the nonce is sender||counter. Counters start at the sender's wall
// clock in nanoseconds, so a restarted node keeps counting upwards.

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include "cluster_key.hpp"
#include "replay_window.hpp"

namespace vdtu::bridge {

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
  std::map<std::uint32_t, ReplayWindow<64>> windows_;
};

}  // namespace vdtu::bridge

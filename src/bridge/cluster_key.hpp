#pragma once
// The secret every node of a cluster holds: 32 bytes, written as 64 hex
// digits in node files. It authenticates handshakes between nodes; the
// traffic itself is sealed with per-session keys (docs/PROTOCOL.md).

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

namespace vdtu::bridge {

using ClusterKey = std::array<std::byte, 32>;

// 64 hex digits. Throws std::invalid_argument otherwise.
ClusterKey parse_cluster_key(std::string_view hex);
// A fresh random key as 64 hex digits.
std::string random_cluster_key_hex();

}  // namespace vdtu::bridge

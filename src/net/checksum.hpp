#pragma once
// Completing a checksum that the sending stack left to "hardware": the
// kernel hands such frames to AF_PACKET with only the pseudo-header sum in
// the checksum field (virtio's NEEDS_CSUM: start and offset of the field).

#include <cstddef>
#include <cstdint>
#include <span>

namespace vdtu::net {

// One's-complement sum of `bytes` (RFC 1071) added to `sum`, not folded.
std::uint64_t ones_complement_sum(std::span<const std::byte> bytes, std::uint64_t sum = 0);
std::uint16_t fold_checksum(std::uint64_t sum);

// Sums frame[start, end) (which includes the field, holding the partial sum)
// and stores the complement at start + offset. False, changing nothing, when
// the field or range lies outside the frame.
bool complete_checksum(std::span<std::byte> frame, std::size_t start, std::size_t offset);

}  // namespace vdtu::net

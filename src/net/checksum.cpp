#include "checksum.hpp"

#include <cstring>

namespace vdtu::net {

std::uint64_t ones_complement_sum(std::span<const std::byte> bytes, std::uint64_t sum) {
  std::size_t i = 0;
  for (; i + 1 < bytes.size(); i += 2) {
    sum += (std::to_integer<std::uint32_t>(bytes[i]) << 8U) | std::to_integer<std::uint32_t>(bytes[i + 1]);
  }
  if (i < bytes.size()) sum += std::to_integer<std::uint32_t>(bytes[i]) << 8U;
  return sum;
}

std::uint16_t fold_checksum(std::uint64_t sum) {
  while ((sum >> 16U) != 0) sum = (sum & 0xffffU) + (sum >> 16U);
  return static_cast<std::uint16_t>(sum);
}

bool complete_checksum(std::span<std::byte> frame, std::size_t start, std::size_t offset) {
  constexpr std::size_t kUdpChecksumOffset = 6;
  if (start > frame.size() || offset > frame.size() - start || frame.size() - start - offset < 2)
    return false;
  auto value = static_cast<std::uint16_t>(~fold_checksum(ones_complement_sum(frame.subspan(start))));
  // In UDP a zero checksum means "none"; the same value is sent as all ones.
  if (value == 0 && offset == kUdpChecksumOffset) value = 0xffff;
  frame[start + offset] = static_cast<std::byte>(value >> 8U);
  frame[start + offset + 1] = static_cast<std::byte>(value & 0xffU);
  return true;
}

}  // namespace vdtu::net

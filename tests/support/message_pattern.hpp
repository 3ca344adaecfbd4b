#pragma once
// Deterministic per-sequence-number messages, so a receiver can check that
// every message arrived once, in order and intact without sharing state.

#include <cstddef>
#include <cstdint>
#include <span>

#include "vdtu/message_header.hpp"

namespace vdtu::testing {

inline std::uint64_t mix(std::uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30U)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27U)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31U);
}

inline std::uint64_t checksum(std::span<const std::byte> bytes) {  // FNV-1a
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (auto b : bytes) h = (h ^ static_cast<std::uint8_t>(b)) * 0x100000001b3ULL;
  return h;
}

// Fills `buffer` with the payload of message `seq` (random size up to
// buffer.size()) and returns its header; label = seq, replylabel = checksum.
inline MessageHeader make_message(std::uint64_t seq, std::span<std::byte> buffer,
                                  std::span<const std::byte>& payload) {
  const auto size = mix(seq) % (buffer.size() + 1);
  for (std::size_t i = 0; i < size; ++i) buffer[i] = static_cast<std::byte>(mix(seq + i) & 0xffU);
  payload = buffer.first(size);
  MessageHeader h{};
  h.flags = static_cast<std::uint8_t>(seq & 0x1fU);
  h.sender_core_id = static_cast<std::uint16_t>(seq);
  h.length = static_cast<std::uint16_t>(size);
  h.label = seq;
  h.replylabel = checksum(payload);
  return h;
}

inline bool is_expected(std::uint64_t seq, const MessageHeader& h, std::span<const std::byte> payload,
                        std::size_t max_payload) {
  return h.label == seq && payload.size() == mix(seq) % (max_payload + 1) &&
         h.replylabel == checksum(payload);
}

}  // namespace vdtu::testing

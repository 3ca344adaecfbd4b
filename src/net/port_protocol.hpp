#pragma once
// What a client and the switch say on the switch's Unix socket
// (SOCK_SEQPACKET, one message per request and reply). Fixed-size, host-order
// structs: both ends are processes on one machine built from this header.
//
//   client -> switch   Request{kConnectPort, name}
//   switch -> client   ConnectReply + 4 fds (to-switch memfd, eventfd,
//                      from-switch memfd, eventfd); the connection then stays
//                      open for the port's lifetime
//   client -> switch   Request{kStatistics, format}
//   switch -> client   the report in messages of up to kChunkBytes; then
//                      the switch closes the connection (the end of it)
//
// The switch treats every request as untrusted input (copy, then validate).

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vdtu::net::wire {

inline constexpr std::uint32_t kMagic = 0x57534456;  // "VDSW"
inline constexpr std::uint16_t kVersion = 1;
inline constexpr std::size_t kNameBytes = 32;  // a port name, NUL-padded
inline constexpr std::size_t kErrorBytes = 160;
inline constexpr std::size_t kChunkBytes = std::size_t{16} * 1024;
inline constexpr std::size_t kPortFds = 4;

enum class RequestKind : std::uint16_t { kConnectPort = 1, kStatistics = 2 };
enum class ReportFormat : std::uint16_t { kText = 0, kJson = 1 };

struct Request {
  std::uint32_t magic = kMagic;
  std::uint16_t version = kVersion;
  RequestKind kind = RequestKind::kConnectPort;
  ReportFormat format = ReportFormat::kText;
  std::uint16_t reserved = 0;
  std::array<char, kNameBytes> name{};
};

struct ConnectReply {
  std::uint32_t magic = kMagic;
  std::uint16_t version = kVersion;
  std::uint16_t accepted = 0;  // 1: port made, fds attached; 0: `error` says why
  std::uint32_t port_id = 0;
  std::uint32_t mtu = 0;
  std::uint32_t to_switch_slots = 0;  // ring geometry, told out of band as the channel wants
  std::uint32_t to_switch_slot_size = 0;
  std::uint32_t from_switch_slots = 0;
  std::uint32_t from_switch_slot_size = 0;
  std::array<std::uint8_t, 6> mac{};
  std::uint8_t has_mac = 0;
  std::uint8_t reserved = 0;
  std::array<char, kNameBytes> name{};
  std::array<char, kErrorBytes> error{};
};

// Port names: 1-31 characters of [A-Za-z0-9._-]; they appear in logs.
inline bool valid_port_name(std::string_view name) {
  if (name.empty() || name.size() >= kNameBytes) return false;
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

template <std::size_t N>
void put_text(std::array<char, N>& out, std::string_view text) {
  out.fill('\0');
  for (std::size_t i = 0; i < text.size() && i + 1 < N; ++i) out[i] = text[i];
}

// The text in a fixed field, if it is NUL-terminated inside the field.
template <std::size_t N>
std::optional<std::string> get_text(const std::array<char, N>& in) {
  for (std::size_t i = 0; i < N; ++i) {
    if (in[i] == '\0') return std::string(in.data(), i);
  }
  return std::nullopt;
}

}  // namespace vdtu::net::wire

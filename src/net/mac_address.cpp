// MacAddress: parsing and printing.
#include <fmt/core.h>

#include <cstring>

#include "vdtu/net.hpp"

namespace vdtu::net {
namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<MacAddress> MacAddress::parse(std::string_view text) {
  constexpr std::size_t kTextLength = 17;  // six pairs of hex digits and five separators
  if (text.size() != kTextLength) return std::nullopt;
  const char separator = text[2];
  if (separator != ':' && separator != '-') return std::nullopt;
  MacAddress mac;
  for (std::size_t i = 0; i < mac.octets.size(); ++i) {
    const std::size_t at = i * 3;
    if (i > 0 && text[at - 1] != separator) return std::nullopt;
    const int high = hex_digit(text[at]);
    const int low = hex_digit(text[at + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    mac.octets[i] = static_cast<std::uint8_t>(high * 16 + low);
  }
  return mac;
}

MacAddress MacAddress::from_bytes(std::span<const std::byte, 6> bytes) {
  MacAddress mac;
  std::memcpy(mac.octets.data(), bytes.data(), mac.octets.size());
  return mac;
}

std::uint64_t MacAddress::value() const {
  std::uint64_t v = 0;
  for (const auto o : octets) v = (v << 8U) | o;
  return v;
}

std::string MacAddress::to_string() const {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", octets[0], octets[1], octets[2], octets[3],
                     octets[4], octets[5]);
}

}  // namespace vdtu::net

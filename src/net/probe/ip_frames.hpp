#pragma once
// ARP, IPv4, ICMP echo and UDP, built and read by the tests and the demo,
// so two shared-memory clients can ping each other (and a host in a
// namespace) with frames no IP stack made. Header-only: not part of the
// switch, a probe for it.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "vdtu/net.hpp"

namespace vdtu::net::probe {

using Ipv4 = std::uint32_t;  // host order: 10.0.0.1 is 0x0a000001
constexpr Ipv4 ipv4(unsigned a, unsigned b, unsigned c, unsigned d) {
  return (a << 24U) | (b << 16U) | (c << 8U) | d;
}

namespace packet_detail {

inline void put16(std::vector<std::byte>& out, unsigned v) {
  out.push_back(static_cast<std::byte>((v >> 8U) & 0xffU));
  out.push_back(static_cast<std::byte>(v & 0xffU));
}
inline void put32(std::vector<std::byte>& out, std::uint32_t v) {
  put16(out, v >> 16U);
  put16(out, v & 0xffffU);
}
inline void put_mac(std::vector<std::byte>& out, const MacAddress& m) {
  for (auto o : m.octets) out.push_back(static_cast<std::byte>(o));
}
inline unsigned get16(std::span<const std::byte> in, std::size_t at) {
  return (std::to_integer<unsigned>(in[at]) << 8U) | std::to_integer<unsigned>(in[at + 1]);
}
inline std::uint32_t get32(std::span<const std::byte> in, std::size_t at) {
  return (get16(in, at) << 16U) | get16(in, at + 2);
}
inline MacAddress get_mac(std::span<const std::byte> in, std::size_t at) {
  return MacAddress::from_bytes(in.subspan(at).first<6>());
}
inline std::uint16_t checksum(std::span<const std::byte> bytes, std::uint32_t sum = 0) {
  for (std::size_t i = 0; i + 1 < bytes.size(); i += 2) sum += get16(bytes, i);
  if (bytes.size() % 2 != 0) sum += std::to_integer<unsigned>(bytes.back()) << 8U;
  while ((sum >> 16U) != 0) sum = (sum & 0xffffU) + (sum >> 16U);
  return static_cast<std::uint16_t>(~sum);
}
inline void patch16(std::vector<std::byte>& out, std::size_t at, unsigned v) {
  out[at] = static_cast<std::byte>((v >> 8U) & 0xffU);
  out[at + 1] = static_cast<std::byte>(v & 0xffU);
}

constexpr std::size_t kIp = 14;        // IPv4 header after an untagged Ethernet header
constexpr std::size_t kL4 = kIp + 20;  // no IP options in what we build

inline std::vector<std::byte> ipv4_frame(const MacAddress& dst_mac, const MacAddress& src_mac, Ipv4 src,
                                         Ipv4 dst, unsigned protocol, std::span<const std::byte> l4) {
  std::vector<std::byte> f;
  put_mac(f, dst_mac);
  put_mac(f, src_mac);
  put16(f, 0x0800);
  put16(f, 0x4500);
  put16(f, static_cast<unsigned>(20 + l4.size()));
  put32(f, 0x4000'0000);  // id 0, don't fragment
  put16(f, (64U << 8U) | protocol);
  put16(f, 0);
  put32(f, src);
  put32(f, dst);
  patch16(f, kIp + 10, checksum(std::span(f).subspan(kIp, 20)));
  f.insert(f.end(), l4.begin(), l4.end());
  return f;
}

}  // namespace packet_detail

inline std::vector<std::byte> arp_frame(bool reply, const MacAddress& src_mac, Ipv4 src_ip,
                                        const MacAddress& target_mac, Ipv4 target_ip) {
  using namespace packet_detail;
  std::vector<std::byte> f;
  put_mac(f, reply ? target_mac : MacAddress::broadcast());
  put_mac(f, src_mac);
  put16(f, 0x0806);
  put16(f, 1);       // Ethernet
  put16(f, 0x0800);  // IPv4
  put16(f, 0x0604);  // address sizes
  put16(f, reply ? 2 : 1);
  put_mac(f, src_mac);
  put32(f, src_ip);
  put_mac(f, target_mac);
  put32(f, target_ip);
  return f;
}

struct Arp {
  bool reply;
  MacAddress sender_mac;
  Ipv4 sender_ip;
  Ipv4 target_ip;
};

inline std::optional<Arp> parse_arp(std::span<const std::byte> f) {
  using namespace packet_detail;
  if (f.size() < 42 || get16(f, 12) != 0x0806 || get16(f, 14) != 1 || get16(f, 16) != 0x0800)
    return std::nullopt;
  const auto op = get16(f, 20);
  if (op != 1 && op != 2) return std::nullopt;
  return Arp{op == 2, get_mac(f, 22), get32(f, 28), get32(f, 38)};
}

struct Ipv4Packet {
  MacAddress src_mac;
  Ipv4 src;
  Ipv4 dst;
  unsigned protocol;
  std::span<const std::byte> l4;
};

// Checks the header checksum, so a frame damaged on the way is not taken.
inline std::optional<Ipv4Packet> parse_ipv4(std::span<const std::byte> f) {
  using namespace packet_detail;
  if (f.size() < kL4 || get16(f, 12) != 0x0800 || std::to_integer<unsigned>(f[kIp]) != 0x45)
    return std::nullopt;
  const auto total = get16(f, kIp + 2);
  if (total < 20 || kIp + total > f.size() || checksum(f.subspan(kIp, 20)) != 0) return std::nullopt;
  return Ipv4Packet{get_mac(f, 6), get32(f, kIp + 12), get32(f, kIp + 16),
                    std::to_integer<unsigned>(f[kIp + 9]), f.subspan(kL4, total - 20)};
}

inline std::vector<std::byte> icmp_echo(bool reply, const MacAddress& dst_mac, const MacAddress& src_mac,
                                        Ipv4 src, Ipv4 dst, unsigned id, unsigned seq,
                                        std::span<const std::byte> data) {
  using namespace packet_detail;
  std::vector<std::byte> icmp;
  put16(icmp, reply ? 0x0000 : 0x0800);
  put16(icmp, 0);
  put16(icmp, id);
  put16(icmp, seq);
  icmp.insert(icmp.end(), data.begin(), data.end());
  patch16(icmp, 2, checksum(icmp));
  return ipv4_frame(dst_mac, src_mac, src, dst, 1, icmp);
}

struct IcmpEcho {
  bool reply;
  unsigned id;
  unsigned seq;
  std::span<const std::byte> data;
};

inline std::optional<IcmpEcho> parse_icmp_echo(const Ipv4Packet& p) {
  using namespace packet_detail;
  if (p.protocol != 1 || p.l4.size() < 8 || checksum(p.l4) != 0) return std::nullopt;
  const auto type = std::to_integer<unsigned>(p.l4[0]);
  if (type != 0 && type != 8) return std::nullopt;
  return IcmpEcho{type == 0, get16(p.l4, 4), get16(p.l4, 6), p.l4.subspan(8)};
}

inline std::uint32_t pseudo_header_sum(Ipv4 src, Ipv4 dst, unsigned protocol, std::size_t length) {
  return (src >> 16U) + (src & 0xffffU) + (dst >> 16U) + (dst & 0xffffU) + protocol +
         static_cast<std::uint32_t>(length);
}

inline std::vector<std::byte> udp_frame(const MacAddress& dst_mac, const MacAddress& src_mac, Ipv4 src,
                                        unsigned src_port, Ipv4 dst, unsigned dst_port,
                                        std::span<const std::byte> data) {
  using namespace packet_detail;
  std::vector<std::byte> udp;
  put16(udp, src_port);
  put16(udp, dst_port);
  put16(udp, static_cast<unsigned>(8 + data.size()));
  put16(udp, 0);
  udp.insert(udp.end(), data.begin(), data.end());
  auto sum = checksum(udp, pseudo_header_sum(src, dst, 17, udp.size()));
  patch16(udp, 6, sum == 0 ? 0xffff : sum);
  return ipv4_frame(dst_mac, src_mac, src, dst, 17, udp);
}

struct Udp {
  unsigned src_port;
  unsigned dst_port;
  std::span<const std::byte> data;
};

// Checks the UDP checksum (when there is one) over the pseudo header.
inline std::optional<Udp> parse_udp(const Ipv4Packet& p) {
  using namespace packet_detail;
  if (p.protocol != 17 || p.l4.size() < 8) return std::nullopt;
  const auto length = get16(p.l4, 4);
  if (length < 8 || length > p.l4.size()) return std::nullopt;
  const auto l4 = p.l4.first(length);
  if (get16(l4, 6) != 0 && checksum(l4, pseudo_header_sum(p.src, p.dst, 17, length)) != 0)
    return std::nullopt;
  return Udp{get16(l4, 0), get16(l4, 2), l4.subspan(8)};
}

}  // namespace vdtu::net::probe

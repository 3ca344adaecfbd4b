#pragma once
// The Linux stack's side of a conversation (run inside a network namespace
// the test or demo made): ICMP echo over a raw socket, UDP and TCP echo clients. Each
// returns true only if every answer came back intact in time.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "net/probe/ip_frames.hpp"
#include "vdtu/unique_fd.hpp"

namespace vdtu::net::probe {

inline sockaddr_in socket_address(Ipv4 ip, unsigned port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(ip);
  return a;
}

inline void receive_timeout(int fd, std::chrono::milliseconds t) {
  timeval tv{static_cast<time_t>(t.count() / 1000), static_cast<suseconds_t>((t.count() % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

inline bool kernel_ping(Ipv4 peer, int count, std::chrono::milliseconds each) {
  UniqueFd fd(::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP));
  if (!fd) return false;
  receive_timeout(fd.get(), each);
  const auto to = socket_address(peer, 0);
  for (int seq = 1; seq <= count; ++seq) {
    std::vector<std::byte> icmp(8 + 32, std::byte{0x33});
    icmp[0] = std::byte{8};
    icmp[1] = icmp[2] = icmp[3] = std::byte{0};
    icmp[4] = std::byte{0x42};
    icmp[5] = std::byte{0x42};
    icmp[6] = std::byte{0};
    icmp[7] = static_cast<std::byte>(seq);
    const auto sum = packet_detail::checksum(icmp);
    packet_detail::patch16(icmp, 2, sum);
    bool answered = false;
    for (int attempt = 0; attempt < 3 && !answered; ++attempt) {  // the first may wait for ARP
      if (::sendto(fd.get(), icmp.data(), icmp.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                   sizeof(to)) < 0)
        return false;
      std::array<std::byte, 2048> in{};
      for (;;) {
        const auto n = ::recv(fd.get(), in.data(), in.size(), 0);
        if (n < 0) break;  // timeout: send again
        const auto header = static_cast<std::size_t>(std::to_integer<unsigned>(in[0]) & 0xfU) * 4;
        if (static_cast<std::size_t>(n) < header + 8) continue;
        const auto* reply = in.data() + header;
        if (std::to_integer<unsigned>(reply[0]) == 0 && std::to_integer<unsigned>(reply[4]) == 0x42 &&
            std::to_integer<unsigned>(reply[7]) == static_cast<unsigned>(seq)) {
          answered = true;
          break;
        }
      }
    }
    if (!answered) return false;
  }
  return true;
}

inline bool kernel_udp_echo(Ipv4 peer, unsigned port, std::size_t bytes, std::chrono::milliseconds each) {
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  receive_timeout(fd.get(), each);
  const auto to = socket_address(peer, port);
  std::vector<std::byte> out(bytes);
  for (std::size_t i = 0; i < bytes; ++i) out[i] = static_cast<std::byte>(i * 7 + 1);
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (::sendto(fd.get(), out.data(), out.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) < 0)
      return false;
    std::vector<std::byte> in(bytes + 16);
    const auto n = ::recv(fd.get(), in.data(), in.size(), 0);
    if (n == static_cast<ssize_t>(bytes) && std::memcmp(in.data(), out.data(), bytes) == 0) return true;
  }
  return false;
}

// Sends `bytes` and reads them back over one connection.
inline bool kernel_tcp_echo(Ipv4 peer, unsigned port, std::size_t bytes, std::chrono::milliseconds limit) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  receive_timeout(fd.get(), limit);
  timeval tv{static_cast<time_t>(limit.count() / 1000), 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  const auto to = socket_address(peer, port);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&to), sizeof(to)) != 0) return false;
  std::vector<std::byte> out(bytes);
  for (std::size_t i = 0; i < bytes; ++i) out[i] = static_cast<std::byte>(i * 13 + 5);
  std::vector<std::byte> in(bytes);
  std::size_t sent = 0;
  std::size_t got = 0;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (got < bytes && std::chrono::steady_clock::now() < deadline) {
    if (sent < bytes) {
      const auto n = ::send(fd.get(), out.data() + sent, std::min<std::size_t>(bytes - sent, 16384),
                            MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<std::size_t>(n);
    }
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 20) > 0) {
      const auto n = ::recv(fd.get(), in.data() + got, bytes - got, MSG_DONTWAIT);
      if (n == 0) return false;
      if (n > 0) got += static_cast<std::size_t>(n);
    }
  }
  // Reset rather than close: an orphaned connection still closing with a
  // peer that is about to go would keep the whole namespace alive for minutes.
  const linger reset{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
  return got == bytes && in == out;
}

}  // namespace vdtu::net::probe

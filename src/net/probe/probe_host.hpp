#pragma once
// A host on a switch port whose "IP stack" is the test's own frames: it
// answers ARP for its address, ICMP echo requests and UDP echo (port 7), and
// can ping or UDP-echo another host.

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "net/probe/ip_frames.hpp"
#include "vdtu/net.hpp"

namespace vdtu::net::probe {

class ProbeHost {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr unsigned kEchoPort = 7;

  ProbeHost(SwitchPort port, MacAddress mac, Ipv4 ip) : port_(std::move(port)), mac_(mac), ip_(ip) {}

  SwitchPort& port() { return port_; }
  [[nodiscard]] std::uint64_t echo_requests_answered() const { return answered_; }

  // Answers whatever comes in until `done()` or the time is up; false then.
  bool serve(
      std::chrono::milliseconds limit, const std::function<bool()>& done = [] { return false; }) {
    return pump(Clock::now() + limit, [&](std::span<const std::byte>) { return done(); });
  }

  // ARP for `peer`, then `count` echo requests, each answered in time.
  bool ping(Ipv4 peer, int count, std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    const auto peer_mac = resolve(peer, deadline);
    if (!peer_mac) return false;
    const std::vector<std::byte> data(56, std::byte{0x5a});
    for (int seq = 1; seq <= count; ++seq) {
      if (!send(icmp_echo(false, *peer_mac, mac_, ip_, peer, 0x1234, static_cast<unsigned>(seq), data)))
        return false;
      const bool answered = pump(deadline, [&](std::span<const std::byte> f) {
        const auto ip = parse_ipv4(f);
        if (!ip || ip->src != peer || ip->dst != ip_) return false;
        const auto echo = parse_icmp_echo(*ip);
        return echo && echo->reply && echo->id == 0x1234 && echo->seq == static_cast<unsigned>(seq) &&
               std::equal(echo->data.begin(), echo->data.end(), data.begin(), data.end());
      });
      if (!answered) return false;
    }
    return true;
  }

  // One datagram to peer:port; true when the same bytes come back.
  bool udp_echo(Ipv4 peer, unsigned port, const std::vector<std::byte>& data,
                std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    const auto peer_mac = resolve(peer, deadline);
    if (!peer_mac || !send(udp_frame(*peer_mac, mac_, ip_, 40000, peer, port, data))) return false;
    return pump(deadline, [&](std::span<const std::byte> f) {
      const auto ip = parse_ipv4(f);
      if (!ip || ip->src != peer || ip->dst != ip_) return false;
      const auto udp = parse_udp(*ip);
      return udp && udp->src_port == port && udp->dst_port == 40000 &&
             std::equal(udp->data.begin(), udp->data.end(), data.begin(), data.end());
    });
  }

  bool send(const std::vector<std::byte>& frame) {
    for (int attempt = 0; attempt < 1000; ++attempt) {
      const auto st = port_.try_send(frame);
      if (st == Status::kOk) return true;
      if (st != Status::kFull) return false;
      port_.wait_writable(std::chrono::milliseconds(10));
    }
    return false;
  }

 private:
  std::optional<MacAddress> resolve(Ipv4 peer, Clock::time_point deadline) {
    if (const auto it = arp_.find(peer); it != arp_.end()) return it->second;
    while (Clock::now() < deadline) {
      if (!send(arp_frame(false, mac_, ip_, {}, peer))) return std::nullopt;
      const auto retry = std::min(deadline, Clock::now() + std::chrono::milliseconds(500));
      if (pump(retry, [&](std::span<const std::byte>) { return arp_.count(peer) != 0; })) return arp_[peer];
    }
    return std::nullopt;
  }

  // Receives until `wanted` says a frame was the one, or the deadline.
  template <class Wanted>
  bool pump(Clock::time_point deadline, Wanted wanted) {
    std::array<std::span<const std::byte>, 32> frames{};
    for (;;) {
      std::uint32_t got = 0;
      const auto st = port_.try_receive_burst(frames, got);
      if (st != Status::kOk && st != Status::kEmpty) return false;
      bool found = false;
      for (std::uint32_t i = 0; i < got; ++i) {
        const std::vector<std::byte> frame(frames[i].begin(), frames[i].end());  // copy, then look
        answer(frame);
        found = found || wanted(frame);
      }
      port_.release(got);
      if (found || (got == 0 && wanted(std::span<const std::byte>{}))) return true;
      const auto now = Clock::now();
      if (now >= deadline) return false;
      if (got == 0)
        port_.wait_readable(std::min<Clock::duration>(deadline - now, std::chrono::milliseconds(50)));
    }
  }

  void answer(std::span<const std::byte> f) {
    if (const auto arp = parse_arp(f)) {
      arp_[arp->sender_ip] = arp->sender_mac;
      if (!arp->reply && arp->target_ip == ip_)
        send(arp_frame(true, mac_, ip_, arp->sender_mac, arp->sender_ip));
      return;
    }
    const auto ip = parse_ipv4(f);
    if (!ip || ip->dst != ip_) return;
    if (const auto echo = parse_icmp_echo(*ip); echo && !echo->reply) {
      ++answered_;
      send(icmp_echo(true, ip->src_mac, mac_, ip_, ip->src, echo->id, echo->seq, echo->data));
    } else if (const auto udp = parse_udp(*ip); udp && udp->dst_port == kEchoPort) {
      ++answered_;
      send(udp_frame(ip->src_mac, mac_, ip_, kEchoPort, ip->src, udp->src_port,
                     std::vector<std::byte>(udp->data.begin(), udp->data.end())));
    }
  }

  SwitchPort port_;
  MacAddress mac_;
  Ipv4 ip_;
  std::map<Ipv4, MacAddress> arp_;
  std::uint64_t answered_ = 0;
};

}  // namespace vdtu::net::probe

#include "packet_endpoint.hpp"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <system_error>

namespace vdtu::bench {
namespace {

constexpr std::size_t kTxData = TPACKET2_HDRLEN - sizeof(sockaddr_ll);

[[noreturn]] void fail(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

std::atomic_ref<std::uint32_t> status_of(std::byte* frame) {
  return std::atomic_ref<std::uint32_t>(
      *reinterpret_cast<std::uint32_t*>(frame + offsetof(tpacket2_hdr, tp_status)));
}

}  // namespace

PacketEndpoint::PacketEndpoint(const std::string& interface, std::uint32_t ring_frames)
    : frames_(ring_frames) {
  socket_.reset(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
  if (!socket_) fail("socket(AF_PACKET)");
  const int version = TPACKET_V2;
  const int one = 1;
  if (::setsockopt(socket_.get(), SOL_PACKET, PACKET_VERSION, &version, sizeof(version)) != 0 ||
      ::setsockopt(socket_.get(), SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) != 0 ||
      ::setsockopt(socket_.get(), SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) != 0) {
    fail("packet socket options");
  }
  tpacket_req request{};
  request.tp_block_size = 1U << 16U;
  request.tp_frame_size = frame_size_;
  request.tp_block_nr = frames_ / (request.tp_block_size / frame_size_);
  request.tp_frame_nr = frames_;
  if (::setsockopt(socket_.get(), SOL_PACKET, PACKET_RX_RING, &request, sizeof(request)) != 0 ||
      ::setsockopt(socket_.get(), SOL_PACKET, PACKET_TX_RING, &request, sizeof(request)) != 0) {
    fail("packet rings");
  }
  rings_ = MappedRegion(socket_.get(), 2 * std::size_t{frames_} * frame_size_);
  ifreq hw{};
  std::strncpy(hw.ifr_name, interface.c_str(), IFNAMSIZ - 1);
  if (::ioctl(socket_.get(), SIOCGIFHWADDR, &hw) != 0) fail("SIOCGIFHWADDR " + interface);
  std::memcpy(mac_.octets.data(), hw.ifr_hwaddr.sa_data, 6);
  sockaddr_ll address{};
  address.sll_family = AF_PACKET;
  address.sll_protocol = htons(ETH_P_ALL);
  address.sll_ifindex = static_cast<int>(::if_nametoindex(interface.c_str()));
  if (address.sll_ifindex == 0 ||
      ::bind(socket_.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    fail("bind " + interface);
  }
}

std::byte* PacketEndpoint::rx_frame(std::uint32_t i) const {
  return rings_.data() + std::size_t{i % frames_} * frame_size_;
}
std::byte* PacketEndpoint::tx_frame(std::uint32_t i) const {
  return rings_.data() + (std::size_t{frames_} + i % frames_) * frame_size_;
}

std::uint32_t PacketEndpoint::send(std::span<const std::byte> frame, std::uint32_t count) {
  std::uint32_t queued = 0;
  for (; queued < count; ++queued) {
    auto* slot = tx_frame(tx_next_);
    const auto status = status_of(slot).load(std::memory_order_acquire);
    if (status != TP_STATUS_AVAILABLE && status != TP_STATUS_WRONG_FORMAT) break;
    std::memcpy(slot + kTxData, frame.data(), frame.size());
    const auto length = static_cast<std::uint32_t>(frame.size());
    std::memcpy(slot + offsetof(tpacket2_hdr, tp_len), &length, sizeof(length));
    status_of(slot).store(TP_STATUS_SEND_REQUEST, std::memory_order_release);
    ++tx_next_;
  }
  if (queued > 0) ::send(socket_.get(), nullptr, 0, MSG_DONTWAIT);
  return queued;
}

std::uint32_t PacketEndpoint::drain(std::uint16_t ether_type) {
  std::uint32_t matched = 0;
  for (;;) {
    auto* slot = rx_frame(rx_next_);
    if ((status_of(slot).load(std::memory_order_acquire) & TP_STATUS_USER) == 0) return matched;
    tpacket2_hdr header{};
    std::memcpy(&header, slot, sizeof(header));
    if (header.tp_snaplen >= 14 && header.tp_mac + 14U <= frame_size_) {
      const auto* type = slot + header.tp_mac + 12;
      const auto value = static_cast<std::uint16_t>((std::to_integer<unsigned>(type[0]) << 8U) |
                                                    std::to_integer<unsigned>(type[1]));
      if (value == ether_type) ++matched;
    }
    status_of(slot).store(TP_STATUS_KERNEL, std::memory_order_release);
    ++rx_next_;
  }
}

}  // namespace vdtu::bench

#include "packet_uplink.hpp"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "checksum.hpp"

namespace vdtu::net {
namespace {

// virtio_net_hdr as PACKET_VNET_HDR puts it before every frame (host order).
// Declared here: <linux/virtio_net.h> does not compile as C++.
struct VnetHeader {
  std::uint8_t flags;
  std::uint8_t gso_type;
  std::uint16_t header_length;
  std::uint16_t gso_size;
  std::uint16_t checksum_start;
  std::uint16_t checksum_offset;
};
static_assert(sizeof(VnetHeader) == 10);
constexpr std::uint8_t kVnetNeedsChecksum = 1;
constexpr std::uint8_t kVnetGsoNone = 0;

// Legacy ethtool commands to read and set generic receive offload.
constexpr std::uint32_t kEthtoolGetGro = 0x2b;
constexpr std::uint32_t kEthtoolSetGro = 0x2c;
struct EthtoolValue {
  std::uint32_t command;
  std::uint32_t data;
};

// Where a V2 TX frame's data starts when PACKET_TX_HAS_OFF is not used.
constexpr std::size_t kTxDataOffset = TPACKET2_HDRLEN - sizeof(sockaddr_ll);
constexpr std::uint32_t kBlockBytes = 1U << 16U;

[[noreturn]] void fail_on(const std::string& interface, const char* what) {
  throw std::system_error(errno, std::generic_category(), "uplink " + interface + ": " + what);
}

void set_option(int fd, int option, int value, const std::string& interface, const char* what) {
  if (::setsockopt(fd, SOL_PACKET, option, &value, sizeof(value)) != 0) fail_on(interface, what);
}

ifreq request_for(const std::string& interface) {
  ifreq request{};
  std::memcpy(request.ifr_name, interface.data(), std::min(interface.size(), sizeof(request.ifr_name) - 1));
  return request;
}

// GRO would hand us TCP segments merged into frames larger than a ring frame.
void turn_off_gro(int fd, const std::string& interface) {
  auto request = request_for(interface);
  EthtoolValue value{kEthtoolGetGro, 0};
  request.ifr_data = reinterpret_cast<char*>(&value);
  if (::ioctl(fd, SIOCETHTOOL, &request) != 0 || value.data == 0) return;
  value = {kEthtoolSetGro, 0};
  ::ioctl(fd, SIOCETHTOOL, &request);  // best effort: some drivers cannot
}

std::uint32_t interface_mtu(int fd, const std::string& interface) {
  auto request = request_for(interface);
  if (::ioctl(fd, SIOCGIFMTU, &request) != 0) fail_on(interface, "SIOCGIFMTU");
  return static_cast<std::uint32_t>(request.ifr_mtu);
}

std::uint32_t load_status(const std::byte* frame) {
  return std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(const_cast<std::byte*>(frame) +
                                                                          offsetof(tpacket2_hdr, tp_status)))
      .load(std::memory_order_acquire);
}

// Release: the frame's contents are written before the kernel may look.
void store_status(std::byte* frame, std::uint32_t status) {
  std::atomic_ref<std::uint32_t>(*reinterpret_cast<std::uint32_t*>(frame + offsetof(tpacket2_hdr, tp_status)))
      .store(status, std::memory_order_release);
}

}  // namespace

PacketUplink::PacketUplink(const std::string& interface, std::uint32_t mtu, std::uint32_t ring_frames)
    : interface_(interface), frames_(ring_frames) {
  if (interface.empty() || interface.size() >= IFNAMSIZ) {
    throw std::invalid_argument("uplink interface name must have 1 to 15 characters");
  }
  if (!std::has_single_bit(ring_frames) || ring_frames < 8) {
    throw std::invalid_argument("uplink ring frames must be a power of two of at least 8");
  }
  const auto index = ::if_nametoindex(interface.c_str());
  if (index == 0) fail_on(interface, "no such interface");
  // Protocol 0: nothing arrives until bind() names the interface.
  socket_.reset(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!socket_) fail_on(interface, "socket(AF_PACKET)");
  const auto mtu_here = interface_mtu(socket_.get(), interface);
  mtu_ = mtu != 0 ? mtu : mtu_here;
  if (mtu_ > mtu_here || mtu_ < kMinMtu || mtu_ > kMaxMtu) {
    throw std::invalid_argument("uplink " + interface + ": mtu " + std::to_string(mtu_) +
                                " does not fit the interface (mtu " + std::to_string(mtu_here) + ")");
  }
  set_option(socket_.get(), PACKET_VERSION, TPACKET_V2, interface, "PACKET_VERSION");
  set_option(socket_.get(), PACKET_VNET_HDR, 1, interface, "PACKET_VNET_HDR");
  set_option(socket_.get(), PACKET_IGNORE_OUTGOING, 1, interface, "PACKET_IGNORE_OUTGOING");
  set_option(socket_.get(), PACKET_QDISC_BYPASS, 1, interface, "PACKET_QDISC_BYPASS");
  set_option(socket_.get(), PACKET_LOSS, 1, interface, "PACKET_LOSS");  // skip malformed TX frames

  // A frame slot: header, sockaddr_ll, alignment slack, virtio header, frame.
  frame_size_ = std::bit_ceil(static_cast<std::uint32_t>(TPACKET2_HDRLEN + TPACKET_ALIGNMENT +
                                                         sizeof(VnetHeader) + max_frame_bytes(mtu_)));
  tpacket_req request{};
  request.tp_block_size = std::max(kBlockBytes, frame_size_);
  request.tp_frame_size = frame_size_;
  request.tp_frame_nr = frames_;
  request.tp_block_nr = frames_ / (request.tp_block_size / frame_size_);
  if (request.tp_block_nr == 0)
    throw std::invalid_argument("uplink " + interface + ": ring_frames too small");
  request.tp_frame_nr = request.tp_block_nr * (request.tp_block_size / frame_size_);
  frames_ = request.tp_frame_nr;
  if (::setsockopt(socket_.get(), SOL_PACKET, PACKET_RX_RING, &request, sizeof(request)) != 0) {
    fail_on(interface, "PACKET_RX_RING");
  }
  if (::setsockopt(socket_.get(), SOL_PACKET, PACKET_TX_RING, &request, sizeof(request)) != 0) {
    fail_on(interface, "PACKET_TX_RING");
  }
  rings_ = MappedRegion(socket_.get(), 2 * std::size_t{request.tp_block_size} * request.tp_block_nr);

  sockaddr_ll address{};
  address.sll_family = AF_PACKET;
  address.sll_protocol = htons(ETH_P_ALL);
  address.sll_ifindex = static_cast<int>(index);
  if (::bind(socket_.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    fail_on(interface, "bind");
  }
  packet_mreq membership{};
  membership.mr_ifindex = static_cast<int>(index);
  membership.mr_type = PACKET_MR_PROMISC;  // ends with the socket
  if (::setsockopt(socket_.get(), SOL_PACKET, PACKET_ADD_MEMBERSHIP, &membership, sizeof(membership)) != 0) {
    fail_on(interface, "promiscuous mode");
  }
  turn_off_gro(socket_.get(), interface);
}

std::byte* PacketUplink::rx_frame(std::uint32_t index) const {
  return rings_.data() + std::size_t{index & (frames_ - 1)} * frame_size_;
}

std::byte* PacketUplink::tx_frame(std::uint32_t index) const {
  return rings_.data() + std::size_t{frames_} * frame_size_ +
         std::size_t{index & (frames_ - 1)} * frame_size_;
}

// The kernel wrote the slot, but its offsets are still checked before use.
bool PacketUplink::usable(std::byte* frame, std::uint16_t& offset, std::uint16_t& length) {
  tpacket2_hdr header{};
  std::memcpy(&header, frame, sizeof(header));
  if (header.tp_mac < TPACKET2_HDRLEN + sizeof(VnetHeader) || header.tp_mac > frame_size_ ||
      header.tp_snaplen > frame_size_ - header.tp_mac || header.tp_snaplen < header.tp_len ||
      header.tp_len > UINT16_MAX) {
    return false;  // truncated (larger than a ring frame) or inconsistent
  }
  VnetHeader vnet{};
  std::memcpy(&vnet, frame + header.tp_mac - sizeof(VnetHeader), sizeof(vnet));
  if (vnet.gso_type != kVnetGsoNone) return false;  // a merged frame the switch does not split
  offset = header.tp_mac;
  length = static_cast<std::uint16_t>(header.tp_len);
  if ((vnet.flags & kVnetNeedsChecksum) != 0) {
    return complete_checksum(std::span(frame + offset, length), vnet.checksum_start, vnet.checksum_offset);
  }
  return true;
}

std::uint32_t PacketUplink::receive_burst(std::span<ReceivedFrame> out) {
  std::uint32_t n = 0;
  while (n < out.size() && rx_taken_ < frames_) {
    auto* frame = rx_frame(rx_next_ + rx_taken_);
    if ((load_status(frame) & TP_STATUS_USER) == 0) break;
    ++rx_taken_;
    std::uint16_t offset = 0;
    std::uint16_t length = 0;
    if (!usable(frame, offset, length)) {
      ++counters().rx_frames;
      counters().drop(DropReason::kUnusable);
      continue;
    }
    out[n++].capture(frame + offset, length);
  }
  return n;
}

void PacketUplink::release_received() {
  for (std::uint32_t i = 0; i < rx_taken_; ++i) store_status(rx_frame(rx_next_ + i), TP_STATUS_KERNEL);
  rx_next_ += rx_taken_;
  rx_taken_ = 0;
}

std::uint32_t PacketUplink::transmit_burst(std::span<const ReceivedFrame* const> frames) {
  std::uint32_t n = 0;
  for (; n < frames.size(); ++n) {
    const auto& f = *frames[n];
    auto* slot = tx_frame(tx_next_);
    const auto status = load_status(slot);
    if (status != TP_STATUS_AVAILABLE && status != TP_STATUS_WRONG_FORMAT) break;  // ring full
    if (f.length > max_frame_bytes(mtu_)) break;  // the engine checks the MTU first
    auto* data = slot + kTxDataOffset;
    // A complete frame (no offload asked for), all of it in the skb's linear
    // part: otherwise the kernel builds the skb from pages of this ring and,
    // crossing into a veth, allocates fresh pages to copy them into.
    VnetHeader vnet{};
    vnet.header_length = f.length;
    std::memcpy(data, &vnet, sizeof(vnet));
    copy_frame(f, data + sizeof(VnetHeader));
    tpacket2_hdr header{};
    std::memcpy(&header, slot, sizeof(header));
    header.tp_len = static_cast<std::uint32_t>(sizeof(VnetHeader) + f.length);
    header.tp_snaplen = header.tp_len;
    std::memcpy(slot + offsetof(tpacket2_hdr, tp_len), &header.tp_len, sizeof(header.tp_len));
    std::memcpy(slot + offsetof(tpacket2_hdr, tp_snaplen), &header.tp_snaplen, sizeof(header.tp_snaplen));
    store_status(slot, TP_STATUS_SEND_REQUEST);
    ++tx_next_;
  }
  if (n > 0) kick();
  return n;
}

// One system call sends every frame marked for sending.
void PacketUplink::kick() {
  if (::send(socket_.get(), nullptr, 0, MSG_DONTWAIT) >= 0) return;
  if (errno == ENXIO || errno == ENODEV) fail("interface " + interface_ + " went away", false);
}

void PacketUplink::refresh_counters() {
  tpacket_stats stats{};
  socklen_t size = sizeof(stats);
  if (::getsockopt(socket_.get(), SOL_PACKET, PACKET_STATISTICS, &stats, &size) ==
      0) {  // reading resets them
    counters().drop(DropReason::kRxOverrun, stats.tp_drops);
    counters().rx_frames += stats.tp_drops;
  }
}

bool PacketUplink::arm_wakeup() { return (load_status(rx_frame(rx_next_)) & TP_STATUS_USER) == 0; }

}  // namespace vdtu::net

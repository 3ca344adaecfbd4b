#include "lwip_switch_netif.hpp"

#include <array>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace vdtu::apps {
namespace {

constexpr auto kSendPatience = std::chrono::milliseconds(5);

}  // namespace

SwitchNetif::SwitchNetif(net::SwitchPort& port, const net::MacAddress& mac, const NetifAddress& address)
    : port_(port), mac_(mac) {
  LOCK_TCPIP_CORE();
  const auto* added = netif_add(&netif_, &address.address, &address.netmask, &address.gateway, this,
                                &SwitchNetif::init, tcpip_input);
  if (added != nullptr) {
    netif_set_default(&netif_);
    netif_set_up(&netif_);
    netif_set_link_up(&netif_);
#if LWIP_IPV6
    netif_create_ip6_linklocal_address(&netif_, 1);
#endif
  }
  UNLOCK_TCPIP_CORE();
  if (added == nullptr) throw std::runtime_error("lwIP refused the interface");
  receiver_ = std::thread([this] { receive_loop(); });
}

SwitchNetif::~SwitchNetif() {
  stop_ = true;
  if (receiver_.joinable()) receiver_.join();
}

err_t SwitchNetif::init(netif* nif) {
  auto* self = static_cast<SwitchNetif*>(nif->state);
  nif->name[0] = 's';
  nif->name[1] = 'w';
  nif->hwaddr_len = ETH_HWADDR_LEN;
  std::memcpy(nif->hwaddr, self->mac_.octets.data(), ETH_HWADDR_LEN);
  nif->mtu = static_cast<u16_t>(self->port_.info().mtu);
  nif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET | NETIF_FLAG_IGMP;
  nif->output = etharp_output;
#if LWIP_IPV6
  nif->output_ip6 = ethip6_output;
  nif->flags |= NETIF_FLAG_MLD6;
#endif
  nif->linkoutput = &SwitchNetif::link_output;
  return ERR_OK;
}

// In the tcpip thread. A full ring gets a few milliseconds, then the frame
// is lost as on a real link (TCP sends it again).
err_t SwitchNetif::link_output(netif* nif, pbuf* p) {
  auto* self = static_cast<SwitchNetif*>(nif->state);
  std::vector<std::byte> frame(p->tot_len);
  pbuf_copy_partial(p, frame.data(), p->tot_len, 0);
  auto st = self->port_.try_send(frame);
  if (st == Status::kFull && self->port_.wait_writable(kSendPatience) == Status::kOk)
    st = self->port_.try_send(frame);
  if (st == Status::kOk) {
    ++self->counters_.sent;
    return ERR_OK;
  }
  ++self->counters_.send_dropped;
  return ERR_MEM;
}

void SwitchNetif::receive_loop() {
  std::array<std::span<const std::byte>, 32> frames{};
  while (!stop_) {
    std::uint32_t got = 0;
    const auto st = port_.try_receive_burst(frames, got);
    if (st == Status::kEmpty) {
      port_.wait_readable(std::chrono::milliseconds(100));  // spin, then sleep; the switch wakes us
      continue;
    }
    if (st != Status::kOk) {  // the switch ended the port
      port_gone_ = true;
      return;
    }
    for (std::uint32_t i = 0; i < got; ++i) {
      // PBUF_RAM, one contiguous buffer: with PBUF_POOL, Debian's build of
      // lwIP 2.1.3 hands out pool buffers smaller than the lengths it writes
      // into them (AddressSanitizer caught pbuf_take overflowing one).
      auto* p = pbuf_alloc(PBUF_RAW, static_cast<u16_t>(frames[i].size()), PBUF_RAM);
      if (p == nullptr) continue;  // out of memory: the frame is lost, as on a busy NIC
      pbuf_take(p, frames[i].data(), static_cast<u16_t>(frames[i].size()));
      if (netif_.input(p, &netif_) != ERR_OK) pbuf_free(p);
      ++counters_.received;
    }
    port_.release(got);
  }
}

}  // namespace vdtu::apps

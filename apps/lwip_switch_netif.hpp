#pragma once
// An lwIP network interface on a `vdtu switch` port: lwIP's output goes into
// the port's to-switch ring (from lwIP's tcpip thread, the only sender), and
// a receive thread hands each frame from the switch to lwIP (tcpip_input).

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "lwip_headers.hpp"
#include "vdtu/net.hpp"

namespace vdtu::apps {

struct NetifAddress {
  ip4_addr_t address{};
  ip4_addr_t netmask{};
  ip4_addr_t gateway{};
};

struct NetifCounters {
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> sent{0};
  std::atomic<std::uint64_t> send_dropped{0};  // the ring stayed full
};

class SwitchNetif {
 public:
  // Adds the interface (lwIP core locked) as the default one and starts the
  // receive thread. tcpip_init must have run.
  SwitchNetif(net::SwitchPort& port, const net::MacAddress& mac, const NetifAddress& address);
  SwitchNetif(const SwitchNetif&) = delete;
  SwitchNetif& operator=(const SwitchNetif&) = delete;
  ~SwitchNetif();  // stops the receive thread; the interface stays (lwIP has no clean removal here)

  // True once the switch ended the port (the process should end).
  [[nodiscard]] bool port_gone() const { return port_gone_.load(); }
  [[nodiscard]] const NetifCounters& counters() const { return counters_; }

 private:
  static err_t init(netif* nif);
  static err_t link_output(netif* nif, pbuf* p);
  void receive_loop();

  net::SwitchPort& port_;
  net::MacAddress mac_;
  netif netif_{};
  NetifCounters counters_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> port_gone_{false};
  std::thread receiver_;
};

}  // namespace vdtu::apps

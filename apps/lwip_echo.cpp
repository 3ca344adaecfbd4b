// lwip_echo: lwIP (Debian's package, an IP stack nobody here wrote) on a
// `vdtu switch` port, serving UDP and TCP echo. The counterpart of sDDF's
// echo server; it proves the ports carry real IP traffic.
//
//   lwip_echo --socket /run/vdtu-switch.sock --ip 10.199.0.2/24 [--port NAME]
//             [--mac 02:...] [--gateway A.B.C.D] [--echo-port 7]
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdlib>
#include <future>
#include <random>
#include <string>

#include "lwip_headers.hpp"
#include "lwip_switch_netif.hpp"
#include "vdtu/net.hpp"

namespace {

using vdtu::apps::NetifAddress;
using vdtu::apps::SwitchNetif;

// One TCP echo connection: what came in and is not yet sent back. The
// receive window reopens only as data leaves, so a slow sender-reader slows
// its peer instead of filling our memory.
struct TcpEcho {
  std::string pending;
  bool closing = false;
};

// ERR_ABRT when the connection had to be aborted (a callback must say so).
err_t close_connection(tcp_pcb* pcb, TcpEcho* echo) {
  tcp_arg(pcb, nullptr);
  tcp_recv(pcb, nullptr);
  tcp_sent(pcb, nullptr);
  tcp_err(pcb, nullptr);
  delete echo;
  if (tcp_close(pcb) == ERR_OK) return ERR_OK;
  tcp_abort(pcb);
  return ERR_ABRT;
}

err_t flush(tcp_pcb* pcb, TcpEcho* echo) {
  while (!echo->pending.empty()) {
    const auto room = static_cast<std::size_t>(tcp_sndbuf(pcb));
    const auto n = static_cast<u16_t>(std::min<std::size_t>({echo->pending.size(), room, 0xffffU}));
    if (n == 0 || tcp_write(pcb, echo->pending.data(), n, TCP_WRITE_FLAG_COPY) != ERR_OK) break;
    echo->pending.erase(0, n);
    tcp_recved(pcb, n);
  }
  tcp_output(pcb);
  if (echo->closing && echo->pending.empty()) return close_connection(pcb, echo);
  return ERR_OK;
}

err_t on_tcp_receive(void* arg, tcp_pcb* pcb, pbuf* p, err_t err) {
  auto* echo = static_cast<TcpEcho*>(arg);
  if (p == nullptr) {  // the peer closed its side
    echo->closing = true;
    return flush(pcb, echo);
  }
  if (err == ERR_OK) {
    const auto at = echo->pending.size();
    echo->pending.resize(at + p->tot_len);
    pbuf_copy_partial(p, echo->pending.data() + at, p->tot_len, 0);
  }
  pbuf_free(p);
  return flush(pcb, echo);
}

err_t on_tcp_sent(void* arg, tcp_pcb* pcb, u16_t /*len*/) { return flush(pcb, static_cast<TcpEcho*>(arg)); }

void on_tcp_error(void* arg, err_t /*err*/) { delete static_cast<TcpEcho*>(arg); }  // the pcb is gone already

err_t on_tcp_accept(void* /*arg*/, tcp_pcb* pcb, err_t err) {
  if (err != ERR_OK || pcb == nullptr) return ERR_VAL;
  auto* echo = new TcpEcho;
  tcp_arg(pcb, echo);
  tcp_recv(pcb, on_tcp_receive);
  tcp_sent(pcb, on_tcp_sent);
  tcp_err(pcb, on_tcp_error);
  return ERR_OK;
}

void on_udp_receive(void* /*arg*/, udp_pcb* pcb, pbuf* p, const ip_addr_t* address, u16_t port) {
  udp_sendto(pcb, p, address, port);
  pbuf_free(p);
}

bool start_echo_services(u16_t port) {
  LOCK_TCPIP_CORE();
  auto* udp = udp_new_ip_type(IPADDR_TYPE_ANY);
  bool ok = udp != nullptr && udp_bind(udp, IP_ANY_TYPE, port) == ERR_OK;
  if (ok) udp_recv(udp, on_udp_receive, nullptr);
  auto* tcp = tcp_new_ip_type(IPADDR_TYPE_ANY);
  ok = ok && tcp != nullptr && tcp_bind(tcp, IP_ANY_TYPE, port) == ERR_OK;
  auto* listener = ok ? tcp_listen(tcp) : nullptr;
  if (listener != nullptr) tcp_accept(listener, on_tcp_accept);
  UNLOCK_TCPIP_CORE();
  return ok && listener != nullptr;
}

NetifAddress parse_address(const std::string& cidr, const std::string& gateway) {
  const auto slash = cidr.find('/');
  const auto prefix = slash == std::string::npos ? 24 : std::stoi(cidr.substr(slash + 1));
  NetifAddress a;
  if (prefix < 1 || prefix > 32 || ip4addr_aton(cidr.substr(0, slash).c_str(), &a.address) == 0) {
    throw std::runtime_error("--ip must look like 10.199.0.2/24: " + cidr);
  }
  a.netmask.addr = lwip_htonl(prefix == 32 ? 0xffffffffU : ~((1U << (32 - prefix)) - 1U));
  if (!gateway.empty() && ip4addr_aton(gateway.c_str(), &a.gateway) == 0) {
    throw std::runtime_error("--gateway must be an IPv4 address: " + gateway);
  }
  return a;
}

// A locally administered unicast address nobody configured.
vdtu::net::MacAddress random_mac() {
  std::random_device random;
  vdtu::net::MacAddress mac{{0x02, 0x00, 0, 0, 0, 0}};
  for (std::size_t i = 2; i < 6; ++i) mac.octets[i] = static_cast<std::uint8_t>(random());
  return mac;
}

int run(const std::string& socket, const std::string& port_name, const std::string& mac_text,
        const std::string& cidr, const std::string& gateway, u16_t echo_port) {
  const auto address = parse_address(cidr, gateway);
  // Signals are taken by sigtimedwait below; the lwIP threads must not get them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto port = vdtu::net::SwitchPort::connect(socket, {port_name});
  vdtu::net::MacAddress mac = port.info().mac.value_or(random_mac());
  if (!mac_text.empty()) {
    const auto parsed = vdtu::net::MacAddress::parse(mac_text);
    if (!parsed || parsed->is_multicast())
      throw std::runtime_error("--mac must be a unicast MAC: " + mac_text);
    mac = *parsed;
  }
  std::promise<void> ready;
  tcpip_init([](void* arg) { static_cast<std::promise<void>*>(arg)->set_value(); }, &ready);
  ready.get_future().wait();
  SwitchNetif netif(port, mac, address);
  if (!start_echo_services(echo_port)) throw std::runtime_error("cannot open the echo services");
  fmt::print("lwip_echo: {} at {} on switch port {} ({}), echo on udp and tcp port {}\n", cidr,
             mac.to_string(), port.info().id, port.info().name, echo_port);
  (void)std::fflush(stdout);

  const timespec tick{0, 100'000'000};
  int code = 0;
  for (;;) {
    if (sigtimedwait(&signals, nullptr, &tick) > 0) break;
    if (netif.port_gone()) {
      fmt::print(stderr, "lwip_echo: the switch closed the port\n");
      code = 1;
      break;
    }
  }
  const auto& c = netif.counters();
  fmt::print("lwip_echo: {} frames received, {} sent, {} dropped on a full ring\n", c.received.load(),
             c.sent.load(), c.send_dropped.load());
  (void)std::fflush(stdout);
  // lwIP's tcpip thread has no way to stop; end the process around it.
  std::_Exit(code);
}

int parse_and_run(int argc, char** argv) {
  CLI::App app{"lwip_echo: lwIP on a vdtu switch port, serving UDP and TCP echo"};
  std::string socket;
  std::string port_name;
  std::string mac;
  std::string cidr;
  std::string gateway;
  u16_t echo_port = 7;
  app.add_option("--socket", socket, "The switch's Unix socket")->required();
  app.add_option("--port", port_name, "A named port of the switch (default: an anonymous one)");
  app.add_option("--mac", mac, "This host's MAC (default: the port's, else a random local one)");
  app.add_option("--ip", cidr, "Static IPv4 address with prefix, e.g. 10.199.0.2/24")->required();
  app.add_option("--gateway", gateway, "Default gateway");
  app.add_option("--echo-port", echo_port, "UDP and TCP port of the echo services")
      ->check(CLI::Range(1, 65535));
  CLI11_PARSE(app, argc, argv);
  return run(socket, port_name, mac, cidr, gateway, echo_port);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return parse_and_run(argc, argv);
  } catch (const std::exception& e) {  // nothing may escape main
    fmt::print(stderr, "lwip_echo: {}\n", e.what());
    return 1;
  }
}

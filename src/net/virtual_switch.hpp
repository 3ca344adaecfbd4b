#pragma once
// `vdtu switch`: the trusted process around the forwarding engine. One
// thread does everything: it busy-polls the ports while frames flow, sleeps
// in epoll when idle, and between rounds serves its Unix socket (new ports,
// statistics) and notices ports whose peer left or misbehaved, which it
// removes with a log line while the others go on.

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "forwarding_engine.hpp"
#include "port_protocol.hpp"
#include "switch_config.hpp"
#include "vdtu/unique_fd.hpp"

namespace vdtu::net {

class VirtualSwitch {
 public:
  // Listens on the socket, opens the uplinks, reserves the named ports.
  // Throws (std::invalid_argument, std::system_error, std::runtime_error)
  // with a message naming what failed; nothing is left behind.
  explicit VirtualSwitch(SwitchConfig config);
  VirtualSwitch(const VirtualSwitch&) = delete;
  VirtualSwitch& operator=(const VirtualSwitch&) = delete;
  ~VirtualSwitch();  // removes the socket file

  // Forwards until `stop_fd` (e.g. a signalfd) becomes readable or
  // request_stop() is called.
  void run(int stop_fd = -1);
  // From any thread.
  void request_stop();

  [[nodiscard]] std::string report(wire::ReportFormat format) const;
  [[nodiscard]] const std::string& socket_path() const { return config_.socket_path; }

 private:
  // A vhost-user port's socket side, which outlives each frontend.
  struct VhostEndpoint {
    PortId id = 0;
    VhostUserConfig config;
    UniqueFd listener;                                   // server mode
    std::chrono::steady_clock::time_point next_attempt;  // client mode
  };

  struct Connection {
    UniqueFd fd;
    std::chrono::steady_clock::time_point since;
  };

  void watch(int fd, std::uint64_t tag);
  void unwatch(int fd);
  void service(std::chrono::milliseconds timeout);
  void dispatch(std::uint64_t tag);
  void accept_connections();
  void serve_request(int fd);
  void connect_port(UniqueFd connection, const wire::Request& request);
  void send_report(int fd, wire::ReportFormat format) const;
  void refuse(int fd, const std::string& why);
  void port_connection_event(PortId id);
  void remove_failed_ports();
  void remove_port(PortId id);
  void drop_stale_connections();
  void accept_vhost(std::size_t endpoint);
  void connect_vhost_clients();
  void attach_vhost(VhostEndpoint& endpoint, UniqueFd connection);
  void vhost_control_event(PortId id);
  bool arm_all();
  void disarm_all();

  SwitchConfig config_;
  ForwardingEngine engine_;
  UniqueFd listener_;
  UniqueFd epoll_;
  UniqueFd stop_event_;
  std::map<int, Connection> connections_;  // accepted, no request yet
  std::map<std::string, PortId> named_;    // configured ports and uplinks
  std::vector<PortId> anonymous_;
  std::vector<VhostEndpoint> vhost_;
  std::vector<PortId> sleeping_;  // ports whose wake-up fd is in the epoll set
  bool stopping_ = false;
};

}  // namespace vdtu::net

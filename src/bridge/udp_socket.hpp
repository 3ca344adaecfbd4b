#pragma once
// A non-blocking IPv4 UDP socket (RAII).

#include <netinet/in.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "vdtu/unique_fd.hpp"

namespace vdtu::bridge {

// Throws std::invalid_argument for a host that is not a dotted IPv4 address.
sockaddr_in make_address(const std::string& host, std::uint16_t port);
// "a.b.c.d:port", for log lines.
std::string format_address(const sockaddr_in& address);

class UdpSocket {
 public:
  // Binds to host:port (port 0: any free port). Throws std::system_error.
  static UdpSocket bind(const std::string& host, std::uint16_t port);
  // Takes over a bound IPv4 UDP socket (e.g. inherited from the process that
  // picked its port). Throws std::invalid_argument for anything else.
  static UdpSocket adopt(UniqueFd fd);

  [[nodiscard]] int fd() const { return fd_.get(); }
  // Gives up the socket, e.g. to hand it to a node (NodeConfig::bridge_fd).
  [[nodiscard]] UniqueFd release() && { return std::move(fd_); }
  [[nodiscard]] std::uint16_t port() const;
  // Best effort, like UDP itself: false if the kernel refused the datagram.
  [[nodiscard]] bool send_to(const sockaddr_in& to, std::span<const std::byte> datagram) const;
  // One datagram if one is waiting; its size (truncated ones are reported
  // with their full size, larger than the buffer, so callers can reject them).
  std::optional<std::size_t> receive(std::span<std::byte> buffer, sockaddr_in* from = nullptr) const;
  // Waits until a datagram may be read, at most `timeout`.
  [[nodiscard]] bool wait_readable(std::chrono::milliseconds timeout) const;

 private:
  explicit UdpSocket(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace vdtu::bridge

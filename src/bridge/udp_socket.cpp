#include "udp_socket.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <stdexcept>
#include <system_error>

namespace vdtu::bridge {

std::string format_address(const sockaddr_in& address) {
  std::array<char, INET_ADDRSTRLEN> text{};
  ::inet_ntop(AF_INET, &address.sin_addr, text.data(), text.size());
  return std::string(text.data()) + ":" + std::to_string(ntohs(address.sin_port));
}

sockaddr_in make_address(const std::string& host, std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
    throw std::invalid_argument("not an IPv4 address: " + host);
  }
  return a;
}

namespace {
void enlarge_buffers(int fd) {
  const int big = 4 << 20;  // room for bursts while the receiver polls
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
}

int socket_option(int fd, int option) {
  int value = -1;
  socklen_t len = sizeof(value);
  return ::getsockopt(fd, SOL_SOCKET, option, &value, &len) == 0 ? value : -1;
}
}  // namespace

UdpSocket UdpSocket::adopt(UniqueFd fd) {
  if (socket_option(fd.get(), SO_DOMAIN) != AF_INET || socket_option(fd.get(), SO_TYPE) != SOCK_DGRAM) {
    throw std::invalid_argument("fd " + std::to_string(fd.get()) + " is not an IPv4 UDP socket");
  }
  const int flags = ::fcntl(fd.get(), F_GETFL);
  ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK);
  ::fcntl(fd.get(), F_SETFD, FD_CLOEXEC);  // not on to the PEs
  enlarge_buffers(fd.get());
  return UdpSocket(std::move(fd));
}

UdpSocket UdpSocket::bind(const std::string& host, std::uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) throw std::system_error(errno, std::generic_category(), "socket");
  enlarge_buffers(fd.get());
  const auto address = make_address(host, port);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    throw std::system_error(errno, std::generic_category(), "bind " + host + ":" + std::to_string(port));
  }
  return UdpSocket(std::move(fd));
}

std::uint16_t UdpSocket::port() const {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

bool UdpSocket::send_to(const sockaddr_in& to, std::span<const std::byte> datagram) const {
  const auto n = ::sendto(fd_.get(), datagram.data(), datagram.size(), MSG_DONTWAIT,
                          reinterpret_cast<const sockaddr*>(&to), sizeof(to));
  return n == static_cast<ssize_t>(datagram.size());
}

std::optional<std::size_t> UdpSocket::receive(std::span<std::byte> buffer, sockaddr_in* from) const {
  sockaddr_in source{};
  socklen_t len = sizeof(source);
  const auto n = ::recvfrom(fd_.get(), buffer.data(), buffer.size(), MSG_DONTWAIT | MSG_TRUNC,
                            reinterpret_cast<sockaddr*>(&source), &len);
  if (n < 0) return std::nullopt;
  if (from != nullptr) *from = source;
  return static_cast<std::size_t>(n);
}

bool UdpSocket::wait_readable(std::chrono::milliseconds timeout) const {
  pollfd p{fd_.get(), POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0;
}

}  // namespace vdtu::bridge

#include "unix_message.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "common/fd_passing.hpp"

namespace vdtu::net {
namespace {

sockaddr_un address_of(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(address.sun_path)) {
    throw std::runtime_error("socket path must have 1 to " + std::to_string(sizeof(address.sun_path) - 1) +
                             " characters: '" + path + "'");
  }
  std::memcpy(address.sun_path, path.data(), path.size());
  return address;
}

UniqueFd seqpacket_socket(int flags = 0) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | flags, 0));
  if (!fd) throw std::system_error(errno, std::generic_category(), "socket(AF_UNIX)");
  return fd;
}

// A socket file left behind by a switch that died: nobody accepts on it.
bool stale_socket_file(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
  auto probe = seqpacket_socket();
  const auto address = address_of(path);
  return ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0 &&
         errno == ECONNREFUSED;
}

}  // namespace

UniqueFd listen_unix(const std::string& path, int backlog) {
  const auto address = address_of(path);
  if (stale_socket_file(path)) ::unlink(path.c_str());
  auto fd = seqpacket_socket(SOCK_NONBLOCK);  // accepted in the switch's event loop
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    throw std::system_error(errno, std::generic_category(), "bind " + path);
  }
  if (::listen(fd.get(), backlog) != 0) throw std::system_error(errno, std::generic_category(), "listen");
  return fd;
}

UniqueFd connect_unix(const std::string& path) {
  const auto address = address_of(path);
  auto fd = seqpacket_socket();
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    throw std::system_error(errno, std::generic_category(), "connect " + path);
  }
  return fd;
}

static_assert(kMaxFdsPerMessage <= kMaxPassedFds);

bool send_message(int socket, std::span<const std::byte> data, std::span<const int> fds) {
  if (fds.size() > kMaxFdsPerMessage) return false;
  return send_with_fds(socket, data, fds);
}

Received receive_message(int socket, std::span<std::byte> buffer, std::size_t& size,
                         std::vector<UniqueFd>& fds, std::chrono::milliseconds timeout) {
  fds.clear();
  size = 0;
  if (timeout.count() > 0) {
    pollfd p{socket, POLLIN, 0};
    int ready = 0;
    do {
      ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
    } while (ready < 0 && errno == EINTR);
    if (ready == 0) return Received::kWouldBlock;
  }
  iovec iov{buffer.data(), buffer.size()};
  // Room for one more fd than allowed, so an excess shows as a count, not a truncation.
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * (kMaxFdsPerMessage + 1))> control{};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ssize_t n = 0;
  do {
    n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? Received::kWouldBlock : Received::kClosed;
  take_passed_fds(msg, fds);
  if (n == 0 && fds.empty()) return Received::kClosed;  // SEQPACKET: orderly shutdown
  size = static_cast<std::size_t>(n);
  if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 || fds.size() > kMaxFdsPerMessage) {
    return Received::kMalformed;
  }
  return Received::kMessage;
}

}  // namespace vdtu::net

#include "fd_socket.hpp"

#include <sys/socket.h>

#include <cerrno>

#include "common/fd_passing.hpp"

namespace vdtu::dtu {

static_assert(kMaxFdsPerMessage <= kMaxPassedFds);

bool send_with_fds(int socket, std::span<const std::byte> data, std::span<const int> fds) {
  if (fds.size() > kMaxFdsPerMessage) return false;
  return vdtu::send_with_fds(socket, data, fds);
}

RecvResult recv_with_fds(int socket, std::span<std::byte> buffer, std::size_t& received,
                         std::vector<UniqueFd>& fds, bool blocking) {
  iovec iov{buffer.data(), buffer.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n = 0;
  do {
    n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC | (blocking ? 0 : MSG_DONTWAIT));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? RecvResult::kWouldBlock : RecvResult::kClosed;
  if (n == 0) return RecvResult::kClosed;
  fds.clear();
  take_passed_fds(msg, fds);
  received = static_cast<std::size_t>(n);
  if ((msg.msg_flags & MSG_TRUNC) != 0) return RecvResult::kMalformed;
  if ((msg.msg_flags & MSG_CTRUNC) != 0) return RecvResult::kFdsLost;
  return RecvResult::kMessage;
}

}  // namespace vdtu::dtu

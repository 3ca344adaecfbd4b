#include "message.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace vdtu::net::vhost {

MessageReader::Result MessageReader::receive(int socket, std::byte* at, std::size_t want) {
  iovec iov{at, want};
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * kMaxFds)> control{};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  const auto n = ::recvmsg(socket, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0)
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? Result::kWouldBlock : Result::kClosed;
  // Own every fd first, so none leaks whatever follows.
  for (auto* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const auto count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds_.emplace_back(fd);
    }
  }
  if ((msg.msg_flags & MSG_CTRUNC) != 0 || fds_.size() > kMaxFds) return Result::kMalformed;
  if (n == 0) return Result::kClosed;
  have_ += static_cast<std::size_t>(n);
  return Result::kMessage;
}

MessageReader::Result MessageReader::read(int socket, Message& out) {
  for (;;) {
    std::size_t want = kHeaderBytes - std::min(have_, kHeaderBytes);
    if (want == 0) {
      std::uint32_t size = 0;
      std::memcpy(&size, buffer_.data() + 8, sizeof(size));
      if (size > kMaxPayloadBytes) return Result::kMalformed;
      want = kHeaderBytes + size - have_;
      if (want == 0) {
        std::memcpy(&out.request, buffer_.data(), 4);
        std::memcpy(&out.flags, buffer_.data() + 4, 4);
        out.size = size;
        std::memcpy(out.payload.data(), buffer_.data() + kHeaderBytes, size);
        out.fds = std::move(fds_);
        fds_.clear();
        have_ = 0;
        return Result::kMessage;
      }
    }
    const auto got = receive(socket, buffer_.data() + have_, want);
    if (got != Result::kMessage) return got;
  }
}

bool send_reply(int socket, std::uint32_t request, const void* payload, std::uint32_t size) {
  std::array<std::byte, kHeaderBytes + kMaxPayloadBytes> bytes{};
  if (size > kMaxPayloadBytes) return false;
  const std::uint32_t flags = kVersion | kFlagReply;
  std::memcpy(bytes.data(), &request, 4);
  std::memcpy(bytes.data() + 4, &flags, 4);
  std::memcpy(bytes.data() + 8, &size, 4);
  std::memcpy(bytes.data() + kHeaderBytes, payload, size);
  const std::size_t total = kHeaderBytes + size;
  std::size_t sent = 0;
  while (sent < total) {
    const auto n = ::send(socket, bytes.data() + sent, total - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // a full socket means a frontend that does not read its replies
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace vdtu::net::vhost

#pragma once
// File descriptors attached to one datagram (SCM_RIGHTS) on a Unix socket:
// the control sockets between node and PEs and the switch's vhost-user and
// port sockets both carry them. Each caller keeps its own limit on how many.

#include <sys/socket.h>

#include <cstddef>
#include <span>
#include <vector>

#include "vdtu/unique_fd.hpp"

namespace vdtu {

// The most fds any caller attaches to one message.
inline constexpr std::size_t kMaxPassedFds = 8;

enum class SendWait { kNever, kBlock };

// Sends `data` with `fds` attached (at most kMaxPassedFds), retrying on EINTR.
// False (errno set) when the peer is gone, its socket is full (kNever) or it
// failed; SIGPIPE is never raised.
bool send_with_fds(int socket, std::span<const std::byte> data, std::span<const int> fds,
                   SendWait wait = SendWait::kNever);

// Appends every fd a received message carried to `fds`, owned at once so
// none leaks on any later error.
void take_passed_fds(msghdr& received, std::vector<UniqueFd>& fds);

}  // namespace vdtu

#pragma once
// Datagrams with file descriptors attached (SCM_RIGHTS) over a SOCK_SEQPACKET
// Unix socket: the only way a PE ever learns about a channel.

#include <cstddef>
#include <span>
#include <vector>

#include "vdtu/unique_fd.hpp"

namespace vdtu::dtu {

inline constexpr std::size_t kMaxFdsPerMessage = 8;

// Never blocks. Returns false (errno set) if the peer is gone, its socket is
// full, or the socket failed.
bool send_with_fds(int socket, std::span<const std::byte> data, std::span<const int> fds);

// kFdsLost: the message arrived whole, but the fds attached to it did not fit
// the receiver (its open-file limit, or more than kMaxFdsPerMessage).
enum class RecvResult { kMessage, kWouldBlock, kClosed, kMalformed, kFdsLost };

// Receives one datagram into `buffer` (size in `received`) and its fds.
RecvResult recv_with_fds(int socket, std::span<std::byte> buffer, std::size_t& received,
                         std::vector<UniqueFd>& fds, bool blocking);

}  // namespace vdtu::dtu

#pragma once
// Messages with file descriptors (SCM_RIGHTS) on the switch's SOCK_SEQPACKET
// Unix socket. Received fds are owned at once, so none leaks on any error.

#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "vdtu/unique_fd.hpp"

namespace vdtu::net {

inline constexpr std::size_t kMaxFdsPerMessage = 4;

// A listening socket at `path` (an old socket file nobody listens on is
// replaced; a live one is not). Throws std::system_error/std::runtime_error.
UniqueFd listen_unix(const std::string& path, int backlog);
// A connected socket. Throws std::system_error with the path when refused.
UniqueFd connect_unix(const std::string& path);

// Never blocks. False when the peer is gone, its socket is full or it failed.
bool send_message(int socket, std::span<const std::byte> data, std::span<const int> fds = {});

enum class Received { kMessage, kWouldBlock, kClosed, kMalformed };

// One message into `buffer` (its size in `size`) and its fds. Non-blocking,
// or (timeout > 0) waiting up to `timeout` for it. kMalformed: truncated, or
// more fds than kMaxFdsPerMessage.
Received receive_message(int socket, std::span<std::byte> buffer, std::size_t& size,
                         std::vector<UniqueFd>& fds,
                         std::chrono::milliseconds timeout = std::chrono::milliseconds(0));

}  // namespace vdtu::net

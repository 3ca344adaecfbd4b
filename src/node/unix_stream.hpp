#pragma once
// Small pieces for the stats socket, server and client side: Unix stream
// sockets by path, and reads and writes that give up at a deadline.

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <span>
#include <string>

#include "vdtu/unique_fd.hpp"

namespace vdtu::dtu {

using Deadline = std::chrono::steady_clock::time_point;

// Throws std::runtime_error if `path` does not fit a sockaddr_un.
UniqueFd listen_unix(const std::filesystem::path& path);
// Throws std::runtime_error naming the path and the reason.
UniqueFd connect_unix(const std::filesystem::path& path);
// Writes all of `bytes` (false at the deadline or on error).
bool write_all(int fd, std::span<const std::byte> bytes, Deadline deadline);
// Reads one line (without '\n') of at most `max` bytes; false at the deadline,
// on EOF before the newline or on a longer line.
bool read_line(int fd, std::string& line, std::size_t max, Deadline deadline);
// Reads exactly bytes.size() bytes; false at the deadline, on EOF or error.
bool read_exact(int fd, std::span<std::byte> bytes, Deadline deadline);

}  // namespace vdtu::dtu

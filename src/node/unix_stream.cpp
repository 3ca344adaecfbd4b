#include "unix_stream.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace vdtu::dtu {
namespace {

sockaddr_un address_of(const std::filesystem::path& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  const auto& s = path.native();
  if (s.empty() || s.size() >= sizeof(a.sun_path)) {
    throw std::runtime_error("socket path must be 1 to " + std::to_string(sizeof(a.sun_path) - 1) +
                             " bytes: " + s);
  }
  std::memcpy(a.sun_path, s.c_str(), s.size() + 1);
  return a;
}

// Waits for `events` on fd until the deadline; false if it passed.
bool wait_for(int fd, short events, Deadline deadline) {
  for (;;) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

std::string errno_text(int e) { return std::generic_category().message(e); }

}  // namespace

UniqueFd listen_unix(const std::filesystem::path& path) {
  const auto a = address_of(path);
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) throw std::runtime_error(path.string() + " exists and is not a socket");
    // A socket file: replace it only if nobody serves it any more.
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe && ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&a), sizeof(a)) == 0)
      throw std::runtime_error(path.string() + " is served by a running node");
    ::unlink(path.c_str());
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) throw std::system_error(errno, std::generic_category(), "stats socket");
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof(a)) != 0)
    throw std::runtime_error("cannot bind " + path.string() + ": " + errno_text(errno));
  // Until listen() nobody can connect, so the mode is set before anyone could.
  if (::chmod(path.c_str(), 0600) != 0 || ::listen(fd.get(), 4) != 0) {
    const int e = errno;
    ::unlink(path.c_str());
    throw std::runtime_error("cannot serve " + path.string() + ": " + errno_text(e));
  }
  return fd;
}

UniqueFd connect_unix(const std::filesystem::path& path) {
  const auto a = address_of(path);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw std::system_error(errno, std::generic_category(), "socket");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof(a)) != 0)
    throw std::runtime_error("cannot connect to " + path.string() + ": " + errno_text(errno));
  return fd;
}

bool write_all(int fd, std::span<const std::byte> bytes, Deadline deadline) {
  while (!bytes.empty()) {
    const auto n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      bytes = bytes.subspan(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && wait_for(fd, POLLOUT, deadline)) continue;
    return false;
  }
  return true;
}

bool read_exact(int fd, std::span<std::byte> bytes, Deadline deadline) {
  while (!bytes.empty()) {
    const auto n = ::recv(fd, bytes.data(), bytes.size(), MSG_DONTWAIT);
    if (n > 0) {
      bytes = bytes.subspan(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && wait_for(fd, POLLIN, deadline)) continue;
    return false;
  }
  return true;
}

bool read_line(int fd, std::string& line, std::size_t max, Deadline deadline) {
  line.clear();
  for (;;) {
    char c = 0;
    if (!read_exact(fd, std::as_writable_bytes(std::span(&c, 1)), deadline)) return false;
    if (c == '\n') return true;
    if (line.size() == max) return false;
    line += c;
  }
}

}  // namespace vdtu::dtu

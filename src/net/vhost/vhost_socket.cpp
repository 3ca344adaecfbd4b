#include "vhost_socket.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace vdtu::net::vhost {
namespace {

sockaddr_un address_of(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(address.sun_path)) {
    throw std::runtime_error("vhost-user socket path must have 1 to " +
                             std::to_string(sizeof(address.sun_path) - 1) + " characters: '" + path + "'");
  }
  std::memcpy(address.sun_path, path.data(), path.size());
  return address;
}

UniqueFd stream_socket(int flags) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | flags, 0));
  if (!fd) throw std::system_error(errno, std::generic_category(), "socket(AF_UNIX)");
  return fd;
}

}  // namespace

UniqueFd listen_stream(const std::string& path) {
  const auto address = address_of(path);
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && !try_connect_stream(path)) {
    ::unlink(path.c_str());  // left behind by a process that is gone
  }
  auto fd = stream_socket(SOCK_NONBLOCK);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    throw std::system_error(errno, std::generic_category(), "bind " + path);
  }
  if (::listen(fd.get(), 4) != 0) throw std::system_error(errno, std::generic_category(), "listen " + path);
  return fd;
}

UniqueFd try_connect_stream(const std::string& path) {
  const auto address = address_of(path);
  auto fd = stream_socket(0);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) return {};
  return fd;
}

}  // namespace vdtu::net::vhost

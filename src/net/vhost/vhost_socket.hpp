#pragma once
// The Unix stream sockets vhost-user runs on: the switch either listens
// (server mode: QEMU connects, `-chardev socket,path=...`) or connects
// (client mode: QEMU listens, `-chardev socket,path=...,server=on`).

#include <string>

#include "vdtu/unique_fd.hpp"

namespace vdtu::net::vhost {

// Listening, non-blocking. A socket file nobody accepts on is replaced.
// Throws std::system_error / std::runtime_error naming the path.
UniqueFd listen_stream(const std::string& path);
// A connected socket, or an invalid fd when nobody listens (yet).
UniqueFd try_connect_stream(const std::string& path);

}  // namespace vdtu::net::vhost

#include "guest_lan.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "cluster/child_process.hpp"
#include "cluster/scratch_directory.hpp"
#include "vdtu/unique_fd.hpp"

namespace vdtu::vm {
namespace {

constexpr auto kSwitchStartLimit = std::chrono::seconds(20);

// A loopback UDP port free just now (the guests' UDP pair binds it a moment later).
std::uint16_t free_udp_port() {
  const UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (!fd || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0)
    throw std::system_error(errno, std::generic_category(), "cannot find a free UDP port");
  return ntohs(address.sin_port);
}

// A `vdtu switch` with one vhost-user port per guest (it listens; each QEMU
// connects), killed with its group when this goes.
std::unique_ptr<cluster::ChildProcess> start_switch(const cluster::ScratchDirectory& dir, std::size_t nodes) {
  const auto self = std::filesystem::read_symlink("/proc/self/exe").string();
  std::vector<std::string> words{self, "switch", "--socket", (dir / "switch.sock").string()};
  for (std::size_t n = 0; n < nodes; ++n) {
    const auto socket = (dir / fmt::format("guest{}.sock", n)).string();
    words.insert(words.end(), {"--vhost-user", fmt::format("guest{}={}", n, socket)});
  }
  cluster::ChildOptions options;
  options.open(0, "/dev/null", O_RDONLY);
  options.open(1, (dir / "switch.log").string(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  options.dup2(1, 2);
  options.own_process_group = true;
  options.ends_with_parent = true;
  auto sw = std::make_unique<cluster::ChildProcess>(words, options);
  const auto deadline = std::chrono::steady_clock::now() + kSwitchStartLimit;
  for (std::size_t n = 0; n < nodes; ++n) {
    while (!std::filesystem::exists(dir / fmt::format("guest{}.sock", n))) {
      if (sw->try_wait() || std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error("vdtu switch did not open its vhost-user ports; see its log");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  return sw;
}

}  // namespace

std::vector<GuestOutcome> run_guests_on(GuestLink link, std::vector<GuestSpec> guests,
                                        const GuestImage& image, double timeout_seconds) {
  if (link == GuestLink::udp_pair && guests.size() != 2)
    throw std::runtime_error("a UDP pair joins two guests; more need the switch");
  const cluster::ScratchDirectory dir("vdtu-guest-lan");  // 0700: the switch's sockets and log
  std::unique_ptr<cluster::ChildProcess> sw;
  if (link == GuestLink::vhost_user_switch) {
    sw = start_switch(dir, guests.size());
    for (std::size_t n = 0; n < guests.size(); ++n) {
      guests[n].network.kind = GuestNetwork::Kind::vhost_user;
      guests[n].network.vhost_socket = (dir / fmt::format("guest{}.sock", n)).string();
    }
  } else {
    const std::uint16_t ports[2] = {free_udp_port(), free_udp_port()};
    for (std::size_t n = 0; n < 2; ++n) {
      guests[n].network.kind = GuestNetwork::Kind::udp;
      guests[n].network.udp_local = ports[n];
      guests[n].network.udp_remote = ports[1 - n];
    }
  }
  return run_guests(guests, image, timeout_seconds);
}

}  // namespace vdtu::vm

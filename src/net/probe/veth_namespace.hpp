#pragma once
// A network namespace with one end of a veth pair inside (`eth0`, with an
// address) and the other end left in this namespace, up and without an
// address, for a switch uplink. Names carry this process's id and a counter,
// so parallel test runs never collide; everything is removed in the
// destructor. Needs root. Header-only, for the tests and the demo.

#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spawn.h>
#include <atomic>
#include <cerrno>

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/wait.h>

namespace vdtu::net::probe {

inline bool running_as_root() { return ::geteuid() == 0; }

class VethNamespace {
 public:
  // `address` like "10.199.0.1/24".
  explicit VethNamespace(const std::string& address) {
    static std::atomic<int> counter{0};
    const auto tag = std::to_string(::getpid() % 100000) + "x" + std::to_string(counter++);
    name_ = "vdtu-t" + tag;
    outside_ = "vt" + tag + "o";
    const std::string inside = "vt" + tag + "i";
    try {
      run({"ip", "netns", "add", name_});
      run({"ip", "link", "add", outside_, "type", "veth", "peer", "name", inside});
      run({"ip", "link", "set", inside, "netns", name_});
      run({"ip", "-n", name_, "link", "set", inside, "name", "eth0"});
      run({"ip", "-n", name_, "addr", "add", address, "dev", "eth0"});
      run({"ip", "-n", name_, "link", "set", "eth0", "up"});
      run({"ip", "-n", name_, "link", "set", "lo", "up"});
      run({"ip", "link", "set", outside_, "up"});
      // Segmentation offload would hand the switch frames larger than a ring
      // frame (see the uplink's documentation); checksum offload stays on.
      if (!in_child([&] { return turn_off_segmentation("eth0"); })) {
        throw std::runtime_error("cannot turn off TSO/GSO in " + name_);
      }
    } catch (...) {
      tear_down();
      throw;
    }
  }
  VethNamespace(const VethNamespace&) = delete;
  VethNamespace& operator=(const VethNamespace&) = delete;
  ~VethNamespace() { tear_down(); }

  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] const std::string& outside() const { return outside_; }

  // Runs `body` in a forked child inside the namespace; true if it returned true.
  template <class Body>
  [[nodiscard]] bool in_child(Body body) const {
    const pid_t pid = ::fork();
    if (pid < 0) return false;
    if (pid == 0) {
      bool ok = false;
      try {
        enter();
        ok = body();
      } catch (...) {
      }
      ::_exit(ok ? 0 : 1);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }

  // Moves the calling thread into the namespace (for a forked child).
  void enter() const {
    const int fd = ::open(("/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) throw std::runtime_error("cannot enter " + name_);
    ::close(fd);
  }

 private:
  // Runs a command (words[0] searched in PATH) quietly; its exit code.
  static int exit_code(std::vector<std::string> words) noexcept {
    std::vector<char*> argv;
    argv.reserve(words.size() + 1);
    for (auto& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t quiet;
    posix_spawn_file_actions_init(&quiet);
    posix_spawn_file_actions_addopen(&quiet, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&quiet, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid = -1;
    const int rc = ::posix_spawnp(&pid, argv[0], &quiet, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&quiet);
    if (rc != 0) return 127;
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  }

  static void run(const std::vector<std::string>& words) {
    if (exit_code(words) != 0) {
      std::string command;
      for (const auto& w : words) command += (command.empty() ? "" : " ") + w;
      throw std::runtime_error("`" + command + "` failed");
    }
  }

  static bool turn_off_segmentation(const char* interface) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    bool ok = true;
    for (const std::uint32_t command : {std::uint32_t{ETHTOOL_STSO}, std::uint32_t{ETHTOOL_SGSO}}) {
      ethtool_value value{command, 0};
      ifreq request{};
      std::strncpy(request.ifr_name, interface, IFNAMSIZ - 1);
      request.ifr_data = reinterpret_cast<char*>(&value);
      ok = ok && ::ioctl(fd, SIOCETHTOOL, &request) == 0;
    }
    ::close(fd);
    return ok;
  }

  void tear_down() noexcept {
    if (name_.empty()) return;
    // Our end first: the pair goes at once, even if something (a socket
    // still closing) keeps the namespace itself alive a while longer.
    exit_code({"ip", "link", "del", outside_});
    exit_code({"ip", "netns", "del", name_});
    name_.clear();
  }

  std::string name_;
  std::string outside_;
};

}  // namespace vdtu::net::probe

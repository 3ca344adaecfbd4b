#pragma once
// One QEMU guest (TCG) that runs one command: the cached image plus a small
// archive of this run (/vdtu/run and the run's files), memory shared through
// a memfd (what a vhost-user backend maps), its NIC on a vhost-user socket
// (a `vdtu switch` port) or on a UDP socket pair (no switch), its serial
// console captured. The guest reports the command's exit status on the
// console after a nonce only this run knows; then it powers off.
//
// QEMU never outlives its Guest: the destructor kills and reaps it, and it
// gets SIGTERM if the thread that started it ends (even by SIGKILL).

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cluster/child_process.hpp"
#include "cluster/scratch_directory.hpp"
#include "guest_image.hpp"
#include "vdtu/unique_fd.hpp"

namespace vdtu::vm {

struct GuestNetwork {
  enum class Kind { none, vhost_user, udp };
  Kind kind = Kind::none;
  std::string vhost_socket;     // vhost_user: QEMU connects (and reconnects) to this socket
  std::uint16_t udp_local = 0;  // udp: frames to 127.0.0.1:udp_remote, from udp_local
  std::uint16_t udp_remote = 0;
};

struct GuestSpec {
  std::string name = "guest";
  GuestNetwork network;
  std::string mac = "52:54:00:00:00:01";
  std::string address;  // "10.0.0.1/24" for eth0; empty: eth0 stays down
  std::string command;  // shell text, run by busybox sh as /vdtu/run
  // Extra files for this run: guest path (absolute) and contents.
  std::vector<std::pair<std::string, std::string>> files;
  unsigned memory_mib = 256;
  bool echo_console = false;           // copy the console to our stdout, line by line as it comes
  std::string echo_prefix;             // ... each line after "[prefix] " (several guests at once)
  std::filesystem::path console_file;  // also write it here, if set
};

// Throws std::invalid_argument naming what is wrong with `spec` (a MAC
// address, the guest address, memory, the socket path, file paths).
void check_guest_spec(const GuestSpec& spec);

class Guest {
 public:
  // Starts QEMU. Throws std::runtime_error / std::system_error if it cannot.
  Guest(const GuestSpec& spec, const GuestImage& image);
  Guest(const Guest&) = delete;
  Guest& operator=(const Guest&) = delete;
  ~Guest() = default;  // the ChildProcess kills and reaps QEMU

  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] pid_t qemu_pid() const { return qemu_->pid(); }
  // Readable when the console has output or has closed.
  [[nodiscard]] int console_fd() const { return console_.get(); }
  [[nodiscard]] int pidfd() const { return qemu_->pidfd(); }
  // Reads what the console has; false once it is closed (QEMU ended).
  bool read_console();
  // QEMU reaped (after the console closed, or by kill()).
  [[nodiscard]] bool ended();
  void kill();
  // The command's exit status, once the guest reported it.
  [[nodiscard]] std::optional<int> exit_status() const { return exit_status_; }
  [[nodiscard]] const std::string& console() const { return console_text_; }
  // "exit 0", or why there is no exit status (QEMU's end, its last words).
  [[nodiscard]] std::string describe();

 private:
  void take_lines();

  std::string name_;
  std::string nonce_;
  bool echo_;
  std::string echo_prefix_;
  cluster::ScratchDirectory scratch_{"vdtu-guest"};  // this run's initrd
  UniqueFd console_;
  UniqueFd console_copy_;
  std::optional<cluster::ChildProcess> qemu_;  // set once its files are ready
  std::string console_text_;
  std::size_t scanned_ = 0;
  std::optional<int> exit_status_;
};

}  // namespace vdtu::vm

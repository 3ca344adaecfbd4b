#pragma once
// `vdtu vm`: boot a QEMU guest (TCG) from the cached image, on a vhost-user
// switch port or a UDP socket pair, run one command in it and return its
// exit status.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vdtu::cli {

struct VmOptions {
  std::string vhost_user;  // a switch's vhost-user socket (QEMU connects)
  std::string udp;         // LOCAL:REMOTE loopback UDP ports, instead of a switch
  std::string mac = "52:54:00:00:00:01";
  std::string ip;  // ADDR/LEN for eth0
  unsigned memory_mib = 256;
  double timeout_seconds = 120;
  std::string console_path;
  bool quiet = false;
  bool image_only = false;
  std::vector<std::string> programs;  // host programs copied in (with their libraries)
  std::vector<std::string> files;     // GUEST_PATH=HOST_FILE
  std::vector<std::string> command;
};

// Exit status of the guest's command; 124 when the timeout came (the guest
// was killed), 125 when the guest ended without reporting one.
int run_vm(const VmOptions& options);

}  // namespace vdtu::cli

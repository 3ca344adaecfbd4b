#pragma once
// The runtime directory DPDK's EAL makes for a --file-prefix (config,
// fbarray_*, mp_socket, telemetry sockets). The EAL never removes it, not even
// when testpmd exits cleanly, so whoever picks the prefix owns the directory:
// this object, which removes it when it goes. Declare it before the DPDK
// process it names, so that the process has ended (and written its last file
// there) by the time the directory is removed.

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

namespace vdtu::bench {

class DpdkRuntimeDirectory {
 public:
  explicit DpdkRuntimeDirectory(std::string prefix)
      : prefix_(std::move(prefix)), path_(runtime_base() + "/dpdk/" + prefix_) {}
  DpdkRuntimeDirectory(const DpdkRuntimeDirectory&) = delete;
  DpdkRuntimeDirectory& operator=(const DpdkRuntimeDirectory&) = delete;
  ~DpdkRuntimeDirectory() {
    std::error_code ignored;  // nothing to remove if the process never got that far
    std::filesystem::remove_all(path_, ignored);
  }

  [[nodiscard]] const std::string& prefix() const { return prefix_; }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  // Where the EAL puts its runtime directories (eal_create_runtime_dir, DPDK
  // 20.11 and later): systemd's $RUNTIME_DIRECTORY, else /var/run for uid 0,
  // else $XDG_RUNTIME_DIR, else /tmp. The DPDK process inherits our
  // environment and uid, so it makes the same choice.
  static std::string runtime_base() {
    // NOLINTBEGIN(concurrency-mt-unsafe): nothing here sets these variables
    if (const char* systemd = std::getenv("RUNTIME_DIRECTORY"); systemd != nullptr) return systemd;
    if (::getuid() == 0) return "/var/run";
    if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg != nullptr) return xdg;
    // NOLINTEND(concurrency-mt-unsafe)
    return "/tmp";
  }

  std::string prefix_;
  std::filesystem::path path_;
};

}  // namespace vdtu::bench

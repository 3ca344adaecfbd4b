#pragma once
// Starting a PE program as a process. The node's logic asks through this
// interface, so tests and fuzzers can drive it without starting programs.

#include <sys/types.h>

#include "node_config.hpp"
#include "vdtu/unique_fd.hpp"

namespace vdtu::dtu {

struct LaunchedProcess {
  pid_t pid = -1;
  UniqueFd pidfd;
};

class PeLauncher {
 public:
  virtual ~PeLauncher() = default;
  // Starts `program` with `control_socket` as its fd 3 (VDTU_CONTROL_FD).
  // Throws std::runtime_error (with the reason) when it cannot.
  virtual LaunchedProcess launch(const PeProgram& program, int control_socket, std::uint32_t pe_index) = 0;
};

// Launches each PE confined by the node's sandbox (src/sandbox): a PE
// reaches only the fds it was handed. The node's event-loop thread must be
// the one that launches (a PE dies when that thread ends).
class SandboxLauncher final : public PeLauncher {
 public:
  // Throws what sandbox::Sandbox throws for a mode this host cannot give.
  explicit SandboxLauncher(const sandbox::SandboxConfig& config);
  LaunchedProcess launch(const PeProgram& program, int control_socket, std::uint32_t pe_index) override;
  [[nodiscard]] std::string describe() const { return sandbox_.describe(); }

 private:
  sandbox::Sandbox sandbox_;
};

// Refuses every launch (for logic driven without processes).
class NoLauncher final : public PeLauncher {
 public:
  LaunchedProcess launch(const PeProgram& program, int control_socket, std::uint32_t pe_index) override;
};

}  // namespace vdtu::dtu

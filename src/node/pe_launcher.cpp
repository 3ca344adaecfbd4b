#include "pe_launcher.hpp"

#include <unistd.h>

#include <array>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "vdtu/dtu.hpp"

namespace vdtu::dtu {
namespace {

constexpr int kChildControlFd = 3;

// What a PE learns of the node's environment: what programs and sanitizers
// need, never the rest (an ssh-agent's socket, credentials, ...).
bool passed_on(std::string_view variable) {
  constexpr std::array<std::string_view, 7> kNames{
      "PATH=", "HOME=", "LANG=", "LC_ALL=", "TERM=", "TZ=", "VDTU_LOG_LEVEL="};
  constexpr std::array<std::string_view, 5> kSanitizers{
      "ASAN_OPTIONS=", "UBSAN_OPTIONS=", "TSAN_OPTIONS=", "LSAN_OPTIONS=", "MSAN_OPTIONS="};
  for (auto n : kNames) {
    if (variable.starts_with(n)) return true;
  }
  for (auto n : kSanitizers) {
    if (variable.starts_with(n)) return true;
  }
  return false;
}

std::vector<std::string> pe_environment() {
  std::vector<std::string> env{std::string(Dtu::kControlFdVariable) + "=" + std::to_string(kChildControlFd),
                               std::string(Dtu::kNodePidVariable) + "=" + std::to_string(::getpid())};
  for (char** e = environ; *e != nullptr; ++e) {
    if (passed_on(*e)) env.emplace_back(*e);
  }
  return env;
}

}  // namespace

SandboxLauncher::SandboxLauncher(const sandbox::SandboxConfig& config) : sandbox_(config) {}

LaunchedProcess SandboxLauncher::launch(const PeProgram& program, int control_socket,
                                        std::uint32_t pe_index) {
  sandbox::SpawnRequest request;
  request.program = program.path;
  request.args = program.args;
  request.environment = pe_environment();
  request.fds = {
      {control_socket, kChildControlFd}, {STDOUT_FILENO, STDOUT_FILENO}, {STDERR_FILENO, STDERR_FILENO}};
  request.slot = pe_index;
  auto child = sandbox_.spawn(request);
  return {child.pid, std::move(child.pidfd)};
}

LaunchedProcess NoLauncher::launch(const PeProgram& program, int /*control_socket*/,
                                   std::uint32_t /*pe_index*/) {
  throw std::runtime_error("cannot start " + program.path + ": this node starts no programs");
}

}  // namespace vdtu::dtu

#include "pe_launcher.hpp"

#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "vdtu/dtu.hpp"

namespace vdtu::dtu {
namespace {

constexpr int kChildControlFd = 3;

// The node's environment, minus what it sets for the PE itself.
std::vector<std::string> pe_environment() {
  std::vector<std::string> env{std::string(Dtu::kControlFdVariable) + "=" + std::to_string(kChildControlFd),
                               std::string(Dtu::kNodePidVariable) + "=" + std::to_string(::getpid())};
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "VDTU_CONTROL_FD=", 16) != 0 && std::strncmp(*e, "VDTU_NODE_PID=", 14) != 0)
      env.emplace_back(*e);
  }
  return env;
}

std::vector<char*> pointers(std::vector<std::string>& words) {
  std::vector<char*> out;
  out.reserve(words.size() + 1);
  for (auto& w : words) out.push_back(w.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

LaunchedProcess ProcessLauncher::launch(const PeProgram& program, int control_socket,
                                        std::uint32_t /*pe_index*/) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, control_socket, kChildControlFd);  // dup2 clears CLOEXEC
  auto env = pe_environment();
  auto envp = pointers(env);
  std::vector<std::string> args{program.path};
  args.insert(args.end(), program.args.begin(), program.args.end());
  auto argv = pointers(args);
  // The node may block signals to read them from a signalfd (`vdtu node`);
  // a PE starts with none blocked and the usual default actions.
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none;
  sigset_t defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  LaunchedProcess out;
  const int rc = ::posix_spawn(&out.pid, program.path.c_str(), &actions, &attributes, argv.data(), envp.data());
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::system_error(rc, std::generic_category(), "cannot start " + program.path);
  out.pidfd = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, out.pid, 0)));
  if (!out.pidfd) {
    const int error = errno;
    ::kill(out.pid, SIGKILL);
    ::waitpid(out.pid, nullptr, 0);
    throw std::system_error(error, std::generic_category(), "pidfd_open");
  }
  return out;
}

LaunchedProcess NoLauncher::launch(const PeProgram& program, int /*control_socket*/,
                                   std::uint32_t /*pe_index*/) {
  throw std::runtime_error("cannot start " + program.path + ": this node starts no programs");
}

}  // namespace vdtu::dtu

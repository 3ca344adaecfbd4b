#pragma once
// Creating a PE's process and its half of starting the program. The node is
// multithreaded, so between clone and exec the child may only make
// async-signal-safe calls: no allocation, no locks, no libseccomp, no stdio.
// Everything it needs is prepared by the parent in a ChildPlan; the child
// makes raw system calls and reports a failure as a ChildFailure on a pipe
// that exec closes.
//
// The child comes from clone3, not fork(): clone3 creates the namespaces
// with the process (a multithreaded process cannot unshare into a new user
// namespace, and sanitizer runtimes start a thread in a fork()ed child) and
// returns the pidfd with the pid, so no window exists in which the pid could
// name another process. This file is compiled without sanitizer
// instrumentation, and the child calls nothing a sanitizer intercepts, as
// the runtime's locks may be held by threads the child does not have.
//
// Order in the child, and why:
//  1. signal handlers back to default (the parent blocked every signal
//     around clone, so none of the node's handlers runs in the child);
//  2. setsid: own session and process group, no controlling terminal (so no
//     TIOCSTI into the node's shell, no signals from its terminal), and one
//     group id naming everything the PE will start;
//  3. fds: the passed ones moved to their numbers, all others closed
//     (close_range), before anything else can go wrong while holding them;
//  4. user-namespace mode (the namespaces themselves came with clone3):
//     setgroups "deny", then the uid and gid maps (one line each: the node's
//     ids map to themselves), dumpable just for these writes (see
//     write_id_maps);
//  5. uid mode: supplementary groups dropped, then gid, then uid (the order
//     that still has the privilege for each);
//  6. PR_SET_PDEATHSIG(SIGKILL), after the credential change that would
//     clear it, then a check that the parent is still the node (it may have
//     died before the signal was armed);
//  7. chdir, as the PE's own uid, so its permissions decide;
//  8. no_new_privs, which Landlock and unprivileged seccomp require and which
//     keeps setuid and file-capability programs from giving privilege back;
//  9. Landlock: a new domain of its own;
// 10. seccomp, last before exec, so that none of the steps above has to be
//     allowed by it; the pid placeholder patched with the child's pid first;
// 11. signal mask emptied, execveat(program fd, "", AT_EMPTY_PATH).

#include <linux/filter.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>

#include "sandbox/pe_sandbox.hpp"

namespace vdtu::sandbox {

enum class ChildStep : std::int32_t {
  kSession,
  kFds,
  kIdMaps,
  kCredentials,
  kParentDeath,
  kWorkingDirectory,
  kNoNewPrivs,
  kLandlock,
  kSeccomp,
  kExec,
};

const char* step_name(ChildStep step);

struct ChildFailure {
  ChildStep step;
  std::int32_t error;  // errno
};

struct ChildPlan {
  const char* const* argv = nullptr;
  const char* const* envp = nullptr;
  // The parent's fd numbers; ruleset_fd may be -1.
  int program_fd = -1;
  int report_fd = -1;
  int ruleset_fd = -1;
  // Sorted by target, targets distinct and below first_free_fd.
  const FdMapping* fds = nullptr;
  std::size_t fd_count = 0;
  int* scratch = nullptr;  // fd_count ints for the child's own use
  int first_free_fd = 0;

  std::uint64_t namespaces = 0;   // CLONE_NEW* flags for clone3
  const char* uid_map = nullptr;  // user-namespace mode: "<uid> <uid> 1\n"
  std::size_t uid_map_length = 0;
  const char* gid_map = nullptr;
  std::size_t gid_map_length = 0;
  bool change_ids = false;  // uid mode
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t node_pid = 0;
  const char* working_directory = nullptr;
  bool no_new_privs = false;
  sock_filter* filter = nullptr;  // the child's copy; nullptr: no seccomp
  std::uint16_t filter_length = 0;
  const std::uint32_t* self_sites = nullptr;
  std::size_t self_site_count = 0;
};

// Creates the child and returns its pid, with its pidfd in *pidfd, or
// -errno. The child execs the program or exits with 127 after reporting on
// plan.report_fd. Call with every signal blocked.
long start_child(const ChildPlan& plan, int* pidfd) noexcept;

// Whether this process may create a user namespace: 0 or the errno of trying.
int try_user_namespace() noexcept;

}  // namespace vdtu::sandbox

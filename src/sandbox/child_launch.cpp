#include "sandbox/child_launch.hpp"

#include <fcntl.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

#include "sandbox/seccomp_policy.hpp"

namespace vdtu::sandbox {
namespace {

// Where the child keeps the fds it needs until exec, right above the
// highest passed fd: program, report pipe, Landlock ruleset.
constexpr int kProgramSlot = 0;
constexpr int kReportSlot = 1;
constexpr int kRulesetSlot = 2;
constexpr int kInternalFds = 3;

constexpr std::size_t kKernelSigsetBytes = 8;  // the kernel's sigset_t on 64-bit Linux

// The kernel's struct sigaction with SIG_DFL, no flags and an empty mask is
// all zeros, whatever the architecture's field order.
struct KernelSigaction {
  unsigned long words[4];
};

[[noreturn]] void fail(int report_fd, ChildStep step, int error) noexcept {
  const ChildFailure failure{step, error};
  // 8 bytes into a pipe: written whole or not at all.
  [[maybe_unused]] const long n = ::syscall(SYS_write, report_fd, &failure, sizeof(failure));
  ::syscall(SYS_exit_group, 127);
  __builtin_unreachable();
}

void reset_signal_handlers() noexcept {
  const KernelSigaction default_action{};
  for (int sig = 1; sig < NSIG; ++sig) {
    // SIGKILL and SIGSTOP refuse (EINVAL), harmlessly.
    ::syscall(SYS_rt_sigaction, sig, &default_action, nullptr, kKernelSigsetBytes);
  }
}

constexpr unsigned kLastFd = ~0U;

int close_fds(int first, unsigned last) noexcept {
  if (first < 0 || static_cast<unsigned>(first) > last) return 0;
  return ::syscall(SYS_close_range, static_cast<unsigned>(first), last, 0U) == 0 ? 0 : -errno;
}

// Moves the passed fds to their numbers and the child's own to fixed numbers
// above them; closes everything else. Returns 0 or -errno; *report follows
// the report pipe as it moves, for reporting a failure on the way.
int arrange_fds(const ChildPlan& plan, int* report) noexcept {
  const int parked_from = plan.first_free_fd + kInternalFds;
  // Park a CLOEXEC copy of everything above the final numbers first, so no
  // move below overwrites a source still needed.
  for (std::size_t i = 0; i < plan.fd_count; ++i) {
    const long fd = ::syscall(SYS_fcntl, plan.fds[i].source, F_DUPFD_CLOEXEC, parked_from);
    if (fd < 0) return -errno;
    plan.scratch[i] = static_cast<int>(fd);
  }
  const int internal[kInternalFds] = {plan.program_fd, plan.report_fd, plan.ruleset_fd};
  int parked_internal[kInternalFds] = {-1, -1, -1};
  for (int k = 0; k < kInternalFds; ++k) {
    if (internal[k] < 0) continue;
    const long fd = ::syscall(SYS_fcntl, internal[k], F_DUPFD_CLOEXEC, parked_from);
    if (fd < 0) return -errno;
    parked_internal[k] = static_cast<int>(fd);
  }
  *report = parked_internal[kReportSlot];
  for (std::size_t i = 0; i < plan.fd_count; ++i) {
    // dup3 without O_CLOEXEC: these are the fds the program inherits.
    if (::syscall(SYS_dup3, plan.scratch[i], plan.fds[i].target, 0) < 0) return -errno;
  }
  for (int k = 0; k < kInternalFds; ++k) {
    const int slot = plan.first_free_fd + k;
    if (parked_internal[k] < 0) {
      ::syscall(SYS_close, slot);  // whatever the node had there
    } else if (::syscall(SYS_dup3, parked_internal[k], slot, O_CLOEXEC) < 0) {
      return -errno;
    }
  }
  int next = 0;
  for (std::size_t i = 0; i < plan.fd_count; ++i) {
    const int target = plan.fds[i].target;
    if (target > next) {
      if (const int rc = close_fds(next, static_cast<unsigned>(target - 1)); rc != 0) return rc;
    }
    next = target + 1;
  }
  if (plan.first_free_fd > next) {
    if (const int rc = close_fds(next, static_cast<unsigned>(plan.first_free_fd - 1)); rc != 0) return rc;
  }
  return close_fds(parked_from, kLastFd);
}

int write_file(const char* path, const char* text, std::size_t length) noexcept {
  const long fd = ::syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  const long written = ::syscall(SYS_write, fd, text, length);
  const int error = written < 0 ? errno : 0;
  ::syscall(SYS_close, fd);
  if (written < 0) return -error;
  return static_cast<std::size_t>(written) == length ? 0 : -EIO;
}

int write_id_maps(const ChildPlan& plan) noexcept {
  // The child of a non-dumpable node is non-dumpable, and the /proc files of
  // such a process belong to root, so not even the process itself may open
  // its maps. Dumpable just for these writes: its fds are already down to the
  // PE's own, other PEs cannot reach a process outside their Landlock domain,
  // and what remains is processes of the node's own user outside any sandbox.
  if (::syscall(SYS_prctl, PR_SET_DUMPABLE, 1, 0, 0, 0) != 0) return -errno;
  // Without CAP_SETGID in the parent namespace a gid map is accepted only
  // after setgroups is disabled for the namespace.
  constexpr char kDeny[] = "deny";
  int rc = write_file("/proc/self/setgroups", kDeny, sizeof(kDeny) - 1);
  if (rc == 0) rc = write_file("/proc/self/uid_map", plan.uid_map, plan.uid_map_length);
  if (rc == 0) rc = write_file("/proc/self/gid_map", plan.gid_map, plan.gid_map_length);
  if (::syscall(SYS_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 && rc == 0) rc = -errno;
  return rc;
}

int change_ids(const ChildPlan& plan) noexcept {
  if (::syscall(SYS_setgroups, 0, nullptr) != 0) return -errno;
  if (::syscall(SYS_setresgid, plan.gid, plan.gid, plan.gid) != 0) return -errno;
  if (::syscall(SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0) return -errno;
  return 0;
}

int load_seccomp(const ChildPlan& plan) noexcept {
  const auto self = static_cast<std::uint32_t>(::syscall(SYS_getpid));
  patch_self_pid(plan.filter, plan.self_sites, plan.self_site_count, self);
  const sock_fprog program{plan.filter_length, plan.filter};
  return ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) == 0 ? 0 : -errno;
}

}  // namespace

const char* step_name(ChildStep step) {
  switch (step) {
    case ChildStep::kSession: return "setsid";
    case ChildStep::kFds: return "arranging fds";
    case ChildStep::kIdMaps: return "writing the user namespace's uid/gid maps";
    case ChildStep::kCredentials: return "setgroups/setresgid/setresuid";
    case ChildStep::kParentDeath: return "PR_SET_PDEATHSIG (or the node is gone)";
    case ChildStep::kWorkingDirectory: return "chdir";
    case ChildStep::kNoNewPrivs: return "PR_SET_NO_NEW_PRIVS";
    case ChildStep::kLandlock: return "landlock_restrict_self";
    case ChildStep::kSeccomp: return "loading the seccomp filter";
    case ChildStep::kExec: return "execveat";
  }
  return "unknown step";
}

namespace {

[[noreturn]] void run_child(const ChildPlan& plan) noexcept {
  int report = plan.report_fd;
  reset_signal_handlers();
  if (::syscall(SYS_setsid) < 0) fail(report, ChildStep::kSession, errno);

  if (const int rc = arrange_fds(plan, &report); rc != 0) fail(report, ChildStep::kFds, -rc);
  report = plan.first_free_fd + kReportSlot;
  const int program = plan.first_free_fd + kProgramSlot;
  const int ruleset = plan.ruleset_fd >= 0 ? plan.first_free_fd + kRulesetSlot : -1;

  if (plan.uid_map != nullptr) {
    if (const int rc = write_id_maps(plan); rc != 0) fail(report, ChildStep::kIdMaps, -rc);
  }
  if (plan.change_ids) {
    if (const int rc = change_ids(plan); rc != 0) fail(report, ChildStep::kCredentials, -rc);
  }

  if (::syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
    fail(report, ChildStep::kParentDeath, errno);
  if (::syscall(SYS_getppid) != plan.node_pid) fail(report, ChildStep::kParentDeath, ESRCH);

  if (::syscall(SYS_chdir, plan.working_directory) != 0) fail(report, ChildStep::kWorkingDirectory, errno);

  if (plan.no_new_privs && ::syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    fail(report, ChildStep::kNoNewPrivs, errno);
  if (ruleset >= 0) {
    // A new domain per call, even from the same ruleset: PEs are siblings.
    if (::syscall(SYS_landlock_restrict_self, ruleset, 0) != 0) fail(report, ChildStep::kLandlock, errno);
    ::syscall(SYS_close, ruleset);
  }
  if (plan.filter != nullptr) {
    if (const int rc = load_seccomp(plan); rc != 0) fail(report, ChildStep::kSeccomp, -rc);
  }

  const std::uint64_t empty_mask = 0;
  ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &empty_mask, nullptr, kKernelSigsetBytes);
  ::syscall(SYS_execveat, program, "", plan.argv, plan.envp, AT_EMPTY_PATH);
  fail(report, ChildStep::kExec, errno);
}

}  // namespace

long start_child(const ChildPlan& plan, int* pidfd) noexcept {
  clone_args args{};
  args.flags = CLONE_PIDFD | plan.namespaces;
  args.pidfd = reinterpret_cast<std::uintptr_t>(pidfd);
  args.exit_signal = SIGCHLD;
  const long pid = ::syscall(SYS_clone3, &args, sizeof(args));
  if (pid == 0) run_child(plan);
  return pid < 0 ? -errno : pid;
}

int try_user_namespace() noexcept {
  const long pid = ::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, nullptr, nullptr, nullptr, 0);
  if (pid == 0) ::syscall(SYS_exit_group, 0);
  if (pid < 0) return errno;
  int status = 0;
  while (::syscall(SYS_wait4, pid, &status, 0, nullptr) < 0 && errno == EINTR) {
  }
  return 0;
}

}  // namespace vdtu::sandbox

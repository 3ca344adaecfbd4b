#include "sandbox/seccomp_policy.hpp"

#include <fcntl.h>
#include <linux/ioprio.h>
#include <linux/sockios.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <system_error>

#include "vdtu/unique_fd.hpp"

namespace vdtu::sandbox {
namespace {

// Answered with EPERM whatever the arguments.
constexpr std::array kDeniedCalls = {
    // Reaching into another process: its memory, its fds, its signals.
    "process_vm_readv", "process_vm_writev", "process_madvise", "process_mrelease", "kcmp", "pidfd_open",
    "pidfd_getfd", "pidfd_send_signal", "tkill", "get_robust_list", "migrate_pages",
    // Leaving the PE's session and process group: the node ends a PE and
    // everything it started by signalling that group.
    "setsid", "setpgid",
    // New namespaces and mounts: ways around every other rule.
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
    "fsconfig", "fsmount", "fspick", "mount_setattr", "open_by_handle_at",
    // Kernel interfaces a PE has no use for, each a known way to attack the
    // kernel or to act outside seccomp's view (io_uring runs operations
    // without passing through this filter); keyrings are shared per uid.
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key", "fanotify_init",
    // Host administration: refused by the kernel already (the PE has no
    // capability in the initial namespace); denied here too in case one leaks.
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
    "swapoff", "acct", "quotactl", "quotactl_fd", "syslog", "iopl", "ioperm", "uselib", "vhangup",
    "lookup_dcookie"};

// Signals go only to the PE itself: first argument (pid or tgid) == own pid.
constexpr std::array kSelfSignalCalls = {"kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo"};

// Act only on the calling process when the first argument is 0 (glibc's
// getrlimit/setrlimit pass 0); any other pid is refused.
constexpr std::array kCallerOnlyCalls = {"prlimit64", "move_pages"};

constexpr std::array kSchedulingCalls = {"sched_setaffinity", "sched_setscheduler", "sched_setparam",
                                         "sched_setattr"};

// clone flags that create namespaces, or (CLONE_PARENT) make the new process
// a child of the node, which would then reap and account for it.
constexpr std::array<std::uint64_t, 8> kDeniedCloneFlags = {CLONE_NEWNS,  CLONE_NEWCGROUP, CLONE_NEWUTS,
                                                            CLONE_NEWIPC, CLONE_NEWUSER,   CLONE_NEWPID,
                                                            CLONE_NEWNET, CLONE_PARENT};

// Terminal input injection: with a terminal as stdin a PE could type into
// the shell that started the node. The kernel compares only the low 32 bits
// of an ioctl request, so the filter does too.
constexpr std::array<std::uint64_t, 2> kDeniedIoctls = {TIOCSTI, TIOCLINUX};

constexpr std::uint64_t kLow32 = 0xffffffffULL;

// An fd's owner receives SIGIO (or any signal F_SETSIG names, SIGKILL
// included) when I/O is possible on it, with the permission check of the
// fd's owner credentials, not kill()'s filter: in user-namespace mode a PE
// has the node's uid outside, so a pipe owned by the node's pid was a way to
// kill the node. Owners other than the PE itself are refused; the
// struct-based and ioctl forms, which the filter cannot inspect, entirely.
constexpr std::array<std::uint64_t, 2> kOwnerIoctls = {FIOSETOWN, SIOCSPGRP};

// libseccomp's SCMP_A0() and friends are C compound literals.
scmp_arg_cmp arg(unsigned index, scmp_compare op, std::uint64_t value) { return {index, op, value, 0}; }
scmp_arg_cmp masked(unsigned index, std::uint64_t mask, std::uint64_t value) {
  return {index, SCMP_CMP_MASKED_EQ, mask, value};
}

struct ContextDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};
using Context = std::unique_ptr<void, ContextDeleter>;

class Builder {
 public:
  Builder() : ctx_(seccomp_init(SCMP_ACT_ALLOW)) {
    if (!ctx_) throw std::runtime_error("seccomp_init failed");
    // Syscalls of another ABI (int 0x80, x32) would pass under other numbers:
    // refuse them all.
    check(seccomp_attr_set(ctx_.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(ENOSYS)), "badarch");
  }

  // Adds `action` for `name` when all `conditions` hold; a name this
  // libseccomp does not know on this architecture is recorded, not fatal.
  void rule(const char* name, std::uint32_t action, std::initializer_list<scmp_arg_cmp> conditions = {}) {
    const int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) {
      unknown_.emplace_back(name);
      return;
    }
    check(seccomp_rule_add_array(ctx_.get(), action, nr, static_cast<unsigned>(conditions.size()),
                                 conditions.begin()),
          name);
  }

  [[nodiscard]] std::vector<sock_filter> export_bpf() const {
    // libseccomp 2.5 exports only to an fd; 2.6's in-memory export is not in
    // Debian 12.
    UniqueFd fd(::memfd_create("vdtu-seccomp", MFD_CLOEXEC));
    if (!fd) throw std::system_error(errno, std::generic_category(), "memfd_create");
    check(seccomp_export_bpf(ctx_.get(), fd.get()), "export");
    const off_t bytes = ::lseek(fd.get(), 0, SEEK_END);
    if (bytes <= 0 || bytes % static_cast<off_t>(sizeof(sock_filter)) != 0)
      throw std::runtime_error("seccomp export produced no program");
    std::vector<sock_filter> code(static_cast<std::size_t>(bytes) / sizeof(sock_filter));
    if (::pread(fd.get(), code.data(), static_cast<std::size_t>(bytes), 0) != bytes)
      throw std::system_error(errno, std::generic_category(), "reading the seccomp program");
    return code;
  }

  std::vector<std::string> take_unknown() { return std::move(unknown_); }

 private:
  static void check(int rc, const char* what) {
    if (rc < 0) throw std::system_error(-rc, std::generic_category(), std::string("seccomp rule ") + what);
  }

  Context ctx_;
  std::vector<std::string> unknown_;
};

// Where the placeholder is compared with. libseccomp shares identical
// argument checks between calls, so there may be fewer sites than rules;
// the placeholder anywhere else would mean a layout this code does not know.
std::vector<std::uint32_t> find_self_sites(const std::vector<sock_filter>& code) {
  std::vector<std::uint32_t> sites;
  for (std::uint32_t i = 0; i < code.size(); ++i) {
    const auto& insn = code[i];
    if (insn.k != SeccompProgram::kSelfPlaceholder) continue;
    const bool constant_jump =
        BPF_CLASS(insn.code) == BPF_JMP && BPF_SRC(insn.code) == BPF_K && BPF_OP(insn.code) != BPF_JA;
    if (!constant_jump) throw std::logic_error("seccomp program: the pid placeholder outside a comparison");
    sites.push_back(i);
  }
  return sites;
}

}  // namespace

SeccompProgram SeccompProgram::build(const SeccompOptions& options) {
  const auto eperm = SCMP_ACT_ERRNO(EPERM);
  Builder b;
  for (const char* name : kDeniedCalls) b.rule(name, eperm);
  if (!options.allow_ptrace) b.rule("ptrace", eperm);
  for (const char* name : kSelfSignalCalls) b.rule(name, eperm, {arg(0, SCMP_CMP_NE, kSelfPlaceholder)});
  for (const char* name : kCallerOnlyCalls) b.rule(name, eperm, {arg(0, SCMP_CMP_NE, 0)});
  // PRIO_USER and IOPRIO_WHO_USER reach every process of the uid, which in
  // user-namespace mode includes the node.
  b.rule("setpriority", eperm, {arg(0, SCMP_CMP_EQ, PRIO_USER)});
  b.rule("ioprio_set", eperm, {arg(0, SCMP_CMP_EQ, IOPRIO_WHO_USER)});
  if (options.scheduling_of_calling_thread_only) {
    for (const char* name : kSchedulingCalls) b.rule(name, eperm, {arg(0, SCMP_CMP_NE, 0)});
    b.rule("setpriority", eperm, {arg(1, SCMP_CMP_NE, 0)});
    b.rule("ioprio_set", eperm, {arg(1, SCMP_CMP_NE, 0)});
  }
  for (const auto flag : kDeniedCloneFlags) b.rule("clone", eperm, {masked(0, flag, flag)});
  b.rule("clone3", SCMP_ACT_ERRNO(ENOSYS));
  for (const auto request : kDeniedIoctls) {
    b.rule("ioctl", eperm, {masked(1, kLow32, request)});
  }
  b.rule("fcntl", eperm, {arg(1, SCMP_CMP_EQ, F_SETOWN), arg(2, SCMP_CMP_NE, kSelfPlaceholder)});
  b.rule("fcntl", eperm, {arg(1, SCMP_CMP_EQ, F_SETOWN_EX)});
  for (const auto request : kOwnerIoctls) b.rule("ioctl", eperm, {masked(1, kLow32, request)});

  SeccompProgram program;
  program.code_ = b.export_bpf();
  program.self_sites_ = find_self_sites(program.code_);
  program.unknown_ = b.take_unknown();
  // Unpatched, the filter would refuse the PE its own signals.
  if (program.self_sites_.empty()) throw std::logic_error("seccomp program: no pid comparison found");
  if (program.code_.size() > BPF_MAXINSNS) throw std::logic_error("seccomp program too long");
  return program;
}

}  // namespace vdtu::sandbox

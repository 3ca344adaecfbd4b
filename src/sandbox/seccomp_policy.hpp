#pragma once
// The PE's seccomp filter, built once in the node with libseccomp and loaded
// by each PE between fork and exec.

#include <linux/filter.h>

#include <cstdint>
#include <string>
#include <vector>

namespace vdtu::sandbox {

struct SeccompOptions {
  // LeakSanitizer stops the world with ptrace from a helper task of the same
  // process; PE programs built with it need this. The kernel's own checks
  // (another uid or a non-dumpable target, and Landlock's domain scoping)
  // still keep ptrace inside the PE.
  bool allow_ptrace = false;
  // Same-uid PEs (user-namespace mode) could renice or re-pin each other and
  // the node: scheduling calls then act only on the calling thread (pid 0).
  bool scheduling_of_calling_thread_only = false;
};

// A classic-BPF program: default allow, the calls that let a process reach
// another process or leave the sandbox answered with EPERM (clone3 with
// ENOSYS: its flags live in memory the filter cannot read, and glibc then
// falls back to clone, whose flags it can). Foreign ABIs (i386, x32) get
// ENOSYS.
//
// "Signal only yourself" needs the PE's pid, which exists only after fork,
// and a forked child of the multithreaded node must not call libseccomp (it
// allocates). So those rules compare with kSelfPlaceholder, and the program
// records where that constant sits; the child overwrites those spots in its
// own copy with getpid() before loading it (patch_self_pid). The placeholder
// lies above the largest pid Linux hands out (2^22), so an unpatched program
// would deny rather than allow.
class SeccompProgram {
 public:
  static constexpr std::uint32_t kSelfPlaceholder = 0x7e5e1f00U;

  static SeccompProgram build(const SeccompOptions& options);

  [[nodiscard]] const std::vector<sock_filter>& instructions() const { return code_; }
  [[nodiscard]] const std::vector<std::uint32_t>& self_pid_sites() const { return self_sites_; }
  // The calls this libseccomp could not name on this architecture, so the
  // filter does not mention them (reported, never silently dropped).
  [[nodiscard]] const std::vector<std::string>& unknown_calls() const { return unknown_; }

 private:
  std::vector<sock_filter> code_;
  std::vector<std::uint32_t> self_sites_;
  std::vector<std::string> unknown_;
};

// Async-signal-safe: writes `pid` into every recorded site of `code`.
inline void patch_self_pid(sock_filter* code, const std::uint32_t* sites, std::size_t site_count,
                           std::uint32_t pid) noexcept {
  for (std::size_t i = 0; i < site_count; ++i) code[sites[i]].k = pid;
}

}  // namespace vdtu::sandbox

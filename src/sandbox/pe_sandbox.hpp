#pragma once
// Starting PE programs so that a PE reaches only the fds it was handed.
//
// A node makes one Sandbox at start and calls spawn() for every PE. In the
// child, between fork and exec (see child_launch.hpp for the order and why):
// own session and process group; every fd other than the passed ones closed;
// own network and IPC namespaces; its own uid and gid (uid mode) or a user
// namespace (userns mode); death with the node; no_new_privs; a Landlock
// domain of its own; the seccomp filter of seccomp_policy.hpp; then the
// program, executed from an fd the node opened. docs/SECURITY.md says what
// each part guarantees and what it does not.

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sandbox/uid_range.hpp"
#include "vdtu/unique_fd.hpp"

namespace vdtu::sandbox {

enum class SandboxMode {
  kUid,            // node is root: each PE slot has its own uid and gid
  kUserNamespace,  // node is not root: each PE in a user namespace of its own
  kNone,           // INSECURE: PEs keep the node's uid and can reach its memory
};

// "uid", "userns", "none"; nullopt for anything else.
std::optional<SandboxMode> parse_sandbox_mode(std::string_view text);
std::string_view to_string(SandboxMode mode);
// kUid for root, kUserNamespace otherwise.
SandboxMode default_sandbox_mode();
// Those of /tmp, /var/tmp and /dev that exist.
std::vector<std::string> default_writable_paths();

// Whether this program is built with AddressSanitizer, whose LeakSanitizer
// stops the program's threads with ptrace at exit. PE programs come from the
// same build as the node, so this is the default of allow_ptrace_within_pe.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kBuiltWithLeakSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kBuiltWithLeakSanitizer = true;
#else
inline constexpr bool kBuiltWithLeakSanitizer = false;
#endif
#else
inline constexpr bool kBuiltWithLeakSanitizer = false;
#endif

struct SandboxConfig {
  SandboxMode mode = default_sandbox_mode();
  // Uid mode only; default UidRange::for_node_pid(getpid()).
  std::optional<UidRange> uids;
  std::string working_directory = "/";
  // Beneath these a PE may create, write, remove and rename files (Landlock);
  // elsewhere only what it was handed as fds. Each must exist.
  std::vector<std::string> writable_paths = default_writable_paths();
  // A network namespace per PE: only a loopback interface, down. A PE then
  // cannot send to the node's bridge port, to other PEs or to the outside, nor
  // reach abstract unix sockets.
  bool isolate_network = true;
  // For PE programs built with LeakSanitizer (which ptraces its own threads;
  // without ptrace it fails every program at exit): seccomp then lets ptrace
  // through, and the kernel's uid and dumpable checks and Landlock's domains
  // alone confine it to the PE. On in AddressSanitizer builds, off otherwise.
  bool allow_ptrace_within_pe = kBuiltWithLeakSanitizer;
};

struct FdMapping {
  int source = -1;  // an fd of the node (borrowed; left open)
  int target = -1;  // its number in the PE
};

struct SpawnRequest {
  // Opened by the node, executed from that fd: the PE's uid needs execute
  // permission on the file, not search permission on its directories. ELF
  // programs only (a #! script would need its path).
  std::string program;
  std::vector<std::string> args;         // argv[1...]; argv[0] is `program`
  std::vector<std::string> environment;  // "NAME=value": exactly what the PE gets
  // Targets distinct, 0 to 1023. Of fds 0-2, those not named here are
  // /dev/null in the PE.
  std::vector<FdMapping> fds;
  std::uint32_t slot = 0;  // the PE slot: selects the uid in uid mode
};

struct SpawnedProcess {
  pid_t pid = -1;
  UniqueFd pidfd;
};

class Sandbox {
 public:
  // Checks privileges and kernel support for the mode, builds the seccomp
  // program and the Landlock ruleset. Throws std::invalid_argument for a bad
  // configuration and std::runtime_error/std::system_error when the host
  // cannot provide the mode, each naming the reason.
  explicit Sandbox(SandboxConfig config);
  ~Sandbox();
  Sandbox(Sandbox&&) noexcept;
  Sandbox& operator=(Sandbox&&) noexcept;
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  // Starts one PE and returns once it runs the program, or throws
  // std::system_error naming the step that failed (the child is reaped).
  // Thread-safe. The PE gets SIGKILL when the node thread that called spawn
  // exits (PR_SET_PDEATHSIG follows the thread), so call it from a thread
  // that lives as long as the node.
  [[nodiscard]] SpawnedProcess spawn(const SpawnRequest& request) const;

  // Ends a PE and whatever it started: they cannot leave its process group.
  // Call once its pidfd reports the exit and before reaping it, while its pid
  // (the group's id) cannot yet be reused by an unrelated process.
  static void kill_process_group(pid_t pe) noexcept;

  [[nodiscard]] const SandboxConfig& config() const;
  // The uid a PE in `slot` runs under (in user-namespace and none mode, the
  // node's); throws std::out_of_range for a slot outside the uid range.
  [[nodiscard]] uid_t uid_of_slot(std::uint32_t slot) const;
  [[nodiscard]] int landlock_abi() const;
  // One line on what the PEs get, for the node's start-up report.
  [[nodiscard]] std::string describe() const;

 private:
  struct Prepared;
  std::unique_ptr<Prepared> prepared_;
};

}  // namespace vdtu::sandbox

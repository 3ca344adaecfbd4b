#include "sandbox/pe_sandbox.hpp"

#include <fcntl.h>
#include <linux/sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "sandbox/child_launch.hpp"
#include "sandbox/landlock_ruleset.hpp"
#include "sandbox/seccomp_policy.hpp"

namespace vdtu::sandbox {
namespace {

constexpr int kMaxTargetFd = 1024;
constexpr int kStdioFds = 3;

[[noreturn]] void throw_errno(int error, const std::string& what) {
  throw std::system_error(error, std::generic_category(), what);
}

void reap(pid_t pid) {
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

// No handler of the node may run in a child before it resets them all.
class AllSignalsBlocked {
 public:
  AllSignalsBlocked() {
    sigset_t all{};
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &previous_);
  }
  AllSignalsBlocked(const AllSignalsBlocked&) = delete;
  AllSignalsBlocked& operator=(const AllSignalsBlocked&) = delete;
  ~AllSignalsBlocked() { ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }

 private:
  sigset_t previous_{};
};

// Unprivileged user namespaces can be switched off (user.max_user_namespaces,
// Debian's kernel.unprivileged_userns_clone, AppArmor): find out at node
// start, not at the first PE.
void require_user_namespaces() {
  int error = 0;
  {
    const AllSignalsBlocked blocked;
    error = try_user_namespace();
  }
  if (error != 0) {
    throw std::runtime_error(R"(sandbox "userns": this user cannot create user namespaces ()" +
                             std::generic_category().message(error) +
                             "); check user.max_user_namespaces, kernel.unprivileged_userns_clone "
                             R"(or AppArmor's userns restriction, or run the node as root (sandbox "uid"))");
  }
}

void require_directory(const std::string& path, const char* what) {
  struct stat st {};
  if (path.empty() || path.front() != '/')
    throw std::invalid_argument(std::string(what) + " must be absolute: " + path);
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw std::invalid_argument(std::string(what) + " is not a directory: " + path);
}

std::vector<const char*> pointers_to(const std::vector<std::string>& strings) {
  std::vector<const char*> pointers;
  pointers.reserve(strings.size() + 1);
  for (const auto& s : strings) pointers.push_back(s.c_str());
  pointers.push_back(nullptr);
  return pointers;
}

// The request's fds plus /dev/null for unnamed stdio, sorted by target.
std::vector<FdMapping> fd_plan(const std::vector<FdMapping>& requested, int dev_null) {
  std::vector<FdMapping> fds = requested;
  for (const auto& m : fds) {
    if (m.target < 0 || m.target >= kMaxTargetFd)
      throw std::invalid_argument("PE fd number " + std::to_string(m.target) + " is outside 0-1023");
    if (m.source < 0 || ::fcntl(m.source, F_GETFD) < 0)
      throw std::invalid_argument("fd " + std::to_string(m.source) + " to pass is not open");
  }
  std::sort(fds.begin(), fds.end(),
            [](const FdMapping& a, const FdMapping& b) { return a.target < b.target; });
  if (std::adjacent_find(fds.begin(), fds.end(), [](const FdMapping& a, const FdMapping& b) {
        return a.target == b.target;
      }) != fds.end()) {
    throw std::invalid_argument("two fds passed as the same PE fd number");
  }
  for (int stdio = 0; stdio < kStdioFds; ++stdio) {
    const bool named =
        std::any_of(fds.begin(), fds.end(), [&](const FdMapping& m) { return m.target == stdio; });
    if (!named) fds.push_back({dev_null, stdio});
  }
  std::sort(fds.begin(), fds.end(),
            [](const FdMapping& a, const FdMapping& b) { return a.target < b.target; });
  return fds;
}

}  // namespace

std::optional<SandboxMode> parse_sandbox_mode(std::string_view text) {
  if (text == "uid") return SandboxMode::kUid;
  if (text == "userns") return SandboxMode::kUserNamespace;
  if (text == "none") return SandboxMode::kNone;
  return std::nullopt;
}

std::string_view to_string(SandboxMode mode) {
  switch (mode) {
    case SandboxMode::kUid: return "uid";
    case SandboxMode::kUserNamespace: return "userns";
    case SandboxMode::kNone: return "none";
  }
  return "?";
}

SandboxMode default_sandbox_mode() {
  return ::geteuid() == 0 ? SandboxMode::kUid : SandboxMode::kUserNamespace;
}

std::vector<std::string> default_writable_paths() {
  std::vector<std::string> paths;
  for (const char* path : {"/tmp", "/var/tmp", "/dev"}) {
    struct stat st {};
    if (::stat(path, &st) == 0 && S_ISDIR(st.st_mode)) paths.emplace_back(path);
  }
  return paths;
}

struct Sandbox::Prepared {
  SandboxConfig config;
  UidRange uids;
  uid_t node_uid = 0;
  gid_t node_gid = 0;
  int landlock_abi = 0;
  UniqueFd ruleset;
  UniqueFd dev_null;
  std::optional<SeccompProgram> seccomp;
  std::string uid_map;
  std::string gid_map;
};

Sandbox::Sandbox(SandboxConfig config) : prepared_(std::make_unique<Prepared>()) {
  auto& p = *prepared_;
  p.node_uid = ::geteuid();
  p.node_gid = ::getegid();
  require_directory(config.working_directory, "PE working directory");
  p.dev_null = UniqueFd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!p.dev_null) throw_errno(errno, "/dev/null");
  if (config.mode == SandboxMode::kNone) {
    p.config = std::move(config);
    return;
  }
  if (config.mode == SandboxMode::kUid) {
    if (p.node_uid != 0) {
      throw std::runtime_error(
          R"(sandbox "uid" gives each PE its own uid and needs a root node; run as root or use "userns")");
    }
    p.uids = config.uids.value_or(UidRange::for_node_pid(::getpid()));
    p.uids.validate(p.node_uid);
  } else {
    if (p.node_uid == 0) {
      throw std::invalid_argument(
          "sandbox \"userns\" is for nodes that are not root (its PEs would be root outside their "
          "namespace); "
          "use \"uid\"");
    }
    require_user_namespaces();
    p.uid_map = std::to_string(p.node_uid) + " " + std::to_string(p.node_uid) + " 1\n";
    p.gid_map = std::to_string(p.node_gid) + " " + std::to_string(p.node_gid) + " 1\n";
  }
  p.landlock_abi = vdtu::sandbox::landlock_abi();
  if (p.landlock_abi == 0 && config.mode == SandboxMode::kUserNamespace) {
    throw std::runtime_error(
        "sandbox \"userns\" needs Landlock (Linux 5.13+, enabled with lsm=) to keep PEs of one uid apart; "
        "run the node as root (sandbox \"uid\")");
  }
  if (p.landlock_abi > 0) p.ruleset = make_pe_ruleset(p.landlock_abi, config.writable_paths);
  p.seccomp = SeccompProgram::build(
      {config.allow_ptrace_within_pe,
       /*scheduling_of_calling_thread_only=*/config.mode == SandboxMode::kUserNamespace});
  p.config = std::move(config);
}

Sandbox::~Sandbox() = default;
Sandbox::Sandbox(Sandbox&&) noexcept = default;
Sandbox& Sandbox::operator=(Sandbox&&) noexcept = default;

const SandboxConfig& Sandbox::config() const { return prepared_->config; }
int Sandbox::landlock_abi() const { return prepared_->landlock_abi; }

uid_t Sandbox::uid_of_slot(std::uint32_t slot) const {
  const auto& p = *prepared_;
  if (p.config.mode != SandboxMode::kUid) return p.node_uid;
  if (slot >= p.uids.count) {
    throw std::out_of_range("PE slot " + std::to_string(slot) + " has no uid (the range holds " +
                            std::to_string(p.uids.count) + ")");
  }
  return p.uids.uid_of_slot(slot);
}

SpawnedProcess Sandbox::spawn(const SpawnRequest& request) const {
  const auto& p = *prepared_;
  const auto mode = p.config.mode;
  const uid_t uid = uid_of_slot(request.slot);
  const auto fds = fd_plan(request.fds, p.dev_null.get());
  std::vector<int> scratch(fds.size());

  UniqueFd program(::open(request.program.c_str(), O_PATH | O_CLOEXEC));
  struct stat st {};
  if (!program || ::fstat(program.get(), &st) != 0) throw_errno(errno, "cannot start " + request.program);
  if (!S_ISREG(st.st_mode)) throw std::invalid_argument("cannot start " + request.program + ": not a file");

  std::vector<std::string> arg_strings{request.program};
  arg_strings.insert(arg_strings.end(), request.args.begin(), request.args.end());
  const auto argv = pointers_to(arg_strings);
  const auto envp = pointers_to(request.environment);

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw_errno(errno, "pipe2");
  UniqueFd report_read(pipe_fds[0]);
  UniqueFd report_write(pipe_fds[1]);

  std::vector<sock_filter> filter;
  if (p.seccomp) filter = p.seccomp->instructions();

  ChildPlan plan;
  plan.argv = argv.data();
  plan.envp = envp.data();
  plan.program_fd = program.get();
  plan.report_fd = report_write.get();
  plan.ruleset_fd = p.ruleset.get();
  plan.fds = fds.data();
  plan.fd_count = fds.size();
  plan.scratch = scratch.data();
  plan.first_free_fd = fds.back().target + 1;
  plan.node_pid = ::getpid();
  plan.working_directory = p.config.working_directory.c_str();
  if (mode != SandboxMode::kNone) {
    plan.namespaces = CLONE_NEWIPC | (p.config.isolate_network ? CLONE_NEWNET : 0);
    plan.no_new_privs = true;
    plan.filter = filter.data();
    plan.filter_length = static_cast<std::uint16_t>(filter.size());
    plan.self_sites = p.seccomp->self_pid_sites().data();
    plan.self_site_count = p.seccomp->self_pid_sites().size();
  }
  if (mode == SandboxMode::kUid) {
    plan.change_ids = true;
    plan.uid = uid;
    plan.gid = static_cast<gid_t>(uid);
  } else if (mode == SandboxMode::kUserNamespace) {
    plan.namespaces |= CLONE_NEWUSER;
    plan.uid_map = p.uid_map.c_str();
    plan.uid_map_length = p.uid_map.size();
    plan.gid_map = p.gid_map.c_str();
    plan.gid_map_length = p.gid_map.size();
  }

  int pidfd_number = -1;
  long started = 0;
  {
    const AllSignalsBlocked blocked;
    started = start_child(plan, &pidfd_number);
  }
  report_write.reset();
  if (started < 0) {
    throw_errno(static_cast<int>(-started),
                "cannot start " + request.program + ": clone3 (process and namespaces)");
  }
  const auto pid = static_cast<pid_t>(started);
  UniqueFd pidfd(pidfd_number);

  ChildFailure failure{};
  ssize_t n = 0;
  do {
    n = ::read(report_read.get(), &failure, sizeof(failure));
  } while (n < 0 && errno == EINTR);
  if (n != 0) {
    reap(pid);
    if (n != static_cast<ssize_t>(sizeof(failure))) throw_errno(EPROTO, "cannot start " + request.program);
    throw_errno(failure.error, "cannot start " + request.program + ": " + step_name(failure.step));
  }
  return {pid, std::move(pidfd)};
}

void Sandbox::kill_process_group(pid_t pe) noexcept {
  if (pe > 0) ::kill(-pe, SIGKILL);
}

std::string Sandbox::describe() const {
  const auto& p = *prepared_;
  std::string text = "sandbox " + std::string(to_string(p.config.mode));
  switch (p.config.mode) {
    case SandboxMode::kNone:
      return text + " (INSECURE): PEs run as uid " + std::to_string(p.node_uid) +
             " and can open every fd and the memory of this node";
    case SandboxMode::kUid:
      text += ": a uid and gid per PE slot (" + std::to_string(p.uids.base) + " to " +
              std::to_string(std::uint64_t{p.uids.base} + p.uids.count - 1) + ")";
      break;
    case SandboxMode::kUserNamespace:
      text += ": a user namespace per PE, all as uid " + std::to_string(p.node_uid);
      break;
  }
  text +=
      p.config.isolate_network ? ", own network and IPC namespaces" : ", own IPC namespace (host network)";
  text += ", no_new_privs";
  if (p.landlock_abi > 0) {
    text += ", Landlock ABI " + std::to_string(p.landlock_abi) + " (a domain per PE";
    if (p.landlock_abi >= 6) text += ", signals and abstract sockets scoped";
    text += "; writes only beneath";
    for (const auto& path : p.config.writable_paths) text += " " + path;
    text += ")";
  } else {
    text += ", no Landlock on this kernel";
  }
  text += ", seccomp (" + std::to_string(p.seccomp->instructions().size()) + " instructions";
  if (p.config.allow_ptrace_within_pe) text += ", ptrace allowed within a PE";
  for (const auto& name : p.seccomp->unknown_calls()) text += ", " + name + " unknown";
  return text + ")";
}

}  // namespace vdtu::sandbox

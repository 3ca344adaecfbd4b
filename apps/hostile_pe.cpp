// A hostile PE: tries every way it knows to reach a process it was not handed
// (the node, other PEs) or to leave its sandbox, and reports each attempt on
// one line:
//
//   attempt=NAME target=LABEL pid=N outcome=denied|failed|succeeded errno=ENAME detail=TEXT
//
// denied: refused for lack of permission (EPERM, EACCES, or an errno the
// attempt names, e.g. ENOSYS for clone3); failed: refused for another
// reason, so the sandbox is not shown to be what stopped it; succeeded: it
// worked. The last line is `summary attempts=N denied=D failed=F
// succeeded=S`. Exit 0 only if nothing succeeded.
//
//   hostile_pe [--node PID] [--victim PID ...] [--udp-port N] [--abstract NAME] [--node-dir DIR]
//
// --node defaults to $VDTU_NODE_PID (set when a node starts this program as a
// PE). Started by a node ($VDTU_CONTROL_FD set), it also abuses what the node
// handed it: it scribbles over its own doorbell and private pages, waits for
// a send endpoint to a victim and scribbles over the victim's doorbell page
// and the channel for --scribble-seconds, tries to resize and reseal them, and
// asks the node for what only a kernel may do. Writes into pages that are
// shared on purpose (hints, its own channel) are reported as
// outcome=contained: they happen, and the test asserts that the victim and
// the node carry on. --report FILE also writes every line to FILE.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/kcmp.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <poll.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "protocol/control_messages.hpp"
#include "protocol/doorbell.hpp"
#include "protocol/fd_socket.hpp"

namespace {

struct Target {
  std::string label;
  pid_t pid;
};

struct Result {
  bool ok = false;
  int error = 0;
  std::string detail;
};

Result from_rc(long rc, std::string detail = {}) { return {rc >= 0, rc >= 0 ? 0 : errno, std::move(detail)}; }

class Report {
 public:
  // `denials`: the errnos that mean "refused for lack of permission".
  void record(const std::string& attempt, const Target& target, const Result& r,
              std::initializer_list<int> denials = {EPERM, EACCES}) {
    const char* outcome = "succeeded";
    if (!r.ok) {
      const bool denied = std::find(denials.begin(), denials.end(), r.error) != denials.end();
      outcome = denied ? "denied" : "failed";
    }
    ++attempts_;
    if (r.ok) ++succeeded_;
    if (!r.ok && std::strcmp(outcome, "denied") == 0) ++denied_;
    const char* name = r.error == 0 ? "0" : ::strerrorname_np(r.error);
    line(fmt::format("attempt={} target={} pid={} outcome={} errno={} detail={}\n", attempt, target.label,
                     target.pid, outcome, name != nullptr ? name : "?", r.detail.empty() ? "-" : r.detail));
  }
  // An operation that works by design on memory shared on purpose (hints,
  // its own channel): what counts is that nobody else is hurt by it.
  void contained(const std::string& attempt, const Target& target, const std::string& detail) {
    line(fmt::format("attempt={} target={} pid={} outcome=contained errno=0 detail={}\n", attempt,
                     target.label, target.pid, detail));
  }
  void write_to(const std::string& path) {
    if (!path.empty()) file_ = std::fopen(path.c_str(), "we");  // NOLINT(cppcoreguidelines-owning-memory)
  }

  [[nodiscard]] int finish() {
    line(fmt::format("summary attempts={} denied={} failed={} succeeded={}\n", attempts_, denied_,
                     attempts_ - denied_ - succeeded_, succeeded_));
    if (file_ != nullptr) (void)std::fclose(file_);
    file_ = nullptr;
    return succeeded_ == 0 ? 0 : 1;
  }

 private:
  void line(const std::string& text) {
    fmt::print("{}", text);
    (void)std::fflush(stdout);
    if (file_ != nullptr) {
      fmt::print(file_, "{}", text);
      (void)std::fflush(file_);
    }
  }
  std::FILE* file_ = nullptr;
  int attempts_ = 0;
  int denied_ = 0;
  int succeeded_ = 0;
};

bool is_permission(int error) { return error == EACCES || error == EPERM; }

std::string proc(pid_t pid, const std::string& rest) { return fmt::format("/proc/{}/{}", pid, rest); }

// Opens `path` read-write, else read-only; maps what it opened.
Result open_and_map(const std::string& path, int extra_flags = 0) {
  for (const int mode : {O_RDWR, O_RDONLY}) {
    const int fd = ::open(path.c_str(), mode | O_CLOEXEC | extra_flags);
    if (fd < 0) {
      if (mode == O_RDONLY) return from_rc(-1);
      continue;
    }
    const int prot = mode == O_RDWR ? PROT_READ | PROT_WRITE : PROT_READ;
    void* map = ::mmap(nullptr, 4096, prot, MAP_SHARED, fd, 0);
    std::string detail = mode == O_RDWR ? "opened-rw" : "opened-ro";
    if (map != MAP_FAILED) {
      detail += "+mapped";
      ::munmap(map, 4096);
    }
    ::close(fd);
    return {true, 0, detail};
  }
  return from_rc(-1);
}

// Lists a /proc directory. Some open and then refuse the listing itself.
Result list_dir(const std::string& path, std::vector<std::string>& names) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return from_rc(-1);
  int error = 0;
  for (;;) {
    errno = 0;
    const dirent* e = ::readdir(dir);  // NOLINT(concurrency-mt-unsafe): one thread
    if (e == nullptr) {
      error = errno;
      break;
    }
    if (e->d_name[0] != '.') names.emplace_back(e->d_name);
  }
  ::closedir(dir);
  if (error != 0) return {false, error, "opened, listing refused"};
  return {true, 0, fmt::format("entries={}", names.size())};
}

// Every fd of the target: the listed ones if its fd directory is readable,
// else 0-1023 blind. Succeeds if any opens. Otherwise a permission errno
// if any try gave one (fds that do not exist give ENOENT where the directory
// is searchable), else the other errno: then the attempt counts as "failed",
// as something other than the sandbox may have stopped it.
Result open_every_fd(const std::string& dir, const std::vector<std::string>& listed) {
  std::vector<std::string> names = listed;
  if (names.empty()) {
    for (int fd = 0; fd < 1024; ++fd) names.push_back(std::to_string(fd));
  }
  int opened = 0;
  int permission_error = 0;
  int other_error = 0;
  std::string detail;
  for (const auto& name : names) {
    const auto r = open_and_map(fmt::format("{}/{}", dir, name));
    if (r.ok) {
      ++opened;
      detail += fmt::format("{}:{},", name, r.detail);
    } else {
      (is_permission(r.error) ? permission_error : other_error) = r.error;
    }
  }
  if (opened > 0) return {true, 0, fmt::format("tried={} opened={} {}", names.size(), opened, detail)};
  return {false, permission_error != 0 ? permission_error : other_error,
          fmt::format("tried={}", names.size())};
}

siginfo_t queued_info() {
  siginfo_t info{};
  info.si_signo = SIGKILL;
  info.si_code = SI_QUEUE;
  info.si_pid = ::getpid();
  info.si_uid = ::getuid();
  return info;
}

// ---- reaching another process -------------------------------------------------

void proc_attempts(Report& report, const Target& t) {
  std::vector<std::string> fds;
  report.record("proc_fd_list", t, list_dir(proc(t.pid, "fd"), fds));
  report.record("proc_fd_open", t, open_every_fd(proc(t.pid, "fd"), fds));
  report.record("proc_fdinfo_open", t, open_every_fd(proc(t.pid, "fdinfo"), fds));
  std::vector<std::string> maps;
  report.record("proc_map_files_list", t, list_dir(proc(t.pid, "map_files"), maps));
  if (!maps.empty()) report.record("proc_map_files_open", t, open_every_fd(proc(t.pid, "map_files"), maps));
  report.record("proc_mem", t, open_and_map(proc(t.pid, "mem")));
  report.record("proc_environ", t, from_rc(::open(proc(t.pid, "environ").c_str(), O_RDONLY | O_CLOEXEC)));
  report.record("proc_maps", t, from_rc(::open(proc(t.pid, "maps").c_str(), O_RDONLY | O_CLOEXEC)));
  report.record("proc_root", t,
                from_rc(::open(proc(t.pid, "root/").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)));
  report.record("proc_cwd", t,
                from_rc(::open(proc(t.pid, "cwd/").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)));
  report.record("proc_exe", t, from_rc(::open(proc(t.pid, "exe").c_str(), O_RDONLY | O_CLOEXEC)));
  const int ns = ::open(proc(t.pid, "ns/net").c_str(), O_RDONLY | O_CLOEXEC);
  Result setns_result = from_rc(ns);
  if (ns >= 0) {
    setns_result = from_rc(::setns(ns, 0), "ns-opened");
    setns_result.ok = true;  // holding another process's namespace is already too much
    ::close(ns);
  }
  report.record("proc_ns_open", t, setns_result);
}

void ptrace_attempts(Report& report, const Target& t) {
  for (const auto& [name, request] :
       {std::pair{"ptrace_attach", PTRACE_ATTACH}, std::pair{"ptrace_seize", PTRACE_SEIZE}}) {
    const long rc = ::ptrace(static_cast<__ptrace_request>(request), t.pid, nullptr, nullptr);
    if (rc == 0) ::ptrace(PTRACE_DETACH, t.pid, nullptr, nullptr);
    report.record(name, t, from_rc(rc));
  }
  // An unmapped address: if permission were granted the call would fail
  // with EFAULT ("failed", not "denied") and touch nothing.
  std::array<char, 8> buffer{};
  iovec local{buffer.data(), buffer.size()};
  void* unmapped = reinterpret_cast<void*>(std::uintptr_t{8});  // NOLINT(performance-no-int-to-ptr)
  iovec remote{unmapped, buffer.size()};
  report.record("process_vm_readv", t, from_rc(::process_vm_readv(t.pid, &local, 1, &remote, 1, 0)));
  report.record("process_vm_writev", t, from_rc(::process_vm_writev(t.pid, &local, 1, &remote, 1, 0)));
  report.record("kcmp", t, from_rc(::syscall(SYS_kcmp, ::getpid(), t.pid, KCMP_FILE, 0, 0)));
  perf_event_attr attr{};
  attr.size = sizeof(attr);
  attr.type = PERF_TYPE_SOFTWARE;
  attr.config = PERF_COUNT_SW_CPU_CLOCK;
  const long perf = ::syscall(SYS_perf_event_open, &attr, t.pid, -1, -1, PERF_FLAG_FD_CLOEXEC);
  if (perf >= 0) ::close(static_cast<int>(perf));
  report.record("perf_event_open", t, from_rc(perf));
}

// An fd whose owner is the target: with O_ASYNC, I/O on it would signal the
// target (any signal, through F_SETSIG) past kill()'s filter. Only the owner
// is set here, never O_ASYNC, so nothing is sent even where it is allowed.
void sigio_attempts(Report& report, const Target& t) {
  int pipe_fds[2] = {-1, -1};
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return;
  report.record("fcntl_setown", t, from_rc(::fcntl(pipe_fds[0], F_SETOWN, t.pid)));
  const f_owner_ex owner{F_OWNER_PID, t.pid};
  report.record("fcntl_setown_ex", t, from_rc(::fcntl(pipe_fds[0], F_SETOWN_EX, &owner)));
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
  const int socket = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);  // sockets take the ioctl form
  const int pid = t.pid;
  report.record("ioctl_fiosetown", t, from_rc(socket < 0 ? -1 : ::ioctl(socket, FIOSETOWN, &pid)));
  if (socket >= 0) ::close(socket);
}

void signal_attempts(Report& report, const Target& t) {
  report.record("kill", t, from_rc(::kill(t.pid, SIGKILL)));
  const pid_t group = ::getpgid(t.pid);
  report.record("kill_group", t,
                from_rc(group > 1 ? ::kill(-group, SIGKILL) : -1, fmt::format("pgid={}", group)));
  report.record("tgkill", t, from_rc(::syscall(SYS_tgkill, t.pid, t.pid, SIGKILL)));
  report.record("tkill", t, from_rc(::syscall(SYS_tkill, t.pid, SIGKILL)));
  auto info = queued_info();
  report.record("rt_sigqueueinfo", t, from_rc(::syscall(SYS_rt_sigqueueinfo, t.pid, SIGKILL, &info)));
  info = queued_info();
  report.record("rt_tgsigqueueinfo", t,
                from_rc(::syscall(SYS_rt_tgsigqueueinfo, t.pid, t.pid, SIGKILL, &info)));
  const long pidfd = ::syscall(SYS_pidfd_open, t.pid, 0);
  report.record("pidfd_open", t, from_rc(pidfd));
  // A /proc/<pid> directory fd works as a pidfd for pidfd_send_signal.
  const int dirfd = ::open(proc(t.pid, "").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  report.record("pidfd_send_signal", t,
                from_rc(::syscall(SYS_pidfd_send_signal, dirfd, SIGKILL, nullptr, 0)));
  const long handle = pidfd >= 0 ? pidfd : dirfd;
  report.record("pidfd_getfd", t, from_rc(::syscall(SYS_pidfd_getfd, handle, 3, 0)));
  if (dirfd >= 0) ::close(dirfd);
  if (pidfd >= 0) ::close(static_cast<int>(pidfd));
  sigio_attempts(report, t);
}

// Each would be harmless if it worked (it sets what is already set), but
// permission to do it is permission to starve or cripple the target.
void scheduling_attempts(Report& report, const Target& t) {
  rlimit limit{};
  report.record("prlimit", t, from_rc(::prlimit(t.pid, RLIMIT_NOFILE, nullptr, &limit)));
  errno = 0;
  const int nice = ::getpriority(PRIO_PROCESS, static_cast<id_t>(t.pid));
  report.record("setpriority", t,
                from_rc(errno != 0 ? -1 : ::setpriority(PRIO_PROCESS, static_cast<id_t>(t.pid), nice)));
  cpu_set_t set;
  CPU_ZERO(&set);
  const bool known = ::sched_getaffinity(t.pid, sizeof(set), &set) == 0;
  report.record("sched_setaffinity", t, from_rc(known ? ::sched_setaffinity(t.pid, sizeof(set), &set) : -1));
}

// ---- leaving the sandbox --------------------------------------------------------

long clone_with(unsigned long flags) {
  const long pid = ::syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, 0);
  if (pid == 0) ::_exit(0);
  if (pid > 0) ::waitpid(static_cast<pid_t>(pid), nullptr, 0);
  return pid;
}

long clone3_with(std::uint64_t flags) {
  clone_args args{};
  args.flags = flags;
  args.exit_signal = SIGCHLD;
  const long pid = ::syscall(SYS_clone3, &args, sizeof(args));
  if (pid == 0) ::_exit(0);
  if (pid > 0) ::waitpid(static_cast<pid_t>(pid), nullptr, 0);
  return pid;
}

void escape_attempts(Report& report) {
  const Target self{"kernel", ::getpid()};
  // EINVAL: in a user namespace of its own, uid 0 does not exist for the PE.
  report.record("setresuid_root", self, from_rc(::setresuid(0, 0, 0)), {EPERM, EACCES, EINVAL});
  report.record("unshare_user", self, from_rc(::unshare(CLONE_NEWUSER)));
  report.record("unshare_mount", self, from_rc(::unshare(CLONE_NEWNS)));
  report.record("clone_newuser", self, from_rc(clone_with(CLONE_NEWUSER)));
  report.record("clone_parent", self, from_rc(clone_with(CLONE_PARENT)));
  report.record("clone3_newuser", self, from_rc(clone3_with(CLONE_NEWUSER)), {EPERM, EACCES, ENOSYS});
  report.record("mount_tmpfs", self, from_rc(::mount("none", "/tmp", "tmpfs", 0, nullptr)));
  report.record("chroot", self, from_rc(::chroot("/tmp")));
  bpf_attr map{};
  map.map_type = BPF_MAP_TYPE_ARRAY;
  map.key_size = 4;
  map.value_size = 4;
  map.max_entries = 1;
  const long bpf = ::syscall(SYS_bpf, BPF_MAP_CREATE, &map, sizeof(map));
  if (bpf >= 0) ::close(static_cast<int>(bpf));
  report.record("bpf", self, from_rc(bpf));
  const long uffd = ::syscall(SYS_userfaultfd, O_CLOEXEC);
  if (uffd >= 0) ::close(static_cast<int>(uffd));
  report.record("userfaultfd", self, from_rc(uffd));
  io_uring_params params{};
  const long ring = ::syscall(SYS_io_uring_setup, 1, &params);
  if (ring >= 0) ::close(static_cast<int>(ring));
  report.record("io_uring_setup", self, from_rc(ring));
  report.record("keyctl_user_keyring", self,
                from_rc(::syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0)));
  // Typing into the node's terminal: needs it as controlling terminal (the
  // sandbox's setsid took that away) and TIOCSTI (denied).
  int tty = -1;
  for (int fd = 0; fd < 3 && tty < 0; ++fd) tty = ::isatty(fd) != 0 ? fd : -1;
  const int opened_tty = tty < 0 ? ::open("/dev/tty", O_RDWR | O_CLOEXEC) : -1;
  if (tty < 0) tty = opened_tty;
  const char key = '\n';
  report.record("tiocsti", self, tty < 0 ? from_rc(-1) : from_rc(::ioctl(tty, TIOCSTI, &key)),
                {EPERM, EACCES, ENXIO});
  if (opened_tty >= 0) ::close(opened_tty);
}

// ---- what the node offers besides its process -----------------------------------

void node_surface_attempts(Report& report, const Target& node, int udp_port, const std::string& abstract,
                           const std::string& node_dir) {
  if (udp_port > 0) {
    const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(udp_port));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const char datagram[] = "hostile";
    report.record("udp_to_node", node,
                  from_rc(s < 0 ? -1
                                : ::sendto(s, datagram, sizeof(datagram), 0, reinterpret_cast<sockaddr*>(&to),
                                           sizeof(to))),
                  {EPERM, EACCES, ENETUNREACH});
    if (s >= 0) ::close(s);
  }
  if (!abstract.empty()) {
    const int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un to{};
    to.sun_family = AF_UNIX;
    std::memcpy(to.sun_path + 1, abstract.data(), std::min(abstract.size(), sizeof(to.sun_path) - 2));
    const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + abstract.size());
    report.record("abstract_socket", node,
                  from_rc(s < 0 ? -1 : ::connect(s, reinterpret_cast<sockaddr*>(&to), length)),
                  {EPERM, EACCES, ECONNREFUSED});
    if (s >= 0) ::close(s);
  }
  if (!node_dir.empty()) {
    const auto path = node_dir + "/hostile-was-here";
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      ::close(fd);
      ::unlink(path.c_str());
    }
    report.record("write_node_dir", node, from_rc(fd));
  }
}

// ---- what the node handed this PE -------------------------------------------

namespace wire = vdtu::dtu;

// The next message on the control socket with its fds (waits up to 10 s).
bool next_update(int control, wire::NodeMessage& m, std::vector<vdtu::UniqueFd>& fds) {
  std::array<std::byte, sizeof(wire::NodeMessage) + 64> buffer{};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{control, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    std::size_t n = 0;
    if (wire::recv_with_fds(control, buffer, n, fds, false) != wire::RecvResult::kMessage) continue;
    if (n != sizeof(m)) continue;
    std::memcpy(&m, buffer.data(), sizeof(m));
    return true;
  }
  return false;
}

// Maps `bytes` of `fd` read-write, fills them with `byte` or random bytes.
bool scribble(int fd, std::size_t bytes, std::mt19937& random, int byte = -1) {
  void* map = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) return false;
  auto* p = static_cast<unsigned char*>(map);
  for (std::size_t i = 0; i < bytes; ++i) p[i] = static_cast<unsigned char>(byte >= 0 ? byte : random());
  ::munmap(map, bytes);
  return true;
}

// A shared page must keep its size and seals: the node and the victim map it.
void reshape_attempts(Report& report, const Target& whose, const std::string& what, int fd) {
  report.record("truncate_" + what, whose, from_rc(::ftruncate(fd, 0)));
  report.record("grow_" + what, whose, from_rc(::ftruncate(fd, 1 << 20)));
  report.record("seal_write_" + what, whose, from_rc(::fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE)));
}

void dtu_attempts(Report& report, const Target& node, const std::vector<Target>& victims,
                  double scribble_seconds) {
  const char* control_text =
      std::getenv("VDTU_CONTROL_FD");  // NOLINT(concurrency-mt-unsafe): single-threaded
  if (control_text == nullptr) return;
  const int control = std::atoi(control_text);
  const Target victim = victims.empty() ? Target{"victim", -1} : victims.front();
  std::mt19937 random(1);
  wire::NodeMessage hello{};
  std::vector<vdtu::UniqueFd> fds;
  if (!next_update(control, hello, fds) || hello.kind != wire::NodeMessageKind::kHello || fds.size() != 7) {
    report.record("hello", node, {false, EPROTO, "no hello from the node"});
    return;
  }
  const auto own_doorbell = wire::DoorbellLayout::bytes_for(hello.endpoints);
  report.contained("write_own_doorbell", {"self", ::getpid()},
                   scribble(fds[0].get(), own_doorbell, random) ? "scribbled" : "not-mapped");
  report.contained("write_own_epoch", {"self", ::getpid()},
                   scribble(fds[6].get(), 64, random) ? "scribbled" : "not-mapped");
  reshape_attempts(report, {"self", ::getpid()}, "own_epoch_page", fds[6].get());
  // A kernel gives this PE a send endpoint to the victim: with it come the
  // channel and the victim's doorbell page.
  wire::NodeMessage send{};
  do {
    if (!next_update(control, send, fds)) {
      report.record("send_endpoint", victim, {false, ETIMEDOUT, "no send endpoint to the victim"});
      return;
    }
  } while (send.kind != wire::NodeMessageKind::kSendEndpoint);
  const int channel = fds[0].get();
  const int victim_doorbell = fds[2].get();
  reshape_attempts(report, victim, "victim_doorbell", victim_doorbell);
  reshape_attempts(report, victim, "channel", channel);
  // While the victim takes an honest sender's messages: its doorbell's bits
  // and sleep word, and our own channel's control lines, in every state.
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(scribble_seconds);
  std::uint64_t rounds = 0;
  while (std::chrono::steady_clock::now() < until) {
    const int pattern = rounds % 3 == 0 ? 0 : rounds % 3 == 1 ? 0xff : -1;
    scribble(victim_doorbell, own_doorbell, random, pattern);
    scribble(channel, 4096, random, pattern);
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(fds[1].get(), &one, sizeof(one));
    ++rounds;
    ::usleep(200);
  }
  report.contained("write_victim_doorbell", victim, fmt::format("{}-rounds", rounds));
  report.contained("write_channel", victim, fmt::format("{}-rounds", rounds));
  // What only a kernel may ask for: configure the victim's endpoints.
  wire::ControlRequest r{};
  r.op = wire::ControlOp::kConfigMemory;
  r.pe = static_cast<vdtu::PeId>(hello.pe);
  r.memory = {vdtu::kGlobalMemoryPe, 0, 4096, vdtu::kMemReadWrite, vdtu::kThisNode};
  r.request_id = 99;
  if (!wire::send_with_fds(control, std::as_bytes(std::span(&r, 1)), {})) {
    report.record("control_request", node, from_rc(-1));
    return;
  }
  wire::NodeMessage reply{};
  while (next_update(control, reply, fds) && reply.kind != wire::NodeMessageKind::kReply) {
  }
  const bool refused =
      reply.kind == wire::NodeMessageKind::kReply && reply.status == vdtu::Status::kPermissionDenied;
  report.record("config_global_memory", node,
                {!refused, refused ? EPERM : EPROTO, std::string(vdtu::to_string(reply.status))});
}

int run(int argc, char** argv) {
  CLI::App app{"A PE that tries to reach the node and other PEs; exits 0 only if every attempt fails"};
  pid_t node_pid = 0;
  std::vector<pid_t> victims;
  int udp_port = 0;
  std::string abstract;
  std::string node_dir;
  std::string report_file;
  double scribble_seconds = 1.0;
  app.add_option("--node", node_pid, "The node's pid (default: $VDTU_NODE_PID)");
  app.add_option("--report", report_file, "Also write the report to this file");
  app.add_option("--scribble-seconds", scribble_seconds, "How long to scribble over the victim's pages");
  app.add_option("--victim", victims, "Pid of another PE (repeatable)");
  app.add_option("--udp-port", udp_port, "A UDP port the node listens on at 127.0.0.1");
  app.add_option("--abstract", abstract, "An abstract unix socket name the node listens on");
  app.add_option("--node-dir", node_dir, "A directory of the node's user, to try to write into");
  CLI11_PARSE(app, argc, argv);
  if (node_pid == 0) {
    const char* env = std::getenv("VDTU_NODE_PID");  // NOLINT(concurrency-mt-unsafe): single-threaded
    if (env != nullptr) node_pid = static_cast<pid_t>(std::atol(env));
  }
  std::vector<Target> targets;
  if (node_pid > 0) targets.push_back({"node", node_pid});
  for (const pid_t v : victims) targets.push_back({"victim", v});
  if (targets.empty()) {
    fmt::print(stderr, "hostile_pe: no target (give --node or --victim, or run under a node)\n");
    return 64;
  }

  Report report;
  report.write_to(report_file);
  for (const auto& t : targets) {
    proc_attempts(report, t);
    ptrace_attempts(report, t);
    signal_attempts(report, t);
    scheduling_attempts(report, t);
  }
  report.record("kill_all", {"all", -1}, from_rc(::kill(-1, SIGKILL)));
  escape_attempts(report);
  node_surface_attempts(report, {"node", node_pid}, udp_port, abstract, node_dir);
  std::vector<Target> victim_targets;
  victim_targets.reserve(victims.size());
  for (const pid_t v : victims) victim_targets.push_back({"victim", v});
  dtu_attempts(report, {"node", node_pid}, victim_targets, scribble_seconds);
  return report.finish();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "hostile_pe: {}\n", e.what());
    return 70;
  }
}

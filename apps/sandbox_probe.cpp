// A PE program that reports what its sandbox lets it do, for the sandbox
// tests. One role per run:
//   victim [--undumpable]  prints "ready pid=N", then waits for EOF on stdin
//   identity               prints key=value lines: ids, groups, no_new_privs,
//                          seccomp, dumpable, cwd, open fds, namespaces, session
//   denied                 calls the filter must answer with an errno (not a
//                          kill); one line each, exit 0 if all answered so
//   allowed --memfd FD [--undumpable]
//                          own signals, threads, fork, rlimits, and a passed
//                          memfd mapped and written; exit 0 if all worked
//   abort                  abort(): dies of its own SIGABRT
//   write PATH             tries to create PATH; prints the errno
//   read FD...             prints "fdN=<text>" from the start of each fd
//   orphan                 starts a child that tries to leave the process
//                          group, then waits forever; prints its pid and errnos
#include <dirent.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <linux/io_uring.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

std::atomic<int> g_signals{0};

void count_signal(int /*sig*/) { g_signals.fetch_add(1, std::memory_order_relaxed); }

std::string errno_name(int error) {
  if (error == 0) return "0";
  const char* name = ::strerrorname_np(error);
  return name != nullptr ? name : std::to_string(error);
}

std::string status_field(const std::string& key) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      const auto value = line.find_first_not_of(" \t", key.size() + 1);
      return value == std::string::npos ? "" : line.substr(value);
    }
  }
  return "?";
}

std::string link_of(const char* path) {
  std::array<char, 256> buffer{};
  const auto n = ::readlink(path, buffer.data(), buffer.size() - 1);
  return n < 0 ? "?" : std::string(buffer.data(), static_cast<std::size_t>(n));
}

int victim(bool undumpable) {
  if (undumpable) ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  fmt::print("ready pid={}\n", ::getpid());
  (void)std::fflush(stdout);
  std::array<char, 64> buffer{};
  while (::read(0, buffer.data(), buffer.size()) > 0) {
  }
  return 0;
}

int identity() {
  std::array<gid_t, 64> groups{};
  const int group_count = ::getgroups(static_cast<int>(groups.size()), groups.data());
  std::array<char, 4096> cwd{};
  std::string fds;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    const int own = ::dirfd(dir);
    while (const dirent* e = ::readdir(dir)) {  // NOLINT(concurrency-mt-unsafe): one thread
      if (e->d_name[0] == '.' || std::atoi(e->d_name) == own) continue;
      fds += fds.empty() ? "" : ",";
      fds += e->d_name;
    }
    ::closedir(dir);
  }
  fmt::print("uid={}\neuid={}\ngid={}\negid={}\ngroups={}\n", ::getuid(), ::geteuid(), ::getgid(),
             ::getegid(), group_count);
  fmt::print("no_new_privs={}\nseccomp={}\ndumpable={}\n", status_field("NoNewPrivs"),
             status_field("Seccomp"), ::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
  fmt::print("cwd={}\nfds={}\n", ::getcwd(cwd.data(), cwd.size()) != nullptr ? cwd.data() : "?", fds);
  fmt::print("netns={}\nipcns={}\nuserns={}\n", link_of("/proc/self/ns/net"), link_of("/proc/self/ns/ipc"),
             link_of("/proc/self/ns/user"));
  fmt::print("pid={}\npgid={}\nsid={}\nppid={}\n", ::getpid(), ::getpgrp(), ::getsid(0), ::getppid());
  return 0;
}

class Checks {
 public:
  void expect(const char* name, long rc, int expected_errno) {
    const int error = rc < 0 ? errno : 0;
    const bool ok = error == expected_errno;
    failures_ += ok ? 0 : 1;
    fmt::print("call={} errno={} expected={} ok={}\n", name, errno_name(error), errno_name(expected_errno),
               ok ? 1 : 0);
  }
  void require(const char* name, bool ok) {
    failures_ += ok ? 0 : 1;
    fmt::print("check={} ok={}\n", name, ok ? 1 : 0);
  }
  [[nodiscard]] int result() const { return failures_ == 0 ? 0 : 1; }

 private:
  int failures_ = 0;
};

// Each of these works for an unconfined process of any uid (or fails for a
// reason other than EPERM), so EPERM here comes from the filter.
int denied() {
  Checks c;
  c.expect("unshare_user", ::unshare(CLONE_NEWUSER), EPERM);
  c.expect("pidfd_open_self", ::syscall(SYS_pidfd_open, ::getpid(), 0), EPERM);
  c.expect("tkill_self", ::syscall(SYS_tkill, ::gettid(), 0), EPERM);
  c.expect("kill_parent", ::kill(::getppid(), 0), EPERM);
  c.expect("kill_everyone", ::kill(-1, 0), EPERM);
  c.expect("ptrace_parent", ::ptrace(PTRACE_ATTACH, ::getppid(), nullptr, nullptr), EPERM);
  io_uring_params params{};
  c.expect("io_uring_setup", ::syscall(SYS_io_uring_setup, 1, &params), EPERM);
  c.expect("userfaultfd", ::syscall(SYS_userfaultfd, O_CLOEXEC), EPERM);
  rlimit limit{};
  c.expect("prlimit_parent", ::prlimit(::getppid(), RLIMIT_NOFILE, nullptr, &limit), EPERM);
  clone_args args{};
  args.flags = CLONE_NEWUSER;
  args.exit_signal = SIGCHLD;
  const long child = ::syscall(SYS_clone3, &args, sizeof(args));
  if (child == 0) ::_exit(0);
  c.expect("clone3", child, ENOSYS);
  // glibc falls back to clone when clone3 says ENOSYS.
  const pid_t forked = ::fork();
  if (forked == 0) ::_exit(7);
  int status = 0;
  c.require("fork_after_clone3_enosys", forked > 0 && ::waitpid(forked, &status, 0) == forked &&
                                            WIFEXITED(status) && WEXITSTATUS(status) == 7);
  c.require("still_alive", true);
  return c.result();
}

int allowed(int memfd) {
  Checks c;
  struct sigaction action {};
  action.sa_handler = count_signal;
  ::sigaction(SIGUSR1, &action, nullptr);
  ::sigaction(SIGUSR2, &action, nullptr);
  c.require("raise", ::raise(SIGUSR1) == 0 && g_signals.load() == 1);
  c.require("kill_self", ::kill(::getpid(), SIGUSR2) == 0 && g_signals.load() == 2);
  c.require("sigqueue_self", ::sigqueue(::getpid(), SIGUSR1, sigval{}) == 0 && g_signals.load() == 3);

  std::atomic<int> started{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      started.fetch_add(1);
      while (!stop.load()) std::this_thread::yield();
    });
  }
  while (started.load() < 4) std::this_thread::yield();
  int delivered = 0;
  for (auto& t : threads) delivered += ::pthread_kill(t.native_handle(), SIGUSR1) == 0 ? 1 : 0;
  stop.store(true);
  for (auto& t : threads) t.join();
  c.require("threads_and_pthread_kill", delivered == 4);

  const pid_t child = ::fork();
  if (child == 0) ::_exit(7);
  int status = 0;
  c.require("fork_wait", child > 0 && ::waitpid(child, &status, 0) == child && WIFEXITED(status) &&
                             WEXITSTATUS(status) == 7);
  rlimit core{0, 0};
  c.require("setrlimit_self", ::setrlimit(RLIMIT_CORE, &core) == 0);
  cpu_set_t set;
  CPU_ZERO(&set);
  c.require("affinity_self",
            ::sched_getaffinity(0, sizeof(set), &set) == 0 && ::sched_setaffinity(0, sizeof(set), &set) == 0);

  if (memfd >= 0) {
    void* map = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    const bool mapped = map != MAP_FAILED;
    c.require("mmap_passed_memfd", mapped);
    if (mapped) {
      auto* bytes = static_cast<char*>(map);
      c.require("read_passed_memfd", std::string_view(bytes) == "from-the-node");
      std::strcpy(bytes + 64, "from-the-pe");  // NOLINT(clang-analyzer-security.insecureAPI.strcpy)
      ::munmap(map, 4096);
    }
  }
  return c.result();
}

int write_file(const char* path) {
  const int fd = ::open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  const int error = fd < 0 ? errno : 0;
  if (fd >= 0) ::close(fd);
  fmt::print("path={}\nerrno={}\n", path, errno_name(error));
  return 0;
}

int read_fds(const std::vector<std::string_view>& fds) {
  for (const auto fd_text : fds) {
    const int fd = std::atoi(std::string(fd_text).c_str());
    std::array<char, 64> buffer{};
    const auto n = ::pread(fd, buffer.data(), buffer.size() - 1, 0);
    fmt::print("fd{}={}\n", fd, n < 0 ? "error:" + errno_name(errno) : std::string(buffer.data()));
  }
  return 0;
}

int orphan() {
  std::array<int, 2> report{};
  if (::pipe(report.data()) != 0) return 2;
  const pid_t child = ::fork();
  if (child == 0) {
    std::array<int, 2> errors{::setsid() < 0 ? errno : 0, ::setpgid(0, 0) < 0 ? errno : 0};
    [[maybe_unused]] const auto n = ::write(report[1], errors.data(), sizeof(errors));
    for (int fd = 0; fd < 3; ++fd) ::close(fd);  // the node reads our stdout to its end
    for (;;) ::pause();
  }
  std::array<int, 2> errors{-1, -1};
  if (::read(report[0], errors.data(), sizeof(errors)) != static_cast<ssize_t>(sizeof(errors))) return 3;
  fmt::print("child={}\nsetsid={}\nsetpgid={}\n", child, errno_name(errors[0]), errno_name(errors[1]));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  const auto role = args.empty() ? std::string_view{} : args[0];
  if (role == "victim") return victim(args.size() > 1 && args[1] == "--undumpable");
  if (role == "identity") return identity();
  if (role == "denied") return denied();
  if (role == "allowed") {
    // As the PE library makes every PE (sanitizer runtimes must cope with it).
    if (std::find(args.begin(), args.end(), "--undumpable") != args.end())
      ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    const int memfd = args.size() > 2 && args[1] == "--memfd" ? std::atoi(std::string(args[2]).c_str()) : -1;
    return allowed(memfd);
  }
  if (role == "abort") std::abort();
  if (role == "orphan") return orphan();
  if (role == "read") return read_fds({args.begin() + 1, args.end()});
  if (role == "write" && args.size() > 1) return write_file(std::string(args[1]).c_str());
  fmt::print(stderr,
             "sandbox_probe: unknown role (victim, identity, denied, allowed, abort, write PATH, read FD..., "
             "orphan)\n");
  return 64;
}

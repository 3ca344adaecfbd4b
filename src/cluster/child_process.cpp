#include "child_process.hpp"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <string_view>
#include <system_error>
#include <utility>

#include "common/stop_signals.hpp"  // signal_name

namespace vdtu::cluster {
namespace {

constexpr int kReportFdFloor = 64;

// Where execve finds `name`: itself if it names a path, else the first
// executable of that name in PATH.
std::string resolve(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");  // NOLINT(concurrency-mt-unsafe): nothing here sets it
  std::string_view dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  while (!dirs.empty()) {
    const auto colon = dirs.find(':');
    const auto dir = dirs.substr(0, colon);
    auto candidate = (std::filesystem::path(dir.empty() ? "." : dir) / name).string();
    if (::access(candidate.c_str(), X_OK) == 0 && std::filesystem::is_regular_file(candidate))
      return candidate;
    dirs = colon == std::string_view::npos ? std::string_view{} : dirs.substr(colon + 1);
  }
  throw std::system_error(ENOENT, std::generic_category(), "cannot start " + name + ": not found in PATH");
}

// In the child: tells the parent why it could not become the program.
[[noreturn]] void fail_to(int report) {
  const int error = errno;
  [[maybe_unused]] const auto n = ::write(report, &error, sizeof(error));
  ::_exit(127);
}

// Between fork and exec: only async-signal-safe calls. On failure the errno
// goes to the parent through `report` (closed on exec when all went well).
[[noreturn]] void become(const std::string& program, char* const* argv, const ChildOptions& options,
                         pid_t parent, int report) {
  const auto fail = [report] { fail_to(report); };
  if (options.own_process_group && ::setpgid(0, 0) != 0) fail();
  if (options.ends_with_parent) {
    if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) fail();
    if (::getppid() != parent) ::_exit(127);  // it ended before the line above
  }
  sigset_t none;
  sigemptyset(&none);
  if (::pthread_sigmask(SIG_SETMASK, &none, nullptr) != 0) fail();
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) (void)::signal(s, SIG_DFL);
  for (const auto& a : options.fds) {
    int from = a.source;
    if (from < 0) {
      from = ::open(a.path.c_str(), a.flags | O_CLOEXEC, a.mode);
      if (from < 0) fail();
    }
    if (from == a.target) {
      if (::fcntl(from, F_SETFD, 0) != 0) fail();
    } else if (::dup2(from, a.target) < 0) {
      fail();
    }
    if (a.source < 0 && from != a.target) ::close(from);
  }
  ::execve(program.c_str(), argv, environ);
  fail_to(report);
}

}  // namespace

ChildProcess::ChildProcess(std::vector<std::string> words, const ChildOptions& options)
    : own_group_(options.own_process_group) {
  const std::string program = resolve(words.at(0));
  std::vector<char*> argv;
  argv.reserve(words.size() + 1);
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
  UniqueFd report_read(pipe_fds[0]);
  // Above every fd the child's setup targets, so that none overwrites it.
  UniqueFd report_write(::fcntl(pipe_fds[1], F_DUPFD_CLOEXEC, kReportFdFloor));
  ::close(pipe_fds[1]);
  if (!report_write) throw std::system_error(errno, std::generic_category(), "fcntl");
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) throw std::system_error(errno, std::generic_category(), "cannot start " + words[0]);
  if (pid_ == 0) become(program, argv.data(), options, parent, report_write.get());
  report_write.reset();
  // Also here, so that the group exists before we might signal it.
  if (own_group_) ::setpgid(pid_, pid_);
  pidfd_ = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
  int error = 0;
  ssize_t n = 0;
  do {
    n = ::read(report_read.get(), &error, sizeof(error));
  } while (n < 0 && errno == EINTR);
  if (n > 0 || !pidfd_) {
    if (n <= 0) error = errno;
    kill_all();
    wait();
    throw std::system_error(error, std::generic_category(), "cannot start " + words[0]);
  }
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::move(other.pidfd_)),
      own_group_(other.own_group_),
      status_(std::exchange(other.status_, std::nullopt)) {}

ChildProcess::~ChildProcess() {
  if (pid_ <= 0 || status_) return;
  kill_all();
  wait();
}

void ChildProcess::signal(int signal) const {
  if (pid_ > 0 && !status_) ::kill(pid_, signal);
}

void ChildProcess::kill_all() const {
  if (pid_ <= 0 || status_) return;
  // The group first: while the child is not reaped its id cannot name another group.
  if (own_group_) ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
}

std::optional<int> ChildProcess::try_wait() {
  if (status_ || pid_ <= 0) return status_;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) status_ = status;
  return status_;
}

int ChildProcess::wait() {
  if (status_ || pid_ <= 0) return status_.value_or(0);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  status_ = status;
  return status;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by " + signal_name(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

}  // namespace vdtu::cluster

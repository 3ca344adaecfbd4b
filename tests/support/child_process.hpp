#pragma once
// A forked child running a function; killed and reaped if still alive when
// the handle goes away, so a failing test never leaks processes.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <exception>
#include <utility>

namespace vdtu::testing {

class ChildProcess {
 public:
  template <class Body>
  explicit ChildProcess(Body body) : pid_(::fork()) {
    if (pid_ == 0) {
      int code = 1;
      try {
        code = body();
      } catch (...) {
        code = 99;
      }
      ::_exit(code);
    }
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  [[nodiscard]] pid_t pid() const { return pid_; }
  // Exit code, or 128 + signal number if it was killed.
  int wait() {
    int status = 0;
    ::waitpid(std::exchange(pid_, -1), &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  void kill_now() { ::kill(pid_, SIGKILL); }

 private:
  pid_t pid_;
};

}  // namespace vdtu::testing

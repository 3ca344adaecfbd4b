#pragma once
// Programs this process starts (nodes, `ip`): started with fork and exec so
// that the child can be set up as a program it supervises needs, owned with a
// pidfd, and never left behind: the destructor kills and reaps a child still
// running.

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "vdtu/unique_fd.hpp"

namespace vdtu::cluster {

struct ChildOptions {
  // The child's fds, set up in this order.
  void open(int fd, const std::string& path, int flags, mode_t mode = 0) {
    fds.push_back({fd, -1, path, flags, mode});
  }
  void dup2(int from, int to) { fds.push_back({to, from, {}, 0, 0}); }

  struct FdAction {
    int target;
    int source;  // dup2 from this fd, or, if < 0, open `path`
    std::string path;
    int flags;
    mode_t mode;
  };
  std::vector<FdAction> fds;
  // A group of its own: a terminal's Ctrl-C reaches only us (we stop the
  // child in order), and killing the group reaches the child's children too.
  bool own_process_group = false;
  // SIGTERM to the child when the thread that started it ends, even by
  // SIGKILL (PR_SET_PDEATHSIG): a supervised child never outlives us.
  bool ends_with_parent = false;
};

class ChildProcess {
 public:
  // Starts words[0] (searched in PATH if it has no '/') with `words` as its
  // arguments, the stop signals unblocked and at their defaults. Throws
  // std::system_error naming the program if it cannot be started.
  ChildProcess(std::vector<std::string> words, const ChildOptions& options);
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&&) = delete;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  // A child still running is killed (with its group, if it has one) and reaped.
  ~ChildProcess();

  [[nodiscard]] pid_t pid() const { return pid_; }
  // Readable once the child has ended.
  [[nodiscard]] int pidfd() const { return pidfd_.get(); }
  [[nodiscard]] bool reaped() const { return status_.has_value(); }
  // The wait status once reaped.
  [[nodiscard]] std::optional<int> status() const { return status_; }

  // Sends `signal` to the child (nothing once it is reaped).
  void signal(int signal) const;
  // SIGKILL to the child and, if it has its own group, everything in it.
  void kill_all() const;
  // Reaps the child if it has ended; its wait status, nothing while it runs.
  std::optional<int> try_wait();
  // Waits for the child to end; its wait status.
  int wait();

 private:
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  bool own_group_ = false;
  std::optional<int> status_;
};

// "exit 3", "killed by SIGTERM": a wait status for people.
std::string describe_status(int status);

}  // namespace vdtu::cluster

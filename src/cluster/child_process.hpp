#pragma once
// Starting other programs (nodes, `ip`) with posix_spawnp, and waiting for them.

#include <spawn.h>
#include <sys/types.h>

#include <string>
#include <vector>

namespace vdtu::cluster {

// What the child's fds become (RAII for posix_spawn_file_actions_t).
class SpawnActions {
 public:
  SpawnActions() { posix_spawn_file_actions_init(&actions_); }
  SpawnActions(const SpawnActions&) = delete;
  SpawnActions& operator=(const SpawnActions&) = delete;
  ~SpawnActions() { posix_spawn_file_actions_destroy(&actions_); }
  void open(int fd, const std::string& path, int flags, mode_t mode = 0) {
    posix_spawn_file_actions_addopen(&actions_, fd, path.c_str(), flags, mode);
  }
  void dup2(int from, int to) { posix_spawn_file_actions_adddup2(&actions_, from, to); }
  [[nodiscard]] const posix_spawn_file_actions_t* get() const { return &actions_; }

 private:
  posix_spawn_file_actions_t actions_{};
};

// Starts words[0] (searched in PATH) with `words` as its arguments. Throws
// std::system_error if it cannot be started.
pid_t spawn(std::vector<std::string> words, const SpawnActions& actions);

// The child's wait status (retrying when a signal interrupts the wait).
int wait_for(pid_t pid);

}  // namespace vdtu::cluster

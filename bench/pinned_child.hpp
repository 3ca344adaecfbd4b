#pragma once
// Benchmarks run the two sides in two processes pinned to different CPUs,
// as PEs would run. The child is killed if the benchmark throws.

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>

#include <stdexcept>
#include <utility>

namespace vdtu::bench {

inline void pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  ::sched_setaffinity(0, sizeof(set), &set);  // best effort: fewer CPUs is fine
}

class PinnedChild {
 public:
  template <class Body>
  explicit PinnedChild(Body body) : saved_(current_affinity()), pid_(::fork()) {
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      pin_to_cpu(1);
      int code = 1;
      try {
        code = body();
      } catch (...) {
        code = 99;
      }
      ::_exit(code);
    }
    pin_to_cpu(0);
  }
  PinnedChild(const PinnedChild&) = delete;
  PinnedChild& operator=(const PinnedChild&) = delete;
  // Restores the parent's affinity: later work (and processes it starts,
  // which inherit it) must not stay on one CPU.
  ~PinnedChild() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::sched_setaffinity(0, sizeof(saved_), &saved_);
  }
  // Throws if the child failed.
  void join() {
    int status = 0;
    ::waitpid(std::exchange(pid_, -1), &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error("benchmark child failed");
  }

 private:
  static cpu_set_t current_affinity() {
    cpu_set_t set;
    CPU_ZERO(&set);
    ::sched_getaffinity(0, sizeof(set), &set);
    return set;
  }

  cpu_set_t saved_;
  pid_t pid_;
};

}  // namespace vdtu::bench

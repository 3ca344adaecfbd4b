#pragma once
// The signals that ask a program to stop (SIGINT, SIGTERM, SIGHUP), read from
// a signalfd in the program's own loop instead of in an asynchronous handler:
// the program notices them where it waits, ends what it started in order and
// leaves the rest to RAII.

#include <csignal>
#include <stdexcept>
#include <string>

#include "vdtu/unique_fd.hpp"

namespace vdtu {

class StopSignals {
 public:
  // Blocks the stop signals in the calling thread, and so in the threads it
  // starts later, and opens a signalfd for them. Construct it before starting
  // threads: a thread that does not block them would die of them.
  StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  // Takes the signals still pending (the program is ending anyway) and
  // restores the previous mask.
  ~StopSignals();

  // Readable when a stop signal is pending.
  [[nodiscard]] int fd() const { return fd_.get(); }
  // Takes one pending stop signal without waiting; 0 if none is pending.
  int take();
  // The first stop signal taken or pending so far, 0 if none. (Programs
  // started meanwhile must not inherit the blocked mask: they could not be
  // stopped with these signals; see cluster::ChildProcess.)
  int received();

 private:
  UniqueFd fd_;
  sigset_t previous_{};
  int first_ = 0;
};

// "SIGTERM" for SIGTERM, "signal 42" for a number without a name.
std::string signal_name(int signal);

// Thrown once a stop signal has ended what a command started (its message says
// what was stopped and removed); main() prints it and exits with 128 + the
// signal, as a shell reports a command ended by that signal.
class StoppedBySignal : public std::runtime_error {
 public:
  StoppedBySignal(int signal, const std::string& what) : std::runtime_error(what), signal_(signal) {}
  [[nodiscard]] int signal() const { return signal_; }
  [[nodiscard]] int exit_code() const { return 128 + signal_; }

 private:
  int signal_;
};

}  // namespace vdtu

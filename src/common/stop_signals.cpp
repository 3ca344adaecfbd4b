#include "common/stop_signals.hpp"

#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>  // sigabbrev_np
#include <system_error>

namespace vdtu {
namespace {

sigset_t stop_set() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, s);
  return set;
}

}  // namespace

StopSignals::StopSignals() {
  const auto set = stop_set();
  if (const int rc = ::pthread_sigmask(SIG_BLOCK, &set, &previous_); rc != 0)
    throw std::system_error(rc, std::generic_category(), "cannot block the stop signals");
  fd_ = UniqueFd(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!fd_) {
    const int error = errno;
    ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
    throw std::system_error(error, std::generic_category(), "signalfd");
  }
}

StopSignals::~StopSignals() {
  received();
  ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
}

int StopSignals::take() {
  signalfd_siginfo info{};
  if (::read(fd_.get(), &info, sizeof(info)) != static_cast<ssize_t>(sizeof(info))) return 0;
  const auto signal = static_cast<int>(info.ssi_signo);
  if (first_ == 0) first_ = signal;
  return signal;
}

int StopSignals::received() {
  while (take() != 0) {
  }
  return first_;
}

std::string signal_name(int signal) {
  const char* abbreviation = ::sigabbrev_np(signal);  // "TERM"
  return abbreviation != nullptr ? std::string("SIG") + abbreviation : "signal " + std::to_string(signal);
}

}  // namespace vdtu

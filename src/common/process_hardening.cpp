#include "common/process_hardening.hpp"

#include <sys/prctl.h>

#include <cerrno>
#include <system_error>

namespace vdtu {

void make_undumpable() {
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
    throw std::system_error(errno, std::generic_category(), "prctl(PR_SET_DUMPABLE)");
}

rlim_t raise_open_file_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0)
    throw std::system_error(errno, std::generic_category(), "getrlimit(RLIMIT_NOFILE)");
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0)
      throw std::system_error(errno, std::generic_category(), "setrlimit(RLIMIT_NOFILE)");
  }
  return limit.rlim_cur;
}

rlim_t harden_process() {
  make_undumpable();
  return raise_open_file_limit();
}

}  // namespace vdtu

#include "common/process_hardening.hpp"

#include <sys/prctl.h>

#include <cerrno>
#include <system_error>

namespace vdtu {

void make_undumpable() {
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
    throw std::system_error(errno, std::generic_category(), "prctl(PR_SET_DUMPABLE)");
}

rlim_t raise_open_file_limit(rlim_t wanted) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0)
    throw std::system_error(errno, std::generic_category(), "getrlimit(RLIMIT_NOFILE)");
  if (wanted > limit.rlim_max && limit.rlim_max != RLIM_INFINITY) {
    const rlimit more{wanted, wanted};
    if (::setrlimit(RLIMIT_NOFILE, &more) == 0) return wanted;  // EPERM unprivileged: keep what we have
  }
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0)
      throw std::system_error(errno, std::generic_category(), "setrlimit(RLIMIT_NOFILE)");
  }
  return limit.rlim_cur;
}

rlim_t harden_process(rlim_t wanted_open_files) {
  make_undumpable();
  return raise_open_file_limit(wanted_open_files);
}

}  // namespace vdtu

#pragma once
// Hardening every vdtu process applies to itself at start: the trusted node
// and the PE library alike.

#include <sys/resource.h>

namespace vdtu {

// Makes this process non-dumpable: its /proc files (fd, mem, environ, maps)
// then belong to root and need CAP_SYS_PTRACE, so another process of the same
// uid can no longer open the memfds this process holds or read its memory.
// Side effect: no core dumps unless fs.suid_dumpable says otherwise.
void make_undumpable();

// Raises the soft limit on open files to the hard limit (a node holds several
// fds per channel; a receive endpoint alone takes up to 1024 channels) and
// returns the new soft limit. With `wanted` above the hard limit, tries to
// raise the hard limit to it first (root: CAP_SYS_RESOURCE, up to
// fs.nr_open); without the privilege the hard limit stays.
rlim_t raise_open_file_limit(rlim_t wanted = 0);

// Both of the above.
rlim_t harden_process(rlim_t wanted_open_files = 0);

}  // namespace vdtu

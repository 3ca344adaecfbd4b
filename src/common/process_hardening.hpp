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
// fds per channel; a receive endpoint alone takes up to 512 channels) and
// returns the new soft limit.
rlim_t raise_open_file_limit();

// Both of the above.
rlim_t harden_process();

}  // namespace vdtu

#pragma once
// Landlock for PEs: every PE gets its own Landlock domain, which the kernel
// uses for two things here:
//  - scoping: a process in a domain cannot ptrace (and so cannot open the
//    /proc fd, mem or environ files of) a process outside that domain or in
//    a sibling domain, and (ABI 6) cannot signal it or connect to its
//    abstract unix sockets. This holds whatever the uids, closing the window
//    in which a same-uid PE is still dumpable.
//  - writes: files can be written, created, removed or renamed only beneath
//    the configured writable paths (reads are not restricted).

#include <string>
#include <vector>

#include "vdtu/unique_fd.hpp"

namespace vdtu::sandbox {

// The Landlock ABI version of the running kernel; 0 if it has none or it is
// disabled.
int landlock_abi();

// A ruleset for PEs, made once in the node; each PE applies it before exec
// with landlock_restrict_self (child_launch.cpp), which creates a new domain
// per call, so PEs end up in sibling domains. Throws if a path cannot be
// opened.
UniqueFd make_pe_ruleset(int abi, const std::vector<std::string>& writable_paths);

}  // namespace vdtu::sandbox

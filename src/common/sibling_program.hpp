#pragma once
// vdtu's own programs (the kernel, the test and demo PEs, vdtu itself) are
// found relative to the running executable, so that a build tree's vdtu
// starts the programs of its build and an installed vdtu its installed ones:
//
//   <dir>/apps/NAME          a build tree (vdtu in <dir>, PE programs in apps/)
//   <dir>/<libexec>/NAME     an installation (vdtu in bin/, PE programs in
//                            libexec/vdtu/; <libexec> is fixed at configure time)
//   <dir>/NAME               vdtu itself, in either
//
// where <dir> is the directory of /proc/self/exe.

#include <filesystem>
#include <string>
#include <vector>

namespace vdtu {

// The directories searched, in order.
std::vector<std::filesystem::path> program_directories();

// NAME (no '/') as found in program_directories(); throws std::runtime_error
// naming every place it looked when it is in none of them.
std::string sibling_program(const std::string& name);

// A program as a node or cluster file names it: a bare name (no '/') is one
// of vdtu's programs (sibling_program); anything else is a path, relative ones
// starting in the current directory. Returns "" for a bare name not found.
std::string resolve_program(const std::string& named);

}  // namespace vdtu

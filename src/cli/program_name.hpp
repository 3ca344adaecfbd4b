#pragma once
// Checking a program that a node or cluster file names (see
// common/sibling_program.hpp for how a bare name is looked up).

#include <optional>
#include <string>

namespace vdtu::cli {

// What is wrong with `named` as resolved to `resolved` (by resolve_program),
// or nothing if it is an executable file.
std::optional<std::string> program_mistake(const std::string& named, const std::string& resolved);

}  // namespace vdtu::cli

#pragma once
// Programs built next to the vdtu executable (PE programs the node starts).

#include <filesystem>
#include <stdexcept>
#include <string>

namespace vdtu {

inline std::string sibling_program(const std::string& relative) {
  const auto self = std::filesystem::read_symlink("/proc/self/exe");
  const auto path = self.parent_path() / relative;
  if (!std::filesystem::exists(path))
    throw std::runtime_error("missing " + path.string() + " (build it first)");
  return path.string();
}

}  // namespace vdtu

#include "common/sibling_program.hpp"

#include <unistd.h>

#include <stdexcept>

#ifndef VDTU_PROGRAMS_FROM_BINDIR
#error "VDTU_PROGRAMS_FROM_BINDIR (the installed programs' directory relative to vdtu's) must be defined"
#endif

namespace vdtu {
namespace {

bool executable_file(const std::filesystem::path& path) {
  std::error_code error;
  return std::filesystem::is_regular_file(path, error) && ::access(path.c_str(), X_OK) == 0;
}

std::filesystem::path find(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos) return {};
  for (const auto& dir : program_directories()) {
    auto path = dir / name;
    if (executable_file(path)) return path;
  }
  return {};
}

}  // namespace

std::vector<std::filesystem::path> program_directories() {
  const auto self = std::filesystem::read_symlink("/proc/self/exe").parent_path();
  return {self / "apps", (self / VDTU_PROGRAMS_FROM_BINDIR).lexically_normal(), self};
}

std::string sibling_program(const std::string& name) {
  auto path = find(name);
  if (path.empty()) {
    std::string looked;
    for (const auto& dir : program_directories()) looked += (looked.empty() ? "" : ", ") + dir.string();
    throw std::runtime_error("missing program " + name + " (looked in " + looked + "; build or install it)");
  }
  return path.string();
}

std::string resolve_program(const std::string& named) {
  if (named.find('/') != std::string::npos) return named;
  return find(named).string();
}

}  // namespace vdtu

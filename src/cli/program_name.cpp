#include "program_name.hpp"

#include <fmt/core.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <filesystem>

#include "common/sibling_program.hpp"

namespace vdtu::cli {

std::optional<std::string> program_mistake(const std::string& named, const std::string& resolved) {
  if (resolved.empty()) {
    std::vector<std::string> looked;
    for (const auto& dir : program_directories()) looked.push_back(dir.string());
    return fmt::format("{} is not one of vdtu's programs (looked in {}); name another program by its path",
                       named, fmt::join(looked, ", "));
  }
  std::error_code error;
  if (::access(resolved.c_str(), X_OK) != 0 || !std::filesystem::is_regular_file(resolved, error)) {
    return fmt::format("{} is not an executable file (a relative path starts in the directory vdtu runs in)",
                       named);
  }
  return std::nullopt;
}

}  // namespace vdtu::cli

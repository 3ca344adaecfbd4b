#include "common/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <stdexcept>

namespace vdtu {
namespace {

spdlog::level::level_enum parse(std::string_view level) {
  const auto l = spdlog::level::from_str(std::string(level));
  // from_str answers "off" for anything it does not know: only "off" means it.
  if (l == spdlog::level::off && level != "off")
    throw std::invalid_argument("unknown log level '" + std::string(level) + "' (" + kLogLevels + ")");
  return l;
}

}  // namespace

void init_logging() {
  // spdlog keeps its default logger in a process-wide registry; this is
  // the one place that sets it.
  static const bool done = [] {
    auto logger = spdlog::stderr_logger_mt("vdtu");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");
    logger->flush_on(spdlog::level::trace);  // a node's log must hold everything up to a kill
    spdlog::set_default_logger(logger);
    return true;
  }();
  (void)done;
}

void set_log_level(std::string_view level) {
  const auto l = parse(level);
  init_logging();
  spdlog::set_level(l);
  // Called before the process starts threads (main, semper_kernel's main).
  ::setenv(kLogLevelVariable, std::string(level).c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
}

void set_log_level_from_environment(std::string_view fallback) {
  const char* from_env = std::getenv(kLogLevelVariable);  // NOLINT(concurrency-mt-unsafe): before threads
  try {
    set_log_level(from_env != nullptr ? std::string_view(from_env) : fallback);
  } catch (const std::invalid_argument&) {
    set_log_level(fallback);
  }
}

}  // namespace vdtu

#pragma once
// Event logs: one line per event on stderr, with a level, through spdlog.
// Messages name the node and PE they concern ("node 1 PE 17: ..."). Command
// output meant for the user (reports, summaries) stays on stdout, unleveled.
//
// The level comes from --log-level or, for processes started by another
// (nodes of a cluster, PEs of a node), from VDTU_LOG_LEVEL, which
// set_log_level() exports for them.

#include <string>
#include <string_view>

namespace vdtu {

inline constexpr const char* kLogLevelVariable = "VDTU_LOG_LEVEL";
inline constexpr const char* kLogLevels = "trace, debug, info, warn, error, critical, off";

// Throws std::invalid_argument naming the levels for an unknown one.
void set_log_level(std::string_view level);
// The level from VDTU_LOG_LEVEL if set and valid, else `fallback`.
void set_log_level_from_environment(std::string_view fallback = "info");
// Sets up the stderr logger (once per process; the levels above call it).
void init_logging();

}  // namespace vdtu

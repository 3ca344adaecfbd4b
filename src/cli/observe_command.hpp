#pragma once
// `vdtu stat` and `vdtu trace`: clients of a running node's stats socket
// (src/node/stats_server.hpp).

#include <cstddef>
#include <string>

namespace vdtu::cli {

struct StatOptions {
  std::string socket_path;
  bool json = false;
  double watch_seconds = 0;  // > 0: repeat at this interval until a stop signal
};

struct TraceOptions {
  std::string socket_path;
  std::string output;           // pcapng file
  double duration_seconds = 0;  // 0: until a stop signal
  std::size_t snaplen = 64;     // payload bytes kept per message
};

// Returns the process exit code; throws std::runtime_error when the node
// cannot be reached or refuses.
int run_stat(const StatOptions& options);
int run_trace(const TraceOptions& options);

}  // namespace vdtu::cli

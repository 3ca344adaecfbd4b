#pragma once

#include <string>

namespace vdtu::cli {

struct NodeOptions {
  std::string config_path;
  double timeout_seconds = 0;  // 0: no limit, the node runs as long as its PEs do
  std::string stats_socket;    // empty: none
};

// `vdtu node --config FILE`: runs a node with the PEs the file names until
// they have all exited; prints each PE's exit code. At the timeout it kills
// the PEs still running, names them and returns cluster::kNodeTimedOutExit; a
// stop signal (SIGINT, SIGTERM, SIGHUP) kills and reaps the PEs and throws
// StoppedBySignal saying so. Returns the process exit code.
int run_node(const NodeOptions& options);

}  // namespace vdtu::cli

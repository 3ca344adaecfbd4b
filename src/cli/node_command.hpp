#pragma once

#include <string>

namespace vdtu::cli {

struct NodeOptions {
  std::string config_path;
  double timeout_seconds = 0;  // 0: wait for the PEs as long as they run
};

// `vdtu node --config FILE`: runs a node with the PEs the file names until they
// have all exited; prints each PE's exit code. Returns the process exit code.
int run_node(const NodeOptions& options);

}  // namespace vdtu::cli

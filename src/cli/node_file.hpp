#pragma once
// A node file (`vdtu node --config FILE`): [node] settings, [faults] to
// inject, [[peer]] nodes and the [[pe]] programs to start. Every key known,
// every value checked; see docs/CONFIGURATION.md.

#include <string>
#include <vector>

#include "node/node.hpp"

namespace vdtu::cli {

struct NodeFile {
  dtu::NodeConfig config;
  std::vector<dtu::PeProgram> programs;
};

// Throws std::runtime_error with one line per mistake ("FILE:LINE: ...").
NodeFile parse_node_file(const std::string& path);

}  // namespace vdtu::cli

#pragma once
// A cluster file (`vdtu cluster --config FILE`): [cluster] settings and
// [[node]]s with their [[node.kernel]]s and each kernel's VPE programs.
// Every key known, every value checked; see docs/CONFIGURATION.md.

#include <string>

#include "cluster/cluster_launch.hpp"

namespace vdtu::cli {

// Throws std::runtime_error with one line per mistake ("FILE:LINE: ...").
cluster::ClusterSpec parse_cluster_file(const std::string& path);

}  // namespace vdtu::cli

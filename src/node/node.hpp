#pragma once
// The node: the trusted process that owns the endpoint table, creates every
// channel, launches PEs as processes and notices when they die. Only a
// privileged PE (a kernel) may ask it to configure endpoints.
//
// One thread (the node's event loop, node_loop.hpp) does all of the node's
// work; the methods here hand it requests and wait for the answers, so they
// may be called from any thread.

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>

#include "node_config.hpp"
#include "vdtu/unique_fd.hpp"

namespace vdtu::dtu {

class NodeLoop;
class StatsServer;

class Node {
 public:
  explicit Node(const NodeConfig& config);
  ~Node();  // kills the PEs still running, lets the bridge drain, stops the loop
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Starts a program on a free PE and returns its global id. Throws
  // std::runtime_error when no PE is free or the program cannot be started.
  PeId launch(const PeProgram& program);
  // A PE without a process of its own: the returned socket is its end of the
  // control connection (hand it to a Dtu in this process, e.g. on a thread).
  // The PE ends when that socket is closed.
  UniqueFd attach(bool privileged, PeId& pe);
  // True once every launched PE has exited (false on timeout).
  bool wait_all_exited(std::chrono::milliseconds timeout);
  // Exit code of a PE that ended (128 + signal if killed), nothing while it runs.
  [[nodiscard]] std::optional<int> exit_code(PeId pe) const;
  [[nodiscard]] pid_t pid_of(PeId pe) const;
  [[nodiscard]] NodeStats stats() const;
  // The UDP port of this node's bridge (0 without peers).
  [[nodiscard]] std::uint16_t bridge_port() const;

 private:
  std::unique_ptr<NodeLoop> loop_;
  std::unique_ptr<StatsServer> stats_server_;  // with a stats socket; ends before the loop
};

}  // namespace vdtu::dtu

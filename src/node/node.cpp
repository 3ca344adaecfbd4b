// The public face of the node: every call is carried out by the node's
// event loop (node_loop.hpp) on its thread.
#include "node.hpp"

#include <thread>

#include "node_loop.hpp"
#include "stats_server.hpp"

namespace vdtu::dtu {

using namespace std::chrono_literals;

Node::Node(const NodeConfig& config) : loop_(std::make_unique<NodeLoop>(config)) {
  if (!config.stats_socket.empty())
    stats_server_ = std::make_unique<StatsServer>(config.stats_socket, *loop_);
}

Node::~Node() {
  stats_server_.reset();  // no snapshot of a node half torn down
  loop_->call([](NodeCore& c) { c.kill_all(); });
  loop_->wait_all_exited(10s);  // the loop reaps them
  // The last words (a kernel's FINISHED) reach the peers before the node ends.
  const auto patience = std::chrono::steady_clock::now() + 1s;
  while (!loop_->call([](NodeCore& c) { return c.bridge_drained(); }) &&
         std::chrono::steady_clock::now() < patience) {
    std::this_thread::sleep_for(1ms);
  }
}

PeId Node::launch(const PeProgram& program) {
  return loop_->call([&](NodeCore& c) { return c.launch(program); });
}

UniqueFd Node::attach(bool privileged, PeId& pe) {
  return loop_->call([&](NodeCore& c) { return c.attach(privileged, pe); });
}

bool Node::wait_all_exited(std::chrono::milliseconds timeout) { return loop_->wait_all_exited(timeout); }

std::optional<int> Node::exit_code(PeId pe) const {
  return loop_->call([pe](NodeCore& c) { return c.exit_code(pe); });
}

pid_t Node::pid_of(PeId pe) const {
  return loop_->call([pe](NodeCore& c) { return c.pid_of(pe); });
}

NodeStats Node::stats() const {
  return loop_->call([](NodeCore& c) { return c.stats(); });
}

std::uint16_t Node::bridge_port() const {
  return loop_->call([](NodeCore& c) { return c.bridge_port(); });
}

}  // namespace vdtu::dtu

#pragma once
// Separate hosts on one machine: a network namespace per node, each with an
// `eth0` (one end of a veth pair) and its own address, the other ends joined
// by a Linux bridge in the starting namespace. Needs root (CAP_NET_ADMIN).
// Everything is removed again when the object goes.

#include <string>
#include <vector>

namespace vdtu::cluster {

class NetworkNamespaces {
 public:
  // Creates `count` namespaces named after `tag` (unique per cluster, e.g.
  // the starting process's id). Throws std::runtime_error, having removed
  // what it made, when a step fails.
  NetworkNamespaces(const std::string& tag, unsigned count);
  NetworkNamespaces(const NetworkNamespaces&) = delete;
  NetworkNamespaces& operator=(const NetworkNamespaces&) = delete;
  ~NetworkNamespaces();

  [[nodiscard]] const std::string& name(unsigned n) const { return names_.at(n); }
  [[nodiscard]] const std::string& address(unsigned n) const { return addresses_.at(n); }
  [[nodiscard]] const std::vector<std::string>& names() const { return names_; }
  [[nodiscard]] const std::string& bridge() const { return bridge_; }
  // The command line prefix that runs a program inside namespace n.
  [[nodiscard]] std::vector<std::string> exec_prefix(unsigned n) const;

  // Removes the veths, the namespaces and the bridge now;
  // returns what could not be removed (empty when all went). The destructor
  // does the same if this was not called.
  std::vector<std::string> remove() noexcept;

 private:
  std::string bridge_;
  bool bridge_made_ = false;
  std::vector<std::string> names_;
  std::vector<std::string> veths_;  // our ends
  std::vector<std::string> addresses_;
};

}  // namespace vdtu::cluster

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
  // The command line prefix that runs a program inside namespace n.
  [[nodiscard]] std::vector<std::string> exec_prefix(unsigned n) const;

 private:
  void tear_down() noexcept;

  std::string bridge_;
  std::vector<std::string> names_;
  std::vector<std::string> addresses_;
};

}  // namespace vdtu::cluster

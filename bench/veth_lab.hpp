#pragma once
// Two network namespaces, each with `eth0` on a veth pair whose other end
// stays here, up and without an address: joined either by a Linux bridge
// (the baseline) or by `vdtu switch` with both ends as uplinks. Names carry
// this process's id; everything is removed when the object goes. Root only.

#include <string>

namespace vdtu::bench {

class VethLab {
 public:
  VethLab();
  VethLab(const VethLab&) = delete;
  VethLab& operator=(const VethLab&) = delete;
  ~VethLab();

  [[nodiscard]] const std::string& namespace_name(int n) const { return namespaces_[n]; }
  [[nodiscard]] const std::string& host_end(int n) const { return host_ends_[n]; }
  // Joins the two host ends with a Linux bridge, or takes the bridge away.
  void bridge(bool joined);

 private:
  void tear_down() noexcept;

  std::string bridge_;
  std::string namespaces_[2];
  std::string host_ends_[2];
  bool bridged_ = false;
};

// Moves the calling thread into a named network namespace until destroyed.
class InNamespace {
 public:
  explicit InNamespace(const std::string& name);
  InNamespace(const InNamespace&) = delete;
  InNamespace& operator=(const InNamespace&) = delete;
  ~InNamespace();

 private:
  int home_ = -1;
};

}  // namespace vdtu::bench

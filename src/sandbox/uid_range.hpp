#pragma once
// The uids (and equal gids) a node hands to its PEs in uid mode, one per PE
// slot, like systemd's DynamicUser: numbers no account uses.

#include <sys/types.h>

#include <cstdint>

namespace vdtu::sandbox {

struct UidRange {
  // The most PEs a node hosts (a receive endpoint takes one channel per PE).
  static constexpr std::uint32_t kSlotsPerNode = 1024;
  // Default ranges start here: 2^31 and above are left alone by distributions
  // and by systemd (which reserves them as "might be read as negative").
  static constexpr std::uint32_t kDefaultRegionStart = 0x80000000U;

  std::uint32_t base = 0;
  std::uint32_t count = 0;

  // The range of the node with process id `node_pid`: 1024 uids at
  // 2^31 + (pid - 1) * 1024. That fits below uid 2^32 - 1 for pids below
  // 2^21 (larger pids throw: give the node pe_uid_base/pe_uid_count), and
  // two nodes alive at once have different pids, hence
  // disjoint ranges (within one PID namespace: nodes in different PID
  // namespaces that share a user namespace need explicit ranges).
  static UidRange for_node_pid(pid_t node_pid);

  // Throws std::invalid_argument naming the problem: empty, past uid
  // 2^32 - 2, or covering system accounts (below 1000), nobody (65534/65535)
  // or `node_uid`.
  void validate(uid_t node_uid) const;

  [[nodiscard]] uid_t uid_of_slot(std::uint32_t slot) const { return base + slot; }
};

}  // namespace vdtu::sandbox

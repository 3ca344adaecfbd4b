#include "sandbox/uid_range.hpp"

#include <stdexcept>
#include <string>

namespace vdtu::sandbox {
namespace {

constexpr std::uint64_t kLastValidUid = 0xfffffffeULL;  // (uid_t)-1 means "no uid"
constexpr std::uint64_t kFirstRegularUid = 1000;
constexpr std::uint64_t kNobody = 65534;
constexpr std::uint64_t kLegacyNobody = 65535;
// 2^31 uids above the region start, 1024 per pid: pids below 2^21 (PID_MAX_LIMIT
// is 2^22 on 64-bit Linux; the kernel's default pid_max is far below either).
constexpr pid_t kPidLimit = 1 << 21;

bool covers(std::uint64_t first, std::uint64_t last, std::uint64_t uid) {
  return first <= uid && uid <= last;
}

}  // namespace

UidRange UidRange::for_node_pid(pid_t node_pid) {
  if (node_pid <= 0 || node_pid >= kPidLimit) {
    throw std::invalid_argument(
        "node pid " + std::to_string(node_pid) +
        " is beyond the default PE uid ranges (1024 uids per pid above 2^31 reach pid " +
        std::to_string(kPidLimit - 1) + "): set pe_uid_base and pe_uid_count");
  }
  const auto slot_block = static_cast<std::uint64_t>(node_pid - 1) * kSlotsPerNode;
  return UidRange{static_cast<std::uint32_t>(kDefaultRegionStart + slot_block), kSlotsPerNode};
}

void UidRange::validate(uid_t node_uid) const {
  const auto range = "PE uid range " + std::to_string(base) + "+" + std::to_string(count);
  if (count == 0) throw std::invalid_argument(range + " is empty");
  const std::uint64_t first = base;
  const std::uint64_t last = first + count - 1;
  if (last > kLastValidUid) throw std::invalid_argument(range + " ends past uid 4294967294");
  if (first < kFirstRegularUid)
    throw std::invalid_argument(range + " covers system accounts (uids below 1000)");
  if (covers(first, last, kNobody) || covers(first, last, kLegacyNobody))
    throw std::invalid_argument(range + " covers nobody (65534/65535)");
  if (covers(first, last, node_uid)) throw std::invalid_argument(range + " covers the node's own uid");
}

}  // namespace vdtu::sandbox

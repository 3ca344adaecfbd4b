#pragma once
// What the kernel asks of the DTU's control plane. In a running system this is
// the kernel PE's Dtu (privileged); the syscall fuzzer uses a recorder.

#include <cstdint>
#include <string>
#include <vector>

#include "vdtu/dtu_types.hpp"
#include "vdtu/status.hpp"

namespace vdtu::kernel {

class EndpointControl {
 public:
  EndpointControl() = default;
  EndpointControl(const EndpointControl&) = delete;
  EndpointControl& operator=(const EndpointControl&) = delete;
  virtual ~EndpointControl() = default;

  virtual Status config_send(PeId pe, EpId ep, const SendConfig& config) = 0;
  virtual Status config_receive(PeId pe, EpId ep, const ReceiveConfig& config) = 0;
  virtual Status config_memory(PeId pe, EpId ep, const MemoryConfig& config) = 0;
  virtual Status invalidate(PeId pe, EpId ep) = 0;
  // Zeroes [offset, offset + size) of PE `pe`'s memory or (kGlobalMemoryPe)
  // the node's global memory: REQMEM hands out nothing another VPE wrote.
  virtual Status clear_memory(PeId pe, std::uint64_t offset, std::uint64_t size) = 0;
  // Starts a program (then its arguments) on a free PE of the node.
  virtual Status launch(const std::vector<std::string>& command, PeId& pe) = 0;
};

}  // namespace vdtu::kernel

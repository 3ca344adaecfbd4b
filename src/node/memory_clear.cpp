// Zeroing memory on a kernel's request (ControlOp::kClearMemory): REQMEM
// must hand out nothing that another VPE wrote.
#include <fcntl.h>

#include <cstring>

#include "node_core.hpp"

namespace vdtu::dtu {

// The window is checked like a memory endpoint's. Punching a hole into the
// memfd zeroes it for every mapping (the node's and a PE's own) and gives
// the pages back; partial pages at the edges are zeroed by the kernel.
// memset is the fallback should the file not support it.
Status NodeCore::clear_memory(const MemoryConfig& c) {
  if (c.size == 0 || (c.node != kThisNode && c.node != config_.node_id)) return Status::kInvalidArgument;
  std::optional<std::uint32_t> owner;
  if (c.target_pe != kGlobalMemoryPe) {
    owner = index_of(c.target_pe);
    if (!owner) return Status::kInvalidArgument;
  }
  const auto window = memory_window(c);
  if (window.empty()) return Status::kOutOfBounds;
  const int fd = owner ? pes_[*owner].memory_fd.get() : global_memory_fd_.get();
  if (::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(c.offset),
                  static_cast<off_t>(c.size)) != 0) {
    std::memset(window.data(), 0, window.size());
  }
  return Status::kOk;
}

}  // namespace vdtu::dtu

#pragma once
// How the node's logic asks its event loop to watch file descriptors. The
// loop (node_loop.hpp) implements it with epoll; a fuzzer or a test that
// drives the logic directly can ignore the requests.

#include <cstdint>

namespace vdtu::dtu {

// What a watched fd stands for; the loop dispatches on it.
enum class EventKind : std::uint8_t {
  kControl = 1,   // a PE's control socket (index: PE)
  kExit,          // a PE's pidfd (index: PE)
  kMemory,        // the eventfd of a PE's memory request channel (index: the fd)
  kBridgeSocket,  // the bridge's UDP socket
  kBridgeEvent,   // the eventfd of a channel the bridge consumes (index: the fd)
  kLoop,          // the loop's own eventfd: tasks or stop
};

inline std::uint64_t event_tag(EventKind kind, std::uint32_t index) {
  return (std::uint64_t{static_cast<std::uint8_t>(kind)} << 32U) | index;
}
inline EventKind event_kind(std::uint64_t tag) { return static_cast<EventKind>(tag >> 32U); }
inline std::uint32_t event_index(std::uint64_t tag) { return static_cast<std::uint32_t>(tag); }

class EventWatcher {
 public:
  virtual ~EventWatcher() = default;
  // Watch `fd` for input (and, with `writable`, for room to write).
  virtual void watch(int fd, std::uint64_t tag, bool writable = false) = 0;
  virtual void unwatch(int fd) = 0;
};

// For logic driven without a loop.
class NoEventWatcher final : public EventWatcher {
 public:
  void watch(int /*fd*/, std::uint64_t /*tag*/, bool /*writable*/) override {}
  void unwatch(int /*fd*/) override {}
};

}  // namespace vdtu::dtu

// A hostile vhost-user guest against the switch's port: a frontend sets up
// both rings properly, then the fuzzer's bytes are a script of writes into
// guest memory (descriptor tables, available and used rings, buffers, at any
// offset) and forwarding rounds, in which the port takes frames from the
// transmit ring and puts them on the receive ring. The port must never touch
// memory outside the guest's regions, never hand out a frame outside
// [1, MTU + 18] bytes, and once it finds the guest broken it must stop
// reading the rings. Any crash or sanitizer report is a finding.
#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "net/vhost/vhost_user_port.hpp"
#include "support/vhost_frontend.hpp"

namespace {

using namespace vdtu;
using namespace vdtu::net;
using vdtu::testing::VhostFrontend;

constexpr std::uint32_t kMtu = 1500;

class Script {
 public:
  Script(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  [[nodiscard]] bool more() const { return at_ < size_; }
  std::uint8_t byte() { return at_ < size_ ? data_[at_++] : 0; }
  std::uint16_t word() { return static_cast<std::uint16_t>(byte() | (byte() << 8U)); }
  std::span<const std::uint8_t> bytes(std::size_t n) {
    n = std::min(n, size_ - at_);
    const auto s = std::span(data_ + at_, n);
    at_ += n;
    return s;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t at_ = 0;
};

// Where a write lands: a part of either ring, or the buffers.
std::size_t base_of(std::uint8_t target) {
  switch (target % 7) {
    case 0: return VhostFrontend::descriptor_offset(0);
    case 1: return VhostFrontend::available_offset(0);
    case 2: return VhostFrontend::used_offset(0);
    case 3: return VhostFrontend::descriptor_offset(1);
    case 4: return VhostFrontend::available_offset(1);
    case 5: return VhostFrontend::used_offset(1);
    default: return VhostFrontend::rx_buffer_offset(0);
  }
}

void round(vhost::VhostUserPort& port) {
  std::array<ReceivedFrame, 32> frames{};
  const auto n = port.receive_burst(frames);
  std::array<const ReceivedFrame*, 32> out{};
  for (std::uint32_t i = 0; i < n; ++i) {
    if (frames[i].length == 0 || frames[i].length > max_frame_bytes(kMtu)) std::abort();
    out[i] = &frames[i];
  }
  port.transmit_burst(std::span(out.data(), n));
  port.release_received();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::array<int, 2> pair{};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair.data()) != 0) return 0;
  Script script(data, size);
  VhostFrontend guest{UniqueFd(pair[0])};
  vhost::VhostUserPort port(UniqueFd(pair[1]), kMtu, "fuzz");
  // The features come from the script too (EVENT_IDX, MRG_RXBUF, VERSION_1).
  const auto choice = script.byte();
  std::uint64_t features = 0;
  if ((choice & 1U) != 0) features |= VhostFrontend::kEventIndex;
  if ((choice & 2U) != 0) features |= VhostFrontend::kMergeable;
  if ((choice & 4U) != 0) features |= VhostFrontend::kVersion1;
  guest.send(3, nullptr, 0);
  guest.send_u64(2, features);
  guest.set_mem_table();
  for (std::uint32_t q = 0; q < 2; ++q) {
    guest.send_pair(8, q, VhostFrontend::kEntries);
    guest.send_pair(10, q, 0);
    guest.set_addresses(q);
    guest.send_u64(12, q | 0x100U);  // polled: no kick fd
  }
  port.serve_control();
  if (!port.running()) std::abort();  // the honest start-up must work
  auto* memory = reinterpret_cast<std::byte*>(guest.user(0));
  while (script.more() && !port.failure()) {
    const auto op = script.byte();
    if (op < 0x20) {
      round(port);
      continue;
    }
    const auto offset = base_of(op) + script.word() % 0x1000;
    const auto bytes = script.bytes(script.byte());
    std::memcpy(memory + offset, bytes.data(),
                std::min<std::size_t>(bytes.size(), VhostFrontend::kMemoryBytes - offset));
  }
  if (!port.failure()) round(port);
  return 0;
}

// Feeds the kernel arbitrary syscall messages from three VPEs, interleaved
// with arbitrary service answers, VPE deaths and servers that take some of
// their queued calls, none, or refuse them. Any crash, leak or sanitizer
// report is a finding; afterwards the derivation tree must still be
// consistent (every child's parent exists and lists it).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "kernel/kernel.hpp"

namespace {

// The control plane as far as the kernel can tell: accepts everything.
class AcceptingEndpoints final : public vdtu::kernel::EndpointControl {
 public:
  vdtu::Status config_send(vdtu::PeId, vdtu::EpId, const vdtu::SendConfig&) override {
    return vdtu::Status::kOk;
  }
  vdtu::Status config_receive(vdtu::PeId, vdtu::EpId, const vdtu::ReceiveConfig&) override {
    return vdtu::Status::kOk;
  }
  vdtu::Status config_memory(vdtu::PeId, vdtu::EpId, const vdtu::MemoryConfig&) override {
    return vdtu::Status::kOk;
  }
  vdtu::Status invalidate(vdtu::PeId, vdtu::EpId) override { return vdtu::Status::kOk; }
  vdtu::Status clear_memory(vdtu::PeId, std::uint64_t, std::uint64_t) override { return vdtu::Status::kOk; }
  vdtu::Status launch(const std::vector<std::string>&, vdtu::PeId& pe) override {
    pe = next_pe_++;
    return vdtu::Status::kOk;
  }

 private:
  vdtu::PeId next_pe_ = 10;
};

// Also: the index finds every capability under its own id (an id used
// twice would find one of them for both).
void check_tree(const vdtu::kernel::Kernel& kernel, vdtu::VpeId vpes) {
  for (vdtu::VpeId v = 0; v < vpes; ++v) {
    for (vdtu::kif::Selector s = 0; s < 64; ++s) {
      const auto* cap = kernel.find(v, s);
      if (cap != nullptr && kernel.find(cap->id) != cap) std::abort();
      if (cap == nullptr || cap->parent.is_null()) continue;
      const auto* parent = kernel.find(cap->parent);
      if (parent == nullptr) std::abort();
      bool listed = false;
      for (auto c : parent->children) listed = listed || c == cap->id;
      if (!listed) std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  AcceptingEndpoints endpoints;
  vdtu::kernel::KernelConfig config;
  config.kernel_pe = 100;
  config.global_memory_bytes = 1 << 20;
  config.pe_memory_bytes = 1 << 16;
  config.max_queued_service_calls = 4;
  vdtu::kernel::Kernel kernel(config, endpoints);
  constexpr vdtu::VpeId kVpes = 3;
  for (vdtu::VpeId v = 0; v < kVpes; ++v) kernel.boot_vpe(v, v);
  kernel.grant_vpe(0, 1, 10);
  kernel.grant_vpe(1, 0, 10);
  std::uint64_t last_call = 0;
  const auto* end = data + size;
  while (end - data >= 2) {
    const std::uint8_t who = data[0];
    const std::size_t length = std::min<std::size_t>(data[1], static_cast<std::size_t>(end - data - 2));
    const auto message = std::as_bytes(std::span(data + 2, length));
    data += 2 + length;
    const auto vpe = static_cast<vdtu::VpeId>(who % kVpes);
    if (who >= 0xf8) {
      kernel.vpe_exited(vpe);
      continue;
    }
    if (who >= 0xd8 && who < 0xe0) {  // the servers take `room` calls, then say full or gone
      int room = message.empty() ? 0 : static_cast<int>(message[0]) % 8;
      const auto refusal = (who & 1U) != 0 ? vdtu::Status::kFull : vdtu::Status::kNotConfigured;
      kernel.pump_service_calls(
          [&](const vdtu::kernel::ServiceCall&) { return room-- > 0 ? vdtu::Status::kOk : refusal; });
      kernel.take_finished();
      continue;
    }
    if (who >= 0xe0 && last_call != 0) {
      vdtu::kif::ServiceReply answer{};
      std::memcpy(&answer, message.data(), std::min(message.size(), sizeof(answer)));
      kernel.service_reply(last_call - (who & 3U), answer);
      continue;
    }
    std::uint64_t deferred = 0;
    kernel.syscall(vpe, message, deferred);
    if (deferred != 0) last_call = deferred;
  }
  check_tree(kernel, kVpes);
  return 0;
}

// Drives a consumer (and a producer) against shared memory whose control block
// and slots are arbitrary bytes from the fuzzer. Any crash, hang or access
// outside the mapping is a finding.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "vdtu/channel.hpp"

namespace {

constexpr vdtu::ChannelGeometry kGeometry{8, 64};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static vdtu::SharedChannel channel = vdtu::SharedChannel::create(kGeometry);
  const std::size_t total = kGeometry.total_bytes();
  // Reuse one mapping (creating memfds per input is slow); overwrite all of it.
  vdtu::MappedRegion raw(channel.memfd(), total);
  std::memset(raw.data(), 0, total);
  if (size > 0) std::memcpy(raw.data(), data, size < total ? size : total);

  vdtu::Consumer consumer(channel);
  vdtu::Producer producer(channel);
  std::uint64_t sink = 0;
  std::array<vdtu::MessageView, 4> batch{};
  const std::uint8_t ops = size > 0 ? data[0] : 0;
  for (int round = 0; round < 16; ++round) {
    std::uint32_t got = 0;
    if (consumer.try_fetch_batch(batch, got) == vdtu::Status::kOk) {
      for (std::uint32_t i = 0; i < got; ++i) {
        for (auto b : batch[i].payload) sink += static_cast<std::uint8_t>(b);
      }
      consumer.ack((ops & 1U) != 0 ? got : 1);
    }
    if ((ops & 2U) != 0) producer.try_send({}, std::as_bytes(std::span(&sink, 1)));
    if ((ops & 4U) != 0) consumer.wait_readable(vdtu::WaitPolicy::poll_only(), std::chrono::microseconds(1));
  }
  return sink == 0xdeadbeef ? 1 : 0;
}

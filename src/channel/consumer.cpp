#include <unistd.h>

#include <atomic>
#include <cstring>

#include "channel_control.hpp"
#include "common/futex.hpp"
#include "spin_then_sleep.hpp"
#include "vdtu/channel.hpp"

namespace vdtu {

Consumer::Consumer(SharedChannel& channel) : channel_(&channel), geometry_(channel.geometry()) {
  tail_ = detail::load_consumer_index(channel);
  read_ = tail_;
}

Status Consumer::fail(std::string_view reason) {
  if (broken_reason_.empty()) {
    broken_reason_ = reason;
    channel_->terminate();
  }
  return Status::kBroken;
}

// The load of the sequence word pairs with the producer's publishing
// compare-and-swap: what it wrote into the slot before is visible now.
std::optional<Status> Consumer::readiness() {
  if (broken()) return Status::kBroken;
  const auto word = detail::load_sequence(*channel_, read_);
  switch (detail::classify(word, read_, geometry_.slot_count)) {
    case detail::SlotState::kMessage: return Status::kOk;
    case detail::SlotState::kEnd: return Status::kTerminated;
    case detail::SlotState::kFree: return end_if_terminated(word);
    case detail::SlotState::kCorrupt: break;
  }
  return fail("slot sequence outside the ring");
}

// The creator's mark can be wiped by a hostile producer; then the consumer
// marks the end itself, on the free slot it waits at. The same
// compare-and-swap as the producer's decides: if the producer publishes
// first, that message is delivered.
std::optional<Status> Consumer::end_if_terminated(std::uint32_t free_word) {
  if (detail::load_state(*channel_) != detail::as_raw(ChannelState::kTerminated)) {
    return std::nullopt;
  }
  std::atomic_ref<std::uint32_t> word(channel_->sequence(read_));
  if (word.compare_exchange_strong(free_word, free_word | detail::kEndOfStream, std::memory_order_seq_cst)) {
    return Status::kTerminated;
  }
  return std::nullopt;  // the slot changed: look again
}

Status Consumer::try_fetch(MessageView& out) {
  if (auto st = readiness(); st != Status::kOk) return st.value_or(Status::kEmpty);
  const std::byte* slot = channel_->slot(read_);
  std::memcpy(&out.header, slot, kHeaderSize);  // copy out, then validate
  if (out.header.length > geometry_.max_payload()) return fail("message length exceeds the slot");
  out.payload = {slot + kHeaderSize, out.header.length};
  ++read_;
  return Status::kOk;
}

Status Consumer::try_fetch_batch(std::span<MessageView> out, std::uint32_t& got) {
  got = 0;
  if (out.empty()) return Status::kInvalidArgument;
  Status st = Status::kOk;
  while (got < out.size()) {
    st = try_fetch(out[got]);
    if (st != Status::kOk) break;
    ++got;
  }
  return got > 0 ? Status::kOk : st;
}

// seq_cst, not just release: the store is the "publish" half of the producer's
// sleep protocol (see spin_then_sleep.hpp) before we look at producer_wait.
Status Consumer::ack(std::uint32_t count) {
  if (count > read_ - tail_) return Status::kInvalidArgument;
  if (count == 0) return Status::kOk;
  tail_ += count;
  auto& c = channel_->control();
  std::atomic_ref<std::uint32_t>(c.consumer_index).store(tail_, std::memory_order_seq_cst);
  if (detail::take_waiter(c.producer_wait) != detail::kAwake) detail::futex_wake_all(&c.producer_wait);
  return Status::kOk;
}

Status Consumer::wait_readable(WaitPolicy policy, std::chrono::nanoseconds timeout) {
  return detail::spin_then_sleep(policy, timeout, channel_->control().consumer_wait,
                                 [&] { return readiness(); });
}

std::uint32_t Consumer::available() {
  if (readiness() != Status::kOk) return 0;
  return detail::published_end(*channel_, read_) - read_;
}

bool Consumer::arm_event() {
  std::atomic_ref<std::uint32_t> word(channel_->control().consumer_wait);
  word.store(detail::kWaitingOnEvent, std::memory_order_seq_cst);
  if (readiness().has_value()) {
    word.store(detail::kAwake, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void Consumer::cancel_event() {
  std::atomic_ref<std::uint32_t>(channel_->control().consumer_wait)
      .store(detail::kAwake, std::memory_order_relaxed);
}

void Consumer::disarm_event() {
  std::atomic_ref<std::uint32_t>(channel_->control().consumer_wait)
      .store(detail::kAwake, std::memory_order_relaxed);
  std::uint64_t count = 0;
  [[maybe_unused]] auto n = ::read(channel_->eventfd(), &count, sizeof(count));
}

}  // namespace vdtu

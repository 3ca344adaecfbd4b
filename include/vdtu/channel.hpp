#pragma once
// Single-producer/single-consumer message channel in a sealed memfd, usable
// between processes. Every slot holds a gem5 DTU header and its payload.
//
// Roles: the *creator* (the trusted control plane) makes the channel and hands
// its fds to one Producer and one Consumer, possibly in other processes. Each
// class documents which role may call it. Neither side trusts the other: the
// geometry is kept privately, every index read from shared memory is checked,
// and a violation breaks the channel (Status::kBroken) instead of crashing.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "vdtu/mapped_region.hpp"
#include "vdtu/message_header.hpp"
#include "vdtu/status.hpp"
#include "vdtu/unique_fd.hpp"

namespace vdtu {

namespace detail {
struct ChannelControl;
}

struct ChannelGeometry {
  static constexpr std::uint32_t kMinSlotCount = 2;
  static constexpr std::uint32_t kMaxSlotCount = 1U << 16;
  static constexpr std::uint32_t kMinSlotSize = 32;  // header plus a few bytes
  static constexpr std::uint32_t kMaxSlotSize = 1U << 16;
  static constexpr std::size_t kMaxRingBytes = std::size_t{256} << 20;

  std::uint32_t slot_count = 4;  // the seL4 prototype's default geometry
  std::uint32_t slot_size = 512;

  // Why the geometry is unusable, or nothing when it is fine.
  [[nodiscard]] std::optional<std::string> problem() const;
  // Bytes of the shared mapping: control block plus slots (each slot is a
  // sequence word and slot_size bytes of message, rounded up to cache lines).
  [[nodiscard]] std::size_t total_bytes() const;
  [[nodiscard]] std::uint32_t max_payload() const { return slot_size - kHeaderSize; }
  bool operator==(const ChannelGeometry&) const = default;
};

enum class ChannelState : std::uint32_t { kConfigured = 1, kActive = 2, kTerminated = 3 };
std::string_view to_string(ChannelState s);

// How long a waiting side polls before it sleeps. Sleeping and waking costs
// tens of microseconds in a VM, so spinning for about that long first is cheap
// insurance (the classic 2-competitive spin-then-block rule).
struct WaitPolicy {
  std::chrono::nanoseconds spin{std::chrono::microseconds(50)};
  bool allow_sleep = true;

  static WaitPolicy poll_only() { return {std::chrono::nanoseconds::max(), false}; }
  static WaitPolicy sleep_at_once() { return {std::chrono::nanoseconds(0), true}; }
};

// A received message. `header` is a private copy (validated); `payload` points
// into the shared slot and stays valid until the message is acked. The peer can
// still change those bytes, so treat them as untrusted input.
struct MessageView {
  MessageHeader header{};
  std::span<const std::byte> payload;
};

struct OutgoingMessage {
  MessageHeader header{};  // header.length is taken from payload.size()
  std::span<const std::byte> payload;
};

// The mapping and fds of one channel. Created by the control plane; the
// producer and consumer sides each attach their own SharedChannel.
class SharedChannel {
 public:
  // Creator: a new channel in state kConfigured. Throws std::invalid_argument
  // for a bad geometry and std::system_error when the OS refuses.
  static SharedChannel create(ChannelGeometry geometry);
  // Peer: attach to fds received from the creator. The geometry comes from the
  // creator out of band; the shared copy must agree. `eventfd` may be empty.
  // Throws std::runtime_error with the reason when the memory does not match.
  static SharedChannel attach(UniqueFd memfd, UniqueFd eventfd, ChannelGeometry expected);

  SharedChannel(SharedChannel&&) noexcept = default;
  SharedChannel& operator=(SharedChannel&&) noexcept = default;
  SharedChannel(const SharedChannel&) = delete;
  SharedChannel& operator=(const SharedChannel&) = delete;
  ~SharedChannel() = default;

  [[nodiscard]] int memfd() const { return memfd_.get(); }
  [[nodiscard]] int eventfd() const { return eventfd_.get(); }
  [[nodiscard]] const ChannelGeometry& geometry() const { return geometry_; }
  // Any side. Reads the shared state, so a hostile peer may lie about it.
  [[nodiscard]] ChannelState state() const;
  // Messages published and not yet acked, as far as shared memory says.
  [[nodiscard]] std::uint32_t queued() const;

  // Creator: kConfigured -> kActive. Fails if the channel is not kConfigured.
  Status activate();
  // Creator (or a side that detected a violation): -> kTerminated, atomically
  // with respect to publishing, so no message can slip in after this returns.
  // Wakes every waiter. Already queued messages can still be drained.
  void terminate();

  [[nodiscard]] detail::ChannelControl& control() const;
  // The message (header, then payload) in the slot of `index`.
  [[nodiscard]] std::byte* slot(std::uint32_t index) const;
  // The sequence word that says whether that slot holds message `index`.
  [[nodiscard]] std::uint32_t& sequence(std::uint32_t index) const;

 private:
  SharedChannel(UniqueFd memfd, UniqueFd eventfd, MappedRegion region, ChannelGeometry geometry);
  [[nodiscard]] std::byte* slot_base(std::uint32_t index) const;
  bool mark_end_of_stream();
  void wake_all() const;

  UniqueFd memfd_;
  UniqueFd eventfd_;
  MappedRegion region_;
  ChannelGeometry geometry_;
};

// The producer side. Only one Producer may exist per channel across all
// processes; all of its methods must be called from one thread at a time.
class Producer {
 public:
  explicit Producer(SharedChannel& channel);

  // Copies one message into the next slot and publishes it.
  Status try_send(const MessageHeader& header, std::span<const std::byte> payload);
  // Like try_send, but waits for a free slot according to `policy`.
  Status send(const MessageHeader& header, std::span<const std::byte> payload, WaitPolicy policy = {},
              std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max());
  // Sends a prefix of `messages` with one publication; `sent` says how many.
  // Returns kOk if at least one was sent.
  Status try_send_batch(std::span<const OutgoingMessage> messages, std::uint32_t& sent);

  // Zero-copy: reserve up to `wanted` consecutive slots (at least one, or an
  // error), fill them through payload_area() and finish(), then publish().
  Status try_reserve(std::uint32_t wanted, std::uint32_t& granted);
  [[nodiscard]] std::span<std::byte> payload_area(std::uint32_t reserved_index) const;
  // Writes the header of a reserved slot; header.length is the payload size.
  Status finish(std::uint32_t reserved_index, const MessageHeader& header);
  // Publishes the first `count` reserved slots (all finish()ed) and wakes a
  // sleeping consumer. Unpublished reservations are released.
  Status publish(std::uint32_t count);

  // Waits until at least one slot is free (or terminated/broken/timeout).
  Status wait_writable(WaitPolicy policy = {},
                       std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max());

  [[nodiscard]] std::uint32_t max_payload() const { return geometry_.max_payload(); }
  [[nodiscard]] bool broken() const { return !broken_reason_.empty(); }
  [[nodiscard]] std::string_view broken_reason() const { return broken_reason_; }

 private:
  Status refresh_free_slots();
  void forget_unpublished_batch();
  Status fail(std::string_view reason);
  void wake_consumer();

  SharedChannel* channel_;
  ChannelGeometry geometry_;  // private copy: the shared one is not trusted
  std::uint32_t head_ = 0;    // next index to publish (private truth)
  std::uint32_t cached_tail_ = 0;
  std::uint32_t reserved_ = 0;
  std::string_view broken_reason_;
};

// The consumer side. Only one Consumer may exist per channel across all
// processes; all of its methods must be called from one thread at a time.
class Consumer {
 public:
  explicit Consumer(SharedChannel& channel);

  // Returns the next unfetched message without copying its payload. Fetched
  // messages stay in their slots until acked (in FIFO order).
  // kEmpty when nothing is queued, kTerminated when drained and terminated.
  Status try_fetch(MessageView& out);
  // Fetches up to out.size() messages; `got` says how many. kOk if got > 0.
  Status try_fetch_batch(std::span<MessageView> out, std::uint32_t& got);
  // Frees the `count` oldest fetched messages and wakes a waiting producer.
  Status ack(std::uint32_t count = 1);

  // Waits until a message can be fetched (or terminated/broken/timeout).
  Status wait_readable(WaitPolicy policy = {},
                       std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max());

  // Event-loop integration: arm the channel's eventfd. Returns false if a
  // message (or termination) is already there, so the caller must not sleep.
  // After the eventfd becomes readable, call disarm_event() and fetch.
  bool arm_event();
  void disarm_event();
  // Like disarm_event(), but leaves the eventfd alone: for a loop that reads
  // the eventfds that fired itself and has many channels armed.
  void cancel_event();

  [[nodiscard]] std::uint32_t fetched_unacked() const { return read_ - tail_; }
  // Messages published but not yet fetched (0 when the channel is broken).
  [[nodiscard]] std::uint32_t available();
  [[nodiscard]] bool broken() const { return !broken_reason_.empty(); }
  [[nodiscard]] std::string_view broken_reason() const { return broken_reason_; }

 private:
  // kOk when a message waits at read_, kTerminated at the end of the stream,
  // kBroken for a corrupt slot, nothing while the slot is free.
  std::optional<Status> readiness();
  std::optional<Status> end_if_terminated(std::uint32_t free_word);
  Status fail(std::string_view reason);

  SharedChannel* channel_;
  ChannelGeometry geometry_;
  std::uint32_t tail_ = 0;  // oldest unacked (private truth)
  std::uint32_t read_ = 0;  // next to fetch
  std::string_view broken_reason_;
};

}  // namespace vdtu

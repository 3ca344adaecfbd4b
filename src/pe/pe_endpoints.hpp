#pragma once
// What a PE's DTU library keeps per endpoint. Everything here was handed over
// by the node; the trusted facts about a sender (its id, endpoint, VPE, label)
// are the node's, never bytes from the channel.

#include <array>
#include <memory>
#include <variant>
#include <vector>

#include "protocol/control_messages.hpp"
#include "protocol/doorbell.hpp"
#include "vdtu/channel.hpp"

namespace vdtu::dtu {

struct SendEndpoint {
  std::unique_ptr<SharedChannel> channel;
  std::unique_ptr<Producer> producer;
  Doorbell target_doorbell;
  std::uint16_t index_at_target = 0;
  SendConfig config{};
  std::uint64_t sent = 0;              // requests sent that expect a reply
  std::uint32_t reply_channel_id = 0;  // our inbound channel that carries the replies
};

// Per fetched-but-unfinished message of an inbound channel.
enum SlotFlags : std::uint8_t { kFetched = 1, kReplied = 2, kAcked = 4 };

struct InboundChannel {
  InboundChannel(SharedChannel ch, const NodeMessage& m)
      : channel(std::move(ch)),
        consumer(channel),
        sender_pe(m.sender_pe),
        sender_ep(m.sender_ep),
        sender_vpe(m.sender_vpe),
        label(m.label),
        sender_reply_ep(m.sender_reply_ep),
        reply_for_send_ep(m.reply_for_send_ep),
        flags(m.slot_count, 0),
        replylabels(m.slot_count, 0) {}

  SharedChannel channel;
  Consumer consumer;
  std::uint32_t id = 0;  // unique within this PE, names the channel in ReceivedMessage
  PeId sender_pe;
  EpId sender_ep;
  VpeId sender_vpe;
  std::uint64_t label;
  EpId sender_reply_ep;    // kNoReplyEp: messages are not reply-enabled
  EpId reply_for_send_ep;  // != kNoReplyEp: this channel carries replies
  std::unique_ptr<SharedChannel> reply_channel;
  std::unique_ptr<Producer> reply_producer;
  Doorbell reply_doorbell;
  std::uint16_t reply_index = 0;
  std::uint32_t tail = 0;  // oldest unfinished sequence
  std::uint32_t read = 0;  // next sequence to fetch
  std::vector<std::uint8_t> flags;
  std::vector<std::uint64_t> replylabels;
  // Reply channels only: labels of requests still waiting for their reply. Kept
  // here, not at the send endpoint, so replies that arrived before the
  // endpoint was invalidated (the server answered, then exited) still count.
  std::vector<std::uint64_t> expected_replies;
  bool gone = false;  // the node removed it: drain, then drop
  bool dead = false;  // the sender broke the protocol

  [[nodiscard]] std::uint32_t mask() const { return static_cast<std::uint32_t>(flags.size() - 1); }
  [[nodiscard]] bool in_window(std::uint32_t seq) const { return seq - tail < read - tail; }
};

struct ReceiveEndpoint {
  std::uint32_t slot_count = 0;
  std::uint32_t slot_size = 0;
  std::vector<std::unique_ptr<InboundChannel>> channels{kChannelsPerEndpoint};
  std::array<std::uint64_t, kPendingWords> pending{};  // private copy of the doorbell bits
  std::uint32_t cursor = 0;                            // round robin between senders
};

struct MemoryEndpoint {
  MemoryConfig config{};
};

using Endpoint = std::variant<std::monostate, SendEndpoint, ReceiveEndpoint, MemoryEndpoint>;

}  // namespace vdtu::dtu

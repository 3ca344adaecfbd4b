#include "reliable_link.hpp"

#include <algorithm>
#include <cstring>

namespace vdtu::bridge {

ReliableLink::ReliableLink(LinkConfig config)
    : config_(config), peer_window_(config.window), retransmit_after_(config.retransmit_after) {}

std::uint16_t ReliableLink::free_receive_slots() const {
  const auto used = early_.size() + ready_.size();
  return static_cast<std::uint16_t>(
      used >= config_.window ? 0 : std::min<std::size_t>(config_.window - used, 0xffff));
}

std::vector<std::byte> ReliableLink::frame(FrameType type, std::uint64_t seq,
                                           std::span<const std::byte> payload) const {
  FrameHeader h{};
  h.magic = kFrameMagic;
  h.version = kFrameVersion;
  h.type = type;
  h.src_node = config_.self;
  h.dst_node = config_.peer;
  h.window = free_receive_slots();
  h.length = static_cast<std::uint32_t>(payload.size());
  h.session = config_.session;
  h.seq = seq;
  h.ack = expected_;
  std::vector<std::byte> out(sizeof(h) + payload.size());
  std::memcpy(out.data(), &h, sizeof(h));
  if (!payload.empty()) std::memcpy(out.data() + sizeof(h), payload.data(), payload.size());
  return out;
}

Status ReliableLink::send(std::span<const std::byte> message) {
  if (message.size() > kMaxFramePayload) return Status::kTooLarge;
  if (!can_send()) return Status::kFull;
  in_flight_.push_back({next_seq_, frame(FrameType::kData, next_seq_, message), {}, false, false});
  ++next_seq_;
  return Status::kOk;
}

void ReliableLink::sample_rtt(const Outgoing& retired, Clock::time_point now) {
  if (!retired.sent || retired.resent || now < retired.last_sent) return;
  const auto sample = std::chrono::duration_cast<std::chrono::microseconds>(now - retired.last_sent);
  stats_.rtt_last = sample;
  stats_.rtt_smoothed = stats_.rtt_samples == 0 ? sample : (7 * stats_.rtt_smoothed + sample) / 8;
  ++stats_.rtt_samples;
}

ReliableLink::Received ReliableLink::on_datagram(std::span<const std::byte> datagram, Clock::time_point now) {
  FrameHeader h{};
  if (datagram.size() < sizeof(h)) {
    ++stats_.malformed;
    return Received::kRejected;
  }
  std::memcpy(&h, datagram.data(), sizeof(h));  // copy out, then validate
  const bool addressed = h.src_node == config_.peer && h.dst_node == config_.self;
  const bool known_type = h.type == FrameType::kData || h.type == FrameType::kAck;
  if (h.magic != kFrameMagic || h.version != kFrameVersion || !known_type || !addressed ||
      h.length != datagram.size() - sizeof(h) || h.length > kMaxFramePayload ||
      (h.type == FrameType::kAck && h.length != 0)) {
    ++stats_.malformed;
    return Received::kRejected;
  }
  if (peer_session_ == 0) peer_session_ = h.session;
  if (h.session != peer_session_) {
    ++stats_.stale;
    return Received::kRejected;
  }
  // The peer's cumulative ack retires our frames below it. An ack beyond what
  // we ever sent is a lie: ignore the frame.
  if (h.ack > next_seq_) {
    ++stats_.malformed;
    return Received::kRejected;
  }
  const bool retires = !in_flight_.empty() && in_flight_.front().seq < h.ack;
  if (retires) retransmit_after_ = config_.retransmit_after;
  // One sample per acknowledgement (the newest frame it retires): a
  // cumulative ack of many frames says little about the older ones' trip.
  const Outgoing* newest = nullptr;
  for (const auto& out : in_flight_) {
    if (out.seq >= h.ack) break;
    newest = &out;
  }
  if (newest != nullptr) sample_rtt(*newest, now);
  while (!in_flight_.empty() && in_flight_.front().seq < h.ack) in_flight_.pop_front();
  peer_window_ = std::max<std::uint32_t>(h.window, 1);  // one probe may always go, or we could deadlock
  const auto old = retires ? Received::kNews : Received::kNothing;
  if (h.type != FrameType::kData) return old;
  // Every data frame is acknowledged, duplicates too (the ack may have been
  // lost): those at once, since the peer is already resending.
  if (!ack_due_) ack_due_since_ = now;
  ack_due_ = true;
  if (h.seq < expected_ || early_.count(h.seq) != 0) {
    ++stats_.duplicates;
    ack_due_since_ = {};
    return old;
  }
  if (h.seq >= expected_ + config_.window || free_receive_slots() == 0) {
    ++stats_.beyond_window;
    ack_due_since_ = {};
    return old;
  }
  auto payload = datagram.subspan(sizeof(h));
  if (h.seq != expected_) ++stats_.out_of_order;
  early_.emplace(h.seq, std::vector<std::byte>(payload.begin(), payload.end()));
  for (auto it = early_.find(expected_); it != early_.end(); it = early_.find(expected_)) {
    ready_.push_back(std::move(it->second));
    early_.erase(it);
    ++expected_;
  }
  return Received::kNews;
}

void ReliableLink::poll(Clock::time_point now, const Transmit& transmit) {
  bool resent = false;
  for (auto& out : in_flight_) {
    if (out.sent && now - out.last_sent < retransmit_after_) continue;
    // Refresh ack and window in the stored header, so a resend tells the news.
    FrameHeader h{};
    std::memcpy(&h, out.datagram.data(), sizeof(h));
    h.ack = expected_;
    h.window = free_receive_slots();
    std::memcpy(out.datagram.data(), &h, sizeof(h));
    if (out.sent) {
      ++stats_.retransmissions;
      resent = true;
      out.resent = true;
    } else {
      ++stats_.sent;
    }
    out.sent = true;
    out.last_sent = now;
    transmit(out.datagram);
    ack_due_ = false;  // the data frame carried the ack
  }
  if (resent) retransmit_after_ = std::min(2 * retransmit_after_, config_.max_retransmit_after);
  if (config_.ack_delay.count() == 0 || now - ack_due_since_ >= config_.ack_delay) flush_ack(transmit);
}

void ReliableLink::flush_ack(const Transmit& transmit) {
  if (!ack_due_) return;
  transmit(frame(FrameType::kAck, 0, {}));
  ack_due_ = false;
}

bool ReliableLink::receive(std::vector<std::byte>& message) {
  if (ready_.empty()) return false;
  const bool was_closed = free_receive_slots() == 0;
  message = std::move(ready_.front());
  ready_.pop_front();
  ++stats_.delivered;
  if (was_closed) {  // tell the peer the window reopened, at once
    ack_due_ = true;
    ack_due_since_ = {};
  }
  return true;
}

}  // namespace vdtu::bridge

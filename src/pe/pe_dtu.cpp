// The PE side of the virtual DTU.
#include <fmt/core.h>
#include <poll.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include "channel/spin_then_sleep.hpp"
#include "common/process_hardening.hpp"
#include "common/spin_budget.hpp"
#include "pe_endpoints.hpp"
#include "protocol/fd_socket.hpp"
#include "protocol/pe_page.hpp"
#include "vdtu/dtu.hpp"

namespace vdtu {

using namespace dtu;

namespace {

constexpr auto kMemorySpin = std::chrono::microseconds(500);
constexpr auto kMemoryPatience = std::chrono::seconds(5);
constexpr std::size_t kMaxOutstandingLabels = 4096;
// How long a kernel sleeps for its answer before it checks that the node is
// still there (a node answers within microseconds unless it is gone).
constexpr auto kAnswerPatience = std::chrono::milliseconds(10);
// Announced updates follow at once; a PE whose socket was full waits for the
// node's next round. Both are far shorter than these.
constexpr auto kCatchUpSpin = std::chrono::microseconds(20);
constexpr auto kCatchUpPatience = std::chrono::seconds(5);

template <class T>
T* as(Endpoint& e) {
  return std::get_if<T>(&e);
}

}  // namespace

class Dtu::Impl {
 public:
  explicit Impl(UniqueFd socket) : socket_(std::move(socket)) { receive_hello(); }

  PeId pe_ = 0;
  VpeId vpe_ = 0;
  bool privileged_ = false;
  std::uint32_t endpoints_ = 0;
  DtuStats stats_;
  MappedRegion memory_;

  void publish(const PublishedCounts& counts) {
    if (page_.valid()) page_.publish(counts);
  }

  // ---- updates ------------------------------------------------------------
  // The node moves the epoch by the number of messages it is about to send
  // us before it sends them (so that a kernel can read its answer first):
  // once the epoch moved, we read the socket until we have them all.
  void refresh() {
    const auto epoch = page_.config_epoch();
    if (epoch == seen_epoch_) return;
    catch_up(epoch);
    seen_epoch_ = epoch;
    std::erase_if(retired_, [&](const std::unique_ptr<InboundChannel>& ch) {
      if (ch->tail != ch->read) return false;
      channels_by_id_.erase(ch->id);
      return true;
    });
  }

  // The messages follow their announcement within microseconds (or, when
  // our socket was full, as soon as we made room): poll briefly, then wait
  // in poll(). A node that never sends them is a bug; after kCatchUpPatience
  // we say so and go on rather than hang. The count stays as it is: messages
  // that come late still settle it, so later looks wait for what is theirs.
  void catch_up(std::uint32_t epoch) {
    const auto behind = [&] { return static_cast<std::int32_t>(epoch - received_) > 0; };
    const auto start = std::chrono::steady_clock::now();
    detail::Spinner spinner;
    for (;;) {
      drain(false, 0, nullptr);
      if (!behind() || node_closed_) return;
      const auto waited = std::chrono::steady_clock::now() - start;
      if (waited > kCatchUpPatience) {
        fmt::print(stderr,
                   "vdtu PE {}: {} announced endpoint updates did not arrive; going on without them\n", pe_,
                   epoch - received_);
        ++stats_.lost_updates;
        return;
      }
      if (waited < kCatchUpSpin) {
        spinner.pause();
      } else {
        pollfd readable{socket_.get(), POLLIN, 0};
        (void)::poll(&readable, 1, 10);
      }
    }
  }

  // Reads node messages; with `blocking`, until the reply to `request_id`.
  void drain(bool blocking, std::uint64_t request_id, Status* reply, PeId* reply_pe = nullptr) {
    std::array<std::byte, sizeof(NodeMessage) + 64> buffer{};
    std::vector<UniqueFd> fds;
    for (;;) {
      std::size_t n = 0;
      const auto result = recv_with_fds(socket_.get(), buffer, n, fds, blocking);
      if (result == RecvResult::kWouldBlock) return;
      if (result != RecvResult::kClosed) ++received_;  // every message the node sent counts, even a bad one
      if (result == RecvResult::kClosed) {
        node_closed_ = true;
        if (reply != nullptr) *reply = Status::kPeerGone;
        return;
      }
      NodeMessage m{};
      if ((result != RecvResult::kMessage && result != RecvResult::kFdsLost) || n != sizeof(m)) continue;
      std::memcpy(&m, buffer.data(), sizeof(m));
      if (m.magic != kControlMagic) continue;
      if (result == RecvResult::kFdsLost) {
        lose_update(m);
        continue;
      }
      if (m.kind == NodeMessageKind::kReply) {
        if (reply != nullptr && m.request_id == request_id) {
          *reply = m.status;
          if (reply_pe != nullptr) *reply_pe = m.pe;
          return;
        }
        continue;
      }
      try {
        apply(m, fds);
      } catch (const std::exception& e) {
        fmt::print(stderr, "vdtu PE {}: bad endpoint update: {}\n", pe_, e.what());
      }
    }
  }

  // The node moves our epoch when it has taken the request and is about to
  // send the answer, so polling for that costs no system call and the
  // blocking read after it is short; the spin budget stops the polling when
  // it keeps losing to a node that has no CPU (it used to make configuration
  // 3x slower when it polled the socket itself).
  Status control(ControlRequest request, PeId* reply_pe = nullptr) {
    request.request_id = next_request_id_++;
    if (privileged_) return control_through_mailbox(request, reply_pe);
    const auto epoch = page_.config_epoch();
    if (!send_with_fds(socket_.get(), std::as_bytes(std::span(&request, 1)), {})) return Status::kPeerGone;
    poll_within_budget(Dtu::kDefaultSpin, [&] { return page_.config_epoch() != epoch; });
    Status reply = Status::kPeerGone;
    drain(true, request.request_id, &reply, reply_pe);
    return reply;
  }

  // A kernel's requests go through the mailbox in its private page: no
  // system call while the node polls. The updates the request caused for
  // this PE are in its socket before the answer, and the epoch moved.
  Status control_through_mailbox(const ControlRequest& request, PeId* reply_pe) {
    auto id = static_cast<std::uint32_t>(request.request_id);
    if (id == 0) id = static_cast<std::uint32_t>(next_request_id_++);  // 0 means "nothing posted"
    if (page_.post_request(request, id) && !kick_node()) return Status::kPeerGone;
    const auto answered = [&] { return page_.answer().id == id; };
    if (!poll_within_budget(Dtu::kDefaultSpin, answered)) {
      while (!answered()) {
        page_.sleep_for_answer(id, kAnswerPatience);
        if (!answered() && node_gone()) return Status::kPeerGone;
      }
    }
    const auto answer = page_.answer();
    refresh();
    if (reply_pe != nullptr) *reply_pe = answer.pe;
    return answer.status;
  }

  bool kick_node() {
    const auto kick = kMailboxKick;
    return send_with_fds(socket_.get(), std::as_bytes(std::span(&kick, 1)), {}) || errno == EAGAIN;
  }

  // Applies what the socket holds; true if the node closed it.
  bool node_gone() {
    drain(false, 0, nullptr);
    return node_closed_;
  }

  // Every wait's polling phase: polls `done` for the budget's share of
  // `full` and tells the budget whether polling paid off. A zero window (a
  // caller that asked for no polling) says nothing about the peers.
  template <class Done>
  bool poll_within_budget(std::chrono::nanoseconds full, Done done) {
    const auto start = std::chrono::steady_clock::now();
    const auto window = spin_budget_.window(full);
    if (window <= std::chrono::nanoseconds::zero()) return false;
    detail::Spinner spinner;
    while (std::chrono::steady_clock::now() - start < window) {
      spinner.pause();
      if (done()) {
        spin_budget_.paid_off();
        return true;
      }
    }
    spin_budget_.wasted();
    return false;
  }

  // ---- messages -----------------------------------------------------------
  Status send(EpId ep, std::span<const std::byte> payload, std::uint64_t replylabel, SendMode mode,
              std::chrono::nanoseconds timeout) {
    const auto deadline = detail::deadline_after(timeout);
    for (;;) {
      refresh();
      if (ep >= endpoints_) return Status::kInvalidArgument;
      auto* se = as<SendEndpoint>(eps_[ep]);
      if (se == nullptr) return gone_reason_[ep];
      if (payload.size() > se->config.max_msg_size) return Status::kTooLarge;
      Status st = credits(ep) == 0 ? Status::kNoCredits : try_send(ep, *se, payload, replylabel);
      if (st == Status::kOk) return st;
      if (st == Status::kTerminated) {
        refresh();
        return as<SendEndpoint>(eps_[ep]) == nullptr ? gone_reason_[ep] : st;
      }
      if ((st != Status::kNoCredits && st != Status::kFull) || mode == SendMode::kFail) return st;
      if (std::chrono::steady_clock::now() >= deadline) return Status::kTimeout;
      pause_for_progress(ep);
    }
  }

  Status try_send(EpId ep, SendEndpoint& se, std::span<const std::byte> payload, std::uint64_t replylabel) {
    const bool replies = se.config.reply_ep != kNoReplyEp;
    MessageHeader h{};  // the receiver's DTU overwrites the identity fields
    h.flags = replies ? kFlagReplyEnabled : 0;
    h.sender_core_id = pe_;
    h.sender_ep_id = ep;
    h.reply_ep_id = replies ? se.config.reply_ep : 0;
    h.sender_vpe_id = vpe_;
    h.replylabel = replylabel;
    const auto st = se.producer->try_send(h, payload);
    if (st != Status::kOk) return st;
    ++se.sent;
    if (auto it = channels_by_id_.find(se.reply_channel_id); replies && it != channels_by_id_.end()) {
      auto& expected = it->second->expected_replies;
      if (expected.size() == kMaxOutstandingLabels) expected.erase(expected.begin());
      expected.push_back(replylabel);
    }
    se.target_doorbell.ring(se.config.target_ep, se.index_at_target);
    return Status::kOk;
  }

  // Waiting for credits (a reply rings our doorbell) or room (an ack).
  void pause_for_progress(EpId ep) {
    if (poll_within_budget(Dtu::kDefaultSpin, [&] { return credits(ep) > 0; })) return;
    sleep({SleepingFor::kMessages, 0}, std::chrono::milliseconds(1), [&] { return credits(ep) == 0; });
  }

  // Every sleep on the doorbell says in the private page what would end it,
  // so that the node wakes us only for that (see pe_page.hpp).
  template <class StillIdle>
  void sleep(Sleeper sleeper, std::chrono::nanoseconds timeout, StillIdle still_idle) {
    page_.announce_sleep(sleeper);
    doorbell_.sleep(timeout, still_idle);
    page_.announce_sleep({});
  }

  std::uint32_t credits(EpId ep) {
    if (ep >= endpoints_) return 0;
    auto* se = as<SendEndpoint>(eps_[ep]);
    if (se == nullptr) return 0;
    const auto limit = se->config.credits;
    if (limit == kCreditsUnlimited) return kCreditsUnlimited;
    // A credit comes back when its reply's slot is free again (the reply was
    // acked): a reply channel has as many slots as there are credits, so
    // replies that arrived but were not taken must keep holding theirs.
    std::uint64_t freed = 0;
    if (auto it = channels_by_id_.find(se->reply_channel_id); it != channels_by_id_.end()) {
      freed = it->second->tail;
    }
    const auto in_flight = se->sent - std::min<std::uint64_t>(freed, se->sent);
    return in_flight >= limit ? 0 : static_cast<std::uint32_t>(limit - in_flight);
  }

  Status fetch(EpId ep, ReceivedMessage& out) {
    refresh();
    if (ep >= endpoints_) return Status::kInvalidArgument;
    auto* recv = as<ReceiveEndpoint>(eps_[ep]);
    if (recv == nullptr) return gone_reason_[ep];
    doorbell_.take_pending(ep, recv->pending);
    for (std::uint32_t i = 0; i < kChannelsPerEndpoint;) {
      std::uint32_t c = (recv->cursor + i) % kChannelsPerEndpoint;
      const std::uint64_t word = recv->pending[c / 64] >> (c % 64);
      if (word == 0) {
        i += 64 - c % 64;
        continue;
      }
      i += static_cast<std::uint32_t>(__builtin_ctzll(word));
      if (i >= kChannelsPerEndpoint) break;
      c = (recv->cursor + i) % kChannelsPerEndpoint;
      ++i;
      auto* ch = recv->channels[c].get();
      if (ch != nullptr && !ch->dead && fetch_from(*ch, ep, out) == Status::kOk) {
        recv->cursor = (c + 1) % kChannelsPerEndpoint;
        return Status::kOk;
      }
      recv->pending[c / 64] &= ~(std::uint64_t{1} << (c % 64));
    }
    return Status::kEmpty;
  }

  Status fetch_from(InboundChannel& ch, EpId ep, ReceivedMessage& out) {
    for (;;) {
      MessageView m;
      const auto st = ch.consumer.try_fetch(m);
      if (st == Status::kBroken) {
        ch.dead = true;
        ++stats_.broken_channels;
        fmt::print(stderr, "vdtu PE {}: sender PE {} broke its channel: {}\n", pe_, ch.sender_pe,
                   ch.consumer.broken_reason());
      }
      if (st != Status::kOk) return st;
      const std::uint32_t seq = ch.read++;
      ch.flags[seq & ch.mask()] = kFetched;
      ch.replylabels[seq & ch.mask()] = m.header.replylabel;
      out.header = m.header;
      out.payload = m.payload;
      out.ep = ep;
      out.channel_id = ch.id;
      out.sequence = seq;
      out.header.sender_core_id = ch.sender_pe;
      out.header.sender_ep_id = ch.sender_ep;
      out.header.sender_vpe_id = ch.sender_vpe;
      if (ch.reply_for_send_ep == kNoReplyEp) {
        const bool replies = ch.sender_reply_ep != kNoReplyEp;
        out.header.flags = replies ? kFlagReplyEnabled : 0;
        out.header.reply_ep_id = replies ? ch.sender_reply_ep : 0;
        out.header.label = ch.label;
        return Status::kOk;
      }
      if (accept_reply(ch, m.header.label)) {
        out.header.flags = kFlagReply | kFlagGrantCredits;
        out.header.reply_ep_id = 0;
        out.header.replylabel = 0;
        return Status::kOk;
      }
      ++stats_.forged_replies_dropped;  // no request of ours carries that label
      finish(ch, seq);
    }
  }

  static bool accept_reply(InboundChannel& ch, std::uint64_t label) {
    auto it = std::find(ch.expected_replies.begin(), ch.expected_replies.end(), label);
    if (it == ch.expected_replies.end()) return false;
    ch.expected_replies.erase(it);
    return true;
  }

  InboundChannel* find_unfinished(const ReceivedMessage& m) {
    auto it = channels_by_id_.find(m.channel_id);
    if (it == channels_by_id_.end()) return nullptr;
    auto* ch = it->second;
    if (!ch->in_window(m.sequence) || (ch->flags[m.sequence & ch->mask()] & (kReplied | kAcked)) != 0)
      return nullptr;
    return ch;
  }

  void finish(InboundChannel& ch, std::uint32_t seq) {
    ch.flags[seq & ch.mask()] |= kAcked;
    std::uint32_t freed = 0;
    while (ch.tail != ch.read && (ch.flags[ch.tail & ch.mask()] & kAcked) != 0) {
      ch.flags[ch.tail & ch.mask()] = 0;
      ++ch.tail;
      ++freed;
    }
    if (freed > 0) ch.consumer.ack(freed);
  }

  Status ack(const ReceivedMessage& m) {
    auto* ch = find_unfinished(m);
    if (ch == nullptr) return Status::kInvalidArgument;
    finish(*ch, m.sequence);
    return Status::kOk;
  }

  Status reply(const ReceivedMessage& m, std::span<const std::byte> payload) {
    auto* ch = find_unfinished(m);
    if (ch == nullptr || ch->sender_reply_ep == kNoReplyEp || !ch->reply_producer)
      return Status::kReplyFailed;
    if (payload.size() > ch->reply_producer->max_payload()) return Status::kTooLarge;
    MessageHeader h{};
    h.flags = kFlagReply | kFlagGrantCredits;
    h.sender_core_id = pe_;
    h.sender_ep_id = m.ep;
    h.sender_vpe_id = vpe_;
    h.label = ch->replylabels[m.sequence & ch->mask()];  // our record, not the caller's copy
    const auto st = ch->reply_producer->try_send(h, payload);
    if (st == Status::kTerminated) return Status::kPeerGone;
    if (st != Status::kOk) return st;
    ch->reply_doorbell.ring(ch->sender_reply_ep, ch->reply_index);
    ch->flags[m.sequence & ch->mask()] |= kReplied;
    finish(*ch, m.sequence);
    return Status::kOk;
  }

  // Private hints (channels that had more, or are new) count only if their
  // channel really holds a message; stale hints are dropped here, so a PE that
  // waits without fetching does not spin on them forever.
  bool private_pending_nonempty() {
    bool found = false;
    for (auto& e : eps_) {
      auto* r = std::get_if<ReceiveEndpoint>(&e);
      if (r == nullptr) continue;
      for (std::uint32_t w = 0; w < kPendingWords; ++w) {
        for (std::uint64_t bits = r->pending[w]; bits != 0; bits &= bits - 1) {
          const auto c = w * 64 + static_cast<std::uint32_t>(__builtin_ctzll(bits));
          auto* ch = r->channels[c].get();
          if (ch != nullptr && !ch->dead && ch->consumer.available() > 0) {
            found = true;
          } else {
            r->pending[w] &= ~(std::uint64_t{1} << (c % 64));
          }
        }
      }
    }
    return found;
  }

  // The fallback against senders that clear others' doorbell bits: look at
  // every channel once per kRescanInterval of sleep.
  bool rescan() {
    bool found = false;
    for (auto& e : eps_) {
      if (auto* r = std::get_if<ReceiveEndpoint>(&e)) {
        for (std::uint32_t c = 0; c < kChannelsPerEndpoint; ++c) {
          auto* ch = r->channels[c].get();
          if (ch != nullptr && !ch->dead && ch->consumer.available() > 0) {
            r->pending[c / 64] |= std::uint64_t{1} << (c % 64);
            found = true;
          }
        }
      }
    }
    return found;
  }

  Status wait(std::chrono::nanoseconds timeout, std::chrono::nanoseconds spin) {
    const auto deadline = detail::deadline_after(timeout);
    if (private_pending_nonempty()) return Status::kOk;
    std::uint64_t receive_mask = 0;  // only receive endpoints can have pending bits worth a look
    for (std::uint32_t e = 0; e < eps_.size() && e < 64; ++e) {
      if (std::holds_alternative<ReceiveEndpoint>(eps_[e])) receive_mask |= std::uint64_t{1} << e;
    }
    // Updates are applied here, not just noticed: a PE that only waits would
    // otherwise see the same moved epoch forever and never sleep.
    auto ready = [&] {
      if (page_.config_epoch() != seen_epoch_) {
        refresh();
        return true;
      }
      return doorbell_.anything_pending(receive_mask);
    };
    if (ready() || poll_within_budget(spin, ready)) return Status::kOk;
    std::chrono::nanoseconds interval = kRescanInterval;
    for (;;) {
      const auto now = std::chrono::steady_clock::now();
      if (ready()) return Status::kOk;
      if (now >= deadline) return Status::kTimeout;
      const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now);
      sleep({SleepingFor::kMessages, 0}, std::min(left, interval), [&] { return !ready(); });
      if (!ready() && rescan()) return Status::kOk;
      interval = std::min<std::chrono::nanoseconds>(2 * interval, kMaxRescanInterval);
    }
  }

  Status receive(EpId ep, ReceivedMessage& out, std::chrono::nanoseconds timeout) {
    const auto deadline = detail::deadline_after(timeout);
    for (;;) {
      const auto st = fetch(ep, out);
      if (st != Status::kEmpty) return st;
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds::zero()) return Status::kTimeout;
      if (wait(std::chrono::duration_cast<std::chrono::nanoseconds>(left), Dtu::kDefaultSpin) ==
          Status::kTimeout) {
        return Status::kTimeout;
      }
    }
  }

  Status wait_for_endpoint(EpId ep, EndpointKind kind, std::chrono::nanoseconds timeout) {
    const auto deadline = detail::deadline_after(timeout);
    for (;;) {
      refresh();
      if (ep >= endpoints_) return Status::kInvalidArgument;
      if (kind_of(ep) == kind) return Status::kOk;
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return Status::kTimeout;
      // The node wakes a PE that sleeps for an endpoint after every update:
      // the bound on the sleep only guards against a wake-up lost to a bug.
      sleep({SleepingFor::kEndpoint, ep},
            std::min<std::chrono::nanoseconds>(deadline - now, kMaxRescanInterval),
            [&] { return page_.config_epoch() == seen_epoch_; });
    }
  }

  EndpointKind kind_of(EpId ep) {
    if (ep >= endpoints_) return EndpointKind::kInvalid;
    static constexpr std::array kKinds{EndpointKind::kInvalid, EndpointKind::kSend, EndpointKind::kReceive,
                                       EndpointKind::kMemory};
    return kKinds[eps_[ep].index()];
  }

  // ---- memory -------------------------------------------------------------
  Status memory_op(MemoryOp op, EpId ep, std::uint64_t offset, std::span<std::byte> into,
                   std::span<const std::byte> from) {
    refresh();
    if (ep >= endpoints_) return Status::kInvalidArgument;
    if (as<MemoryEndpoint>(eps_[ep]) == nullptr) return gone_reason_[ep];
    const std::size_t total = op == MemoryOp::kRead ? into.size() : from.size();
    const std::size_t chunk = memory_tx_->max_payload() - sizeof(MemoryRequest) - 1;
    for (std::size_t done = 0; done < total || total == 0;) {
      const auto n = static_cast<std::uint32_t>(std::min(chunk, total - done));
      const MemoryRequest r{op, ep, n, offset + done};
      std::uint32_t granted = 0;
      if (auto st = memory_tx_->try_reserve(1, granted); st != Status::kOk) return st;
      auto area = memory_tx_->payload_area(0);
      std::memcpy(area.data(), &r, sizeof(r));
      if (op == MemoryOp::kWrite && n > 0) std::memcpy(area.data() + sizeof(r), from.data() + done, n);
      MessageHeader h{};
      h.replylabel = ++memory_request_id_;
      h.length = static_cast<std::uint16_t>(sizeof(r) + (op == MemoryOp::kWrite ? n : 0));
      memory_tx_->finish(0, h);
      if (auto st = memory_tx_->publish(1); st != Status::kOk) return st;
      MessageView m;
      if (auto st = await_memory_answer(m); st != Status::kOk) return st;
      const auto st = static_cast<Status>(m.payload[0]);
      if (st == Status::kOk && op == MemoryOp::kRead) {
        if (m.payload.size() != n + 1U) return Status::kBroken;
        if (n > 0) std::memcpy(into.data() + done, m.payload.data() + 1, n);
      }
      memory_rx_->ack();
      if (st != Status::kOk) return st;
      done += n;
      if (total == 0) break;
    }
    return Status::kOk;
  }

  // Synchronous, like a DTU command: the node is working for us, so poll far
  // longer than for a message that may never come. Answers to requests that
  // timed out earlier arrive late: they are skipped.
  Status await_memory_answer(MessageView& m) {
    const auto deadline = detail::deadline_after(kMemoryPatience);
    for (;;) {
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds::zero()) return Status::kTimeout;
      if (auto st = memory_rx_->wait_readable(WaitPolicy{kMemorySpin, true}, left); st != Status::kOk)
        return st;
      if (memory_rx_->try_fetch(m) != Status::kOk || m.payload.empty() ||
          m.header.label > memory_request_id_) {
        return Status::kBroken;
      }
      if (m.header.label == memory_request_id_) return Status::kOk;
      memory_rx_->ack();
      ++stats_.late_memory_answers;
    }
  }

 private:
  void receive_hello() {
    std::array<std::byte, sizeof(NodeMessage) + 64> buffer{};
    std::vector<UniqueFd> fds;
    std::size_t n = 0;
    NodeMessage m{};
    if (recv_with_fds(socket_.get(), buffer, n, fds, true) != RecvResult::kMessage || n != sizeof(m)) {
      throw std::runtime_error("no hello from the vdtu node");
    }
    std::memcpy(&m, buffer.data(), sizeof(m));
    if (m.magic != kControlMagic || m.kind != NodeMessageKind::kHello || fds.size() != 7 ||
        m.endpoints == 0 || m.endpoints > 255) {
      throw std::runtime_error("malformed hello from the vdtu node");
    }
    pe_ = m.pe;
    vpe_ = m.vpe;
    privileged_ = m.privileged != 0;
    endpoints_ = m.endpoints;
    doorbell_ = Doorbell::attach(std::move(fds[0]), endpoints_);
    memory_ = MappedRegion(fds[1].get(), m.local_memory_bytes);
    const ChannelGeometry g{m.slot_count, m.slot_size};
    memory_requests_ =
        std::make_unique<SharedChannel>(SharedChannel::attach(std::move(fds[2]), std::move(fds[3]), g));
    memory_responses_ =
        std::make_unique<SharedChannel>(SharedChannel::attach(std::move(fds[4]), std::move(fds[5]), g));
    memory_tx_ = std::make_unique<Producer>(*memory_requests_);
    memory_rx_ = std::make_unique<Consumer>(*memory_responses_);
    page_ = PePage::attach(std::move(fds[6]));
    eps_.resize(endpoints_);
    gone_reason_.assign(endpoints_, Status::kNotConfigured);
    received_ = seen_epoch_ = m.page_epoch;  // what the node announces from now on is ours
    refresh();
  }

  // An update whose fds did not arrive cannot be applied: say so loudly, and
  // a send endpoint it would have set up reports kNoResources.
  void lose_update(const NodeMessage& m) {
    ++stats_.lost_updates;
    fmt::print(stderr,
               "vdtu PE {}: an endpoint update for EP {} lost its file descriptors (open-file limit?)\n", pe_,
               m.ep);
    if (m.kind == NodeMessageKind::kSendEndpoint && m.ep < endpoints_) {
      clear(m.ep);
      gone_reason_[m.ep] = Status::kNoResources;
    }
  }

  void apply(const NodeMessage& m, std::vector<UniqueFd>& fds) {
    if (m.ep >= endpoints_) return;
    switch (m.kind) {
      case NodeMessageKind::kSendEndpoint: apply_send(m, fds); break;
      case NodeMessageKind::kReceiveEndpoint:
        clear(m.ep);
        eps_[m.ep] = ReceiveEndpoint{m.slot_count, m.slot_size};
        break;
      case NodeMessageKind::kInboundChannel: apply_inbound(m, fds); break;
      case NodeMessageKind::kMemoryEndpoint:
        clear(m.ep);
        eps_[m.ep] = MemoryEndpoint{m.memory};
        break;
      case NodeMessageKind::kEndpointGone:
        clear(m.ep);
        gone_reason_[m.ep] = m.status;
        break;
      case NodeMessageKind::kPeExited: exits_.push_back({m.pe, static_cast<int>(m.label)}); break;
      case NodeMessageKind::kChannelGone:
        if (auto* r = as<ReceiveEndpoint>(eps_[m.ep]); r != nullptr && m.channel < kChannelsPerEndpoint) {
          if (auto& ch = r->channels[m.channel]) ch->gone = true;
        }
        break;
      default: break;
    }
  }

  void apply_send(const NodeMessage& m, std::vector<UniqueFd>& fds) {
    const bool replies = m.send.reply_ep != kNoReplyEp;
    if (fds.size() != (replies ? 5U : 3U)) throw std::runtime_error("send endpoint update without its fds");
    if (replies && (m.send.reply_ep >= endpoints_ || as<ReceiveEndpoint>(eps_[m.send.reply_ep]) == nullptr)) {
      throw std::runtime_error("send endpoint whose reply endpoint is not a receive endpoint");
    }
    SendEndpoint se;
    se.channel = std::make_unique<SharedChannel>(
        SharedChannel::attach(std::move(fds[0]), std::move(fds[1]), {m.slot_count, m.slot_size}));
    se.producer = std::make_unique<Producer>(*se.channel);
    se.target_doorbell = Doorbell::attach_any(std::move(fds[2]));
    se.index_at_target = m.channel;
    se.config = m.send;
    if (replies) {
      NodeMessage r = m;  // the reply channel, described as an inbound channel
      r.ep = m.send.reply_ep;
      r.channel = m.reply_channel;
      r.slot_count = m.reply_slot_count;
      r.slot_size = m.reply_slot_size;
      r.sender_reply_ep = kNoReplyEp;
      r.reply_for_send_ep = m.ep;
      std::vector<UniqueFd> reply_fds;
      reply_fds.push_back(std::move(fds[3]));
      reply_fds.push_back(std::move(fds[4]));
      se.reply_channel_id = add_inbound(r, reply_fds);
    }
    clear(m.ep);
    eps_[m.ep] = std::move(se);
  }

  void apply_inbound(const NodeMessage& m, std::vector<UniqueFd>& fds) { add_inbound(m, fds); }

  std::uint32_t add_inbound(const NodeMessage& m, std::vector<UniqueFd>& fds) {
    auto* r = as<ReceiveEndpoint>(eps_[m.ep]);
    if (r == nullptr || m.channel >= kChannelsPerEndpoint || fds.size() < 2) {
      throw std::runtime_error("inbound channel for an endpoint that cannot take it");
    }
    auto ch = std::make_unique<InboundChannel>(
        SharedChannel::attach(std::move(fds[0]), std::move(fds[1]), {m.slot_count, m.slot_size}), m);
    if (m.sender_reply_ep != kNoReplyEp) {
      if (fds.size() != 5) throw std::runtime_error("reply-enabled channel without its reply path");
      ch->reply_channel = std::make_unique<SharedChannel>(SharedChannel::attach(
          std::move(fds[2]), std::move(fds[3]), {m.reply_slot_count, m.reply_slot_size}));
      ch->reply_producer = std::make_unique<Producer>(*ch->reply_channel);
      ch->reply_doorbell = Doorbell::attach_any(std::move(fds[4]));
      ch->reply_index = m.reply_channel;
    }
    const auto id = ch->id = next_channel_id_++;
    channels_by_id_[id] = ch.get();
    retire(r->channels[m.channel]);
    r->channels[m.channel] = std::move(ch);
    r->pending[m.channel / 64] |= std::uint64_t{1} << (m.channel % 64);
    return id;
  }

  // Messages fetched from a channel stay readable until finished, even after
  // the node removed the channel.
  void retire(std::unique_ptr<InboundChannel>& slot) {
    if (!slot) return;
    if (slot->tail != slot->read) {
      retired_.push_back(std::move(slot));
    } else {
      channels_by_id_.erase(slot->id);
      slot.reset();
    }
  }

  void clear(EpId ep) {
    if (auto* r = as<ReceiveEndpoint>(eps_[ep])) {
      for (auto& ch : r->channels) retire(ch);
    }
    eps_[ep] = std::monostate{};
  }

  UniqueFd socket_;
  Doorbell doorbell_;
  SpinBudget spin_budget_;  // shared by every wait: it measures whether our peers get CPUs
  PePage page_;
  std::unique_ptr<SharedChannel> memory_requests_;
  std::unique_ptr<SharedChannel> memory_responses_;
  std::unique_ptr<Producer> memory_tx_;
  std::unique_ptr<Consumer> memory_rx_;
  std::uint64_t memory_request_id_ = 0;
  std::vector<Endpoint> eps_;
  std::vector<Status> gone_reason_;
  std::unordered_map<std::uint32_t, InboundChannel*> channels_by_id_;
  std::vector<std::unique_ptr<InboundChannel>> retired_;
  std::uint32_t next_channel_id_ = 1;
  std::uint32_t seen_epoch_ = 0;
  std::uint32_t received_ = 0;  // messages read from the socket after the hello, plus the hello's epoch

 public:
  std::vector<PeExit> exits_;

 private:
  std::uint64_t next_request_id_ = 1;
  bool node_closed_ = false;
};

// ---- the public face ----------------------------------------------------------

namespace {
// Without its node a PE has no DTU: it must not linger when the node is
// killed. Checked after arming, in case the node died before that.
void die_with_node() {
  const char* node = std::getenv(Dtu::kNodePidVariable);  // NOLINT(concurrency-mt-unsafe): read once at start
  if (node == nullptr) return;
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != static_cast<pid_t>(std::atol(node))) ::_exit(70);
}
}  // namespace

std::unique_ptr<Dtu> Dtu::from_environment() {
  const char* value = std::getenv(kControlFdVariable);  // NOLINT(concurrency-mt-unsafe): read once at start
  if (value == nullptr)
    throw std::runtime_error("VDTU_CONTROL_FD is not set: start this program with vdtu node");
  // Non-dumpable at once (the sandbox's Landlock domain covers the moments
  // before this), and room for the fds of many channels.
  harden_process();
  die_with_node();
  return std::make_unique<Dtu>(UniqueFd(std::atoi(value)));
}

Dtu::Dtu(UniqueFd control_socket) : impl_(std::make_unique<Impl>(std::move(control_socket))) {}
Dtu::~Dtu() = default;

PeId Dtu::pe() const { return impl_->pe_; }
VpeId Dtu::vpe() const { return impl_->vpe_; }
bool Dtu::privileged() const { return impl_->privileged_; }
std::uint32_t Dtu::endpoint_count() const { return impl_->endpoints_; }
EndpointKind Dtu::endpoint_kind(EpId ep) {
  impl_->refresh();
  return impl_->kind_of(ep);
}
std::span<std::byte> Dtu::local_memory() const { return {impl_->memory_.data(), impl_->memory_.size()}; }
const DtuStats& Dtu::stats() const { return impl_->stats_; }
void Dtu::publish(const PublishedCounts& counts) { impl_->publish(counts); }
std::vector<PeExit> Dtu::take_exits() {
  impl_->refresh();
  return std::exchange(impl_->exits_, {});
}

Status Dtu::send(EpId ep, std::span<const std::byte> payload, std::uint64_t replylabel, SendMode mode,
                 std::chrono::nanoseconds timeout) {
  return impl_->send(ep, payload, replylabel, mode, timeout);
}
Status Dtu::reply(const ReceivedMessage& message, std::span<const std::byte> payload) {
  return impl_->reply(message, payload);
}
Status Dtu::fetch(EpId ep, ReceivedMessage& out) { return impl_->fetch(ep, out); }
Status Dtu::ack(const ReceivedMessage& message) { return impl_->ack(message); }
Status Dtu::receive(EpId ep, ReceivedMessage& out, std::chrono::nanoseconds timeout) {
  return impl_->receive(ep, out, timeout);
}
Status Dtu::wait(std::chrono::nanoseconds timeout) { return impl_->wait(timeout, Dtu::kDefaultSpin); }
Status Dtu::wait(std::chrono::nanoseconds timeout, std::chrono::nanoseconds spin) {
  return impl_->wait(timeout, spin);
}
std::uint32_t Dtu::credits(EpId ep) {
  impl_->refresh();
  return impl_->credits(ep);
}

Status Dtu::read(EpId ep, std::uint64_t offset, std::span<std::byte> into) {
  return impl_->memory_op(MemoryOp::kRead, ep, offset, into, {});
}
Status Dtu::write(EpId ep, std::uint64_t offset, std::span<const std::byte> from) {
  return impl_->memory_op(MemoryOp::kWrite, ep, offset, {}, from);
}

namespace {
ControlRequest request(ControlOp op, PeId pe, EpId ep) {
  ControlRequest r{};
  r.op = op;
  r.pe = pe;
  r.ep = ep;
  return r;
}
}  // namespace

Status Dtu::config_send(PeId pe, EpId ep, const SendConfig& config) {
  auto r = request(ControlOp::kConfigSend, pe, ep);
  r.send = config;
  return impl_->control(r);
}
Status Dtu::config_receive(PeId pe, EpId ep, const ReceiveConfig& config) {
  auto r = request(ControlOp::kConfigReceive, pe, ep);
  r.receive = config;
  return impl_->control(r);
}
Status Dtu::config_memory(PeId pe, EpId ep, const MemoryConfig& config) {
  auto r = request(ControlOp::kConfigMemory, pe, ep);
  r.memory = config;
  return impl_->control(r);
}
Status Dtu::invalidate(PeId pe, EpId ep) { return impl_->control(request(ControlOp::kInvalidate, pe, ep)); }
Status Dtu::invalidate_all(PeId pe) { return impl_->control(request(ControlOp::kInvalidateAll, pe, 0)); }
Status Dtu::terminate(PeId pe, EpId ep) { return impl_->control(request(ControlOp::kTerminate, pe, ep)); }
Status Dtu::wake(PeId pe) { return impl_->control(request(ControlOp::kWake, pe, 0)); }
Status Dtu::set_vpe(PeId pe, VpeId vpe) {
  auto r = request(ControlOp::kSetVpe, pe, 0);
  r.vpe = vpe;
  return impl_->control(r);
}
Status Dtu::privilege(PeId pe) { return impl_->control(request(ControlOp::kPrivilege, pe, 0)); }
Status Dtu::launch(std::span<const std::string> command, PeId& pe) {
  auto r = request(ControlOp::kLaunch, impl_->pe_, 0);
  std::size_t at = 0;
  for (const auto& word : command) {
    if (word.find('\0') != std::string::npos || at + word.size() + 1 > kMaxCommand)
      return Status::kInvalidArgument;
    std::memcpy(r.command + at, word.c_str(), word.size() + 1);
    at += word.size() + 1;
  }
  if (at == 0) return Status::kInvalidArgument;
  r.command_length = static_cast<std::uint16_t>(at);
  return impl_->control(r, &pe);
}
Status Dtu::clear_memory(PeId pe, std::uint64_t offset, std::uint64_t size) {
  auto r = request(ControlOp::kClearMemory, impl_->pe_, 0);
  r.memory = {pe, offset, size, kMemWrite, kThisNode};
  return impl_->control(r);
}
Status Dtu::wait_for_endpoint(EpId ep, EndpointKind kind, std::chrono::nanoseconds timeout) {
  return impl_->wait_for_endpoint(ep, kind, timeout);
}

std::string_view to_string(EndpointKind kind) {
  switch (kind) {
    case EndpointKind::kInvalid: return "invalid";
    case EndpointKind::kSend: return "send";
    case EndpointKind::kReceive: return "receive";
    case EndpointKind::kMemory: return "memory";
  }
  return "unknown";
}

}  // namespace vdtu

#include "vhost_user_port.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <sys/epoll.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace vdtu::net::vhost {
namespace {

constexpr std::uint32_t kReceiveQueue = 0;   // to the guest
constexpr std::uint32_t kTransmitQueue = 1;  // from the guest
constexpr std::uint64_t kRingIndexMask = 0xff;
constexpr std::uint64_t kNoFdFlag = 1U << 8U;
constexpr std::size_t kNumBuffersOffset = 10;  // in the 12-byte header
constexpr std::size_t kLegacyHeaderBytes = 10;
constexpr std::size_t kModernHeaderBytes = 12;
constexpr std::uint8_t kHeaderNeedsChecksum = 1;

struct RegionWire {
  std::uint64_t guest_address;
  std::uint64_t size;
  std::uint64_t user_address;
  std::uint64_t mmap_offset;
};
struct RingState {
  std::uint32_t index;
  std::uint32_t num;
};
struct RingAddresses {
  std::uint32_t index;
  std::uint32_t flags;
  std::uint64_t descriptors;
  std::uint64_t used;
  std::uint64_t available;
  std::uint64_t log;
};

template <typename T>
bool payload_as(const Message& m, T& out) {
  if (m.size != sizeof(T)) return false;
  std::memcpy(&out, m.payload.data(), sizeof(T));
  return true;
}

// Writes bytes over a chain's buffers in order.
class ScatterWriter {
 public:
  explicit ScatterWriter(std::span<const Segment> segments) : segments_(segments) {}
  std::size_t write(const std::byte* from, std::size_t length) {
    std::size_t done = 0;
    while (done < length && at_ < segments_.size()) {
      const auto& s = segments_[at_];
      const auto n = std::min<std::size_t>(length - done, s.length - offset_);
      std::memcpy(s.data + offset_, from + done, n);
      done += n;
      offset_ += n;
      if (offset_ == s.length) {
        ++at_;
        offset_ = 0;
      }
    }
    written_ += done;
    return done;
  }
  [[nodiscard]] std::size_t written() const { return written_; }
  [[nodiscard]] bool full() const { return at_ == segments_.size(); }

 private:
  std::span<const Segment> segments_;
  std::size_t at_ = 0;
  std::size_t offset_ = 0;
  std::size_t written_ = 0;
};

// Reads `length` bytes from the front of a chain into `out`, then says where
// the rest begins.
bool gather(std::span<const Segment> segments, std::byte* out, std::size_t length, std::size_t& segment,
            std::size_t& offset) {
  segment = 0;
  offset = 0;
  std::size_t done = 0;
  while (done < length) {
    if (segment == segments.size()) return false;
    const auto n = std::min<std::size_t>(length - done, segments[segment].length - offset);
    std::memcpy(out + done, segments[segment].data + offset, n);
    done += n;
    offset += n;
    if (offset == segments[segment].length) {
      ++segment;
      offset = 0;
    }
  }
  return true;
}

}  // namespace

VhostUserPort::VhostUserPort(UniqueFd connection, std::uint32_t mtu, std::string peer)
    : connection_(std::move(connection)), peer_(std::move(peer)), mtu_(mtu) {
  const int flags = ::fcntl(connection_.get(), F_GETFL);
  if (flags < 0 || ::fcntl(connection_.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    throw std::system_error(errno, std::generic_category(), "vhost-user socket: O_NONBLOCK");
  }
  wakeup_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!wakeup_) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  segments_.reserve(kMaxQueueSize);
}

std::uint32_t VhostUserPort::header_bytes() const {
  return (features_ & (kFeatureVersion1 | kFeatureMergeableBuffers)) != 0 ? kModernHeaderBytes
                                                                          : kLegacyHeaderBytes;
}

bool VhostUserPort::violation(std::string reason) {
  for (auto& q : queues_) q.ring.reset();  // nothing more is read from or written to this guest
  fail(std::move(reason), true);
  return false;
}

void VhostUserPort::serve_control() {
  while (!failure()) {
    switch (reader_.read(connection_.get(), message_)) {
      case MessageReader::Result::kWouldBlock: return;
      case MessageReader::Result::kClosed:
        for (auto& q : queues_) q.ring.reset();
        fail("the frontend closed its vhost-user connection", false);
        return;
      case MessageReader::Result::kMalformed: violation("malformed vhost-user message"); return;
      case MessageReader::Result::kMessage: handle(message_); break;
    }
  }
}

bool VhostUserPort::handle(const Message& m) {
  if ((m.flags & kFlagVersionMask) != kVersion) return violation("vhost-user message of another version");
  const auto request = static_cast<Request>(m.request);
  const bool wants_ack = (m.flags & kFlagNeedReply) != 0 && (protocol_features_ & kProtocolReplyAck) != 0;
  auto reply_u64 = [&](std::uint64_t value) {
    if (!send_reply(connection_.get(), m.request, &value, sizeof(value))) {
      return violation("the frontend does not take its replies");
    }
    return true;
  };
  // Requests that carry fds say so; any other fd is closed with the message.
  const bool takes_fds = request == Request::kSetMemTable || request == Request::kSetVringKick ||
                         request == Request::kSetVringCall || request == Request::kSetVringErr;
  if (!takes_fds && !m.fds.empty())
    return violation(fmt::format("fds with vhost-user request {}", m.request));
  bool ok = true;
  std::uint64_t value = 0;
  RingState state{};
  switch (request) {
    case Request::kGetFeatures: return reply_u64(kOfferedFeatures);
    case Request::kGetProtocolFeatures: return reply_u64(kOfferedProtocolFeatures);
    case Request::kGetQueueNum: return reply_u64(1);
    case Request::kGetStatus: return reply_u64(status_);
    case Request::kSetFeatures:
      if (!payload_as(m, value) || (value & ~kOfferedFeatures) != 0) {
        return violation("SET_FEATURES with features never offered");
      }
      features_ = value;
      features_set_ = true;
      refresh();
      break;
    case Request::kSetProtocolFeatures:
      if (!payload_as(m, value) || (value & ~kOfferedProtocolFeatures) != 0) {
        return violation("SET_PROTOCOL_FEATURES with features never offered");
      }
      protocol_features_ = value;
      break;
    case Request::kSetOwner: break;
    case Request::kResetOwner: reset(); break;
    case Request::kSetStatus:
      if (!payload_as(m, value)) return violation("SET_STATUS of the wrong size");
      status_ = value;
      break;
    case Request::kSetMemTable:
      if (!handle_mem_table(m)) return false;
      break;
    case Request::kSetVringNum:
      if (!payload_as(m, state) || state.index > 1 || !std::has_single_bit(state.num) ||
          state.num > kMaxQueueSize) {
        return violation("SET_VRING_NUM with a bad ring or size (a power of two up to 32768)");
      }
      stop(queues_[state.index]);
      queues_[state.index].entries = state.num;
      break;
    case Request::kSetVringBase:
      if (!payload_as(m, state) || state.index > 1 || state.num > UINT16_MAX) {
        return violation("SET_VRING_BASE with a bad ring or index");
      }
      stop(queues_[state.index]);
      queues_[state.index].base = static_cast<std::uint16_t>(state.num);
      break;
    case Request::kGetVringBase: {
      if (!payload_as(m, state) || state.index > 1) return violation("GET_VRING_BASE for a bad ring");
      auto& q = queues_[state.index];
      stop(q);
      q.kicked = false;  // the ring starts again with the next SET_VRING_KICK
      if (state.index == kTransmitQueue && q.kick)
        ::epoll_ctl(wakeup_.get(), EPOLL_CTL_DEL, q.kick.get(), nullptr);
      q.kick.reset();
      const RingState reply{state.index, q.base};
      if (!send_reply(connection_.get(), m.request, &reply, sizeof(reply))) {
        return violation("the frontend does not take its replies");
      }
      return true;
    }
    case Request::kSetVringAddr: {
      RingAddresses a{};
      if (!payload_as(m, a) || a.index > 1) return violation("SET_VRING_ADDR for a bad ring");
      auto& q = queues_[a.index];
      stop(q);
      q.descriptors = a.descriptors;
      q.used = a.used;
      q.available = a.available;
      q.has_addresses = true;
      refresh();
      break;
    }
    case Request::kSetVringKick:
    case Request::kSetVringCall:
    case Request::kSetVringErr:
      if (!handle_ring_fd(m, request)) return false;
      break;
    case Request::kSetVringEnable:
      if (!payload_as(m, state) || state.index > 1 || state.num > 1) {
        return violation("SET_VRING_ENABLE with a bad ring or value");
      }
      queues_[state.index].enabled = state.num == 1;
      if (state.num == 0) stop(queues_[state.index]);
      refresh();
      break;
    default:
      ok = false;  // not offered: answered with a failure where the frontend asks, else ignored
      break;
  }
  if (wants_ack) return reply_u64(ok ? 0 : 1);
  return true;
}

bool VhostUserPort::handle_mem_table(const Message& m) {
  std::uint32_t count = 0;
  if (m.size < 8) return violation("SET_MEM_TABLE too short");
  std::memcpy(&count, m.payload.data(), sizeof(count));
  if (count == 0 || count > GuestMemory::kMaxRegions || m.size != 8 + count * sizeof(RegionWire) ||
      m.fds.size() != count) {
    return violation(
        fmt::format("SET_MEM_TABLE with {} regions, {} bytes, {} fds", count, m.size, m.fds.size()));
  }
  GuestMemory memory;
  try {
    for (std::uint32_t i = 0; i < count; ++i) {
      RegionWire r{};
      std::memcpy(&r, m.payload.data() + 8 + i * sizeof(RegionWire), sizeof(r));
      memory.add({r.guest_address, r.size, r.user_address, r.mmap_offset}, m.fds[i].get());
    }
  } catch (const std::exception& e) {
    return violation(std::string("SET_MEM_TABLE: ") + e.what());
  }
  // Rings keep their positions across the swap; their addresses are
  // translated again in the new table.
  for (auto& q : queues_) stop(q);
  memory_ = std::move(memory);
  refresh();
  return true;
}

bool VhostUserPort::handle_ring_fd(const Message& m, Request r) {
  std::uint64_t value = 0;
  if (!payload_as(m, value) || (value & ~(kRingIndexMask | kNoFdFlag)) != 0 || (value & kRingIndexMask) > 1) {
    return violation("SET_VRING_KICK/CALL/ERR for a bad ring");
  }
  const bool no_fd = (value & kNoFdFlag) != 0;
  if (m.fds.size() != (no_fd ? 0U : 1U)) return violation("SET_VRING_KICK/CALL/ERR with the wrong fds");
  auto& q = queues_[value & kRingIndexMask];
  UniqueFd fd = no_fd ? UniqueFd() : UniqueFd(::fcntl(m.fds[0].get(), F_DUPFD_CLOEXEC, 0));
  if (!no_fd && !fd) return violation("cannot keep a ring fd");
  if (r == Request::kSetVringCall) {
    q.call = std::move(fd);
  } else if (r == Request::kSetVringKick) {
    const bool transmit = (value & kRingIndexMask) == kTransmitQueue;
    if (transmit && q.kick) ::epoll_ctl(wakeup_.get(), EPOLL_CTL_DEL, q.kick.get(), nullptr);
    stop(q);
    q.kick = std::move(fd);
    q.kicked = true;
    if ((features_ & kFeatureProtocolFeatures) == 0) q.enabled = true;  // else SET_VRING_ENABLE decides
    if (transmit && q.kick) {
      epoll_event event{};
      event.events = EPOLLIN;
      if (::epoll_ctl(wakeup_.get(), EPOLL_CTL_ADD, q.kick.get(), &event) != 0) {
        return violation("cannot watch the kick fd");
      }
    }
    refresh();
  }  // SET_VRING_ERR: the fd is closed; the switch reports errors by shutting the port
  return true;
}

void VhostUserPort::stop(Queue& q) {
  if (q.ring) q.base = q.ring->next_available();
  q.ring.reset();
}

void VhostUserPort::reset() {
  for (auto& q : queues_) {
    stop(q);
    q = Queue{};
  }
  memory_ = GuestMemory();
  features_ = 0;
  features_set_ = false;
  status_ = 0;
}

// A ring runs once it has a size, addresses inside guest memory, a kick
// and is enabled. The addresses are the frontend's own virtual addresses.
void VhostUserPort::refresh() {
  for (std::uint32_t i = 0; i < queues_.size(); ++i) {
    auto& q = queues_[i];
    if (q.ring || !q.has_addresses || !q.kicked || !q.enabled || q.entries == 0 || memory_.empty()) continue;
    RingLayout layout;
    layout.entries = q.entries;
    layout.descriptors = memory_.translate_user(q.descriptors, descriptor_table_bytes(q.entries));
    layout.available = memory_.translate_user(q.available, available_ring_bytes(q.entries));
    layout.used = memory_.translate_user(q.used, used_ring_bytes(q.entries));
    const auto misaligned = [](const std::byte* p, std::uintptr_t a) {
      return (reinterpret_cast<std::uintptr_t>(p) & (a - 1)) != 0;
    };
    if (layout.descriptors == nullptr || layout.available == nullptr || layout.used == nullptr) {
      violation(fmt::format("ring {} lies outside guest memory", i));
      return;
    }
    if (misaligned(layout.descriptors, 16) || misaligned(layout.available, 2) || misaligned(layout.used, 4)) {
      violation(fmt::format("ring {} is misaligned", i));
      return;
    }
    q.ring.emplace(layout, q.base, (features_ & kFeatureEventIndex) != 0);
  }
}

void VhostUserPort::notify(Queue& q) {
  if (!q.ring->publish() || !q.call) return;
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(q.call.get(), &one, sizeof(one));  // a full counter already rings
}

std::uint32_t VhostUserPort::receive_burst(std::span<ReceivedFrame> out) {
  auto& q = queues_[kTransmitQueue];
  if (!q.ring) return 0;
  auto& ring = *q.ring;
  const auto pending = ring.available();
  if (!pending) {
    violation("the guest's transmit index ran more than a ring ahead");
    return 0;
  }
  const auto header = header_bytes();
  const auto largest = max_frame_bytes(mtu_);
  if (bounce_.size() < out.size()) bounce_.resize(out.size(), std::vector<std::byte>(largest));
  std::uint32_t n = 0;
  std::uint32_t looked = 0;
  for (; n < out.size() && looked < *pending && looked < bounce_.size(); ++looked) {
    const auto head = ring.head_at(looked);
    taken_.push_back(head);
    std::uint64_t total = 0;
    if (const auto e = walk_chain(ring.descriptors(), ring.entries(), head, false, memory_, segments_, total);
        e != ChainError::kNone) {
      ring.consume(looked + 1);
      violation(fmt::format("transmit ring: {}", to_string(e)));
      return n;
    }
    std::array<std::byte, kModernHeaderBytes> net_header{};
    std::size_t segment = 0;
    std::size_t offset = 0;
    const auto length = total - std::min<std::uint64_t>(total, header);
    ++counters().rx_frames;  // counted here only when dropped below; classify() counts the rest
    if (!gather(segments_, net_header.data(), header, segment, offset) || length == 0) {
      counters().drop(DropReason::kTooShort);
      continue;
    }
    if (length > largest) {
      counters().drop(DropReason::kTooLong);
      continue;
    }
    // Offloads were not offered: a header asking for one is not honoured.
    if ((std::to_integer<std::uint8_t>(net_header[0]) & kHeaderNeedsChecksum) != 0 ||
        net_header[1] != std::byte{0}) {
      counters().drop(DropReason::kUnusable);
      continue;
    }
    --counters().rx_frames;
    const auto size = static_cast<std::uint16_t>(length);
    if (segment < segments_.size() && segments_[segment].length - offset >= size) {
      out[n++].capture(segments_[segment].data + offset, size);  // in place, checked on a private head copy
      continue;
    }
    auto* bounce = bounce_[n].data();
    std::size_t done = 0;
    for (auto s = segment; s < segments_.size(); ++s) {
      const auto from = s == segment ? offset : 0;
      std::memcpy(bounce + done, segments_[s].data + from, segments_[s].length - from);
      done += segments_[s].length - from;
    }
    out[n++].capture(bounce, size);
  }
  ring.consume(looked);
  return n;
}

void VhostUserPort::release_received() {
  auto& q = queues_[kTransmitQueue];
  if (taken_.empty()) return;
  if (q.ring) {
    for (const auto head : taken_) q.ring->put_used(head, 0);
    notify(q);
  }
  taken_.clear();
}

std::uint32_t VhostUserPort::transmit_burst(std::span<const ReceivedFrame* const> frames) {
  auto& q = queues_[kReceiveQueue];
  if (!q.ring) return 0;
  auto& ring = *q.ring;
  const auto pending = ring.available();
  if (!pending) {
    violation("the guest's receive index ran more than a ring ahead");
    return 0;
  }
  const bool mergeable = (features_ & kFeatureMergeableBuffers) != 0;
  const auto header = header_bytes();
  std::uint32_t budget = *pending;
  std::uint32_t n = 0;
  for (; n < frames.size(); ++n) {
    const auto& f = *frames[n];
    const std::uint64_t need = header + f.length;
    // How many chains this frame needs (one unless buffers merge).
    std::uint32_t chains = 0;
    std::uint64_t room = 0;
    while (room < need && chains < budget && (chains == 0 || mergeable)) {
      std::uint64_t total = 0;
      if (const auto e = walk_chain(ring.descriptors(), ring.entries(), ring.head_at(chains), true, memory_,
                                    segments_, total);
          e != ChainError::kNone) {
        violation(fmt::format("receive ring: {}", to_string(e)));
        return n;
      }
      room += total;
      ++chains;
    }
    if (chains == 0 || (room < need && mergeable)) break;  // no buffers: the rest is dropped by the engine
    if (room < need) {  // one buffer too small for the frame: given back empty, the frame lost
      ring.put_used(ring.head_at(0), 0);
      ring.consume(1);
      --budget;
      counters().drop(DropReason::kOverMtu);
      continue;
    }
    std::array<std::byte, kModernHeaderBytes> net_header{};
    const auto count = static_cast<std::uint16_t>(chains);
    std::memcpy(net_header.data() + kNumBuffersOffset, &count, sizeof(count));
    const std::size_t head_bytes = std::min<std::size_t>(f.length, kFrameHeadBytes);
    // Pieces: header, the private head copy, the rest of the frame.
    const std::array<std::pair<const std::byte*, std::size_t>, 3> pieces{
        {{net_header.data(), header},
         {f.head.data(), head_bytes},
         {f.data + head_bytes, f.length - head_bytes}}};
    std::size_t piece = 0;
    std::size_t piece_offset = 0;
    for (std::uint32_t c = 0; c < chains; ++c) {
      std::uint64_t total = 0;
      const auto head = ring.head_at(c);
      if (chains > 1 && walk_chain(ring.descriptors(), ring.entries(), head, true, memory_, segments_,
                                   total) != ChainError::kNone) {
        violation("receive ring changed under the switch");
        return n;
      }
      ScatterWriter writer(segments_);
      while (piece < pieces.size() && !writer.full()) {
        const auto done =
            writer.write(pieces[piece].first + piece_offset, pieces[piece].second - piece_offset);
        piece_offset += done;
        if (piece_offset == pieces[piece].second) {
          ++piece;
          piece_offset = 0;
        }
      }
      ring.put_used(head, static_cast<std::uint32_t>(writer.written()));
    }
    ring.consume(chains);
    budget -= chains;
  }
  notify(q);
  return n;
}

bool VhostUserPort::arm_wakeup() {
  auto& q = queues_[kTransmitQueue];
  if (!q.ring) return true;  // nothing to poll; the control socket wakes the switch
  return q.ring->enable_kicks();
}

void VhostUserPort::disarm_wakeup() {
  auto& q = queues_[kTransmitQueue];
  if (q.kick) {
    std::uint64_t count = 0;
    [[maybe_unused]] const auto n = ::read(q.kick.get(), &count, sizeof(count));
  }
  if (q.ring) q.ring->disable_kicks();
}

}  // namespace vdtu::net::vhost

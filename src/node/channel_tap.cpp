#include "channel_tap.hpp"

#include <ctime>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <optional>

#include "channel/channel_control.hpp"

namespace vdtu::dtu {
namespace {

std::uint64_t realtime_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

// A slot's bytes, which the producer may be rewriting if the receiver
// acked it meanwhile (the copy is checked afterwards, as a seqlock reader
// does). Byte by byte through volatile, so that no memcpy (which ThreadSanitizer
// intercepts) stands for it: the race is intended and detected, not a bug.
__attribute__((no_sanitize("thread"))) void copy_racy(std::byte* to, const std::byte* from, std::size_t n) {
  const volatile std::byte* src = from;
  for (std::size_t i = 0; i < n; ++i) to[i] = src[i];
}

// Distances between ring indices are taken modulo 2^32; one beyond half of
// that is an index behind us (or a producer's lie).
bool ahead(std::uint32_t a, std::uint32_t b) { return a != b && a - b < (1U << 31U); }

// When the slot of `index` already holds a message of a later lap, the index
// of that message: everything a lap before it was overwritten.
std::optional<std::uint32_t> overwritten_by(std::uint32_t word, std::uint32_t index, std::uint32_t slots) {
  const auto laps_ahead = (word - detail::published(index, slots)) & detail::lap_mask(slots);
  if (laps_ahead == 0 || std::uint64_t{laps_ahead} * slots >= (1U << 30U)) return std::nullopt;
  return index + laps_ahead * slots;
}

}  // namespace

ChannelTap::ChannelTap(std::uint16_t node, std::size_t snaplen, std::size_t max_buffered)
    : node_(node), snaplen_(std::min(snaplen, kTraceMaxSnap)), max_buffered_(max_buffered) {}

void ChannelTap::set_points(std::vector<TapPoint> points, bool from_start) {
  std::map<const SharedChannel*, Watched> next;
  for (auto& p : points) {
    const auto* key = p.channel.get();
    if (key == nullptr || next.count(key) != 0) continue;
    const auto it = watched_.find(key);
    if (it != watched_.end()) {
      it->second.point.meta = p.meta;
      next.emplace(key, std::move(it->second));
    } else {
      const auto start =
          from_start ? 0U : detail::published_end(*p.channel, detail::load_consumer_index(*p.channel));
      next.emplace(key, Watched{std::move(p), start, 0});
    }
  }
  watched_ = std::move(next);
}

bool ChannelTap::poll() {
  bool any = false;
  for (auto& [key, w] : watched_) any = poll(w) || any;
  return any;
}

bool ChannelTap::poll(Watched& w) {
  const auto& ch = *w.point.channel;
  const auto slots = ch.geometry().slot_count;
  const auto slot_size = ch.geometry().slot_size;
  copy_.resize(std::min<std::size_t>(slot_size, kHeaderSize + snaplen_));
  bool any = false;
  // The producer can never be more than a ring ahead of the consumer; a tap
  // beyond that was sent there by nonsense in the ring: start over.
  if (const auto tail = detail::load_consumer_index(ch); ahead(w.next, tail + slots))
    w.next = detail::published_end(ch, tail);
  for (std::uint32_t step = 0; step < slots; ++step) {  // at most a lap per look
    const auto word = detail::load_sequence(ch, w.next);
    if (detail::classify(word, w.next, slots) != detail::SlotState::kMessage) {
      const auto newer = overwritten_by(word, w.next, slots);
      // A later lap is believed only if the consumer took the message it replaced.
      if (!newer || !ahead(detail::load_consumer_index(ch), *newer - slots))
        break;  // nothing new, or nonsense
      const auto lost = *newer - slots + 1 - w.next;
      counters_.missed += lost;
      w.missed += lost;
      w.next += lost;
      any = true;
      continue;
    }
    copy_racy(copy_.data(), ch.slot(w.next), copy_.size());
    std::atomic_thread_fence(std::memory_order_acquire);  // the copy happens before the re-check
    // The producer reuses a slot only after the consumer acked it; while
    // it has not, the copy is the message.
    const bool acked = ahead(detail::load_consumer_index(ch), w.next);
    if (acked && ((detail::load_sequence(ch, w.next) ^ word) & detail::kSequenceMask) != 0) {
      ++counters_.missed;
      ++w.missed;
      ++w.next;
      continue;
    }
    MessageHeader h{};
    std::memcpy(&h, copy_.data(), kHeaderSize);
    const auto payload = std::min<std::size_t>(h.length, slot_size - kHeaderSize);
    const auto captured = std::min(copy_.size(), kHeaderSize + payload);
    append(w, w.next, std::span(copy_).first(captured), static_cast<std::uint16_t>(kHeaderSize + payload),
           acked);
    ++w.next;
    any = true;
  }
  return any;
}

void ChannelTap::append(Watched& w, std::uint32_t index, std::span<const std::byte> message,
                        std::uint16_t length, bool unverified) {
  const std::size_t size = sizeof(TraceRecordHeader) + message.size();
  if (buffer_.size() - sent_ + sizeof(TraceStreamPrefix) + size > max_buffered_) {
    ++counters_.dropped;
    return;
  }
  if (sent_ > 0 && sent_ == buffer_.size()) {
    buffer_.clear();
    sent_ = 0;
  }
  TraceStreamPrefix prefix{static_cast<std::uint32_t>(size), realtime_ns()};
  TraceRecordHeader r = w.point.meta;
  r.version = kTraceVersion;
  r.node = node_;
  r.flags = static_cast<std::uint8_t>(r.flags | (unverified ? kTraceUnverified : 0));
  r.captured = static_cast<std::uint16_t>(message.size());
  r.length = length;
  r.index = index;
  r.missed = w.missed;
  const auto at = buffer_.size();
  buffer_.resize(at + sizeof(prefix) + size);
  std::memcpy(buffer_.data() + at, &prefix, sizeof(prefix));
  std::memcpy(buffer_.data() + at + sizeof(prefix), &r, sizeof(r));
  std::memcpy(buffer_.data() + at + sizeof(prefix) + sizeof(r), message.data(), message.size());
  ++counters_.captured;
  // Reported once: the next record of this channel starts counting anew.
  w.missed = 0;
}

void ChannelTap::consume(std::size_t bytes) {
  sent_ = std::min(buffer_.size(), sent_ + bytes);
  if (sent_ == buffer_.size()) {
    buffer_.clear();
    sent_ = 0;
  } else if (sent_ > max_buffered_ / 2) {  // keep the buffer from creeping: move the rest to the front
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(sent_));
    sent_ = 0;
  }
}

}  // namespace vdtu::dtu

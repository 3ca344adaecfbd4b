#pragma once
// The capture side of `vdtu trace`: reads the channels of a node, which the
// node created and still maps, and copies every message published since it
// last looked (header and the first bytes of the payload) into a bounded
// buffer of stream records (trace_record.hpp).
//
// It only reads shared memory: no PE and no channel notices it, and a node
// without a trace running does none of this. It polls, so a message that is
// published, taken and overwritten between two looks is missed: counted, not
// invented. A message whose receiver acked it while it was being copied is
// marked unverified (its slot may have been reused meanwhile).

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "trace_record.hpp"
#include "vdtu/channel.hpp"

namespace vdtu::dtu {

// A channel to watch and what a record of it says besides the message.
struct TapPoint {
  std::shared_ptr<SharedChannel> channel;
  TraceRecordHeader meta;  // direction, flags, PEs and endpoints; the rest is filled per message
};

struct TapCounters {
  std::uint64_t captured = 0;
  std::uint64_t missed = 0;   // overwritten before the tap saw them
  std::uint64_t dropped = 0;  // the buffer was full (the reader is slow)
};

class ChannelTap {
 public:
  // `snaplen`: payload bytes kept per message (at most kTraceMaxSnap);
  // `max_buffered`: bytes of records held for the reader at most.
  ChannelTap(std::uint16_t node, std::size_t snaplen, std::size_t max_buffered);

  // The channels to watch from now on: known ones keep their position. New
  // ones start with what they publish next, or (`from_start`: they were
  // made since the last call) with their first message.
  void set_points(std::vector<TapPoint> points, bool from_start);
  // Copies what was published since the last look; true if anything was.
  bool poll();
  // Stream records waiting for the reader; consume() what was sent.
  [[nodiscard]] std::span<const std::byte> pending() const {
    return {buffer_.data() + sent_, buffer_.size() - sent_};
  }
  void consume(std::size_t bytes);
  [[nodiscard]] const TapCounters& counters() const { return counters_; }

 private:
  struct Watched {
    TapPoint point;
    std::uint32_t next = 0;    // index of the next message to copy
    std::uint32_t missed = 0;  // not yet reported in a record
  };
  bool poll(Watched& w);
  void append(Watched& w, std::uint32_t index, std::span<const std::byte> message, std::uint16_t length,
              bool unverified);

  std::uint16_t node_;
  std::size_t snaplen_;
  std::size_t max_buffered_;
  std::map<const SharedChannel*, Watched> watched_;
  std::vector<std::byte> buffer_;
  std::size_t sent_ = 0;
  std::vector<std::byte> copy_;  // one slot, copied out of shared memory
  TapCounters counters_;
};

}  // namespace vdtu::dtu

#pragma once
// Channels made ahead of need. Creating one costs a memfd, its size and
// seals, an eventfd, a mapping and the activation: 10 to 20 µs here, the
// largest part of configuring a send endpoint. The node keeps a few fresh
// channels of each geometry it was recently asked for and makes more when
// its loop is idle, so a configuration request takes one from the shelf.
//
// A pooled channel is never used twice: it goes to exactly one binding, as
// one made on demand would. What the pool holds costs two fds and the
// control block's page per channel (the slots are not touched before use).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "vdtu/channel.hpp"

namespace vdtu::dtu {

class ChannelPool {
 public:
  static constexpr std::size_t kPerGeometry = 4;
  static constexpr std::size_t kGeometries = 8;

  // A fresh, activated channel: from the shelf if one of this geometry
  // waits there, else made now. Throws what SharedChannel::create throws.
  std::shared_ptr<SharedChannel> take(ChannelGeometry geometry);
  // Makes one channel for a geometry whose shelf is short; false if none is.
  bool make_one_ahead();
  [[nodiscard]] std::size_t shelved() const;
  [[nodiscard]] std::uint64_t taken_from_shelf() const { return hits_; }

 private:
  struct Shelf {
    ChannelGeometry geometry;
    std::vector<std::shared_ptr<SharedChannel>> channels;
    std::uint64_t last_asked = 0;
  };
  Shelf& shelf_for(ChannelGeometry geometry);

  std::vector<Shelf> shelves_;
  std::uint64_t asks_ = 0;
  std::uint64_t hits_ = 0;
};

}  // namespace vdtu::dtu

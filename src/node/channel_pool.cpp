#include "channel_pool.hpp"

#include <algorithm>

namespace vdtu::dtu {
namespace {

std::shared_ptr<SharedChannel> make_channel(ChannelGeometry geometry) {
  auto channel = std::make_shared<SharedChannel>(SharedChannel::create(geometry));
  channel->activate();
  return channel;
}

bool same(ChannelGeometry a, ChannelGeometry b) {
  return a.slot_count == b.slot_count && a.slot_size == b.slot_size;
}

}  // namespace

// The geometry asked for longest ago makes room for a new one.
ChannelPool::Shelf& ChannelPool::shelf_for(ChannelGeometry geometry) {
  auto found = std::ranges::find_if(shelves_, [&](const Shelf& s) { return same(s.geometry, geometry); });
  if (found == shelves_.end()) {
    if (shelves_.size() < kGeometries) {
      found = shelves_.insert(shelves_.end(), Shelf{geometry, {}, 0});
    } else {
      found = std::ranges::min_element(shelves_, {}, &Shelf::last_asked);
      *found = Shelf{geometry, {}, 0};
    }
  }
  found->last_asked = ++asks_;
  return *found;
}

std::shared_ptr<SharedChannel> ChannelPool::take(ChannelGeometry geometry) {
  auto& shelf = shelf_for(geometry);
  if (shelf.channels.empty()) return make_channel(geometry);
  auto channel = std::move(shelf.channels.back());
  shelf.channels.pop_back();
  ++hits_;
  return channel;
}

bool ChannelPool::make_one_ahead() {
  auto shortest = std::ranges::min_element(shelves_, {}, [](const Shelf& s) { return s.channels.size(); });
  if (shortest == shelves_.end() || shortest->channels.size() >= kPerGeometry) return false;
  shortest->channels.push_back(make_channel(shortest->geometry));
  return true;
}

std::size_t ChannelPool::shelved() const {
  std::size_t n = 0;
  for (const auto& s : shelves_) n += s.channels.size();
  return n;
}

}  // namespace vdtu::dtu

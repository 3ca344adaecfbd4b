#pragma once
// Small pieces the channel tests share: an activated channel, and a header
// that says which message it is.

#include <gtest/gtest.h>

#include <cstdint>

#include "vdtu/channel.hpp"

namespace vdtu::testing {

inline SharedChannel active_channel(ChannelGeometry g) {
  auto ch = SharedChannel::create(g);
  EXPECT_EQ(ch.activate(), Status::kOk);
  return ch;
}

inline MessageHeader labelled(std::uint64_t label) {
  MessageHeader h{};
  h.label = label;
  return h;
}

}  // namespace vdtu::testing

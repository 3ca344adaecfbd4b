#pragma once
#include <bitset>

#include "protocol/control_messages.hpp"
#include "protocol/pe_page.hpp"

namespace vdtu::dtu {

// What the updates delivered in one go mean to a sleeping PE. New endpoints
// and channels change what a PE may do, not what it waits for: it applies
// them when it next touches its DTU (a message on a new channel rings its
// doorbell anyway). Only a PE waiting for that endpoint to appear, or any
// PE losing an endpoint or hearing of an exit, is woken.
class WakeReasons {
 public:
  void add(const NodeMessage& m) {
    if (m.kind == NodeMessageKind::kEndpointGone || m.kind == NodeMessageKind::kPeExited)
      ends_every_wait_ = true;
    if (m.kind != NodeMessageKind::kReply && m.kind != NodeMessageKind::kPeExited) endpoints_.set(m.ep);
  }
  [[nodiscard]] bool end(Sleeper sleeper) const {
    switch (sleeper.what) {
      case SleepingFor::kNothing: return false;
      case SleepingFor::kMessages: return ends_every_wait_;
      case SleepingFor::kEndpoint: return ends_every_wait_ || endpoints_.test(sleeper.ep);
    }
    return true;
  }

 private:
  bool ends_every_wait_ = false;
  std::bitset<256> endpoints_;
};

}  // namespace vdtu::dtu

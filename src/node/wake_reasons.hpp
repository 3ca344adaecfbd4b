#pragma once
#include <bitset>

#include "protocol/control_messages.hpp"
#include "protocol/pe_page.hpp"

namespace vdtu::dtu {

// What the updates delivered in one go mean to a sleeping PE. New endpoints
// and channels change what a PE may do, not what it waits for: it applies
// them when it next touches its DTU (a message on a new channel rings its
// doorbell anyway). A PE waiting for messages or credits is woken when it
// loses an endpoint; one waiting for an endpoint to appear, by an update of
// that endpoint; any sleeping PE by an exit notice.
class WakeReasons {
 public:
  void add(const NodeMessage& m) {
    if (m.kind == NodeMessageKind::kPeExited) exit_notice_ = true;
    if (m.kind == NodeMessageKind::kEndpointGone) endpoint_lost_ = true;
    if (m.kind != NodeMessageKind::kReply && m.kind != NodeMessageKind::kPeExited) endpoints_.set(m.ep);
  }
  [[nodiscard]] bool end(Sleeper sleeper) const {
    switch (sleeper.what) {
      case SleepingFor::kNothing:
      case SleepingFor::kAnswer: return false;  // the answer itself wakes it
      case SleepingFor::kMessages: return exit_notice_ || endpoint_lost_;
      case SleepingFor::kEndpoint: return exit_notice_ || endpoints_.test(sleeper.ep);
    }
    return true;
  }

 private:
  bool exit_notice_ = false;
  bool endpoint_lost_ = false;
  std::bitset<256> endpoints_;
};

}  // namespace vdtu::dtu

#pragma once
// Running guests to their end: each QEMU started, their consoles read as they
// come, until every guest has powered off, the timeout passes (the guests
// still running are killed) or a stop signal comes (all are killed, then
// vdtu::StoppedBySignal is thrown). Nothing is left running either way.

#include <optional>
#include <string>
#include <vector>

#include "guest.hpp"

namespace vdtu::vm {

struct GuestOutcome {
  std::string name;
  std::optional<int> exit_status;  // the guest command's, if it reported one
  std::string description;         // "exit 0", or what went wrong
  std::string console;
  bool timed_out = false;
};

// Blocks the stop signals while it runs (see StopSignals): call it before
// starting threads of your own.
std::vector<GuestOutcome> run_guests(const std::vector<GuestSpec>& specs, const GuestImage& image,
                                     double timeout_seconds);

}  // namespace vdtu::vm

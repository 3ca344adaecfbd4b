#pragma once
// Guests on one LAN: every guest's NIC on a vhost-user port of a `vdtu
// switch` started for them (and stopped after them), or two guests joined
// directly by QEMU's UDP socket netdev (no switch: a fallback and a
// baseline).

#include <vector>

#include "guest_run.hpp"

namespace vdtu::vm {

enum class GuestLink { vhost_user_switch, udp_pair };

// Sets each guest's network and runs them all (see run_guests).
std::vector<GuestOutcome> run_guests_on(GuestLink link, std::vector<GuestSpec> guests,
                                        const GuestImage& image, double timeout_seconds);

}  // namespace vdtu::vm

#pragma once
// Reference points measured in the same run as vdtu's own figures, so ratios
// hold on a noisy machine: the physical floor (one cache line bouncing between
// two processes) and the kernel's IPC primitives.

#include <cstddef>
#include <vector>

namespace vdtu::bench {

// Round trips in nanoseconds, one sample each, between two pinned processes.
std::vector<double> cacheline_pingpong_ns(std::size_t iterations);
std::vector<double> pipe_roundtrip_ns(std::size_t iterations, std::size_t message_bytes);
std::vector<double> unix_dgram_roundtrip_ns(std::size_t iterations, std::size_t message_bytes);
// UDP over loopback, both sides busy-polling non-blocking sockets: the floor
// under anything the bridge carries between two nodes on this host.
std::vector<double> udp_busy_poll_roundtrip_ns(std::size_t iterations, std::size_t message_bytes);

// Times each call of `op` (after `warmup` untimed calls).
template <class Op>
std::vector<double> time_each(std::size_t iterations, std::size_t warmup, Op op);

}  // namespace vdtu::bench

#include "baselines_inl.hpp"

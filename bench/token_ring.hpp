#pragma once
// Same-shape floors: what a multi-party operation would cost if vdtu added
// nothing. A token travels along a path of processes (party 0 is this
// process, which times each round) through one cache line per hop, or, where
// the real operation crosses nodes, through a busy-polled loopback UDP
// datagram. Every party waits as vdtu's parties do: a PE spins for 50 µs
// (yielding every 64 steps after 5 µs), then sleeps on a futex that the
// sender wakes only if it announced sleep (the channel's protocol); a
// datagram's receiver (a node's loop) polls 200 µs, then sleeps in poll().
// No process is pinned: the scheduler places them as it places PEs.

#include <cstddef>
#include <string>
#include <vector>

namespace vdtu::bench {

struct TokenPath {
  std::string name;                  // e.g. "floor_obtain_nodes"
  std::vector<unsigned> parties{0};  // the path; it must end at party 0
  std::vector<bool> udp;             // udp[i]: hop parties[i] -> parties[i+1] is a datagram

  // Appends a hop from the path's last party to `party`.
  TokenPath& to(unsigned party, bool by_udp = false) {
    parties.push_back(party);
    udp.push_back(by_udp);
    return *this;
  }
  [[nodiscard]] std::size_t hops() const { return udp.size(); }
  [[nodiscard]] unsigned party_count() const;
};

// 0 -> 1 -> ... -> n-1 -> ... -> 1 -> 0; the hops between parties
// `udp_after` and `udp_after + 1` (both ways) are datagrams, if it is given.
TokenPath there_and_back(std::string name, unsigned parties, int udp_after = -1);

// One sample per round (nanoseconds), after `warmup` untimed rounds. Throws
// if a party fails or the token stops moving for 30 s.
std::vector<double> token_ring_ns(const TokenPath& path, std::size_t iterations, std::size_t warmup);

}  // namespace vdtu::bench

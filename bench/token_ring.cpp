#include "token_ring.hpp"

#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>

#include "bridge/udp_socket.hpp"
#include "channel/spin_then_sleep.hpp"
#include "common/futex.hpp"

namespace vdtu::bench {

unsigned TokenPath::party_count() const { return *std::max_element(parties.begin(), parties.end()) + 1; }

TokenPath there_and_back(std::string name, unsigned parties, int udp_after) {
  TokenPath path;
  path.name = std::move(name);
  const auto udp_between = [&](unsigned a, unsigned b) {
    return udp_after >= 0 && std::min(a, b) == static_cast<unsigned>(udp_after);
  };
  for (unsigned p = 1; p < parties; ++p) path.to(p, udp_between(p - 1, p));
  for (unsigned p = parties - 1; p-- > 0;) path.to(p, udp_between(p + 1, p));
  return path;
}

namespace {

constexpr std::size_t kLine = 64;
constexpr std::size_t kDatagram = 64;
constexpr auto kStuck = std::chrono::seconds(30);
constexpr auto kNodePolls = std::chrono::microseconds(200);  // NodeLoop's kPollAfterWork

// One cache line per hop, shared by every party (inherited over fork).
class HopLines {
 public:
  explicit HopLines(std::size_t hops) : bytes_((hops + 1) * kLine) {
    void* p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
    base_ = static_cast<std::byte*>(p);
  }
  HopLines(const HopLines&) = delete;
  HopLines& operator=(const HopLines&) = delete;
  ~HopLines() { ::munmap(base_, bytes_); }
  [[nodiscard]] std::atomic_ref<std::uint64_t> line(std::size_t hop) const {
    return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(base_ + (hop + 1) * kLine));
  }
  [[nodiscard]] std::uint32_t& wait_word(std::size_t hop) const {
    return *reinterpret_cast<std::uint32_t*>(base_ + (hop + 1) * kLine + sizeof(std::uint64_t));
  }
  // The round after which every party stops (0: not known yet).
  [[nodiscard]] std::atomic_ref<std::uint64_t> last_round() const {
    return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(base_));
  }

 private:
  std::size_t bytes_;
  std::byte* base_ = nullptr;
};

// Everything the parties share: the path, the lines, a socket per party.
class Ring {
 public:
  explicit Ring(const TokenPath& path) : path_(path), lines_(path.hops()) {
    if (path.parties.front() != 0 || path.parties.back() != 0 || path.hops() == 0)
      throw std::invalid_argument("a token path starts and ends at party 0");
    for (unsigned p = 0; p < path.party_count(); ++p) {
      sockets_.push_back(bridge::UdpSocket::bind("127.0.0.1", 0));
      addresses_.push_back(bridge::make_address("127.0.0.1", sockets_.back().port()));
    }
  }

  // Hands the token on along hop `hop` in round `round`, waking the
  // receiver if it announced sleep (as a channel's producer does).
  void pass(std::size_t hop, std::uint64_t round) const {
    if (path_.udp[hop]) {
      std::array<std::byte, kDatagram> datagram{};
      const auto to = path_.parties[hop + 1];
      if (!sockets_[path_.parties[hop]].send_to(addresses_[to], datagram))
        throw std::runtime_error("UDP send failed");
      return;
    }
    lines_.line(hop).store(round, std::memory_order_seq_cst);
    if (detail::take_waiter(lines_.wait_word(hop)) != detail::kAwake)
      detail::futex_wake_all(&lines_.wait_word(hop));
  }

  // Waits for the token on hop `hop` in round `round`, as vdtu waits: a PE
  // spins (yielding after 5 µs), then sleeps on a futex; a node's loop, which
  // receives the datagrams, polls for as long as it does after work, then
  // sleeps in the kernel until the socket is readable.
  void take(std::size_t hop, std::uint64_t round) const {
    if (!path_.udp[hop]) {
      const auto st = detail::spin_then_sleep(WaitPolicy{}, kStuck, lines_.wait_word(hop), [&] {
        return lines_.line(hop).load(std::memory_order_acquire) >= round ? std::optional(Status::kOk)
                                                                         : std::nullopt;
      });
      if (st != Status::kOk) throw std::runtime_error("the token stopped moving");
      return;
    }
    std::array<std::byte, kDatagram> datagram{};
    const auto& socket = sockets_[path_.parties[hop + 1]];
    const auto start = std::chrono::steady_clock::now();
    detail::HeavySpinner spinner;  // as the node's loop polls
    for (;;) {
      if (socket.receive(datagram) == datagram.size()) return;
      const auto waited = std::chrono::steady_clock::now() - start;
      if (waited > kStuck) throw std::runtime_error("the token stopped moving");
      if (waited < kNodePolls) {
        spinner.pause();
      } else {
        (void)socket.wait_readable(std::chrono::milliseconds(10));
      }
    }
  }

  // One round as party `party` sees it: every hop that reaches it, in order,
  // and the hop after it. Party 0 starts the round, saying first whether it
  // is the last one.
  void round(unsigned party, std::uint64_t round, bool last = false) const {
    if (party == 0) {
      if (last) lines_.last_round().store(round, std::memory_order_relaxed);
      pass(0, round);
    }
    for (std::size_t hop = 0; hop < path_.hops(); ++hop) {
      if (path_.parties[hop + 1] != party) continue;
      take(hop, round);
      if (hop + 1 < path_.hops()) pass(hop + 1, round);
    }
  }
  // For the other parties, after their part of round `round`: the store
  // preceded this round's token, so it is seen by now.
  [[nodiscard]] bool was_last(std::uint64_t round) const {
    return lines_.last_round().load(std::memory_order_relaxed) == round;
  }

 private:
  const TokenPath& path_;
  HopLines lines_;
  std::vector<bridge::UdpSocket> sockets_;
  std::vector<sockaddr_in> addresses_;
};

// The other parties: processes that die with us.
class Parties {
 public:
  template <class Body>
  Parties(unsigned count, Body body) {
    const pid_t parent = ::getpid();
    for (unsigned p = 1; p < count; ++p) {
      const pid_t pid = ::fork();
      if (pid < 0) throw std::runtime_error("fork failed");
      if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(98);
        int code = 99;
        try {
          code = body(p);
        } catch (...) {
        }
        ::_exit(code);
      }
      pids_.push_back(pid);
    }
  }
  Parties(const Parties&) = delete;
  Parties& operator=(const Parties&) = delete;
  ~Parties() {
    for (pid_t pid : pids_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  void join() {
    bool ok = true;
    for (pid_t pid : pids_) {
      int status = 0;
      ::waitpid(pid, &status, 0);
      ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    pids_.clear();
    if (!ok) throw std::runtime_error("a token-ring party failed");
  }

 private:
  std::vector<pid_t> pids_;
};

}  // namespace

std::vector<double> token_ring_ns(const TokenPath& path, std::size_t iterations, std::size_t warmup) {
  // On a loaded machine a round of many parties can take milliseconds: stop
  // early rather than run for minutes (the samples say how many there were).
  constexpr auto kBudget = std::chrono::seconds(3);
  const Ring ring(path);
  Parties parties(path.party_count(), [&](unsigned party) {
    for (std::uint64_t r = 1;; ++r) {
      ring.round(party, r);
      if (ring.was_last(r)) break;
    }
    return 0;
  });
  std::vector<double> samples;
  samples.reserve(iterations);
  const auto start = std::chrono::steady_clock::now();
  bool warm = warmup == 0;
  for (std::uint64_t r = 1;; ++r) {
    const auto t = std::chrono::steady_clock::now();
    warm = warm || r > warmup || t - start > kBudget / 4;
    const bool last = warm && (samples.size() + 1 == iterations || t - start > kBudget);
    ring.round(0, r, last);
    if (warm) {
      samples.push_back(
          std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t).count());
    }
    if (last) break;
  }
  parties.join();
  return samples;
}

}  // namespace vdtu::bench

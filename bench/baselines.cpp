#include "baselines.hpp"

#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "bridge/udp_socket.hpp"
#include "pinned_child.hpp"
#include "vdtu/unique_fd.hpp"

namespace vdtu::bench {
namespace {

class SharedLine {
 public:
  SharedLine() {
    void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
    word_ = static_cast<std::uint64_t*>(p);
  }
  SharedLine(const SharedLine&) = delete;
  SharedLine& operator=(const SharedLine&) = delete;
  ~SharedLine() { ::munmap(word_, 4096); }
  [[nodiscard]] std::atomic_ref<std::uint64_t> word() const { return std::atomic_ref<std::uint64_t>(*word_); }

 private:
  std::uint64_t* word_;
};

void full_write(int fd, const void* data, std::size_t n) {
  if (::write(fd, data, n) != static_cast<ssize_t>(n)) throw std::runtime_error("write failed");
}
void full_read(int fd, void* data, std::size_t n) {
  if (::read(fd, data, n) != static_cast<ssize_t>(n)) throw std::runtime_error("read failed");
}

// Echo round trips over a pair of fds (a = parent's end for sending, b = for
// receiving; the child uses the opposite ends).
std::vector<double> fd_roundtrips(int parent_tx, int parent_rx, int child_rx, int child_tx,
                                  std::size_t iterations, std::size_t bytes) {
  constexpr std::size_t kWarmup = 200;
  PinnedChild child([&] {
    std::vector<char> buf(bytes);
    for (std::size_t i = 0; i < iterations + kWarmup; ++i) {
      full_read(child_rx, buf.data(), bytes);
      full_write(child_tx, buf.data(), bytes);
    }
    return 0;
  });
  std::vector<char> buf(bytes, 'x');
  auto samples = time_each(iterations, kWarmup, [&] {
    full_write(parent_tx, buf.data(), bytes);
    full_read(parent_rx, buf.data(), bytes);
  });
  child.join();
  return samples;
}

// Spins until a datagram of `bytes` arrives.
void busy_receive(const bridge::UdpSocket& socket, std::span<std::byte> buffer) {
  while (socket.receive(buffer) != buffer.size()) __builtin_ia32_pause();
}

}  // namespace

std::vector<double> cacheline_pingpong_ns(std::size_t iterations) {
  constexpr std::size_t kWarmup = 10'000;
  SharedLine line;
  const std::uint64_t rounds = iterations + kWarmup;
  PinnedChild child([&] {
    auto w = line.word();
    for (std::uint64_t i = 1; i <= rounds; ++i) {
      while (w.load(std::memory_order_acquire) != 2 * i - 1) __builtin_ia32_pause();
      w.store(2 * i, std::memory_order_release);
    }
    return 0;
  });
  auto w = line.word();
  std::uint64_t value = 0;
  auto samples = time_each(iterations, kWarmup, [&] {
    w.store(++value, std::memory_order_release);
    ++value;
    while (w.load(std::memory_order_acquire) != value) __builtin_ia32_pause();
  });
  child.join();
  return samples;
}

std::vector<double> pipe_roundtrip_ns(std::size_t iterations, std::size_t message_bytes) {
  int to_child[2];
  int to_parent[2];
  if (::pipe(to_child) != 0 || ::pipe(to_parent) != 0) throw std::runtime_error("pipe failed");
  UniqueFd a(to_child[0]), b(to_child[1]), c(to_parent[0]), d(to_parent[1]);
  return fd_roundtrips(b.get(), c.get(), a.get(), d.get(), iterations, message_bytes);
}

std::vector<double> unix_dgram_roundtrip_ns(std::size_t iterations, std::size_t message_bytes) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) != 0) throw std::runtime_error("socketpair failed");
  UniqueFd parent(sv[0]), child(sv[1]);
  return fd_roundtrips(parent.get(), parent.get(), child.get(), child.get(), iterations, message_bytes);
}

std::vector<double> udp_busy_poll_roundtrip_ns(std::size_t iterations, std::size_t message_bytes) {
  constexpr std::size_t kWarmup = 1'000;
  const auto parent = bridge::UdpSocket::bind("127.0.0.1", 0);
  const auto child = bridge::UdpSocket::bind("127.0.0.1", 0);
  const auto to_parent = bridge::make_address("127.0.0.1", parent.port());
  const auto to_child = bridge::make_address("127.0.0.1", child.port());
  PinnedChild echo([&] {
    std::vector<std::byte> buffer(message_bytes);
    for (std::size_t i = 0; i < iterations + kWarmup; ++i) {
      busy_receive(child, buffer);
      if (!child.send_to(to_parent, buffer)) return 1;
    }
    return 0;
  });
  std::vector<std::byte> buffer(message_bytes, std::byte{'x'});
  auto samples = time_each(iterations, kWarmup, [&] {
    if (!parent.send_to(to_child, buffer)) throw std::runtime_error("UDP send failed");
    busy_receive(parent, buffer);
  });
  echo.join();
  return samples;
}

}  // namespace vdtu::bench

#pragma once
// A small vhost-user frontend (the driver side, as QEMU or DPDK's
// virtio-user would be) for tests: guest memory is a memfd of its own, with
// both split rings and their buffers in it. It negotiates, sends frames on
// the transmit queue and takes them from the receive queue, and, for the
// hostile tests, writes whatever descriptors and indices it is told to.

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/fd_passing.hpp"
#include "vdtu/unique_fd.hpp"

namespace vdtu::testing {

class VhostFrontend {
 public:
  static constexpr std::uint32_t kEntries = 256;
  static constexpr std::size_t kMemoryBytes = std::size_t{2} << 20U;
  static constexpr std::size_t kBufferBytes = 2048;
  static constexpr std::size_t kHeaderBytes = 12;  // 10 for legacy devices without MRG_RXBUF
  static constexpr std::uint64_t kVersion1 = 1ULL << 32U;
  static constexpr std::uint64_t kMergeable = 1ULL << 15U;
  static constexpr std::uint64_t kEventIndex = 1ULL << 29U;
  static constexpr std::uint64_t kProtocolFeatures = 1ULL << 30U;

  struct Descriptor {
    std::uint64_t address;
    std::uint32_t length;
    std::uint16_t flags;
    std::uint16_t next;
  };

  explicit VhostFrontend(UniqueFd socket) : socket_(std::move(socket)) {
    memfd_.reset(::memfd_create("vhost-frontend-test", MFD_CLOEXEC));
    if (!memfd_ || ::ftruncate(memfd_.get(), kMemoryBytes) != 0) throw std::runtime_error("memfd");
    void* p = ::mmap(nullptr, kMemoryBytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd_.get(), 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap");
    memory_ = static_cast<std::byte*>(p);
    for (auto& fd : kick_) fd.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    for (auto& fd : call_) fd.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  }
  VhostFrontend(const VhostFrontend&) = delete;
  VhostFrontend& operator=(const VhostFrontend&) = delete;
  ~VhostFrontend() { ::munmap(memory_, kMemoryBytes); }

  // Connects to a switch listening at `path` (waiting up to 10 s for it).
  static UniqueFd connect_to(const std::string& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.data(), std::min(path.size(), sizeof(address.sun_path) - 1));
    for (int i = 0; i < 200; ++i) {
      UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0) return fd;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    throw std::runtime_error("cannot connect to " + path);
  }

  // --- messages -----------------------------------------------------------
  bool send(std::uint32_t request, const void* payload, std::uint32_t size, std::span<const int> fds = {},
            bool need_reply = false) {
    std::vector<std::byte> bytes(12 + size);
    const std::uint32_t flags = 1U | (need_reply ? 8U : 0U);
    std::memcpy(bytes.data(), &request, 4);
    std::memcpy(bytes.data() + 4, &flags, 4);
    std::memcpy(bytes.data() + 8, &size, 4);
    if (size != 0) std::memcpy(bytes.data() + 12, payload, size);
    return send_with_fds(socket_.get(), bytes, fds, SendWait::kBlock);
  }
  bool send_u64(std::uint32_t request, std::uint64_t value, std::span<const int> fds = {}) {
    return send(request, &value, sizeof(value), fds);
  }
  bool send_pair(std::uint32_t request, std::uint32_t index, std::uint32_t num) {
    const std::array<std::uint32_t, 2> p{index, num};
    return send(request, p.data(), sizeof(p));
  }
  // A reply's payload (nullopt when none came within 5 s).
  std::optional<std::vector<std::byte>> reply() {
    std::array<std::byte, 12> header{};
    if (!read_all(header.data(), header.size())) return std::nullopt;
    std::uint32_t size = 0;
    std::memcpy(&size, header.data() + 8, 4);
    std::vector<std::byte> payload(size);
    if (size != 0 && !read_all(payload.data(), size)) return std::nullopt;
    return payload;
  }
  std::optional<std::uint64_t> ask_u64(std::uint32_t request) {
    if (!send(request, nullptr, 0)) return std::nullopt;
    auto r = reply();
    if (!r || r->size() != 8) return std::nullopt;
    std::uint64_t v = 0;
    std::memcpy(&v, r->data(), 8);
    return v;
  }
  // True when the switch hung up (it shut the port down).
  bool closed_by_peer(std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    pollfd p{socket_.get(), POLLIN, 0};
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
      if (::poll(&p, 1, 100) > 0) {
        std::byte b{};
        const auto n = ::recv(socket_.get(), &b, 1, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN)) return true;
      }
    }
    return false;
  }

  // --- the whole start-up, as QEMU does it --------------------------------
  void negotiate(std::uint64_t wanted = kVersion1 | kMergeable | kEventIndex | kProtocolFeatures) {
    const auto offered = ask_u64(1).value();  // GET_FEATURES
    features_ = offered & wanted;
    if ((features_ & kProtocolFeatures) != 0) {
      const auto protocol = ask_u64(15).value();  // GET_PROTOCOL_FEATURES
      send_u64(16, protocol & (1ULL << 3U));      // REPLY_ACK only
    }
    send(3, nullptr, 0);  // SET_OWNER
    send_u64(2, features_);
    set_mem_table();
    for (std::uint32_t q = 0; q < 2; ++q) {
      send_pair(8, q, kEntries);  // SET_VRING_NUM
      send_pair(10, q, 0);        // SET_VRING_BASE
      set_addresses(q);
      const std::array<int, 1> kick{kick_[q].get()};
      send_u64(12, q, kick);
      const std::array<int, 1> call{call_[q].get()};
      send_u64(13, q, call);
      if ((features_ & kProtocolFeatures) != 0) send_pair(18, q, 1);  // SET_VRING_ENABLE
    }
    post_receive_buffers();
  }
  void set_mem_table() {
    struct {
      std::uint32_t count = 1;
      std::uint32_t padding = 0;
      std::uint64_t guest = 0, size = kMemoryBytes, user = 0, offset = 0;
    } table;
    table.user = reinterpret_cast<std::uint64_t>(memory_);
    const std::array<int, 1> fds{memfd_.get()};
    send(5, &table, sizeof(table), fds);
  }
  void set_addresses(std::uint32_t q) {
    struct {
      std::uint32_t index, flags;
      std::uint64_t descriptors, used, available, log;
    } a{q, 0, user(descriptor_offset(q)), user(used_offset(q)), user(available_offset(q)), 0};
    send(9, &a, sizeof(a));
  }

  // --- frames --------------------------------------------------------------
  // Puts a frame on the transmit queue (one descriptor: header and frame).
  void transmit(std::span<const std::byte> frame) {
    const auto slot = static_cast<std::uint16_t>(tx_next_ % kEntries);
    auto* buffer = memory_ + tx_buffer_offset(slot);
    std::memset(buffer, 0, header_bytes());
    std::memcpy(buffer + header_bytes(), frame.data(), frame.size());
    put_descriptor(1, slot,
                   {tx_buffer_offset(slot), static_cast<std::uint32_t>(header_bytes() + frame.size()), 0, 0});
    make_available(1, slot);
  }
  // Waits until the switch has given back every transmitted frame.
  bool transmitted(std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
      if (load16(used_offset(1) + 2) == static_cast<std::uint16_t>(tx_next_)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  }
  // The next frame from the switch (header stripped), re-posting its buffer.
  std::optional<std::vector<std::byte>> receive(std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (load16(used_offset(0) + 2) == rx_used_) {
      if (std::chrono::steady_clock::now() >= until) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    std::uint32_t id = 0;
    std::uint32_t length = 0;
    const auto element = used_offset(0) + 4 + std::size_t{8} * (rx_used_ % kEntries);
    std::memcpy(&id, memory_ + element, 4);
    std::memcpy(&length, memory_ + element + 4, 4);
    ++rx_used_;
    if (id >= kEntries || length < header_bytes() || length > kBufferBytes)
      throw std::runtime_error("bad used entry");
    const auto* buffer = memory_ + rx_buffer_offset(id);
    std::vector<std::byte> frame(buffer + header_bytes(), buffer + length);
    make_available(0, static_cast<std::uint16_t>(id));
    return frame;
  }

  // --- raw access for hostile tests -----------------------------------------
  void put_descriptor(std::uint32_t q, std::uint16_t index, const Descriptor& d) {
    std::memcpy(memory_ + descriptor_offset(q) + std::size_t{16} * index, &d, sizeof(d));
  }
  void make_available(std::uint32_t q, std::uint16_t head) {
    auto& next = q == 0 ? rx_avail_ : tx_avail_;
    std::memcpy(memory_ + available_offset(q) + 4 + std::size_t{2} * (next % kEntries), &head, 2);
    ++next;
    if (q == 1) ++tx_next_;
    store16(available_offset(q) + 2, next);
    kick(q);
  }
  void set_available_index(std::uint32_t q, std::uint16_t value) {
    store16(available_offset(q) + 2, value);
    kick(q);
  }
  void kick(std::uint32_t q) {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(kick_[q].get(), &one, sizeof(one));
  }
  [[nodiscard]] int memfd() const { return memfd_.get(); }
  [[nodiscard]] std::uint64_t user(std::size_t offset) const {
    return reinterpret_cast<std::uint64_t>(memory_) + offset;
  }
  [[nodiscard]] std::uint64_t features() const { return features_; }
  [[nodiscard]] std::size_t header_bytes() const {
    return (features_ & (kVersion1 | kMergeable)) != 0 ? kHeaderBytes : 10;
  }
  static std::size_t descriptor_offset(std::uint32_t q) { return std::size_t{q} * 0x10000; }
  static std::size_t available_offset(std::uint32_t q) { return descriptor_offset(q) + 0x1000; }
  static std::size_t used_offset(std::uint32_t q) { return descriptor_offset(q) + 0x2000; }
  static std::size_t rx_buffer_offset(std::uint32_t i) { return 0x20000 + i * kBufferBytes; }
  static std::size_t tx_buffer_offset(std::uint32_t i) { return 0x20000 + (kEntries + i) * kBufferBytes; }

 private:
  void post_receive_buffers() {
    for (std::uint16_t i = 0; i < kEntries; ++i) {
      put_descriptor(0, i, {rx_buffer_offset(i), static_cast<std::uint32_t>(kBufferBytes), 2, 0});
      make_available(0, i);
    }
  }
  [[nodiscard]] std::uint16_t load16(std::size_t offset) const {
    return std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(memory_ + offset))
        .load(std::memory_order_acquire);
  }
  void store16(std::size_t offset, std::uint16_t value) {
    std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(memory_ + offset))
        .store(value, std::memory_order_release);
  }
  bool read_all(std::byte* to, std::size_t n) {
    std::size_t done = 0;
    while (done < n) {
      pollfd p{socket_.get(), POLLIN, 0};
      if (::poll(&p, 1, 5000) <= 0) return false;
      const auto got = ::recv(socket_.get(), to + done, n - done, 0);
      if (got <= 0) return false;
      done += static_cast<std::size_t>(got);
    }
    return true;
  }

  UniqueFd socket_;
  UniqueFd memfd_;
  std::byte* memory_ = nullptr;
  std::array<UniqueFd, 2> kick_;
  std::array<UniqueFd, 2> call_;
  std::uint64_t features_ = 0;
  std::uint16_t rx_avail_ = 0;
  std::uint16_t tx_avail_ = 0;
  std::uint16_t rx_used_ = 0;
  std::uint32_t tx_next_ = 0;
};

}  // namespace vdtu::testing

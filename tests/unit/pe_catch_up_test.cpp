// The PE library against a node played by the test: the node moves a PE's
// epoch by the updates it is about to send before it sends them, so a PE
// that sees the epoch move must wait for them rather than look too early.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <thread>

#include "common/sealed_memfd.hpp"
#include "protocol/control_messages.hpp"
#include "protocol/doorbell.hpp"
#include "protocol/fd_socket.hpp"
#include "protocol/pe_page.hpp"
#include "vdtu/channel.hpp"
#include "vdtu/dtu.hpp"

namespace vdtu::dtu {
namespace {

using namespace std::chrono_literals;

constexpr std::uint32_t kEndpoints = 8;
constexpr ChannelGeometry kMemoryGeometry{4, 4096};

// What a node keeps of one PE: its end of the control socket and its page.
class PlayedNode {
 public:
  PlayedNode() {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0)
      throw std::runtime_error("socketpair");
    node_end_ = UniqueFd(pair[0]);
    pe_end_ = UniqueFd(pair[1]);
    NodeMessage hello{};
    hello.kind = NodeMessageKind::kHello;
    hello.pe = 3;
    hello.endpoints = kEndpoints;
    hello.local_memory_bytes = 4096;
    hello.slot_count = kMemoryGeometry.slot_count;
    hello.slot_size = kMemoryGeometry.slot_size;
    hello.page_epoch = page_.config_epoch();
    const std::array<int, 7> fds{doorbell_.fd(),      memory_.get(),      requests_.memfd(),
                                 requests_.eventfd(), responses_.memfd(), responses_.eventfd(),
                                 page_.fd()};
    if (!send_with_fds(node_end_.get(), std::as_bytes(std::span(&hello, 1)), fds))
      throw std::runtime_error("hello");
  }

  UniqueFd take_pe_end() { return std::move(pe_end_); }
  void announce(std::uint32_t messages) { page_.announce(messages); }
  void send_receive_endpoint(EpId ep) {
    NodeMessage m{};
    m.kind = NodeMessageKind::kReceiveEndpoint;
    m.ep = ep;
    m.slot_count = 4;
    m.slot_size = 512;
    ASSERT_TRUE(send_with_fds(node_end_.get(), std::as_bytes(std::span(&m, 1)), {}));
  }
  void close() { node_end_.reset(); }

 private:
  Doorbell doorbell_ = Doorbell::create(kEndpoints);
  UniqueFd memory_ = make_sealed_memfd("test-pe-memory", 4096);
  SharedChannel requests_ = SharedChannel::create(kMemoryGeometry);
  SharedChannel responses_ = SharedChannel::create(kMemoryGeometry);
  PePage page_ = PePage::create();
  UniqueFd node_end_;
  UniqueFd pe_end_;
};

TEST(PeCatchUp, AnAnnouncedUpdateIsWaitedForNotMissed) {
  PlayedNode node;
  Dtu dtu(node.take_pe_end());
  EXPECT_EQ(dtu.endpoint_kind(2), EndpointKind::kInvalid);
  node.announce(1);
  std::thread late([&] {
    std::this_thread::sleep_for(100ms);
    node.send_receive_endpoint(2);
  });
  EXPECT_EQ(dtu.endpoint_kind(2), EndpointKind::kReceive) << "the first look after the announcement";
  late.join();
  EXPECT_EQ(dtu.stats().lost_updates, 0U);
}

TEST(PeCatchUp, UpdatesAlreadyInTheSocketAreTakenWithoutWaiting) {
  PlayedNode node;
  Dtu dtu(node.take_pe_end());
  node.send_receive_endpoint(1);
  node.send_receive_endpoint(4);
  node.announce(2);
  EXPECT_EQ(dtu.endpoint_kind(1), EndpointKind::kReceive);
  EXPECT_EQ(dtu.endpoint_kind(4), EndpointKind::kReceive);
}

TEST(PeCatchUp, ANodeThatEndsInsteadOfSendingDoesNotHangThePe) {
  PlayedNode node;
  Dtu dtu(node.take_pe_end());
  node.announce(3);
  std::thread ending([&] {
    std::this_thread::sleep_for(50ms);
    node.close();
  });
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(dtu.endpoint_kind(0), EndpointKind::kInvalid);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s)
      << "the closed socket ends the wait, not the 5 s patience";
  ending.join();
}

}  // namespace
}  // namespace vdtu::dtu

// `vdtu switch` as a process with client processes on shared-memory ports:
// pings between clients, clients that refuse to play by the rules (garbage in
// their rings, requests the switch does not understand) or die mid-stream,
// and (as root) an uplink to a network namespace whose Linux stack talks to a
// client: ARP, ICMP echo and UDP, with checksums the switch completes.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstring>
#include <random>
#include <thread>

#include "net/port_protocol.hpp"
#include "net/probe/linux_probes.hpp"
#include "net/probe/probe_host.hpp"
#include "net/probe/veth_namespace.hpp"
#include "net/unix_message.hpp"
#include "support/child_process.hpp"
#include "support/ethernet.hpp"
#include "support/program_process.hpp"
#include "support/switch_process.hpp"
#include "vdtu/net.hpp"

namespace vdtu::net {
namespace {

using namespace std::chrono_literals;
using probe::ipv4;
using testing::ChildProcess;
using testing::mac;
using testing::SwitchProcess;
using TestHost = probe::ProbeHost;

bool contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

// A client that speaks the socket protocol itself and keeps the raw fds, as
// a hostile one would.
struct RawClient {
  UniqueFd control;
  wire::ConnectReply reply;
  std::vector<UniqueFd> fds;

  explicit RawClient(const std::string& socket) : control(connect_unix(socket)) {
    wire::Request request;
    if (!send_message(control.get(), std::as_bytes(std::span(&request, 1)))) throw std::runtime_error("send");
    std::size_t size = 0;
    if (receive_message(control.get(), std::as_writable_bytes(std::span(&reply, 1)), size, fds, 10s) !=
            Received::kMessage ||
        reply.accepted == 0 || fds.size() != 4) {
      throw std::runtime_error("no port");
    }
  }
  [[nodiscard]] std::size_t ring_bytes() const {
    return ChannelGeometry{reply.to_switch_slots, reply.to_switch_slot_size}.total_bytes();
  }
};

// Host B answers on its own port in a child process until it was pinged
// `pings` times (or, with 0, until the test ends).
ChildProcess responder(const std::string& socket, std::uint64_t pings) {
  return ChildProcess([socket, pings] {
    TestHost b(SwitchPort::connect(socket), mac(0xb), ipv4(10, 0, 0, 2));
    const bool ok =
        b.serve(pings == 0 ? 600s : 60s, [&] { return pings != 0 && b.echo_requests_answered() >= pings; });
    return ok || pings == 0 ? 0 : 1;
  });
}

TEST(Switch, TwoClientProcessesPingEachOther) {
  SwitchProcess sw({});
  auto b = responder(sw.socket(), 5);
  TestHost a(SwitchPort::connect(sw.socket()), mac(0xa), ipv4(10, 0, 0, 1));
  EXPECT_TRUE(a.ping(ipv4(10, 0, 0, 2), 5, 30s));
  EXPECT_EQ(b.wait(), 0) << sw.log();
  const auto stats = read_switch_report(sw.socket(), true);
  EXPECT_TRUE(contains(stats, "\"learned\":2,")) << stats;
  EXPECT_TRUE(contains(stats, "\"ports_connected\":2,")) << stats;
  EXPECT_TRUE(sw.wait_for_log("closed: client", 10s)) << "b's port went with b: " << sw.log();
  EXPECT_EQ(sw.stop(), 0) << "a clean end (under the sanitizers: nothing leaked): " << sw.log();
}

TEST(Switch, AClientScribblingOverItsRingsIsCutOffAndOthersGoOn) {
  SwitchProcess sw({});
  auto b = responder(sw.socket(), 0);
  RawClient rogue(sw.socket());
  ChildProcess scribbler([&] {
    const auto bytes = rogue.ring_bytes();
    void* to = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, rogue.fds[0].get(), 0);
    void* from = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, rogue.fds[2].get(), 0);
    if (to == MAP_FAILED || from == MAP_FAILED) return 1;
    std::mt19937_64 random(3);
    const auto until = std::chrono::steady_clock::now() + 300ms;
    while (std::chrono::steady_clock::now() < until) {
      const auto word = random();
      std::memcpy(static_cast<std::byte*>(random() % 2 == 0 ? to : from) + (random() % (bytes - 8)), &word,
                  8);
      const std::uint64_t one = 1;
      if (random() % 64 == 0) [[maybe_unused]]
        auto n = ::write(rogue.fds[1].get(), &one, sizeof(one));
    }
    // And for certain: every slot of the ring claims an index far outside it.
    const std::uint32_t broken = 0x7fff'0000U;
    const auto stride = (bytes - 320) / rogue.reply.to_switch_slots;
    for (std::size_t slot = 0; slot < rogue.reply.to_switch_slots; ++slot) {
      std::memcpy(static_cast<std::byte*>(to) + 320 + slot * stride, &broken, sizeof(broken));
    }
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(rogue.fds[1].get(), &one, sizeof(one));
    return 0;
  });
  EXPECT_EQ(scribbler.wait(), 0);
  EXPECT_TRUE(sw.wait_for_log("shut down: client corrupted its", 20s)) << sw.log();
  TestHost a(SwitchPort::connect(sw.socket()), mac(0xa), ipv4(10, 0, 0, 1));
  EXPECT_TRUE(a.ping(ipv4(10, 0, 0, 2), 3, 30s)) << sw.log();
  EXPECT_TRUE(contains(read_switch_report(sw.socket(), true), "\"ports_shut_down\":1,"));
  // The rogue learns it was cut off: its connection ends.
  std::array<std::byte, 16> buffer{};
  std::size_t size = 0;
  std::vector<UniqueFd> fds;
  EXPECT_EQ(receive_message(rogue.control.get(), buffer, size, fds, 10s), Received::kClosed);
  EXPECT_EQ(sw.stop(), 0) << sw.log();
}

TEST(Switch, AClientKilledMidStreamIsCleanedUp) {
  SwitchProcess sw({});
  auto b = responder(sw.socket(), 0);
  ChildProcess flooder([&] {
    auto port = SwitchPort::connect(sw.socket());
    const auto frame = testing::ethernet_frame(MacAddress::broadcast(), mac(0xf), 200);
    for (;;) {
      const auto st = port.try_send(frame);
      if (st == Status::kFull) port.wait_writable(10ms);
      if (st != Status::kOk && st != Status::kFull) return 1;
    }
  });
  ASSERT_TRUE(sw.wait_for_log("connected: pid " + std::to_string(flooder.pid()), 20s)) << sw.log();
  std::this_thread::sleep_for(200ms);
  flooder.kill_now();
  EXPECT_EQ(flooder.wait(), 128 + SIGKILL);
  EXPECT_TRUE(sw.wait_for_log("closed: client disconnected", 20s)) << sw.log();
  TestHost a(SwitchPort::connect(sw.socket()), mac(0xa), ipv4(10, 0, 0, 1));
  EXPECT_TRUE(a.ping(ipv4(10, 0, 0, 2), 3, 30s));
  const auto stats = read_switch_report(sw.socket(), true);
  EXPECT_TRUE(contains(stats, "\"ports_up\":2,")) << stats;
  EXPECT_TRUE(contains(stats, "\"ports_closed\":1,")) << stats;
  EXPECT_EQ(sw.stop(), 0) << sw.log();
}

TEST(Switch, RefusesWhatItCannotOrMayNotDo) {
  SwitchProcess sw({"--port", "web=02:00:00:00:00:33", "--named-only"});
  try {
    SwitchPort::connect(sw.socket());
    ADD_FAILURE() << "an anonymous port on a named-only switch";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), "only named ports")) << e.what();
  }
  {
    auto web = SwitchPort::connect(sw.socket(), {"web"});
    EXPECT_EQ(web.info().name, "web");
    ASSERT_TRUE(web.info().mac);
    EXPECT_EQ(web.info().mac->to_string(), "02:00:00:00:00:33");
    EXPECT_EQ(web.info().mtu, 1500U);
    try {
      SwitchPort::connect(sw.socket(), {"web"});
      ADD_FAILURE() << "one port, two clients";
    } catch (const std::runtime_error& e) {
      EXPECT_TRUE(contains(e.what(), "in use")) << e.what();
    }
  }
  try {
    SwitchPort::connect(sw.socket(), {"nope"});
    ADD_FAILURE() << "a port that does not exist";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), "no port named 'nope'")) << e.what();
  }
  // A request of the wrong size, then one with fds attached.
  for (int variant = 0; variant < 2; ++variant) {
    auto fd = connect_unix(sw.socket());
    wire::Request request;
    const int extra = ::dup(0);
    const std::array<int, 1> fds{extra};
    ASSERT_TRUE(variant == 0 ? send_message(fd.get(), std::as_bytes(std::span(&request, 1)).first(10))
                             : send_message(fd.get(), std::as_bytes(std::span(&request, 1)), fds));
    ::close(extra);
    wire::ConnectReply reply;
    std::size_t size = 0;
    std::vector<UniqueFd> got;
    ASSERT_EQ(receive_message(fd.get(), std::as_writable_bytes(std::span(&reply, 1)), size, got, 10s),
              Received::kMessage);
    EXPECT_EQ(reply.accepted, 0);
    EXPECT_EQ(wire::get_text(reply.error), "malformed request");
  }
  // The port is free again once its client has gone.
  EXPECT_TRUE(sw.wait_for_log("closed:", 10s));
  EXPECT_NO_THROW(SwitchPort::connect(sw.socket(), {"web"}));
  const auto stats = read_switch_report(sw.socket(), false);
  EXPECT_TRUE(contains(stats, "clients refused 5")) << stats;
}

TEST(Switch, TheExampleConfigurationGivesNamedPortsTheirSettings) {
  SwitchProcess sw({"--config", VDTU_SOURCE_DIR "/examples/switch.toml"});  // --socket overrides the file's
  auto web = SwitchPort::connect(sw.socket(), {"web"});
  ASSERT_TRUE(web.info().mac);
  EXPECT_EQ(web.info().mac->to_string(), "02:00:00:00:00:10");
  auto db = SwitchPort::connect(sw.socket(), {"db"});
  EXPECT_EQ(db.info().mtu, 9000U);
  EXPECT_FALSE(db.info().mac);
  // web may send only as itself; db's static address cannot be claimed from web.
  auto frame = [](std::uint8_t source) {
    return testing::ethernet_frame(MacAddress::broadcast(), mac(source));
  };
  ASSERT_EQ(web.try_send(frame(0x10)), Status::kOk);
  ASSERT_EQ(web.try_send(frame(0x20)), Status::kOk);
  ASSERT_EQ(web.try_send(frame(0x66)), Status::kOk);
  ASSERT_EQ(db.wait_readable(10s), Status::kOk);
  std::this_thread::sleep_for(100ms);
  std::array<std::span<const std::byte>, 8> got{};
  std::uint32_t n = 0;
  ASSERT_EQ(db.try_receive_burst(got, n), Status::kOk);
  EXPECT_EQ(n, 1U) << "only the frame from web's own address";
  db.release(n);
  const auto stats = read_switch_report(sw.socket(), true);
  EXPECT_TRUE(contains(stats, "\"source_not_allowed\":2")) << stats;
  EXPECT_TRUE(contains(stats, "\"mac_static\":2")) << stats;
}

TEST(Switch, ClientsWaitingOnTheirRingsLearnTheSwitchIsGone) {
  auto sw = std::make_unique<SwitchProcess>(std::vector<std::string>{});
  auto port = SwitchPort::connect(sw->socket());
  EXPECT_EQ(sw->stop(), 0);
  EXPECT_EQ(port.wait_readable(10s), Status::kTerminated);
  const auto frame = testing::ethernet_frame(MacAddress::broadcast(), mac(1));
  EXPECT_EQ(port.try_send(frame), Status::kTerminated);
}

// lwIP on a switch port, started as its own process; ready once it says so.
std::unique_ptr<testing::ProgramProcess> lwip_echo(const SwitchProcess& sw, const std::string& cidr) {
  auto lwip = std::make_unique<testing::ProgramProcess>(
      std::vector<std::string>{VDTU_LWIP_ECHO_PATH, "--socket", sw.socket(), "--ip", cidr},
      sw.dir() + "/lwip_echo.log");
  if (!lwip->wait_for_log("echo on udp and tcp port 7", 30s))
    throw std::runtime_error("lwip_echo: " + lwip->log());
  return lwip;
}

TEST(Switch, LwipAnswersPingAndUdpEchoFromAClient) {
  SwitchProcess sw({});
  const auto lwip = lwip_echo(sw, "10.0.0.9/24");
  TestHost a(SwitchPort::connect(sw.socket()), mac(0xa), ipv4(10, 0, 0, 1));
  EXPECT_TRUE(a.ping(ipv4(10, 0, 0, 9), 3, 30s)) << lwip->log();
  std::vector<std::byte> data(1400);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i);
  EXPECT_TRUE(a.udp_echo(ipv4(10, 0, 0, 9), 7, data, 30s)) << lwip->log();
  EXPECT_EQ(lwip->stop(), 0) << lwip->log();
  EXPECT_TRUE(contains(lwip->log(), "frames received")) << lwip->log();
}

// ---- as root: an uplink to a network namespace ----

TEST(SwitchUplink, TheLinuxStackInANamespaceAndAClientTalkThroughIt) {
  if (!probe::running_as_root()) GTEST_SKIP() << "needs root for a namespace and AF_PACKET";
  probe::VethNamespace ns("10.199.0.1/24");
  SwitchProcess sw({"--uplink", ns.outside()});
  TestHost host(SwitchPort::connect(sw.socket()), mac(0x42), ipv4(10, 199, 0, 2));
  ChildProcess linux_side([&] {
    ns.enter();
    const auto peer = ipv4(10, 199, 0, 2);
    if (!probe::kernel_ping(peer, 3, 2s)) return 1;
    if (!probe::kernel_udp_echo(peer, TestHost::kEchoPort, 1000, 2s)) return 2;
    return probe::kernel_udp_echo(peer, TestHost::kEchoPort, 1472, 2s) ? 0 : 3;  // a full-sized frame
  });
  EXPECT_TRUE(host.serve(60s, [&] { return host.echo_requests_answered() >= 5; })) << sw.log();
  EXPECT_EQ(linux_side.wait(), 0) << sw.log();
  EXPECT_TRUE(host.ping(ipv4(10, 199, 0, 1), 3, 20s)) << "and the other way";
  const auto stats = read_switch_report(sw.socket(), true);
  EXPECT_TRUE(contains(stats, "\"kind\":\"uplink\"")) << stats;
}

TEST(SwitchUplink, LwipEchoAnswersTheNamespaceOverUdpAndTcp) {
  if (!probe::running_as_root()) GTEST_SKIP() << "needs root for a namespace and AF_PACKET";
  probe::VethNamespace ns("10.199.1.1/24");
  SwitchProcess sw({"--uplink", ns.outside()});
  const auto lwip = lwip_echo(sw, "10.199.1.2/24");
  ChildProcess linux_side([&] {
    ns.enter();
    const auto peer = ipv4(10, 199, 1, 2);
    if (!probe::kernel_ping(peer, 3, 2s)) return 1;
    if (!probe::kernel_udp_echo(peer, 7, 1200, 2s)) return 2;
    return probe::kernel_tcp_echo(peer, 7, 256 * 1024, 60s) ? 0 : 3;
  });
  EXPECT_EQ(linux_side.wait(), 0) << sw.log() << lwip->log();
}

}  // namespace
}  // namespace vdtu::net

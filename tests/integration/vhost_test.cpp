// `vdtu switch` with vhost-user ports: frontends written here (speaking
// vhost-user as QEMU would) and, when installed, DPDK's virtio-user in
// dpdk-testpmd. Negotiation, frames both ways, hostile frontends shut down
// while the other ports go on, reconnects in server and client mode, a guest
// that takes nothing, and a frontend killed mid-traffic.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>

#include "dpdk_runtime_directory.hpp"
#include "net/unix_message.hpp"
#include "net/vhost/vhost_socket.hpp"
#include "support/ethernet.hpp"
#include "support/program_process.hpp"
#include "support/switch_process.hpp"
#include "support/vhost_frontend.hpp"

namespace vdtu::net {
namespace {

using namespace std::chrono_literals;
using testing::mac;
using testing::SwitchProcess;
using testing::VhostFrontend;

bool contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

std::vector<std::string> vhost_ports(const std::string& dir, const std::vector<std::string>& names) {
  std::vector<std::string> args;
  for (const auto& n : names) {
    args.emplace_back("--vhost-user");
    std::string spec = n;
    spec += "=";
    spec += dir;
    spec += "/";
    spec += n;
    spec += ".sock";
    args.push_back(std::move(spec));
  }
  return args;
}

std::string scratch_dir() {
  std::string pattern = "/tmp/vdtu-vhost-test-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp");
  return pattern;
}

// A switch whose vhost-user sockets live in a directory of the test's own.
struct VhostSwitch {
  std::string dir = scratch_dir();
  SwitchProcess sw;
  explicit VhostSwitch(const std::vector<std::string>& names, std::vector<std::string> extra = {})
      : sw([&] {
          auto args = vhost_ports(dir, names);
          args.insert(args.end(), extra.begin(), extra.end());
          return args;
        }()) {}
  ~VhostSwitch() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  [[nodiscard]] std::string path(const std::string& name) const { return dir + "/" + name + ".sock"; }
  std::unique_ptr<VhostFrontend> frontend(const std::string& name, bool start = true) {
    auto f = std::make_unique<VhostFrontend>(VhostFrontend::connect_to(path(name)));
    if (start) f->negotiate();
    return f;
  }
};

// Sends from `from` to `to` until one arrives (the ports start a little
// after negotiation) and checks it is the frame sent.
bool passes(VhostFrontend& from, VhostFrontend& to, const std::vector<std::byte>& frame) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    from.transmit(frame);
    if (auto got = to.receive(100ms)) return *got == frame;
  }
  return false;
}

TEST(VhostUser, OffersTheNegotiatedFeatures) {
  VhostSwitch s({"a"});
  auto f = s.frontend("a", false);
  const auto features = f->ask_u64(1);
  ASSERT_TRUE(features);
  EXPECT_NE(*features & VhostFrontend::kVersion1, 0U);
  EXPECT_NE(*features & VhostFrontend::kMergeable, 0U);
  EXPECT_NE(*features & VhostFrontend::kEventIndex, 0U);
  EXPECT_NE(*features & (1ULL << 5U), 0U);   // MAC
  EXPECT_NE(*features & (1ULL << 16U), 0U);  // STATUS
  const auto protocol = f->ask_u64(15);
  ASSERT_TRUE(protocol);
  EXPECT_NE(*protocol & (1ULL << 3U), 0U);  // REPLY_ACK
  EXPECT_EQ(f->ask_u64(17), 1U);            // one queue pair
  // REPLY_ACK: a request that asks for an answer gets 0 (done).
  f->send_u64(16, 1ULL << 3U);
  const std::uint64_t owner = 0;
  ASSERT_TRUE(f->send(3, &owner, 0, {}, true));
  const auto ack = f->reply();
  ASSERT_TRUE(ack);
  ASSERT_EQ(ack->size(), 8U);
  EXPECT_EQ((*ack)[0], std::byte{0});
}

// Feature sets a guest may pick: all, none of the optional ones, each alone.
class VhostFeatures : public ::testing::TestWithParam<std::uint64_t> {};

TEST_P(VhostFeatures, FramesPassBothWays) {
  VhostSwitch s({"a", "b"});
  auto a = s.frontend("a", false);
  auto b = s.frontend("b", false);
  a->negotiate(GetParam());
  b->negotiate(GetParam());
  const auto hello = testing::ethernet_frame(MacAddress::broadcast(), mac(0xa), 50, 1);
  EXPECT_TRUE(passes(*a, *b, hello)) << s.sw.log();
  const auto reply = testing::ethernet_frame(mac(0xa), mac(0xb), 1500 - 20, 2);  // a full-size frame
  EXPECT_TRUE(passes(*b, *a, reply)) << s.sw.log();
  // A burst: every frame arrives, in order.
  for (std::uint8_t i = 0; i < 100; ++i) a->transmit(testing::ethernet_frame(mac(0xb), mac(0xa), 60, i));
  for (std::uint8_t i = 0; i < 100; ++i) {
    const auto got = b->receive(5s);
    ASSERT_TRUE(got) << "frame " << int{i} << ": " << s.sw.log();
    EXPECT_EQ(*got, testing::ethernet_frame(mac(0xb), mac(0xa), 60, i));
  }
  EXPECT_TRUE(a->transmitted(5s));
}
INSTANTIATE_TEST_SUITE_P(Sets, VhostFeatures,
                         ::testing::Values(VhostFrontend::kVersion1 | VhostFrontend::kMergeable |
                                               VhostFrontend::kEventIndex | VhostFrontend::kProtocolFeatures,
                                           std::uint64_t{0}, VhostFrontend::kVersion1,
                                           VhostFrontend::kEventIndex,
                                           VhostFrontend::kMergeable | VhostFrontend::kProtocolFeatures));

// What a hostile frontend does after (or instead of) a proper start.
struct Attack {
  const char* name;
  bool negotiate_first;
  std::function<void(VhostFrontend&)> act;
  const char* reason;  // in the switch's log line
  friend void PrintTo(const Attack& a, std::ostream* os) { *os << a.name; }
};

class VhostHostile : public ::testing::TestWithParam<Attack> {};

TEST_P(VhostHostile, IsShutDownWhileOthersForward) {
  VhostSwitch s({"a", "b", "evil"});
  auto a = s.frontend("a");
  auto b = s.frontend("b");
  auto evil = s.frontend("evil", GetParam().negotiate_first);
  ASSERT_TRUE(passes(*a, *b, testing::ethernet_frame(mac(0xb), mac(0xa), 50, 1))) << s.sw.log();
  GetParam().act(*evil);
  a->transmit(
      testing::ethernet_frame(MacAddress::broadcast(), mac(0xa), 50, 9));  // to evil's receive ring too
  EXPECT_TRUE(s.sw.wait_for_log("(evil, vhost-user", 10s)) << s.sw.log();
  EXPECT_TRUE(s.sw.wait_for_log(") shut down: ", 10s)) << s.sw.log();
  EXPECT_TRUE(contains(s.sw.log(), GetParam().reason)) << s.sw.log();
  EXPECT_TRUE(evil->closed_by_peer()) << "the switch hangs up on it";
  // The others go on, and the port takes a new frontend.
  EXPECT_TRUE(passes(*b, *a, testing::ethernet_frame(mac(0xa), mac(0xb), 50, 2))) << s.sw.log();
  auto good = s.frontend("evil");
  EXPECT_TRUE(passes(*good, *a, testing::ethernet_frame(mac(0xa), mac(0xc), 50, 3))) << s.sw.log();
}

constexpr std::uint16_t kNext = 1;
constexpr std::uint16_t kWrite = 2;

INSTANTIATE_TEST_SUITE_P(
    Attacks, VhostHostile,
    ::testing::Values(
        Attack{"BufferOutsideMemory", true,
               [](VhostFrontend& f) {
                 f.put_descriptor(1, 0, {VhostFrontend::kMemoryBytes - 8, 64, 0, 0});
                 f.make_available(1, 0);
               },
               "outside guest memory"},
        Attack{"AddressWrapsAround", true,
               [](VhostFrontend& f) {
                 f.put_descriptor(1, 0, {~std::uint64_t{0} - 8, 64, 0, 0});
                 f.make_available(1, 0);
               },
               "outside guest memory"},
        Attack{"ChainLoops", true,
               [](VhostFrontend& f) {
                 f.put_descriptor(1, 0, {VhostFrontend::tx_buffer_offset(0), 64, kNext, 1});
                 f.put_descriptor(1, 1, {VhostFrontend::tx_buffer_offset(1), 64, kNext, 0});
                 f.make_available(1, 0);
               },
               "a loop"},
        Attack{"HugeChain", true,
               [](VhostFrontend& f) {
                 for (std::uint16_t i = 0; i < VhostFrontend::kEntries; ++i) {
                   f.put_descriptor(1, i,
                                    {VhostFrontend::tx_buffer_offset(i), 2048, kNext,
                                     static_cast<std::uint16_t>((i + 1) % VhostFrontend::kEntries)});
                 }
                 f.make_available(1, 7);
               },
               "a loop"},
        Attack{"NextBeyondQueue", true,
               [](VhostFrontend& f) {
                 f.put_descriptor(1, 0, {VhostFrontend::tx_buffer_offset(0), 64, kNext, 4000});
                 f.make_available(1, 0);
               },
               "next beyond the queue"},
        Attack{"HeadBeyondQueue", true, [](VhostFrontend& f) { f.make_available(1, 999); },
               "head beyond the queue"},
        Attack{"WritableTransmitBuffer", true,
               [](VhostFrontend& f) {
                 f.put_descriptor(1, 0, {VhostFrontend::tx_buffer_offset(0), 64, kWrite, 0});
                 f.make_available(1, 0);
               },
               "wrong direction"},
        Attack{"IndirectTable", true,
               [](VhostFrontend& f) {
                 f.put_descriptor(1, 0, {VhostFrontend::tx_buffer_offset(0), 64, 4, 0});
                 f.make_available(1, 0);
               },
               "indirect"},
        Attack{"IndexJumpsAhead", true, [](VhostFrontend& f) { f.set_available_index(1, 1000); },
               "more than a ring ahead"},
        Attack{"ReceiveIndexJumps", true, [](VhostFrontend& f) { f.set_available_index(0, 40000); },
               "more than a ring ahead"},
        Attack{"RegionLargerThanFile", false,
               [](VhostFrontend& f) {
                 struct {
                   std::uint32_t count = 1, padding = 0;
                   std::uint64_t guest = 0, size = std::uint64_t{1} << 40U, user = 0x1000, offset = 0;
                 } table;
                 const std::array<int, 1> fds{f.memfd()};
                 f.send(5, &table, sizeof(table), fds);
               },
               "larger than its file"},
        Attack{"RegionCountWithoutFds", false,
               [](VhostFrontend& f) {
                 struct {
                   std::uint32_t count = 2, padding = 0;
                   std::array<std::uint64_t, 8> regions{};
                 } table;
                 const std::array<int, 1> fds{f.memfd()};
                 f.send(5, &table, sizeof(table), fds);
               },
               "SET_MEM_TABLE with 2 regions"},
        Attack{"RingOutsideMemory", false,
               [](VhostFrontend& f) {
                 f.set_mem_table();
                 f.send_pair(8, 1, 256);
                 struct {
                   std::uint32_t index = 1, flags = 0;
                   std::uint64_t descriptors = 0, used = 0, available = 0, log = 0;
                 } a;
                 a.descriptors = f.user(VhostFrontend::kMemoryBytes - 64);
                 a.used = f.user(0x3000);
                 a.available = f.user(0x2000);
                 f.send(9, &a, sizeof(a));
                 f.send_u64(12, 1U | 0x100U);  // kick without fd: the ring starts
               },
               "outside guest memory"},
        Attack{"QueueSizeNotPowerOfTwo", false, [](VhostFrontend& f) { f.send_pair(8, 0, 300); },
               "SET_VRING_NUM"},
        Attack{"ThirdQueue", false, [](VhostFrontend& f) { f.send_pair(8, 5, 256); }, "SET_VRING_NUM"},
        Attack{"FeaturesNeverOffered", false, [](VhostFrontend& f) { f.send_u64(2, 1ULL << 0U); },
               "never offered"},
        Attack{"HugeMessage", false,
               [](VhostFrontend& f) {
                 std::vector<std::byte> junk(4096);
                 f.send(1, junk.data(), static_cast<std::uint32_t>(junk.size()));
               },
               "malformed"},
        Attack{"FdsWithoutReason", false,
               [](VhostFrontend& f) {
                 const std::array<int, 1> fds{f.memfd()};
                 f.send(3, nullptr, 0, fds);
               },
               "fds with vhost-user request"}),
    [](const ::testing::TestParamInfo<Attack>& attack) { return std::string(attack.param.name); });

TEST(VhostUser, FrontendReconnectsAndOthersAreUndisturbed) {
  VhostSwitch s({"a", "b"});
  auto b = s.frontend("b");
  for (int round = 0; round < 3; ++round) {
    auto a = s.frontend("a");
    EXPECT_TRUE(passes(*a, *b, testing::ethernet_frame(mac(0xb), mac(0xa), 50, 1))) << s.sw.log();
    EXPECT_TRUE(passes(*b, *a, testing::ethernet_frame(mac(0xa), mac(0xb), 50, 2))) << s.sw.log();
  }  // each a hangs up
  EXPECT_TRUE(s.sw.wait_for_log("closed: the frontend closed", 10s));
  EXPECT_FALSE(contains(s.sw.log(), "shut down")) << s.sw.log();
  // b's port was never touched: one connection.
  const auto stats = read_switch_report(s.sw.socket(), true);
  EXPECT_TRUE(contains(stats, R"("name":"b","kind":"vhost-user")")) << stats;
}

TEST(VhostUser, PortsFromAConfigurationFile) {
  const auto dir = scratch_dir();
  const auto file = dir + "/switch.toml";
  {
    std::ofstream out(file);
    out << "[[vhost_user]]\nname = \"a\"\npath = \"" << dir << "/a.sock\"\nmtu = 1500\n"
        << "[[vhost_user]]\nname = \"b\"\npath = \"" << dir << "/b.sock\"\nclient = false\n";
  }
  SwitchProcess sw({"--config", file});
  VhostFrontend a(VhostFrontend::connect_to(dir + "/a.sock"));
  VhostFrontend b(VhostFrontend::connect_to(dir + "/b.sock"));
  a.negotiate();
  b.negotiate();
  EXPECT_TRUE(passes(a, b, testing::ethernet_frame(mac(0xb), mac(0xa), 50, 1))) << sw.log();
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

TEST(VhostUser, SecondFrontendOnABusyPortIsRefused) {
  VhostSwitch s({"a", "b"});
  auto a = s.frontend("a");
  auto b = s.frontend("b");
  auto intruder = std::make_unique<VhostFrontend>(VhostFrontend::connect_to(s.path("a")));
  EXPECT_TRUE(intruder->closed_by_peer());
  EXPECT_TRUE(passes(*a, *b, testing::ethernet_frame(mac(0xb), mac(0xa), 50, 1))) << s.sw.log();
}

// Client mode: the frontend listens (as QEMU with server=on), the switch
// connects, and connects again after the frontend went away.
TEST(VhostUser, ClientModeReconnects) {
  const auto dir = scratch_dir();
  const auto path = dir + "/qemu.sock";
  auto listener = vhost::listen_stream(path);
  VhostSwitch s({"b"}, {"--vhost-user", "c=" + path + ",client"});
  auto b = s.frontend("b");
  auto accept_one = [&] {
    for (int i = 0; i < 200; ++i) {
      UniqueFd fd(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (fd) return fd;
      std::this_thread::sleep_for(50ms);
    }
    throw std::runtime_error("the switch did not connect");
  };
  for (int round = 0; round < 2; ++round) {
    VhostFrontend c(accept_one());
    c.negotiate();
    EXPECT_TRUE(passes(c, *b, testing::ethernet_frame(mac(0xb), mac(0xc), 50, 1))) << s.sw.log();
    EXPECT_TRUE(passes(*b, c, testing::ethernet_frame(mac(0xc), mac(0xb), 50, 2))) << s.sw.log();
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

// A guest that posts no receive buffers loses what is sent to it (counted);
// nobody else waits for it.
TEST(VhostUser, AGuestThatTakesNothingBlocksNobody) {
  VhostSwitch s({"a", "b", "stuck"});
  auto a = s.frontend("a");
  auto b = s.frontend("b");
  auto stuck = s.frontend("stuck");  // its 256 receive buffers fill up and are never given back
  for (int i = 0; i < 2000; ++i) {
    a->transmit(testing::ethernet_frame(MacAddress::broadcast(), mac(0xa), 50, static_cast<std::uint8_t>(i)));
    if (i % 200 == 199) {
      ASSERT_TRUE(a->transmitted(5s)) << s.sw.log();
      while (b->receive(0ms)) {
      }
    }
  }
  ASSERT_TRUE(a->transmitted(5s));
  EXPECT_TRUE(passes(*b, *a, testing::ethernet_frame(mac(0xa), mac(0xb), 50, 7))) << s.sw.log();
  const auto stats = read_switch_report(s.sw.socket(), true);
  const auto at = stats.find(R"("name":"stuck")");
  ASSERT_NE(at, std::string::npos) << stats;
  EXPECT_FALSE(contains(stats.substr(at, stats.find('}', stats.find("drops", at)) - at), R"("queue_full":0)"))
      << stats;
}

// --- QEMU: its start-up negotiation, and reconnecting to a restarted switch ----

std::string qemu_path() {
  for (const char* p : {"/usr/bin/qemu-system-x86_64", "/usr/local/bin/qemu-system-x86_64"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return {};
}

// QEMU without a guest (paused, -S): it connects and negotiates what it
// negotiates at start-up (features, protocol features, owner, call fds);
// the rings start only with a guest driver (issue 12 part B boots guests).
TEST(VhostUser, QemuNegotiatesAndFindsARestartedSwitch) {
  if (qemu_path().empty()) GTEST_SKIP() << "qemu-system-x86_64 not installed";
  const auto dir = scratch_dir();
  const std::vector<std::string> args{"--vhost-user", "vm1=" + dir + "/vm1.sock"};
  auto sw = std::make_unique<SwitchProcess>(args);
  testing::ProgramProcess qemu({qemu_path(),
                                "-M",
                                "pc",
                                "-accel",
                                "tcg",
                                "-m",
                                "64M",
                                "-smp",
                                "1",
                                "-object",
                                "memory-backend-memfd,id=mem,size=64M,share=on",
                                "-numa",
                                "node,memdev=mem",
                                "-nodefaults",
                                "-display",
                                "none",
                                "-S",
                                "-monitor",
                                "none",
                                "-serial",
                                "none",
                                "-chardev",
                                "socket,id=c0,path=" + dir + "/vm1.sock,reconnect=1",
                                "-netdev",
                                "vhost-user,id=n0,chardev=c0",
                                "-device",
                                "virtio-net-pci,netdev=n0,mac=52:54:00:00:00:01,romfile=,vectors=0"},
                               dir + "/qemu.log");
  EXPECT_TRUE(sw->wait_for_log("(vm1) connected: vhost-user", 30s)) << sw->log() << qemu.log();
  std::this_thread::sleep_for(1s);  // QEMU's start-up messages
  EXPECT_FALSE(contains(sw->log(), "shut down")) << sw->log();
  sw.reset();  // the switch goes; QEMU (reconnect=1) waits for it
  sw = std::make_unique<SwitchProcess>(args);
  EXPECT_TRUE(sw->wait_for_log("(vm1) connected: vhost-user", 30s)) << sw->log() << qemu.log();
  std::this_thread::sleep_for(1s);
  EXPECT_FALSE(contains(sw->log(), "shut down")) << sw->log();
  sw.reset();
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

// --- DPDK's virtio-user as a second, independent frontend ---------------------

std::string testpmd_path() {
  for (const char* p : {"/usr/bin/dpdk-testpmd", "/usr/local/bin/dpdk-testpmd"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return {};
}
bool have_testpmd() { return !testpmd_path().empty(); }

// testpmd with virtio-user on `socket`, and the runtime directory of its
// file prefix, which goes once testpmd has ended (members are destroyed in
// reverse order).
struct Testpmd {
  Testpmd(const std::string& socket, const std::string& prefix, const std::string& mode,
          const std::string& log)
      : runtime(prefix),
        process({testpmd_path(), "--no-huge", "-m", "256", "--no-pci", "--file-prefix", prefix, "--vdev",
                 "net_virtio_user0,path=" + socket + ",queues=1", "-l", "0,1", "--", "--forward-mode=" + mode,
                 "--stats-period", "1", "--no-mlockall", "--total-num-mbufs=4096", "--txpkts=64"},
                log) {}
  bench::DpdkRuntimeDirectory runtime;
  testing::ProgramProcess process;
};

TEST(VhostUser, DpdkVirtioUserNegotiatesAndSends) {
  if (!have_testpmd())
    GTEST_SKIP() << "dpdk-testpmd not installed (scripts/install-deps.sh installs dpdk-dev)";
  VhostSwitch s({"a", "dpdk"});
  auto a = s.frontend("a");
  for (int run = 0; run < 2; ++run) {  // the second time after the first was killed mid-traffic
    const auto prefix = "vdtu-vhost-test-" + std::to_string(::getpid()) + "-" + std::to_string(run);
    auto pmd = std::make_unique<Testpmd>(s.path("dpdk"), prefix, "txonly",
                                         s.dir + "/testpmd" + std::to_string(run) + ".log");
    // txonly sends 64-byte UDP frames to a fixed unicast address: flooded to a.
    std::optional<std::vector<std::byte>> got;
    for (int i = 0; i < 300 && !got; ++i) got = a->receive(100ms);
    ASSERT_TRUE(got) << s.sw.log() << pmd->process.log();
    EXPECT_GE(got->size(), 60U);  // 64 bytes, with or without the FCS
    EXPECT_LE(got->size(), 64U);
    for (int i = 0; i < 1000; ++i) a->receive(1ms);
    // Where DPDK keeps its runtime files: there while testpmd runs (else the
    // check below proves nothing), gone with it.
    const auto runtime = pmd->runtime.path();
    EXPECT_TRUE(std::filesystem::exists(runtime / "config")) << runtime;
    ::kill(pmd->process.pid(), SIGKILL);
    pmd.reset();
    EXPECT_FALSE(std::filesystem::exists(runtime)) << runtime << " is left behind";
    EXPECT_TRUE(s.sw.wait_for_log("closed: the frontend closed", 10s)) << s.sw.log();
  }
  EXPECT_FALSE(contains(s.sw.log(), "shut down")) << s.sw.log();
}

}  // namespace
}  // namespace vdtu::net

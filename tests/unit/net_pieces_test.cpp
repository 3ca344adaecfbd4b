// Small pieces of the network layer: MAC addresses, completing a checksum
// the sender left to "hardware", port names, and configuration checks.
#include <gtest/gtest.h>

#include "net/checksum.hpp"
#include "net/port_protocol.hpp"
#include "net/probe/ip_frames.hpp"
#include "net/switch_config.hpp"
#include "vdtu/net.hpp"

namespace vdtu::net {
namespace {

TEST(MacAddress, ParsesAndPrints) {
  const auto mac = MacAddress::parse("02:0A:ff:00:10:9c");
  ASSERT_TRUE(mac);
  EXPECT_EQ(mac->to_string(), "02:0a:ff:00:10:9c");
  EXPECT_EQ(mac->value(), 0x020aff00109cULL);
  EXPECT_EQ(MacAddress::parse("02-0a-ff-00-10-9c"), mac);
  EXPECT_FALSE(mac->is_multicast());
  EXPECT_TRUE(MacAddress::broadcast().is_multicast());
  for (const char* bad : {"", "02:0a:ff:00:10", "02:0a:ff:00:10:9c:00", "02:0a-ff:00:10:9c",
                          "0g:0a:ff:00:10:9c", "020aff00109c", " 02:0a:ff:00:10:9c"}) {
    EXPECT_FALSE(MacAddress::parse(bad)) << bad;
  }
}

// A UDP datagram as a sender with checksum offload hands it over: the field
// holds only the pseudo-header sum. Completed, it must verify.
TEST(Checksum, CompletesAPartialUdpChecksum) {
  using namespace probe;
  const std::vector<std::byte> data(37, std::byte{0x61});
  auto frame = udp_frame(MacAddress::broadcast(), {{2, 0, 0, 0, 0, 1}}, ipv4(10, 0, 0, 1), 1234,
                         ipv4(10, 0, 0, 2), 7, data);
  constexpr std::size_t kUdp = 14 + 20;
  const auto udp_length = frame.size() - kUdp;
  const auto pseudo = fold_checksum(pseudo_header_sum(ipv4(10, 0, 0, 1), ipv4(10, 0, 0, 2), 17, udp_length));
  frame[kUdp + 6] = static_cast<std::byte>(pseudo >> 8U);
  frame[kUdp + 7] = static_cast<std::byte>(pseudo & 0xffU);
  ASSERT_FALSE(parse_udp(*parse_ipv4(frame))) << "a partial checksum does not verify";
  ASSERT_TRUE(complete_checksum(frame, kUdp, 6));
  const auto ip = parse_ipv4(frame);
  ASSERT_TRUE(ip);
  const auto udp = parse_udp(*ip);
  ASSERT_TRUE(udp) << "the completed checksum verifies";
  EXPECT_EQ(udp->data.size(), data.size());
}

TEST(Checksum, RefusesAFieldOutsideTheFrame) {
  std::vector<std::byte> frame(60);
  const auto copy = frame;
  EXPECT_FALSE(complete_checksum(frame, 59, 0));
  EXPECT_FALSE(complete_checksum(frame, 40, 19));
  EXPECT_FALSE(complete_checksum(frame, 61, 0));
  EXPECT_FALSE(complete_checksum(frame, 0, SIZE_MAX));
  EXPECT_EQ(frame, copy) << "nothing written";
  EXPECT_TRUE(complete_checksum(frame, 40, 18));
}

TEST(PortNames, OnlyShortPlainNames) {
  EXPECT_TRUE(wire::valid_port_name("web-1.a_b"));
  EXPECT_FALSE(wire::valid_port_name(""));
  EXPECT_FALSE(wire::valid_port_name("has space"));
  EXPECT_FALSE(wire::valid_port_name("quote\""));
  EXPECT_FALSE(wire::valid_port_name(std::string(32, 'a')));
  EXPECT_TRUE(wire::valid_port_name(std::string(31, 'a')));
  std::array<char, 4> field{'a', 'b', 'c', 'd'};
  EXPECT_FALSE(wire::get_text(field)) << "no NUL inside the field";
}

TEST(SwitchConfig, ValidationNamesWhatIsWrong) {
  auto check = [](auto change, const std::string& expected) {
    SwitchConfig c;
    c.socket_path = "/tmp/x.sock";
    change(c);
    try {
      c.validate();
      ADD_FAILURE() << "accepted; expected: " << expected;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  };
  check([](SwitchConfig& c) { c.socket_path.clear(); }, "no socket path");
  check([](SwitchConfig& c) { c.ring_slots = 100; }, "ring_slots must be a power of two");
  check([](SwitchConfig& c) { c.default_mtu = 20; }, "mtu must be");
  check([](SwitchConfig& c) { c.engine.table.capacity = 0; }, "mac_table_size");
  check([](SwitchConfig& c) { c.ports = {{"a", 0, {}, {}}, {"a", 0, {}, {}}}; }, "port name used twice: a");
  check([](SwitchConfig& c) { c.ports = {{"a", 0, MacAddress::broadcast(), {}}}; }, "mac is a group address");
  check(
      [](SwitchConfig& c) {
        c.static_entries = {{{{2, 0, 0, 0, 0, 1}}, 0, "nowhere"}};
      },
      "unknown port 'nowhere'");
  check(
      [](SwitchConfig& c) {
        c.engine.table.capacity = 2;
        c.ports = {{"a", 0, MacAddress{{2, 0, 0, 0, 0, 1}}, {}},
                   {"b", 0, MacAddress{{2, 0, 0, 0, 0, 2}}, {}}};
      },
      "more static entries than half the MAC table");
  SwitchConfig fine;
  fine.socket_path = "/tmp/x.sock";
  EXPECT_NO_THROW(fine.validate());
}

}  // namespace
}  // namespace vdtu::net

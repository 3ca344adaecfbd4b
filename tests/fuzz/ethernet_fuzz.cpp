// Ethernet frames of any length and content into the switch's forwarding
// engine, through real shared-memory ports whose clients follow the ring
// protocol (the ring itself is shm_port_fuzz's): addresses (group, unknown,
// learned, static, allowed or not), 802.1Q tags and VLANs, lengths around
// every MTU, ports with different MTUs and an allow-list, time passing (the
// table ages). Findings: any crash or sanitizer report, and any frame a
// client receives that is not exactly one another port sent, that came back
// to its sender, that is shorter than a header or longer than the receiving
// port's MTU allows, whose source is a group address or, from the port with
// an allow-list, not on it; every frame sent must be counted as received.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <vector>

#include "net/forwarding_engine.hpp"
#include "net/shm_port.hpp"

namespace {

using namespace vdtu;
using namespace vdtu::net;

constexpr std::uint32_t kSlots = 8;
constexpr std::array<std::uint32_t, 3> kMtus = {256, 128, 300};
constexpr std::uint64_t kAllowed = 0x020000000001;  // the only source port 2 may use
// A few addresses, so that learning and lookups meet: unicast and group.
constexpr std::array<std::uint64_t, 6> kMacs = {0x020000000001, 0x020000000002, 0x020000000003,
                                                0xffffffffffff, 0x01005e000001, 0x0200000000ff};

struct Client {
  explicit Client(const ShmPort& port)
      : to(attach(port, 0)), from(attach(port, 2)), producer(to), consumer(from) {}
  static SharedChannel attach(const ShmPort& port, std::size_t first) {
    const auto fds = port.client_fds();
    return SharedChannel::attach(UniqueFd(::dup(fds[first])), UniqueFd(::dup(fds[first + 1])),
                                 port.geometry());
  }
  SharedChannel to;
  SharedChannel from;
  Producer producer;
  Consumer consumer;
};

MacAddress mac_of(std::uint64_t value) {
  std::array<std::byte, 6> bytes{};
  for (std::size_t b = 0; b < 6; ++b) bytes[b] = static_cast<std::byte>(value >> (8U * (5 - b)));
  return MacAddress::from_bytes(bytes);
}

std::uint64_t mac_at(const std::vector<std::byte>& f, std::size_t at) {
  std::uint64_t mac = 0;
  for (std::size_t i = 0; i < 6; ++i) mac = (mac << 8U) | std::to_integer<std::uint64_t>(f[at + i]);
  return mac;
}

class Switch {
 public:
  Switch() {
    EngineSettings settings;
    settings.table.capacity = 8;
    settings.table.seed = 1;
    settings.table.aging = std::chrono::seconds(3);
    settings.burst = 4;
    engine_ = std::make_unique<ForwardingEngine>(settings);
    for (std::size_t i = 0; i < kMtus.size(); ++i) {
      PortSettings p{"port" + std::to_string(i), kMtus[i], {}};
      if (i == 2) p.allowed_sources.push_back(mac_of(kAllowed));
      const auto id = engine_->reserve(p);
      auto port = std::make_unique<ShmPort>(kMtus[i], kSlots, UniqueFd{}, p.name);
      clients_.push_back(std::make_unique<Client>(*port));
      engine_->attach(id, std::move(port));
      ids_.push_back(id);
    }
    engine_->add_static(mac_of(kMacs[5]), 0, ids_[1]);
  }

  void run(FuzzedDataProvider& in) {
    while (in.remaining_bytes() > 0) {
      if (in.ConsumeIntegralInRange<int>(0, 3) != 0) {
        send(in);
      } else {
        now_ += in.ConsumeIntegralInRange<int>(0, 4);
        poll();
      }
    }
    for (int round = 0; round < 2 * static_cast<int>(kSlots); ++round) poll();
    for (std::size_t i = 0; i < clients_.size(); ++i) {
      if (engine_->port(ids_[i])->counters().rx_frames != sent_count_[i]) std::abort();
    }
  }

 private:
  void send(FuzzedDataProvider& in) {
    const auto i = in.ConsumeIntegralInRange<std::size_t>(0, clients_.size() - 1);
    const auto max = clients_[i]->producer.max_payload();
    std::vector<std::byte> f(in.ConsumeIntegralInRange<std::size_t>(0, max));
    const auto bytes = in.ConsumeBytes<std::byte>(std::min<std::size_t>(f.size(), 24));
    std::copy(bytes.begin(), bytes.end(), f.begin());
    if (f.size() >= 12 && in.ConsumeBool()) {  // addresses the table knows
      const auto put = [&](std::size_t at, std::uint64_t mac) {
        for (std::size_t b = 0; b < 6; ++b) f[at + b] = static_cast<std::byte>(mac >> (8U * (5 - b)));
      };
      put(0, kMacs[in.ConsumeIntegralInRange<std::size_t>(0, kMacs.size() - 1)]);
      put(6, kMacs[in.ConsumeIntegralInRange<std::size_t>(0, kMacs.size() - 1)]);
      if (f.size() >= 18 && in.ConsumeBool()) {
        f[12] = std::byte{0x81};
        f[13] = std::byte{0x00};
      }
    }
    if (clients_[i]->producer.try_send(MessageHeader{}, f) != Status::kOk) return;
    ++sent_count_[i];
    sent_[f].push_back(i);
  }

  void poll() {
    engine_->poll(ForwardingEngine::Clock::time_point(std::chrono::seconds(now_)));
    for (std::size_t j = 0; j < clients_.size(); ++j) {
      MessageView m;
      while (clients_[j]->consumer.try_fetch(m) == Status::kOk) {
        check(j, std::vector<std::byte>(m.payload.begin(), m.payload.end()));
        clients_[j]->consumer.ack();
      }
    }
  }

  void check(std::size_t to, const std::vector<std::byte>& f) {
    if (f.size() < kEthernetHeaderBytes || f.size() > kMtus[to] + kEthernetHeaderBytes + kVlanTagBytes)
      std::abort();
    const auto it = sent_.find(f);
    if (it == sent_.end()) std::abort();  // nobody sent this
    const auto& senders = it->second;
    if (std::all_of(senders.begin(), senders.end(), [&](std::size_t s) { return s == to; })) std::abort();
    const auto source = mac_at(f, 6);
    if (((source >> 40U) & 1U) != 0) std::abort();
    if (std::all_of(senders.begin(), senders.end(), [&](std::size_t s) { return s == 2 || s == to; }) &&
        source != kAllowed) {
      std::abort();
    }
  }

  std::unique_ptr<ForwardingEngine> engine_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::vector<PortId> ids_;
  std::map<std::vector<std::byte>, std::vector<std::size_t>> sent_;  // frame -> who sent it
  std::array<std::uint64_t, kMtus.size()> sent_count_{};
  int now_ = 1;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  Switch s;
  s.run(in);
  return 0;
}

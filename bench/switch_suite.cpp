// `vdtu bench switch`: frames through `vdtu switch` (a child process pinned
// to CPU 1, the switch's one core) between two shared-memory ports, and
// (as root) between two veths in namespaces through two uplinks. Baselines
// from the same run: the channel's own throughput (the ceiling for a frame
// ring), the cache-line round trip, and the Linux bridge between the same
// two veths with the same generator and sink.
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "baselines.hpp"
#include "net/forwarding_engine.hpp"
#include "net/shm_port.hpp"
#include "net/virtual_switch.hpp"
#include "packet_endpoint.hpp"
#include "pinned_child.hpp"
#include "suites.hpp"
#include "vdtu/channel.hpp"
#include "vdtu/net.hpp"
#include "veth_lab.hpp"
#include "vhost_cases.hpp"

namespace vdtu::bench {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::uint16_t kBenchEtherType = 0x88b5;  // IEEE "local experimental"
constexpr std::uint32_t kBurst = 32;
const net::MacAddress kMacA{{0x02, 0, 0, 0, 0xbe, 0x0a}};
const net::MacAddress kMacB{{0x02, 0, 0, 0, 0xbe, 0x0b}};

std::vector<std::byte> bench_frame(const net::MacAddress& to, const net::MacAddress& from,
                                   std::size_t bytes) {
  std::vector<std::byte> f(bytes);
  std::memcpy(f.data(), to.octets.data(), 6);
  std::memcpy(f.data() + 6, from.octets.data(), 6);
  f[12] = static_cast<std::byte>(kBenchEtherType >> 8U);
  f[13] = static_cast<std::byte>(kBenchEtherType & 0xffU);
  for (std::size_t i = 14; i < bytes; ++i) f[i] = static_cast<std::byte>(i);
  return f;
}

// `vdtu switch` as a forked child on CPU 1 (this process moves to CPU 0),
// quiet, stopped through an eventfd; its socket in a private directory.
class SwitchChild {
 public:
  explicit SwitchChild(const std::vector<std::string>& uplinks) {
    std::string pattern = "/tmp/vdtu-bench-switch-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    net::SwitchConfig config;
    config.socket_path = dir_ + "/switch.sock";
    for (const auto& u : uplinks) config.uplinks.push_back({u, u, 0, 1024, {}});
    stop_.reset(::eventfd(0, EFD_CLOEXEC));
    child_ = std::make_unique<PinnedChild>([config, stop = stop_.get()] {
      const int quiet = ::open("/dev/null", O_WRONLY);
      ::dup2(quiet, 2);
      net::VirtualSwitch sw(config);
      sw.run(stop);
      return 0;
    });
    socket_ = config.socket_path;
  }
  SwitchChild(const SwitchChild&) = delete;
  SwitchChild& operator=(const SwitchChild&) = delete;
  ~SwitchChild() {
    const std::uint64_t one = 1;
    if (::write(stop_.get(), &one, sizeof(one)) == sizeof(one)) {
      try {
        child_->join();
      } catch (const std::exception&) {  // killed by the PinnedChild below
      }
    }
    child_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // The switch's forwarding rounds so far, and how many of them moved frames.
  [[nodiscard]] std::pair<double, double> rounds() const {
    const auto report = net::read_switch_report(socket_, true);
    auto field = [&](const std::string& key) {
      const auto at = report.find("\"" + key + "\":");
      return at == std::string::npos ? 0.0 : std::stod(report.substr(at + key.size() + 3));
    };
    return {field("rounds"), field("busy_rounds")};
  }

  // A port, once the switch listens.
  [[nodiscard]] net::SwitchPort connect() const {
    const auto deadline = Clock::now() + 20s;
    for (;;) {
      try {
        return net::SwitchPort::connect(socket_);
      } catch (const std::exception&) {
        if (Clock::now() > deadline) throw;
        std::this_thread::sleep_for(5ms);
      }
    }
  }

 private:
  std::string dir_;
  std::string socket_;
  UniqueFd stop_;
  std::unique_ptr<PinnedChild> child_;
};

// Receives and releases whatever is there; returns the count.
std::uint32_t drain(net::SwitchPort& port, std::uint32_t at_most = 64) {
  std::array<std::span<const std::byte>, 64> frames{};
  std::uint32_t got = 0;
  port.try_receive_burst(std::span(frames).first(std::min<std::uint32_t>(at_most, 64)), got);
  port.release(got);
  return got;
}

// Both ports send once, so the switch knows where A and B are.
void introduce(net::SwitchPort& a, net::SwitchPort& b) {
  const auto deadline = Clock::now() + 10s;
  bool a_heard = false;
  bool b_heard = false;
  b.try_send(bench_frame(net::MacAddress::broadcast(), kMacB, 64));
  a.try_send(bench_frame(net::MacAddress::broadcast(), kMacA, 64));
  while ((!a_heard || !b_heard) && Clock::now() < deadline) {
    a_heard = a_heard || drain(a) > 0;
    b_heard = b_heard || drain(b) > 0;
  }
  if (!a_heard || !b_heard) throw std::runtime_error("the switch forwards nothing");
}

// Takes what is still on its way (queued in A's ring, in the switch), so the
// next run does not count it: until nothing arrived for 20 ms.
void settle(net::SwitchPort& b) {
  auto quiet_since = Clock::now();
  while (Clock::now() - quiet_since < 20ms) {
    if (drain(b) > 0) quiet_since = Clock::now();
  }
}

// Frames per second from A to B; the client sends and receives in one thread.
double shm_throughput(net::SwitchPort& a, net::SwitchPort& b, std::size_t bytes, bool batched,
                      std::uint64_t count) {
  const auto f = bench_frame(kMacB, kMacA, bytes);
  std::vector<std::span<const std::byte>> burst(batched ? kBurst : 1, f);
  std::uint64_t received = 0;
  Clock::time_point first{};
  const auto deadline = Clock::now() + 60s;
  while (received < count && Clock::now() < deadline) {
    std::uint32_t sent = 0;
    a.try_send_burst(burst, sent);
    const auto got = drain(b, batched ? 64 : 1);
    if (received == 0 && got > 0) first = Clock::now();
    received += got;
  }
  const auto seconds = std::chrono::duration<double>(Clock::now() - first).count();
  settle(b);
  return received > 1 ? static_cast<double>(received - 1) / seconds : 0;
}

// A -> switch -> B, then B -> switch -> A, timed in one thread.
std::vector<double> shm_round_trips(net::SwitchPort& a, net::SwitchPort& b, std::size_t iterations) {
  const auto there = bench_frame(kMacB, kMacA, 64);
  const auto back = bench_frame(kMacA, kMacB, 64);
  auto hop = [](net::SwitchPort& from, net::SwitchPort& to, const std::vector<std::byte>& f) {
    from.try_send(f);
    const auto deadline = Clock::now() + 1s;
    while (drain(to, 1) == 0) {
      if (Clock::now() > deadline) return false;
    }
    return true;
  };
  std::vector<double> samples;
  samples.reserve(iterations);
  for (std::size_t i = 0; i < iterations + iterations / 10; ++i) {
    const auto start = Clock::now();
    if (!hop(a, b, there) || !hop(b, a, back)) continue;
    if (i >= iterations / 10)
      samples.push_back(std::chrono::duration<double, std::nano>(Clock::now() - start).count());
  }
  return samples;
}

// The ceiling: a child producer streaming 64 B messages in batches into a
// channel with the ports' geometry, this process consuming.
double channel_ceiling(std::uint64_t count) {
  const ChannelGeometry g = {512, 2048};
  auto ch = SharedChannel::create(g);
  ch.activate();
  PinnedChild child([&] {
    auto mine = SharedChannel::attach(UniqueFd(::dup(ch.memfd())), UniqueFd(::dup(ch.eventfd())), g);
    Producer producer(mine);
    const std::vector<std::byte> payload(64);
    std::array<OutgoingMessage, kBurst> batch{};
    for (auto& m : batch) m.payload = payload;
    for (std::uint64_t sent = 0; sent < count;) {
      std::uint32_t n = 0;
      const auto st =
          producer.try_send_batch(std::span(batch).first(std::min<std::uint64_t>(kBurst, count - sent)), n);
      if (st != Status::kOk && st != Status::kFull) return 1;
      sent += n;
    }
    return 0;
  });
  Consumer consumer(ch);
  std::array<MessageView, kBurst> views{};
  std::uint64_t received = 0;
  Clock::time_point first{};
  while (received < count) {
    std::uint32_t got = 0;
    if (consumer.try_fetch_batch(views, got) != Status::kOk) continue;
    if (received == 0) first = Clock::now();
    consumer.ack(got);
    received += got;
  }
  const auto seconds = std::chrono::duration<double>(Clock::now() - first).count();
  child.join();
  return static_cast<double>(count - 1) / seconds;
}

double thread_cpu_seconds() {
  timespec t{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// The data path's cost without the scheduler: one thread plays client A
// (sending batches), the switch's engine and client B (receiving), on real
// ports in this process; CPU time per frame, so a loaded machine does not
// inflate it the way it inflates wall-clock rates.
double one_thread_cpu_ns_per_frame(std::size_t bytes, std::uint64_t count) {
  struct Client {
    explicit Client(const net::ShmPort& port)
        : to(attach(port, 0)), from(attach(port, 2)), producer(to), consumer(from) {}
    static SharedChannel attach(const net::ShmPort& port, std::size_t first) {
      const auto fds = port.client_fds();
      return SharedChannel::attach(UniqueFd(::dup(fds[first])), UniqueFd(::dup(fds[first + 1])),
                                   port.geometry());
    }
    SharedChannel to;
    SharedChannel from;
    Producer producer;
    Consumer consumer;
  };
  net::ForwardingEngine engine({});
  std::vector<std::unique_ptr<Client>> clients;
  for (const auto* name : {"a", "b"}) {
    const auto id = engine.reserve({name, net::kDefaultMtu, {}});
    auto port = std::make_unique<net::ShmPort>(net::kDefaultMtu, 512, UniqueFd{}, name);
    clients.push_back(std::make_unique<Client>(*port));
    engine.attach(id, std::move(port));
  }
  auto& a = *clients[0];
  auto& b = *clients[1];
  const auto now = Clock::now();
  b.producer.try_send({}, bench_frame(net::MacAddress::broadcast(), kMacB, 64));  // B is learned
  engine.poll(now);
  MessageView m;
  while (a.consumer.try_fetch(m) == Status::kOk) a.consumer.ack();
  const auto f = bench_frame(kMacB, kMacA, bytes);
  std::array<OutgoingMessage, kBurst> batch{};
  for (auto& out : batch) out.payload = f;
  std::array<MessageView, 64> views{};
  const auto start = thread_cpu_seconds();
  for (std::uint64_t received = 0; received < count;) {
    std::uint32_t sent = 0;
    a.producer.try_send_batch(batch, sent);
    engine.poll(now);
    std::uint32_t got = 0;
    b.consumer.try_fetch_batch(views, got);
    b.consumer.ack(got);
    received += got;
  }
  return (thread_cpu_seconds() - start) * 1e9 / static_cast<double>(count);
}

Result cost_result(const std::string& suite, const std::string& name, std::vector<double> ns) {
  std::sort(ns.begin(), ns.end());
  return {suite, name, "ns/frame", ns[ns.size() / 2], ns.back(), ns.size(), {}, {}, 0};
}

void shared_memory_cases(Reporter& reporter, const SuiteOptions& options) {
  const std::string suite = "switch";
  const int runs = options.quick ? 2 : 5;
  const std::uint64_t small = options.quick ? 100'000 : 4'000'000;
  const std::uint64_t large = options.quick ? 20'000 : 500'000;
  {
    std::vector<double> rates;
    rates.reserve(static_cast<std::size_t>(runs));
    for (int r = 0; r < runs; ++r) rates.push_back(channel_ceiling(small));
    reporter.add(rate_result(suite, "baseline_channel_64B_batch32", "Mpps", 1e-6, std::move(rates)));
  }
  reporter.add(latency_result(suite, "baseline_cacheline_pingpong_rtt",
                              cacheline_pingpong_ns(options.quick ? 2'000 : 100'000)));
  for (const std::size_t bytes : {std::size_t{64}, std::size_t{1514}}) {
    std::vector<double> costs;
    costs.reserve(static_cast<std::size_t>(runs));
    for (int r = 0; r < runs; ++r)
      costs.push_back(one_thread_cpu_ns_per_frame(bytes, bytes == 64 ? small : large));
    reporter.add(cost_result(suite, fmt::format("shm_one_thread_cpu_{}B", bytes), std::move(costs)));
  }

  SwitchChild sw({});
  auto a = sw.connect();
  auto b = sw.connect();
  introduce(a, b);
  struct Case {
    const char* name;
    std::size_t bytes;
    bool batched;
    std::uint64_t count;
  };
  for (const Case c :
       {Case{"shm_64B_batch32", 64, true, small}, Case{"shm_64B_single", 64, false, small / 4},
        Case{"shm_1514B_batch32", 1514, true, large}, Case{"shm_1514B_single", 1514, false, large / 2}}) {
    std::vector<double> rates;
    rates.reserve(static_cast<std::size_t>(runs));
    const auto before = sw.rounds();
    for (int r = 0; r < runs; ++r) rates.push_back(shm_throughput(a, b, c.bytes, c.batched, c.count));
    const auto after = sw.rounds();
    reporter.add(rate_result(suite, c.name, "Mpps", 1e-6, std::move(rates)));
    // Which side limited the rate: a switch that mostly found nothing to do waited for the client.
    reporter.note(
        fmt::format("{}: the switch moved frames in {:.0f} % of its rounds", c.name,
                    100.0 * (after.second - before.second) / std::max(1.0, after.first - before.first)));
  }
  reporter.add(latency_result(suite, "shm_rtt_64B", shm_round_trips(a, b, options.quick ? 2'000 : 50'000)));
}

// ---- uplinks: two veths in namespaces, through the Linux bridge or the switch ----

struct VethPair {
  std::unique_ptr<PacketEndpoint> a;  // in namespace 0
  std::unique_ptr<PacketEndpoint> b;  // in namespace 1
};

VethPair open_endpoints(const VethLab& lab) {
  VethPair p;
  {
    InNamespace in(lab.namespace_name(0));
    p.a = std::make_unique<PacketEndpoint>("eth0");
  }
  InNamespace in(lab.namespace_name(1));
  p.b = std::make_unique<PacketEndpoint>("eth0");
  return p;
}

// Whatever sits between the veths learns both addresses first.
void introduce(VethPair& p) {
  const auto deadline = Clock::now() + 10s;
  std::uint32_t a_heard = 0;
  std::uint32_t b_heard = 0;
  while ((a_heard == 0 || b_heard == 0) && Clock::now() < deadline) {
    p.b->send(bench_frame(net::MacAddress::broadcast(), p.b->mac(), 64), 1);
    p.a->send(bench_frame(net::MacAddress::broadcast(), p.a->mac(), 64), 1);
    std::this_thread::sleep_for(20ms);
    a_heard += p.a->drain(kBenchEtherType);
    b_heard += p.b->drain(kBenchEtherType);
  }
  if (a_heard == 0 || b_heard == 0) throw std::runtime_error("nothing crosses between the veths");
}

// Frames per second arriving at B while A sends as fast as it can.
double veth_throughput(VethPair& p, std::size_t bytes, std::chrono::milliseconds duration) {
  const auto f = bench_frame(p.b->mac(), p.a->mac(), bytes);
  std::uint64_t received = 0;
  const auto start = Clock::now();
  const auto end = start + duration;
  while (Clock::now() < end) {
    p.a->send(f, kBurst);
    received += p.b->drain(kBenchEtherType);
  }
  const auto seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::this_thread::sleep_for(20ms);
  p.b->drain(kBenchEtherType);
  p.a->drain(kBenchEtherType);
  return static_cast<double>(received) / seconds;
}

std::vector<double> veth_round_trips(VethPair& p, std::size_t iterations) {
  const auto there = bench_frame(p.b->mac(), p.a->mac(), 64);
  const auto back = bench_frame(p.a->mac(), p.b->mac(), 64);
  auto hop = [](PacketEndpoint& from, PacketEndpoint& to, const std::vector<std::byte>& f) {
    from.send(f, 1);
    const auto deadline = Clock::now() + 100ms;
    while (to.drain(kBenchEtherType) == 0) {
      if (Clock::now() > deadline) return false;
    }
    return true;
  };
  std::vector<double> samples;
  for (std::size_t i = 0; i < iterations + iterations / 10; ++i) {
    const auto start = Clock::now();
    if (!hop(*p.a, *p.b, there) || !hop(*p.b, *p.a, back)) continue;
    if (i >= iterations / 10)
      samples.push_back(std::chrono::duration<double, std::nano>(Clock::now() - start).count());
  }
  return samples;
}

void veth_cases(Reporter& reporter, const SuiteOptions& options, VethPair& p, const std::string& prefix) {
  const std::string suite = "switch";
  const int runs = options.quick ? 2 : 5;
  const auto duration = options.quick ? 200ms : 1000ms;
  introduce(p);
  for (const std::size_t bytes : {std::size_t{64}, std::size_t{1514}}) {
    std::vector<double> rates;
    rates.reserve(static_cast<std::size_t>(runs));
    for (int r = 0; r < runs; ++r) rates.push_back(veth_throughput(p, bytes, duration));
    reporter.add(rate_result(suite, fmt::format("{}_{}B", prefix, bytes), "Mpps", 1e-6, std::move(rates)));
  }
  reporter.add(latency_result(suite, prefix + "_rtt_64B", veth_round_trips(p, options.quick ? 500 : 10'000)));
}

void uplink_cases(Reporter& reporter, const SuiteOptions& options) {
  VethLab lab;
  auto endpoints = open_endpoints(lab);
  {
    lab.bridge(true);
    cpu_set_t saved;
    CPU_ZERO(&saved);
    ::sched_getaffinity(0, sizeof(saved), &saved);
    pin_to_cpu(0);  // as with the switch: generator and sink on CPU 0
    veth_cases(reporter, options, endpoints, "baseline_bridge_veth");
    ::sched_setaffinity(0, sizeof(saved), &saved);
    lab.bridge(false);
  }
  SwitchChild sw({lab.host_end(0), lab.host_end(1)});
  { const auto probe = sw.connect(); }  // up and listening (the probe port closes at once)
  veth_cases(reporter, options, endpoints, "uplink_veth");
}

}  // namespace

void run_switch_suite(Reporter& reporter, const SuiteOptions& options) {
  reporter.note(
      "vdtu switch in a child process pinned to CPU 1; the generator and sink share one thread on CPU 0");
  reporter.note("frames of 64 and 1514 bytes (no FCS); rates are frames arriving at the sink per second");
  reporter.progress("shared-memory ports");
  shared_memory_cases(reporter, options);
  run_vhost_cases(reporter, options);
  if (::geteuid() != 0) {
    reporter.note("uplink cases skipped: they need root (namespaces, AF_PACKET)");
    return;
  }
  reporter.note(
      "uplink: AF_PACKET generator in namespace 0 -> veth -> (Linux bridge | vdtu switch) -> veth -> sink in "
      "namespace 1");
  reporter.note(
      "with the bridge, forwarding runs in the sender's softirq on CPU 0; with the switch, on its own CPU 1");
  reporter.progress("uplinks on veths in namespaces");
  uplink_cases(reporter, options);
}

}  // namespace vdtu::bench

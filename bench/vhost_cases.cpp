#include "vhost_cases.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "cluster/scratch_directory.hpp"
#include "dpdk_runtime_directory.hpp"
#include "net/virtual_switch.hpp"
#include "pinned_child.hpp"

namespace vdtu::bench {
namespace {

using namespace std::chrono_literals;

std::string testpmd_path() {
  for (const char* p : {"/usr/bin/dpdk-testpmd", "/usr/local/bin/dpdk-testpmd"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return {};
}

// A process with its output in a log file; SIGINT (testpmd closes its ports
// cleanly), then SIGKILL, when the object goes.
class Spawned {
 public:
  Spawned(const std::vector<std::string>& words, const std::string& log) : log_(log) {
    std::vector<char*> argv;
    argv.reserve(words.size() + 1);
    for (const auto& w : words) argv.push_back(const_cast<char*>(w.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    const int rc = ::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("cannot start " + words[0]);
  }
  Spawned(const Spawned&) = delete;
  Spawned& operator=(const Spawned&) = delete;
  ~Spawned() {
    ::kill(pid_, SIGINT);
    for (int i = 0; i < 300; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(10ms);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  [[nodiscard]] std::string log() const {
    std::ifstream in(log_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
};

// testpmd's EAL without hugepages or PCI devices, its lcores on one CPU.
std::vector<std::string> eal(const std::string& prefix, int cpu) {
  return {testpmd_path(), "--no-huge", "-m",
          "256",          "--no-pci",  "--file-prefix",
          prefix,         "--lcores",  fmt::format("0@{},1@{}", cpu, cpu)};
}

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// testpmd (EAL words, then `args`) on `cpu`, with the runtime directory of
// its file prefix: the process ends first, then the directory goes. The
// prefix carries our pid, so that another benchmark run (or its removal)
// never meets the same directory.
class Testpmd {
 public:
  Testpmd(const std::string& tag, int cpu, const std::vector<std::string>& args, const std::string& log)
      : runtime_(fmt::format("vdtu-bench-{}-{}", ::getpid(), tag)),
        process_(with(eal(runtime_.prefix(), cpu), args), log) {}

 private:
  DpdkRuntimeDirectory runtime_;  // first: destroyed after the process below
  Spawned process_;
};

bool wait_for_file(const std::string& path, std::chrono::seconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!std::filesystem::exists(path)) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

// The generator's once-a-second "Rx-pps:" figures (one line per port, summed:
// frames arriving in both directions), without the first (start-up) ones.
std::vector<double> received_rates(const std::string& log) {
  std::vector<double> per_port;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    const auto at = line.find("Rx-pps:");
    if (at != std::string::npos) per_port.push_back(std::stod(line.substr(at + 7)));
  }
  std::vector<double> rates;
  for (std::size_t i = 0; i + 1 < per_port.size(); i += 2) rates.push_back(per_port[i] + per_port[i + 1]);
  const std::size_t warm_up = std::min<std::size_t>(rates.size(), 2);
  rates.erase(rates.begin(), rates.begin() + static_cast<std::ptrdiff_t>(warm_up));
  while (!rates.empty() && rates.back() == 0) rates.pop_back();  // stopping
  return rates;
}

// One testpmd on CPU 0 with two virtio-user ports (sockets gen and sink),
// served by whatever the caller started, in flowgen mode: each port sends
// 64 B (or 1514 B) frames to the other's address and drops what it receives,
// in one forwarding thread (generator and sink share it, as in the shm cases).
std::vector<double> drive(const std::string& dir, const std::string& tag, std::size_t bytes,
                          std::chrono::seconds duration) {
  const auto log = fmt::format("{}/{}-testpmd.log", dir, tag);
  {
    const Testpmd generator(
        "gen-" + tag, 0,
        {"--vdev", "net_virtio_user0,path=" + dir + "/gen.sock,queues=1,mac=02:00:00:00:be:0a", "--vdev",
         "net_virtio_user1,path=" + dir + "/sink.sock,queues=1,mac=02:00:00:00:be:0b", "--",
         "--forward-mode=flowgen", fmt::format("--txpkts={}", bytes), "--nb-cores=1",
         "--eth-peer=0,02:00:00:00:be:0b", "--eth-peer=1,02:00:00:00:be:0a", "--stats-period", "1",
         "--no-mlockall", "--total-num-mbufs=8192"},
        log);
    std::this_thread::sleep_for(duration + 2s);
  }
  std::ifstream in(log);
  std::stringstream s;
  s << in.rdbuf();
  return received_rates(s.str());
}

Result result_for(const std::string& name, std::size_t bytes, std::vector<double> rates) {
  if (rates.empty()) throw std::runtime_error(name + ": the sink received nothing");
  if (bytes == 64) return rate_result("switch", name, "Mpps", 1e-6, std::move(rates));
  return rate_result("switch", name, "Gbit/s", 1e-9 * 8.0 * static_cast<double>(bytes), std::move(rates));
}

std::vector<double> through_switch(const std::string& dir, std::size_t bytes, std::chrono::seconds duration) {
  net::SwitchConfig config;
  config.socket_path = dir + "/switch.sock";
  config.vhost_ports.push_back({"gen", dir + "/gen.sock", false, 0, {}});
  config.vhost_ports.push_back({"sink", dir + "/sink.sock", false, 0, {}});
  PinnedChild sw([config] {
    const int quiet = ::open("/dev/null", O_WRONLY);
    ::dup2(quiet, 2);
    net::VirtualSwitch s(config);
    s.run();
    return 0;
  });
  if (!wait_for_file(dir + "/sink.sock", 20s)) throw std::runtime_error("the switch did not start");
  auto rates = drive(dir, fmt::format("vdtu{}", bytes), bytes, duration);
  std::filesystem::remove(dir + "/gen.sock");
  std::filesystem::remove(dir + "/sink.sock");
  return rates;
}

std::vector<double> through_dpdk(const std::string& dir, std::size_t bytes, std::chrono::seconds duration) {
  const Testpmd backend(fmt::format("vhost-{}", bytes), 1,
                        {"--vdev", "net_vhost0,iface=" + dir + "/gen.sock,queues=1", "--vdev",
                         "net_vhost1,iface=" + dir + "/sink.sock,queues=1", "--", "--forward-mode=io",
                         "--stats-period", "1", "--no-mlockall", "--total-num-mbufs=8192"},
                        fmt::format("{}/dpdk{}-vhost.log", dir, bytes));
  if (!wait_for_file(dir + "/sink.sock", 20s)) throw std::runtime_error("testpmd's vhost PMD did not start");
  auto rates = drive(dir, fmt::format("dpdk{}", bytes), bytes, duration);
  return rates;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

void run_vhost_cases(Reporter& reporter, const SuiteOptions& options) {
  if (testpmd_path().empty()) {
    reporter.note(
        "vhost-user cases skipped: dpdk-testpmd is not installed (scripts/install-deps.sh: dpdk-dev)");
    return;
  }
  reporter.note(
      "vhost-user: one testpmd (flowgen: sends and drops what it receives) with two virtio-user ports, one "
      "thread on CPU 0 -> two vhost-user ports of (vdtu switch | testpmd's vhost PMD in io-forward mode), "
      "each alone on CPU 1; rates: frames received in both directions together");
  // The logs and sockets of every case; removed also when a case throws (a
  // sink that received nothing, a testpmd that did not start).
  const cluster::ScratchDirectory scratch("vdtu-bench-vhost");
  const std::string dir = scratch.path().string();
  const auto duration = options.quick ? 3s : 8s;
  for (const std::size_t bytes : {std::size_t{64}, std::size_t{1514}}) {
    auto dpdk = through_dpdk(dir, bytes, duration);
    auto ours = through_switch(dir, bytes, duration);
    const double ratio = median(ours) / std::max(1.0, median(dpdk));
    reporter.add(result_for(fmt::format("baseline_dpdk_vhost_io_{}B", bytes), bytes, std::move(dpdk)));
    reporter.add(result_for(fmt::format("vhost_user_{}B", bytes), bytes, std::move(ours)));
    reporter.note(fmt::format("vhost_user_{}B / baseline_dpdk_vhost_io_{}B = {:.2f}", bytes, bytes, ratio));
  }
}

}  // namespace vdtu::bench

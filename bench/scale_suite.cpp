// `vdtu bench scale`: many kernels and many VPEs at once. Each setup is a
// real cluster of `vdtu node` processes: 1, 2, 4, 16 and 64 kernels on one
// node, and (as root) 4 nodes in network namespaces with 16 kernels each.
// A server VPE on kernel 0 offers a session; client VPEs spread over all
// kernels. Three phases, coordinated through the server and through files
// in the suite's sample directory (so waiting costs the kernels nothing):
//   1. throughput: every client does local EXCHANGE + REVOKE pairs for the
//      same wall-clock window; the aggregate is their sum over the window;
//   2. a tree of about 10 000 capabilities: each client obtains the server's
//      memory (a child on its own kernel of the server's capability on
//      kernel 0) and exchanges it to itself until its share is there;
//   3. the server revokes its memory's children: the whole tree, on every
//      kernel, timed as the server sees it.
// While the tree stands, this process reads every node's and PE's memory
// (PSS: shared pages split among their users) and open fds from /proc, and
// during phase 1 their CPU time and context switches (root reads them
// although the processes are not dumpable; otherwise they are missing).
#include <fmt/core.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iterator>
#include <map>
#include <sstream>
#include <thread>

#include "cluster/cluster_launch.hpp"
#include "common/backoff.hpp"
#include "common/sibling_program.hpp"
#include "sample_file.hpp"
#include "suites.hpp"
#include "vdtu/semper.hpp"
#include "vpe_timing.hpp"

namespace vdtu::bench {
namespace {

using namespace std::chrono_literals;
using semper::Error;
using semper::Syscalls;

constexpr const char* kService = "scale";
constexpr EpId kServiceEp = 3;
constexpr kif::Selector kSession = 10;
constexpr kif::Selector kServerMemory = 30;
constexpr kif::Selector kOwn = 100;        // the client's own memory (phase 1)
constexpr kif::Selector kExchanged = 101;  // phase 1's exchanged copy
constexpr kif::Selector kTreeRoot = 200;   // the client's part of the tree (obtained)
constexpr kif::Selector kTreeFirst = 201;  // its local children
// OBTAIN's argument: what the client says by obtaining (the server counts).
constexpr std::uint64_t kReady = 0;  // session open, ready for phase 1
constexpr std::uint64_t kBuilt = 1;  // its part of the tree stands
constexpr unsigned kTreeCaps = 10'000;
constexpr unsigned kQuickTreeCaps = 2'000;

// The files of one setup in the sample directory.
struct SetupFiles {
  std::string go;       // the start of phase 1 (CLOCK_REALTIME ns), by the server
  std::string built;    // the tree stands (resources are read now), by the server
  std::string revoked;  // phase 3 done: clients may end, by the server
  std::string results;  // "metric value" lines, one file per PE (suffix -client-N / -server)
};

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Every wait of a client backs off to kMaxPause: a thousand clients polling
// every millisecond or two were half a million wake-ups a second, and kept the
// nodes and kernels they waited for from running at all.
constexpr auto kMaxPause = std::chrono::milliseconds(50);

void wait_for_file(const std::string& path, std::chrono::milliseconds poll) {
  Backoff backoff(poll, kMaxPause);
  while (!exists(path)) backoff.sleep();
}

// Atomically (rename), so a reader never sees it half written.
void publish(const std::string& path, const std::string& text) {
  const auto partial = path + ".partial";
  {
    std::ofstream out(partial);
    out << text;
  }
  if (std::rename(partial.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot publish " + path);
}

std::int64_t realtime_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A call to the server may find its queue full while hundreds of clients
// call at once: try again.
Error patiently(const std::function<Error()>& call) {
  Backoff backoff(1ms, kMaxPause);
  for (;;) {
    const auto e = call();
    if (e != Error::kServiceBusy) return e;
    backoff.sleep();
  }
}

void open_session(Syscalls& sys) {
  const auto give_up = std::chrono::steady_clock::now() + 60s;
  Backoff backoff(2ms, kMaxPause);
  while (std::chrono::steady_clock::now() < give_up) {
    const auto e = patiently([&] { return sys.create_sess(kSession, kService); });
    if (e == Error::kNone) return;
    if (e != Error::kNoSuchService) require(e, "create_sess");
    backoff.sleep();  // the server's kernel has not announced it yet
  }
  throw std::runtime_error("the scale service never appeared");
}

// args: files prefix, seconds of phase 1, tree capabilities per client.
int scale_client(Dtu& dtu, const std::vector<std::string>& a) {
  const std::string& prefix = a.at(0);
  const double seconds = std::stod(a.at(1));
  const auto share = static_cast<kif::Selector>(std::stoul(a.at(2)));
  SampleWriter out(fmt::format("{}-client-{}", prefix, dtu.pe()));
  Syscalls sys(dtu);
  open_session(sys);
  require(sys.req_mem(kOwn, 4096, kif::kPermRW), "req_mem");
  require(patiently([&] { return sys.obtain(kSession, kTreeRoot, 1, kReady); }), "obtain (ready)");

  // Phase 1: local exchange + revoke pairs in the common window.
  wait_for_file(prefix + "-go", 2ms);
  std::int64_t start = 0;
  std::ifstream(prefix + "-go") >> start;
  const auto end = start + static_cast<std::int64_t>(seconds * 1e9);
  if (const auto now = realtime_ns(); now < start)
    std::this_thread::sleep_for(std::chrono::nanoseconds(start - now));
  std::uint64_t pairs = 0;
  while (realtime_ns() < end) {
    require(sys.delegate_to(kif::kSelSelf, kOwn, kExchanged), "exchange");
    require(sys.revoke(kOwn, 1, false), "revoke");
    ++pairs;
  }
  out.add("pairs", static_cast<double>(pairs));

  // Phase 2: this client's part of the tree: the obtained root, its local
  // children and the capability obtained to say it is done.
  for (kif::Selector c = 0; c + 2 < share; ++c)
    require(sys.delegate_to(kif::kSelSelf, kTreeRoot, kTreeFirst + c), "tree exchange");
  require(patiently([&] { return sys.obtain(kSession, kTreeFirst + share, 1, kBuilt); }), "obtain (built)");
  // Phase 3 is the server's; ending now would revoke our part on exit.
  wait_for_file(prefix + "-revoked", 20ms);
  return 0;
}

// args: files prefix, clients.
int scale_server(Dtu& dtu, const std::vector<std::string>& a) {
  const std::string& prefix = a.at(0);
  const auto clients = std::stoul(a.at(1));
  Syscalls sys(dtu);
  require(sys.req_mem(kServerMemory, 4096, kif::kPermRW), "req_mem");
  std::uint64_t ready = 0;
  std::uint64_t built = 0;
  semper::Server server(
      sys, kService, kServiceEp, 20, 21,
      {.open = accept_any_session,
       .obtain =
           [&](std::uint64_t, std::uint64_t count, std::uint64_t what, kif::Selector& first) {
             if (count != 1) return Error::kInvalidArgs;
             ++(what == kReady ? ready : built);
             first = kServerMemory;
             return Error::kNone;
           },
       .delegate = [](std::uint64_t, std::uint64_t, std::uint64_t,
                      kif::Selector&) { return Error::kNotSupported; },
       .close = [](std::uint64_t) {}});
  require(server.error(), "service");
  bool started = false;
  bool revoked = false;
  for (;;) {
    const auto st = server.serve_one(started && !revoked ? 1ms : 100ms);
    if (st == Status::kTerminated) return revoked ? 0 : 1;
    if (st != Status::kOk && st != Status::kTimeout) return 1;
    if (!started && ready == clients) {
      started = true;
      publish(prefix + "-go", std::to_string(realtime_ns() + 200'000'000));
    }
    if (!revoked && built == clients) {
      publish(prefix + "-built", "1");
      // The suite reads /proc meanwhile and says when it is done (or gone).
      for (int i = 0; i < 3000 && !exists(prefix + "-measured"); ++i) std::this_thread::sleep_for(10ms);
      SampleWriter out(prefix + "-server");
      out.add("tree_revoke", time_ns([&] { require(sys.revoke(kServerMemory, 1, false), "tree revoke"); }));
      revoked = true;
      publish(prefix + "-revoked", "1");
    }
  }
}

// ---- the suite's side --------------------------------------------------------

struct Setup {
  unsigned nodes = 1;
  unsigned kernels_per_node = 1;
  unsigned clients = 0;  // in all
  [[nodiscard]] unsigned kernels() const { return nodes * kernels_per_node; }
  [[nodiscard]] std::string name() const {
    return nodes == 1 ? fmt::format("kernels_{}", kernels())
                      : fmt::format("nodes_{}x{}", nodes, kernels_per_node);
  }
};

cluster::ClusterSpec scale_cluster(const Setup& s, const std::string& prefix, double seconds,
                                   unsigned share) {
  const auto self = sibling_program("vdtu");
  cluster::ClusterSpec spec;
  spec.nodes.resize(s.nodes);
  for (unsigned n = 0; n < s.nodes; ++n) spec.nodes[n].kernels.resize(s.kernels_per_node);
  auto& first = spec.nodes[0].kernels[0];
  first.vpes.push_back({self, "pe-bench", "scale-server", prefix, std::to_string(s.clients)});
  for (unsigned c = 0; c < s.clients; ++c) {
    const unsigned k = c % s.kernels();
    spec.nodes[k / s.kernels_per_node].kernels[k % s.kernels_per_node].vpes.push_back(
        {self, "pe-bench", "scale-client", prefix, fmt::format("{}", seconds), std::to_string(share)});
  }
  std::size_t most = 0;
  for (const auto& node : spec.nodes) {
    std::size_t pes = 0;
    for (const auto& k : node.kernels) pes += k.vpes.size() + 1;
    most = std::max(most, pes);
  }
  spec.pes_per_node = static_cast<std::uint32_t>(most);
  spec.netns = s.nodes > 1;
  spec.quiet = true;
  spec.timeout_seconds = 600;
  spec.insecure_plain = true;  // as the spanning suite: kernels and bridges, not the cipher
  return spec;
}

// ---- /proc --------------------------------------------------------------------

struct ProcessInfo {
  pid_t pid = 0;
  pid_t parent = 0;
  std::string command;
  double pss_kib = 0;   // proportional: shared pages (libraries, channels) split among their users
  double cpu_s = 0;     // user + system
  double switches = 0;  // voluntary + involuntary context switches
  std::size_t fds = 0;
};

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

ProcessInfo read_process(const std::string& pid) {
  ProcessInfo p;
  p.pid = std::stoi(pid);
  const auto dir = "/proc/" + pid;
  std::istringstream status(read_text(dir + "/status"));
  std::string key;
  double value = 0;
  while (status >> key) {
    if (key == "PPid:") status >> p.parent;
    if (key == "voluntary_ctxt_switches:" || key == "nonvoluntary_ctxt_switches:") {
      status >> value;
      p.switches += value;
    }
  }
  // stat: "pid (comm) state ppid ...": utime and stime are fields 14 and 15.
  const auto stat = read_text(dir + "/stat");
  if (const auto close = stat.rfind(')'); close != std::string::npos) {
    std::istringstream fields(stat.substr(close + 2));
    std::string field;
    double utime = 0;
    double stime = 0;
    for (int i = 3; i <= 15 && fields >> field; ++i) {
      if (i == 14) utime = std::stod(field);
      if (i == 15) stime = std::stod(field);
    }
    p.cpu_s = (utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  std::istringstream cmdline(read_text(dir + "/cmdline"));
  std::string word;
  while (std::getline(cmdline, word, '\0')) p.command += " " + word;
  return p;
}

// Only for the processes measured: walking a process's page tables
// (smaps_rollup) is slow for large ones, and the machine runs others.
void read_details(ProcessInfo& p) {
  const auto dir = "/proc/" + std::to_string(p.pid);
  std::istringstream rollup(read_text(dir + "/smaps_rollup"));
  std::string key;
  while (rollup >> key) {
    if (key == "Pss:") rollup >> p.pss_kib;
  }
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir + "/fd", error)) {
    (void)entry;
    ++p.fds;
  }
}

// Our nodes (children running "node", perhaps under `ip netns exec`) and
// their PEs (kernels and benchmark VPEs, perhaps below a sandbox helper).
struct ClusterProcesses {
  std::vector<ProcessInfo> nodes;
  std::vector<std::vector<ProcessInfo>> kernels;  // by node
  std::vector<std::vector<ProcessInfo>> vpes;     // by node
};

ClusterProcesses read_cluster() {
  std::map<pid_t, std::vector<ProcessInfo>> children;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", error)) {
    const auto name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    try {
      auto p = read_process(name);
      children[p.parent].push_back(std::move(p));
    } catch (const std::exception&) {
      // it ended meanwhile
    }
  }
  ClusterProcesses out;
  std::function<void(pid_t)> find_nodes = [&](pid_t parent) {
    for (const auto& c : children[parent]) {
      if (c.command.find(" node ") != std::string::npos) {
        out.nodes.push_back(c);
      } else {
        find_nodes(c.pid);
      }
    }
  };
  find_nodes(::getpid());
  for (const auto& node : out.nodes) {
    std::vector<ProcessInfo> kernels;
    std::vector<ProcessInfo> vpes;
    std::function<void(pid_t)> walk = [&](pid_t parent) {
      for (const auto& c : children[parent]) {
        if (c.command.find("semper_kernel") != std::string::npos) {
          kernels.push_back(c);
        } else if (c.command.find("scale-") != std::string::npos) {
          vpes.push_back(c);
        } else {
          walk(c.pid);
        }
      }
    };
    walk(node.pid);
    out.kernels.push_back(std::move(kernels));
    out.vpes.push_back(std::move(vpes));
  }
  return out;
}

struct Resources {
  std::vector<double> node_pss_per_pe_kib;
  std::vector<double> node_fds;
  std::vector<double> kernel_pss_kib;
  std::vector<double> vpe_pss_kib;
};

Resources resources_of(ClusterProcesses c) {
  for (auto& n : c.nodes) read_details(n);
  for (auto& list : {&c.kernels, &c.vpes}) {
    for (auto& per_node : *list) {
      for (auto& p : per_node) read_details(p);
    }
  }
  Resources r;
  for (std::size_t n = 0; n < c.nodes.size(); ++n) {
    const auto pes = c.kernels[n].size() + c.vpes[n].size();
    if (pes > 0) r.node_pss_per_pe_kib.push_back(c.nodes[n].pss_kib / static_cast<double>(pes));
    r.node_fds.push_back(static_cast<double>(c.nodes[n].fds));
    for (const auto& k : c.kernels[n]) r.kernel_pss_kib.push_back(k.pss_kib);
    for (const auto& v : c.vpes[n]) r.vpe_pss_kib.push_back(v.pss_kib);
  }
  return r;
}

// CPU seconds and context switches of each kind of process, summed.
struct Effort {
  double kernel_cpu_s = 0, vpe_cpu_s = 0, node_cpu_s = 0, switches = 0;
};

Effort effort_of(const ClusterProcesses& c) {
  Effort e;
  for (std::size_t n = 0; n < c.nodes.size(); ++n) {
    e.node_cpu_s += c.nodes[n].cpu_s;
    e.switches += c.nodes[n].switches;
    for (const auto& k : c.kernels[n]) {
      e.kernel_cpu_s += k.cpu_s;
      e.switches += k.switches;
    }
    for (const auto& v : c.vpes[n]) {
      e.vpe_cpu_s += v.cpu_s;
      e.switches += v.switches;
    }
  }
  return e;
}

Result plain(const std::string& name, const std::string& unit, std::vector<double> values) {
  std::erase(values, 0.0);  // a process that ended before it was read
  std::sort(values.begin(), values.end());
  Result r{"scale", name, unit, 0, 0, values.size(), {}, {}, 0};
  if (values.empty()) return r;
  r.median = values[values.size() / 2];
  r.p99 = values.back();  // for sizes and counts: the largest
  return r;
}

struct Measured {
  double pairs_per_s = 0;
  double tree_revoke_ns = 0;
  Resources resources;
  Effort effort;  // during phase 1
};

Measured run_setup(const Setup& s, SampleDirectory& dir, bool quick) {
  const double seconds = quick ? 0.5 : 2.0;
  const unsigned tree = quick ? kQuickTreeCaps : kTreeCaps;
  const unsigned share = std::max(3U, (tree + s.clients - 1) / s.clients);
  const auto prefix = dir.file(s.name());
  for (const char* suffix : {"-go", "-built", "-revoked", "-measured", "-server", "-go.partial",
                             "-built.partial", "-revoked.partial", "-measured.partial"}) {
    dir.file(s.name() + suffix);
  }
  const auto spec = scale_cluster(s, prefix, seconds, share);
  // Phase 1's window from the go file: effort at its start and end; the
  // resources while the tree stands.
  std::promise<Resources> measured;
  std::promise<Effort> spent;
  auto resources = measured.get_future();
  auto effort = spent.get_future();
  std::atomic<bool> done{false};
  std::thread reader([&] {
    const auto wait_for = [&](const std::string& path) {
      while (!done && !exists(path)) std::this_thread::sleep_for(10ms);
      return !done.load();
    };
    Effort window;
    if (wait_for(prefix + "-go")) {
      std::int64_t start = 0;
      std::ifstream(prefix + "-go") >> start;
      const auto sleep_until = [](std::int64_t at) {
        while (realtime_ns() < at) std::this_thread::sleep_for(1ms);
      };
      sleep_until(start);
      const auto before = effort_of(read_cluster());
      sleep_until(start + static_cast<std::int64_t>(seconds * 1e9));
      const auto after = effort_of(read_cluster());
      window = {after.kernel_cpu_s - before.kernel_cpu_s, after.vpe_cpu_s - before.vpe_cpu_s,
                after.node_cpu_s - before.node_cpu_s, after.switches - before.switches};
    }
    spent.set_value(window);
    measured.set_value(wait_for(prefix + "-built") ? resources_of(read_cluster()) : Resources{});
    publish(prefix + "-measured", "1");
  });
  cluster::ClusterResult result;
  try {
    result = cluster::run_cluster(spec);
  } catch (...) {
    done = true;
    reader.join();
    throw;
  }
  done = true;
  reader.join();
  if (result.nodes_failed != 0) {
    std::string why;
    for (const auto& f : result.failures) why += "\n" + f;
    throw std::runtime_error(fmt::format("scale benchmark cluster {} failed:{}", s.name(), why));
  }
  Measured m;
  m.resources = resources.get();
  m.effort = effort.get();
  double pairs = 0;
  unsigned reported = 0;
  for (const auto& p : std::filesystem::directory_iterator(std::filesystem::path(prefix).parent_path())) {
    const auto file = p.path().string();
    if (file.rfind(prefix + "-client-", 0) != 0) continue;
    dir.file(p.path().filename().string());
    auto samples = read_samples(file);
    for (double v : samples["pairs"]) {
      pairs += v;
      ++reported;
    }
  }
  if (reported != s.clients)
    throw std::runtime_error(fmt::format("{}: {} of {} clients reported", s.name(), reported, s.clients));
  m.pairs_per_s = pairs / seconds;
  const auto server = read_samples(prefix + "-server")["tree_revoke"];
  if (server.size() != 1) throw std::runtime_error(s.name() + ": the server measured no tree revoke");
  m.tree_revoke_ns = server.front();
  return m;
}

}  // namespace

int run_scale_role(const std::string& role, Dtu& dtu, const std::vector<std::string>& args) {
  if (role == "scale-client") return scale_client(dtu, args);
  if (role == "scale-server") return scale_server(dtu, args);
  return -1;
}

void run_scale_suite(Reporter& reporter, const SuiteOptions& options) {
  const unsigned clients = options.quick ? 64 : 256;
  std::vector<Setup> setups;
  for (unsigned k : {1U, 2U, 4U, 16U, 64U}) setups.push_back({1, k, clients});
  // Full: 4 nodes of 256 PEs (16 kernels, the server and 959 clients in all).
  if (::geteuid() == 0) {
    setups.push_back({4, 16, options.quick ? clients : 1024 - 64 - 1});
  } else {
    reporter.note("4 nodes in network namespaces: skipped (needs root)");
  }
  SampleDirectory dir;
  reporter.note(
      fmt::format("{} client VPEs (and a server) spread over the kernels; phase 1: local exchange + "
                  "revoke pairs from every client at once, {} s",
                  clients, options.quick ? 0.5 : 2.0));
  reporter.note(
      fmt::format("tree: {} capabilities (each client's share below one obtained from kernel 0), "
                  "revoked by the server; memory and fds read from /proc while it stands",
                  options.quick ? kQuickTreeCaps : kTreeCaps));
  std::map<unsigned, double> aggregate;  // one node: by kernels
  for (const auto& s : setups) {
    const auto m = run_setup(s, dir, options.quick);
    const auto name = fmt::format("{}_vpes_{}", s.name(), s.clients);
    reporter.add(Result{
        "scale", name + "_pairs_per_s", "kpairs/s", m.pairs_per_s / 1e3, m.pairs_per_s / 1e3, 1, {}, {}, 0});
    reporter.add(latency_result("scale", name + "_tree_revoke", {m.tree_revoke_ns}));
    reporter.add(plain(name + "_node_pss_per_pe", "KiB", m.resources.node_pss_per_pe_kib));
    reporter.add(plain(name + "_node_fds", "fds", m.resources.node_fds));
    reporter.add(plain(name + "_kernel_pss", "KiB", m.resources.kernel_pss_kib));
    reporter.add(plain(name + "_vpe_pss", "KiB", m.resources.vpe_pss_kib));
    // Where phase 1's CPU went, per exchange + revoke pair.
    const double pairs = std::max(1.0, m.pairs_per_s * (options.quick ? 0.5 : 2.0));
    const auto per_pair = [&](const std::string& what, double value, const char* unit) {
      std::string full = name;
      full += "_";
      full += what;
      reporter.add(Result{"scale", full, unit, value, value, 1, {}, {}, 0});
    };
    per_pair("kernel_cpu_per_pair", m.effort.kernel_cpu_s * 1e6 / pairs, "us");
    per_pair("vpe_cpu_per_pair", m.effort.vpe_cpu_s * 1e6 / pairs, "us");
    per_pair("node_cpu_per_pair", m.effort.node_cpu_s * 1e6 / pairs, "us");
    per_pair("switches_per_pair", m.effort.switches / pairs, "switches");
    if (s.nodes == 1) aggregate[s.kernels()] = m.pairs_per_s;
  }
  if (aggregate.count(2) != 0 && aggregate.count(64) != 0 && aggregate[2] > 0) {
    const double ratio = 100 * aggregate[64] / aggregate[2];
    reporter.add(Result{"scale", "kernels_64_vs_2_aggregate", "%", ratio, ratio, 1, {}, {}, 0});
  }
}

}  // namespace vdtu::bench

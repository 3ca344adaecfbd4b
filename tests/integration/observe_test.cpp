// `vdtu stat` and `vdtu trace` against a real two-node `vdtu cluster`: the
// JSON snapshot is parsed and checked against the cluster the test started
// (PEs, kernels' VPE counts, who sends to each kernel, the link to the other
// node); the stats socket refuses what it must; a trace of a cross-node
// session is read back by tshark with the shipped dissector.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "support/program_process.hpp"

namespace vdtu {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kPatience = 30s;  // generous: a loaded 2-core machine

struct Output {
  int status = -1;
  std::string text;
};

// Runs a shell command line; its stdout and stderr, and its exit code.
Output run(const std::string& command) {
  Output out;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return out;
  std::array<char, 4096> buf{};
  for (std::size_t n = 0; (n = std::fread(buf.data(), 1, buf.size(), p)) > 0;) out.text.append(buf.data(), n);
  const int status = ::pclose(p);
  out.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

class TempDir {
 public:
  TempDir() {
    std::string name = (fs::temp_directory_path() / "vdtu-observe-test-XXXXXX").string();
    EXPECT_NE(::mkdtemp(name.data()), nullptr);
    path_ = name;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] fs::path operator/(const std::string& f) const { return path_ / f; }

 private:
  fs::path path_;
};

std::string write_file(const fs::path& path, const std::string& text) {
  std::ofstream(path) << text;
  return path.string();
}

// A cluster started by the test; each node's stats socket as it printed it.
class Cluster {
 public:
  Cluster(const std::string& toml, const TempDir& dir)
      : process_({VDTU_PATH, "cluster", "--config", write_file(dir / "cluster.toml", toml)},
                 (dir / "cluster.log").string()) {}

  // The stats socket of node `n`, once it serves.
  std::string socket(unsigned n) {
    const auto needle = "node " + std::to_string(n) + ": stats socket ";
    if (!process_.wait_for_log(needle, kPatience)) return {};
    const auto log = process_.log();
    const auto at = log.find(needle) + needle.size();
    return log.substr(at, log.find('\n', at) - at);
  }
  testing::ProgramProcess& process() { return process_; }

 private:
  testing::ProgramProcess process_;
};

std::string stat_json(const std::string& socket) {
  return run(std::string(VDTU_PATH) + " stat --json --socket " + socket).text;
}

// Snapshots until `ready` holds (the kernels publish each round, the link
// measures its first round trip after the handshake).
json wait_for_snapshot(const std::string& socket, const std::function<bool(const json&)>& ready) {
  json j;
  const auto deadline = Clock::now() + kPatience;
  do {
    j = json::parse(stat_json(socket), nullptr, false);
    if (!j.is_discarded() && ready(j)) return j;
    std::this_thread::sleep_for(50ms);
  } while (Clock::now() < deadline);
  return j;
}

const json* kernel_of(const json& snapshot) {
  for (const auto& pe : snapshot["pes"]) {
    if (pe["privileged"].get<bool>()) return &pe;
  }
  return nullptr;
}

bool settled(const json& j, std::uint64_t vpes) {
  const auto* k = kernel_of(j);
  return k != nullptr && !(*k)["kernel"].is_null() && (*k)["kernel"]["vpes"] == vpes &&
         j["peers"].size() == 1 && j["peers"][0]["rtt_samples"].get<std::uint64_t>() > 0;
}

// Who sends to receive endpoint `ep` of `pe`: their PE ids.
std::set<unsigned> senders_to(const json& pe, unsigned ep) {
  std::set<unsigned> out;
  for (const auto& e : pe["endpoints"]) {
    if (e["ep"] != ep || e["kind"] != "receive") continue;
    for (const auto& c : e["channels"]) {
      if (!c["remote"].get<bool>()) out.insert(c["sender_pe"].get<unsigned>());
    }
  }
  return out;
}

// Sends `request` as it is; what the node answers before it closes.
std::string raw_request(const std::string& socket, const std::string& request) {
  const int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof(a.sun_path), "%s", socket.c_str());
  std::string out;
  if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      ::write(s, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
    std::array<char, 256> buf{};
    for (ssize_t n = 0; (n = ::read(s, buf.data(), buf.size())) > 0;)
      out.append(buf.data(), static_cast<std::size_t>(n));
  }
  ::close(s);
  return out;
}

// What a client of another user hears from the socket (root only).
std::string answer_as_nobody(const std::string& socket) {
  int fds[2];
  if (::pipe(fds) != 0) return "pipe failed";
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(fds[0]);
    std::string said = "setuid failed";
    if (::setgid(65534) == 0 && ::setuid(65534) == 0) {
      said = "connect failed";
      const int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::snprintf(a.sun_path, sizeof(a.sun_path), "%s", socket.c_str());
      if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
        (void)::write(s, "json\n", 5);
        std::array<char, 256> buf{};
        const auto n = ::read(s, buf.data(), buf.size());
        said = n > 0 ? std::string(buf.data(), static_cast<std::size_t>(n)) : "nothing";
      } else {
        said += std::string(": ") + std::strerror(errno);
      }
    }
    (void)::write(fds[1], said.data(), said.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string out;
  std::array<char, 256> buf{};
  for (ssize_t n = 0; (n = ::read(fds[0], buf.data(), buf.size())) > 0;)
    out.append(buf.data(), static_cast<std::size_t>(n));
  ::close(fds[0]);
  ::waitpid(child, nullptr, 0);
  return out;
}

TEST(Observe, StatShowsWhatTheClusterRuns) {
  TempDir dir;
  // Node 0: a kernel with two VPEs (PEs 0 and 1, the kernel PE 2); node 1: a
  // kernel with one (PE 16, the kernel PE 17). The VPEs only sleep: every
  // figure below comes from booting them and joining the kernels.
  Cluster cluster(R"([cluster]
timeout = 60
[[node]]
  [[node.kernel]]
  vpes = [["/bin/sleep", "30"], ["/bin/sleep", "30"]]
[[node]]
  [[node.kernel]]
  vpes = [["/bin/sleep", "30"]]
)",
                  dir);
  const std::array sockets{cluster.socket(0), cluster.socket(1)};
  ASSERT_FALSE(sockets[0].empty()) << cluster.process().log();
  ASSERT_FALSE(sockets[1].empty()) << cluster.process().log();
  const std::array<std::uint64_t, 2> vpes{2, 1};
  const std::array<unsigned, 2> first_pe{0, 16};
  for (unsigned n = 0; n < 2; ++n) {
    SCOPED_TRACE("node " + std::to_string(n));
    const auto j = wait_for_snapshot(sockets[n], [&](const json& s) { return settled(s, vpes[n]); });
    ASSERT_FALSE(j.is_discarded());
    ASSERT_TRUE(settled(j, vpes[n])) << j.dump(2);
    EXPECT_EQ(j["node"], n);
    EXPECT_EQ(j["first_pe"], first_pe[n]);
    EXPECT_TRUE(j["sealed"].get<bool>());
    std::set<unsigned> alive;
    for (const auto& pe : j["pes"]) {
      if (pe["alive"].get<bool>()) alive.insert(pe["id"].get<unsigned>());
    }
    std::set<unsigned> expected;
    for (unsigned i = 0; i <= vpes[n]; ++i) expected.insert(first_pe[n] + i);
    EXPECT_EQ(alive, expected);
    const auto& kernel = *kernel_of(j);
    EXPECT_EQ(kernel["id"], first_pe[n] + vpes[n]);
    EXPECT_GT(kernel["kernel"]["capabilities"].get<std::uint64_t>(), 0U);
    // Every VPE got a syscall channel to the kernel's endpoint 0.
    std::set<unsigned> vpe_ids(expected);
    vpe_ids.erase(first_pe[n] + vpes[n]);
    EXPECT_EQ(senders_to(kernel, 0), vpe_ids);
    const auto& peer = j["peers"][0];
    EXPECT_EQ(peer["id"], 1 - n);
    EXPECT_TRUE(peer["sealed"].get<bool>());
    EXPECT_TRUE(peer["heard"].get<bool>());
    EXPECT_FALSE(peer["lost"].get<bool>());
    EXPECT_GT(peer["rtt_smoothed_us"].get<std::uint64_t>(), 0U);
    EXPECT_EQ(j["counters"]["datagrams_forged"], 0);
    EXPECT_GT(j["counters"]["datagrams_received"].get<std::uint64_t>(), 0U);
  }

  const auto text = run(std::string(VDTU_PATH) + " stat --socket " + sockets[0]);
  EXPECT_EQ(text.status, 0);
  EXPECT_NE(text.text.find("node 0: PEs 0..15"), std::string::npos) << text.text;
  EXPECT_NE(text.text.find("kernel: "), std::string::npos) << text.text;
  EXPECT_NE(text.text.find("sealed"), std::string::npos) << text.text;

  // --watch repeats (one JSON object per line when piped) until a signal.
  {
    testing::ProgramProcess watch({VDTU_PATH, "stat", "--json", "--watch", "0.1", "--socket", sockets[1]},
                                  (dir / "watch.log").string());
    std::this_thread::sleep_for(600ms);
    EXPECT_EQ(watch.stop(), 0);
    std::istringstream lines(watch.log());
    int objects = 0;
    for (std::string line; std::getline(lines, line);) {
      const auto j = json::parse(line, nullptr, false);
      EXPECT_FALSE(j.is_discarded()) << line;
      objects += (!j.is_discarded() && j["node"] == 1) ? 1 : 0;
    }
    EXPECT_GE(objects, 2) << watch.log();
  }

  // What the socket refuses.
  const auto bogus = raw_request(sockets[0], "bogus\n");
  EXPECT_NE(bogus.find("refused: unknown request"), std::string::npos) << bogus;
  if (::geteuid() == 0) {
    const auto nobody = answer_as_nobody(sockets[0]);
    // The socket file is 0600: another user cannot even connect.
    EXPECT_NE(nobody.find("connect failed"), std::string::npos) << nobody;
  }
  const auto missing = run(std::string(VDTU_PATH) + " stat --socket " + (dir / "no-such.sock").string());
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.text.find("cannot connect"), std::string::npos) << missing.text;
}

TEST(Observe, TraceOfACrossNodeSessionDecodesInTshark) {
  TempDir dir;
  const std::string vpe = VDTU_KERNEL_TEST_VPE_PATH;
  // The client on node 1 waits 1.5 s, so the trace is attached before it opens
  // its session with the server on node 0 (syscalls on node 1, kernelcalls
  // both ways, pings to node 0 and their replies).
  Cluster cluster(R"([cluster]
timeout = 60
[[node]]
  [[node.kernel]]
  vpes = [[")" + vpe + R"(", "gate-server", "echo"]]
[[node]]
  [[node.kernel]]
  vpes = [[")" + vpe + R"(", "later", "1500", "gate-client", "echo"]]
)",
                  dir);
  const auto socket = cluster.socket(1);
  ASSERT_FALSE(socket.empty()) << cluster.process().log();
  const auto file = (dir / "node1.pcapng").string();
  const auto trace =
      run(std::string(VDTU_PATH) + " trace --duration 4 --snaplen 128 -w " + file + " --socket " + socket);
  ASSERT_EQ(trace.status, 0) << trace.text;
  const std::regex summary(R"(trace: (\d+) messages captured)");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(trace.text, m, summary)) << trace.text;
  EXPECT_GE(std::stoi(m[1]), 10) << trace.text;
  ASSERT_TRUE(cluster.process().wait_for_log("cluster: 2 of 2 nodes finished cleanly", kPatience))
      << cluster.process().log();

  if (run("command -v tshark").status != 0)
    GTEST_SKIP() << "tshark is not installed (scripts/install-deps.sh)";
  const std::string tshark = "tshark -X lua_script:" VDTU_SOURCE_DIR "/tools/wireshark/vdtu.lua -r " + file;
  const auto decoded = run(tshark);
  ASSERT_EQ(decoded.status, 0) << decoded.text;
  for (const char* expected :
       {"syscall CREATESESS", "syscall OBTAIN", "syscall ACTIVATE", "syscall reply NONE",
        "kernelcall OPEN_SESSION", "kernelcall OPEN_SESSION_REPLY", "to peer", "from peer"}) {
    EXPECT_NE(decoded.text.find(expected), std::string::npos) << expected << " in\n" << decoded.text;
  }
  EXPECT_EQ(decoded.text.find("Malformed"), std::string::npos) << decoded.text;
  const auto malformed = run(tshark + " -Y '_ws.malformed || _ws.expert' -T fields -e frame.number");
  EXPECT_EQ(malformed.status, 0);
  EXPECT_EQ(malformed.text.find_first_of("0123456789"), std::string::npos) << malformed.text;
  // Every record names node 1 and a known direction.
  const auto fields = run(tshark + " -T fields -e vdtu.node -e vdtu.direction");
  std::istringstream lines(fields.text);
  int records = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("Running as", 0) == 0 || line.empty()) continue;
    EXPECT_TRUE(std::regex_match(line, std::regex(R"(1\t[012])"))) << line;
    ++records;
  }
  EXPECT_EQ(records, std::stoi(m[1]));
}

}  // namespace
}  // namespace vdtu

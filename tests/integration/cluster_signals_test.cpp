// Stop signals to the real `vdtu cluster` and `vdtu node` while they run:
// they must end everything they started (node processes, PEs, network
// namespaces, veths, the bridge, the scratch directory with the cluster key),
// say so in one line and exit with 128 + the signal. The test learns every
// descendant (a pidfd each, so a reused pid cannot fool it), then looks for
// each leftover after the command has exited.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "vdtu/unique_fd.hpp"

namespace vdtu {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr auto kPatience = std::chrono::seconds(60);  // generous: a loaded 2-core machine

UniqueFd open_pidfd(pid_t pid) { return UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))); }

// True once the process behind `pidfd` has ended (a zombie has ended).
bool ended(int pidfd, std::chrono::milliseconds wait = std::chrono::milliseconds(0)) {
  pollfd p{pidfd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(wait.count())) == 1;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A directory of the test's own, removed with its contents.
class TempDir {
 public:
  TempDir() {
    std::string name = (fs::temp_directory_path() / "vdtu-signals-test-XXXXXX").string();
    EXPECT_NE(::mkdtemp(name.data()), nullptr);
    path_ = name;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  [[nodiscard]] const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

struct Watched {
  pid_t pid;
  std::string comm;
  std::shared_ptr<UniqueFd> pidfd;
};

// Every process below `root` right now, by parent links in /proc.
std::vector<Watched> descendants(pid_t root) {
  std::map<pid_t, std::pair<pid_t, std::string>> parent_and_comm;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto stat = read_file(entry.path() / "stat");
    const auto open = stat.find('(');
    const auto close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos || close + 4 >= stat.size()) continue;
    pid_t ppid = 0;
    char state = 0;
    if (std::sscanf(stat.c_str() + close + 2, "%c %d", &state, &ppid) != 2) continue;
    parent_and_comm[std::stoi(name)] = {ppid, stat.substr(open + 1, close - open - 1)};
  }
  std::vector<Watched> out;
  std::vector<pid_t> frontier{root};
  while (!frontier.empty()) {
    const pid_t parent = frontier.back();
    frontier.pop_back();
    for (const auto& [pid, pc] : parent_and_comm) {
      if (pc.first != parent) continue;
      frontier.push_back(pid);
      auto fd = std::make_shared<UniqueFd>(open_pidfd(pid));
      if (*fd) out.push_back({pid, pc.second, std::move(fd)});
    }
  }
  return out;
}

std::map<std::string, int> count_by_name(const std::vector<Watched>& processes) {
  std::map<std::string, int> n;
  for (const auto& p : processes) {
    if (!ended(p.pidfd->get())) ++n[p.comm];
  }
  return n;
}

// Output of a command (for `ip`).
std::string output_of(const std::string& command) {
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  if (!pipe) return out;
  std::array<char, 4096> buffer{};
  for (std::size_t n; (n = std::fread(buffer.data(), 1, buffer.size(), pipe.get())) > 0;)
    out.append(buffer.data(), n);
  return out;
}

// The real vdtu binary, its scratch files under a $TMPDIR of our own, its
// output in files.
class VdtuRun {
 public:
  explicit VdtuRun(const std::vector<std::string>& args) {
    const auto out = (work_.path() / "stdout").string();
    const auto err = (work_.path() / "stderr").string();
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<std::string> words{VDTU_PATH};
    words.insert(words.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_strings{"TMPDIR=" + tmp_.path().string()};
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::string_view(*e).rfind("TMPDIR=", 0) != 0) env_strings.emplace_back(*e);
    }
    std::vector<char*> envp;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, VDTU_PATH, &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    EXPECT_EQ(rc, 0);
    pidfd_ = open_pidfd(pid_);
    EXPECT_TRUE(pidfd_);
  }
  VdtuRun(const VdtuRun&) = delete;
  VdtuRun& operator=(const VdtuRun&) = delete;
  ~VdtuRun() {
    if (!status_) {  // a failed test: leave nothing running
      ::kill(pid_, SIGKILL);
      wait();
    }
  }

  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] const fs::path& tmpdir() const { return tmp_.path(); }
  [[nodiscard]] const fs::path& work() const { return work_.path(); }
  [[nodiscard]] std::string out() const { return read_file(work_.path() / "stdout"); }
  [[nodiscard]] std::string err() const { return read_file(work_.path() / "stderr"); }
  [[nodiscard]] bool running() const { return !ended(pidfd_.get()); }

  // Waits (up to kPatience) until `ready` holds for vdtu's descendants;
  // returns them. Fails if vdtu ends first.
  template <class Ready>
  std::vector<Watched> wait_until(Ready ready) {
    const auto deadline = Clock::now() + kPatience;
    while (Clock::now() < deadline) {
      auto now = descendants(pid_);
      if (ready(count_by_name(now))) return now;
      if (ended(pidfd_.get(), std::chrono::milliseconds(100))) break;
    }
    ADD_FAILURE() << "the processes did not all start; stdout:\n" << out() << "stderr:\n" << err();
    return {};
  }

  // Its wait status, waiting up to kPatience for it to end.
  std::optional<int> wait() {
    if (status_) return status_;
    if (!ended(pidfd_.get(), std::chrono::duration_cast<std::chrono::milliseconds>(kPatience)))
      return std::nullopt;
    int status = 0;
    if (::waitpid(pid_, &status, 0) == pid_) status_ = status;
    return status_;
  }

 private:
  TempDir work_;
  TempDir tmp_;
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  std::optional<int> status_;
};

// Two nodes, a kernel each; besides the echo server and client, each kernel
// has a VPE that sleeps: the cluster runs until stopped.
std::string endless_cluster_file(const fs::path& dir) {
  const auto path = dir / "endless.toml";
  std::ofstream(path) << "[cluster]\ntimeout = 600\n"
                      << "[[node]]\n  [[node.kernel]]\n  vpes = [[\"" << VDTU_KERNEL_TEST_VPE_PATH
                      << "\", \"gate-server\", \"echo\"], [\"/bin/sleep\", \"1000\"]]\n"
                      << "[[node]]\n  [[node.kernel]]\n  vpes = [[\"" << VDTU_KERNEL_TEST_VPE_PATH
                      << "\", \"gate-client\", \"echo\"], [\"/bin/sleep\", \"1000\"]]\n";
  return path.string();
}

bool cluster_running(const std::map<std::string, int>& n) {
  const auto count = [&](const std::string& name) { return n.count(name) != 0 ? n.at(name) : 0; };
  return count("vdtu") == 2 && count("semper_kernel") == 2 && count("sleep") == 2;
}

std::string describe(const std::vector<Watched>& processes) {
  std::string s;
  for (const auto& p : processes) s += " " + p.comm + "(" + std::to_string(p.pid) + ")";
  return s;
}

void expect_all_ended(const std::vector<Watched>& processes) {
  for (const auto& p : processes)
    EXPECT_TRUE(ended(p.pidfd->get())) << p.comm << " " << p.pid << " is still running";
}

// No process anywhere mentions the run's $TMPDIR (the nodes' --config files).
void expect_no_process_mentions(const fs::path& dir) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto cmdline = read_file(entry.path() / "cmdline");
    for (auto& c : cmdline) c = c == '\0' ? ' ' : c;
    EXPECT_EQ(cmdline.find(dir.string()), std::string::npos) << "still running: " << cmdline;
  }
}

// The scratch directory while the cluster runs: private, with the node files
// and in them the cluster key.
void expect_private_scratch_with_key(const fs::path& tmpdir) {
  std::vector<fs::path> entries(fs::directory_iterator(tmpdir), fs::directory_iterator{});
  ASSERT_EQ(entries.size(), 1U);
  EXPECT_EQ(entries[0].filename().string().rfind("vdtu-cluster-", 0), 0U) << entries[0];
  EXPECT_EQ(fs::status(entries[0]).permissions(), fs::perms::owner_all) << "the scratch directory is 0700";
  const auto node_file = entries[0] / "node-0.toml";
  EXPECT_EQ(fs::status(node_file).permissions(), fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_NE(read_file(node_file).find("cluster_key = \""), std::string::npos);
}

const char* name_of(int signal) {
  switch (signal) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGHUP: return "SIGHUP";
    default: return "?";
  }
}

void stop_cluster(int signal, bool netns) {
  if (netns && ::geteuid() != 0) GTEST_SKIP() << "network namespaces need root";
  TempDir files;
  std::vector<std::string> args{"cluster", "--config", endless_cluster_file(files.path())};
  if (netns) args.emplace_back("--netns");
  VdtuRun run(args);
  const auto processes = run.wait_until(cluster_running);
  ASSERT_FALSE(processes.empty());
  const auto tag = std::to_string(run.pid());
  expect_private_scratch_with_key(run.tmpdir());
  if (netns) {  // the checks below can see what they look for
    EXPECT_NE(output_of("ip netns list").find("vdtu-" + tag + "-1"), std::string::npos);
    EXPECT_NE(output_of("ip -o link show").find("vdtu" + tag + ":"), std::string::npos);
  }

  ASSERT_EQ(::kill(run.pid(), signal), 0);
  const auto status = run.wait();
  ASSERT_TRUE(status) << "vdtu cluster did not end after " << name_of(signal);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 128 + signal)
      << "wait status " << *status << "\nstderr:\n"
      << run.err();
  const auto err = run.err();
  EXPECT_NE(
      err.find(std::string("cluster: stopped by ") + name_of(signal) + ": ended nodes 0, 1 and their PEs"),
      std::string::npos)
      << err;
  EXPECT_NE(err.find("node 0: stopped by SIGTERM: killed and reaped PE 0"), std::string::npos) << err;
  if (netns) {
    EXPECT_NE(err.find("removed network namespaces vdtu-" + tag + "-0"), std::string::npos) << err;
  }

  SCOPED_TRACE("descendants were:" + describe(processes));
  expect_all_ended(processes);
  expect_no_process_mentions(run.tmpdir());
  EXPECT_TRUE(fs::is_empty(run.tmpdir())) << "the scratch directory (node files, cluster key) is left";
  const auto namespaces = output_of("ip netns list");
  EXPECT_EQ(namespaces.find("vdtu-" + tag + "-"), std::string::npos) << namespaces;
  const auto links = output_of("ip -o link show");
  EXPECT_EQ(links.find("vdtu" + tag), std::string::npos) << "a veth or the bridge is left:\n" << links;
}

TEST(ClusterSignals, SigtermEndsNodesAndPesAndRemovesTheScratchDirectory) { stop_cluster(SIGTERM, false); }
TEST(ClusterSignals, SigintEndsNodesAndPesAndRemovesTheScratchDirectory) { stop_cluster(SIGINT, false); }
TEST(ClusterSignals, SighupEndsNodesAndPesAndRemovesTheScratchDirectory) { stop_cluster(SIGHUP, false); }
TEST(ClusterSignals, SigtermWithNetnsAlsoRemovesNamespacesVethsAndBridge) { stop_cluster(SIGTERM, true); }
TEST(ClusterSignals, SigintWithNetnsAlsoRemovesNamespacesVethsAndBridge) { stop_cluster(SIGINT, true); }

// SIGKILL cannot be handled: the nodes learn of it by their parent-death
// signal and end with their PEs. (The scratch directory stays: nothing is
// left to remove it; our $TMPDIR goes with the test.)
TEST(ClusterSignals, NodesDoNotOutliveAKilledCluster) {
  TempDir files;
  VdtuRun run({"cluster", "--config", endless_cluster_file(files.path())});
  const auto processes = run.wait_until(cluster_running);
  ASSERT_FALSE(processes.empty());
  ASSERT_EQ(::kill(run.pid(), SIGKILL), 0);
  ASSERT_TRUE(run.wait());
  const auto deadline = Clock::now() + kPatience;
  for (const auto& p : processes) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    EXPECT_TRUE(ended(p.pidfd->get(), std::max(left, std::chrono::milliseconds(0))))
        << p.comm << " " << p.pid << " outlived its killed cluster";
  }
}

void stop_node(int signal) {
  TempDir files;
  const auto path = files.path() / "sleepers.toml";
  std::ofstream(path) << "[node]\npes = 4\n"
                      << "[[pe]]\nprogram = \"/bin/sleep\"\nargs = [\"1000\"]\n"
                      << "[[pe]]\nprogram = \"/bin/sleep\"\nargs = [\"1001\"]\n";
  VdtuRun run({"node", "--config", path.string()});
  const auto processes = run.wait_until(
      [](const std::map<std::string, int>& n) { return n.count("sleep") != 0 && n.at("sleep") == 2; });
  ASSERT_EQ(processes.size(), 2U) << describe(processes);
  ASSERT_EQ(::kill(run.pid(), signal), 0);
  const auto status = run.wait();
  ASSERT_TRUE(status) << "vdtu node did not end after " << name_of(signal);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 128 + signal) << "wait status " << *status;
  EXPECT_NE(run.err().find(std::string("node 0: stopped by ") + name_of(signal) +
                           ": killed and reaped PE 0 (/bin/sleep 1000), PE 1 (/bin/sleep 1001)"),
            std::string::npos)
      << run.err();
  expect_all_ended(processes);
}

TEST(NodeSignals, SigtermKillsAndReapsThePes) { stop_node(SIGTERM); }
TEST(NodeSignals, SigintKillsAndReapsThePes) { stop_node(SIGINT); }

}  // namespace
}  // namespace vdtu

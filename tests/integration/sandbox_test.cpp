// The PE sandbox against a hostile PE. This test process plays the node: it
// makes itself non-dumpable, holds a memfd with a secret, and starts a victim
// PE and the hostile program through a Sandbox; then it checks that every
// attempt was denied, that it and the victim live and that no secret changed.
// Uid mode needs root (skipped otherwise); user-namespace mode runs in a
// child process that gave up root, as a node of an ordinary user would.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <netinet/in.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/process_hardening.hpp"
#include "sandbox/pe_sandbox.hpp"
#include "vdtu/mapped_region.hpp"

namespace vdtu::sandbox {
namespace {

using namespace std::chrono_literals;

constexpr auto kTimeout = 120s;  // generous: a loaded 2-core machine, sanitizer builds

bool is_root() { return ::geteuid() == 0; }

// The uid of the node in user-namespace tests: this process's own when it is
// not root; as root, one no account and no PE of this test uses (the last of
// this process's default range, whose slots 0 and 1 the uid-mode tests use).
uid_t unprivileged_node_uid() {
  if (!is_root()) return ::geteuid();
  return UidRange::for_node_pid(::getpid()).uid_of_slot(UidRange::kSlotsPerNode - 1);
}

struct Pipe {
  UniqueFd read_end;
  UniqueFd write_end;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
    read_end.reset(fds[0]);
    write_end.reset(fds[1]);
  }
};

// A fresh directory under the build tree (mode 0700), removed with its
// contents when the handle goes away; optionally given to `owner`.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& prefix, const std::filesystem::path& parent = VDTU_TEST_SCRATCH_DIR,
                      std::optional<uid_t> owner = std::nullopt) {
    std::string templ = (parent / (prefix + "-XXXXXX")).string();
    if (::mkdtemp(templ.data()) == nullptr)
      throw std::system_error(errno, std::generic_category(), "mkdtemp");
    path_ = templ;
    if (owner && ::chown(templ.c_str(), *owner, static_cast<gid_t>(*owner)) != 0)
      throw std::system_error(errno, std::generic_category(), "chown");
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Reads until EOF or the deadline.
std::string read_all(int fd, std::chrono::milliseconds timeout = kTimeout) {
  std::string text;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::array<char, 4096> buffer{};
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    const auto n = ::read(fd, buffer.data(), buffer.size());
    if (n <= 0) break;
    text.append(buffer.data(), static_cast<std::size_t>(n));
  }
  return text;
}

std::string read_line(int fd, std::chrono::milliseconds timeout = kTimeout) {
  std::string line;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char c = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    if (::read(fd, &c, 1) != 1 || c == '\n') break;
    line += c;
  }
  return line;
}

// What a PE program sees of the environment: a path, and the sanitizer
// settings of this test run.
std::vector<std::string> pe_environment() {
  std::vector<std::string> env{"PATH=/usr/bin:/bin"};
  for (const char* name : {"ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS", "LSAN_OPTIONS"}) {
    if (const char* value = std::getenv(name)) env.push_back(std::string(name) + "=" + value);  // NOLINT
  }
  return env;
}

// A PE started through a sandbox, stdout captured, stdin a pipe this test
// holds; killed and reaped if still there when the handle goes away.
class Pe {
 public:
  Pe(const Sandbox& sandbox, std::string program, std::vector<std::string> args, std::uint32_t slot,
     std::vector<FdMapping> extra_fds = {}) {
    SpawnRequest request{std::move(program), std::move(args), pe_environment(), std::move(extra_fds), slot};
    request.fds.push_back({in_.read_end.get(), 0});
    request.fds.push_back({out_.write_end.get(), 1});
    request.fds.push_back({STDERR_FILENO, 2});
    process_ = sandbox.spawn(request);
    in_.read_end.reset();
    out_.write_end.reset();
  }
  Pe(const Pe&) = delete;
  Pe& operator=(const Pe&) = delete;
  ~Pe() {
    if (process_.pid > 0) {
      ::kill(process_.pid, SIGKILL);
      ::waitpid(process_.pid, nullptr, 0);
    }
  }

  [[nodiscard]] pid_t pid() const { return process_.pid; }
  std::string line() { return read_line(out_.read_end.get()); }
  std::string output() { return read_all(out_.read_end.get()); }
  void close_stdin() { in_.write_end.reset(); }
  [[nodiscard]] bool alive() const {
    pollfd p{process_.pidfd.get(), POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;
  }
  // Whether it ended (it is then a zombie until wait() reaps it).
  bool exited(std::chrono::milliseconds timeout = kTimeout) {
    pollfd p{process_.pidfd.get(), POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(timeout.count())) == 1;
  }
  // Exit code, 128 + signal if killed, -1 if still running at the deadline.
  int wait(std::chrono::milliseconds timeout = kTimeout) {
    pollfd p{process_.pidfd.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return -1;
    int status = 0;
    if (::waitpid(process_.pid, &status, 0) != process_.pid) return -1;
    process_.pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  Pipe in_;
  Pipe out_;
  SpawnedProcess process_;
};

std::map<std::string, std::string> key_values(const std::string& text) {
  std::map<std::string, std::string> values;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) values[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return values;
}

// ---- the hostile program's report -----------------------------------------------

struct Attempt {
  std::string name, target, outcome, error, detail;
};

std::vector<Attempt> parse_attempts(const std::string& text) {
  std::vector<Attempt> attempts;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("attempt=", 0) != 0) continue;
    const auto detail_at = line.find(" detail=");
    std::map<std::string, std::string> fields;
    std::istringstream words(line.substr(0, detail_at));
    std::string word;
    while (words >> word) {
      const auto eq = word.find('=');
      if (eq != std::string::npos) fields[word.substr(0, eq)] = word.substr(eq + 1);
    }
    attempts.push_back({fields["attempt"], fields["target"], fields["outcome"], fields["errno"],
                        detail_at == std::string::npos ? "" : line.substr(detail_at + 8)});
  }
  return attempts;
}

// Every attempt the hostile program makes against each process it targets.
const std::vector<std::string> kProcessAttempts = {"proc_fd_list",
                                                   "proc_fd_open",
                                                   "proc_fdinfo_open",
                                                   "proc_map_files_list",
                                                   "proc_mem",
                                                   "proc_environ",
                                                   "proc_maps",
                                                   "proc_root",
                                                   "proc_cwd",
                                                   "proc_exe",
                                                   "proc_ns_open",
                                                   "ptrace_attach",
                                                   "ptrace_seize",
                                                   "process_vm_readv",
                                                   "process_vm_writev",
                                                   "kcmp",
                                                   "perf_event_open",
                                                   "kill",
                                                   "kill_group",
                                                   "tgkill",
                                                   "tkill",
                                                   "rt_sigqueueinfo",
                                                   "rt_tgsigqueueinfo",
                                                   "pidfd_open",
                                                   "pidfd_send_signal",
                                                   "pidfd_getfd",
                                                   "fcntl_setown",
                                                   "fcntl_setown_ex",
                                                   "ioctl_fiosetown",
                                                   "prlimit",
                                                   "setpriority",
                                                   "sched_setaffinity"};
// ... against the kernel and the host, once.
const std::vector<std::string> kEscapeAttempts = {
    "kill_all",        "setresuid_root", "unshare_user",        "unshare_mount", "clone_newuser",
    "clone_parent",    "clone3_newuser", "mount_tmpfs",         "chroot",        "bpf",
    "userfaultfd",     "io_uring_setup", "keyctl_user_keyring", "tiocsti",       "udp_to_node",
    "abstract_socket", "write_node_dir"};

// Checks that each expected attempt appears and was denied, except those in
// `allowed_to_succeed` (name@target), which must appear and succeed.
void expect_denied(const std::vector<Attempt>& attempts,
                   const std::set<std::string>& allowed_to_succeed = {}) {
  std::map<std::string, const Attempt*> by_key;
  for (const auto& a : attempts) by_key[a.name + "@" + a.target] = &a;
  std::vector<std::string> expected;
  for (const char* target : {"node", "victim"}) {
    for (const auto& name : kProcessAttempts) expected.push_back(name + "@" + target);
  }
  for (const auto& name : kEscapeAttempts) {
    const bool on_node = name == "udp_to_node" || name == "abstract_socket" || name == "write_node_dir";
    expected.push_back(name + (name == "kill_all" ? "@all" : on_node ? "@node" : "@kernel"));
  }
  for (const auto& key : expected) {
    const auto it = by_key.find(key);
    ASSERT_NE(it, by_key.end()) << "attempt missing: " << key;
    const auto& a = *it->second;
    const auto want = allowed_to_succeed.count(key) != 0 ? "succeeded" : "denied";
    EXPECT_EQ(a.outcome, want) << key << " errno=" << a.error << " detail=" << a.detail;
  }
  EXPECT_EQ(by_key.size(), expected.size()) << "attempts the test does not know about";
}

// ---- what the node holds ------------------------------------------------------------

// A memfd with a secret, mapped: what a PE must not reach.
struct Secret {
  UniqueFd fd;
  MappedRegion map;
  std::string text;
  explicit Secret(std::string secret)
      : fd(::memfd_create("vdtu-secret", MFD_CLOEXEC)), text(std::move(secret)) {
    if (!fd || ::ftruncate(fd.get(), 4096) != 0)
      throw std::system_error(errno, std::generic_category(), "memfd");
    map = MappedRegion(fd.get(), 4096);
    std::memcpy(map.data(), text.c_str(), text.size() + 1);
  }
  [[nodiscard]] bool unchanged() const {
    return std::string(reinterpret_cast<const char*>(map.data())) == text &&
           std::all_of(map.data() + text.size() + 1, map.data() + 4096,
                       [](std::byte b) { return b == std::byte{0}; });
  }
};

// What a node offers besides its process: a UDP port, an abstract unix
// socket, a directory of its user outside the PEs' writable paths.
struct NodeSurface {
  UniqueFd udp{::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
  UniqueFd unix_listener{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
  int udp_port = 0;
  std::string abstract_name = "vdtu-sandbox-test-" + std::to_string(::getpid());
  ScratchDir dir;

  explicit NodeSurface(const std::filesystem::path& parent) : dir("sandbox-node", parent) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (::bind(udp.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        ::getsockname(udp.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0)
      throw std::system_error(errno, std::generic_category(), "udp");
    udp_port = ntohs(address.sin_port);
    sockaddr_un name{};
    name.sun_family = AF_UNIX;
    std::memcpy(name.sun_path + 1, abstract_name.data(), abstract_name.size());
    const auto name_length =
        static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + abstract_name.size());
    if (::bind(unix_listener.get(), reinterpret_cast<sockaddr*>(&name), name_length) != 0 ||
        ::listen(unix_listener.get(), 4) != 0)
      throw std::system_error(errno, std::generic_category(), "abstract socket");
  }

  [[nodiscard]] std::vector<std::string> hostile_args() const {
    return {"--udp-port", std::to_string(udp_port), "--abstract", abstract_name,
            "--node-dir", dir.path().string()};
  }
  // Nothing arrived and nothing was written.
  [[nodiscard]] std::string intrusions() const {
    std::string found;
    std::array<char, 64> buffer{};
    if (::recv(udp.get(), buffer.data(), buffer.size(), 0) >= 0) found += "a datagram arrived; ";
    const int accepted = ::accept4(unix_listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (accepted >= 0) {
      ::close(accepted);
      found += "an abstract-socket connection arrived; ";
    }
    if (!std::filesystem::is_empty(dir.path())) found += "a file appeared in the node's directory; ";
    return found;
  }
};

// ---- one run of the hostile program against this "node" and a victim PE -----------

struct HostileRun {
  std::string hostile_output;
  int hostile_exit = -1;
  bool victim_alive_after = false;
  int victim_exit = -1;
  bool node_secret_unchanged = false;
  bool victim_secret_unchanged = false;
  std::string intrusions;
};

HostileRun run_hostile(const Sandbox& sandbox, bool victim_undumpable,
                       const std::filesystem::path& scratch = VDTU_TEST_SCRATCH_DIR) {
  HostileRun run;
  Secret node_secret("node-secret: the kernel's syscall channels");
  Secret victim_secret("victim-secret: another PE's channel");
  NodeSurface surface(scratch);
  std::vector<std::string> victim_args{"victim"};
  if (victim_undumpable) victim_args.emplace_back("--undumpable");
  Pe victim(sandbox, VDTU_SANDBOX_PROBE_PATH, victim_args, 0, {{victim_secret.fd.get(), 3}});
  if (victim.line().rfind("ready", 0) != 0) return run;

  auto args = surface.hostile_args();
  args.insert(args.begin(), {"--node", std::to_string(::getpid()), "--victim", std::to_string(victim.pid())});
  Pe hostile(sandbox, VDTU_HOSTILE_PE_PATH, args, 1);
  run.hostile_output = hostile.output();
  run.hostile_exit = hostile.wait();

  run.victim_alive_after = victim.alive();
  victim.close_stdin();
  run.victim_exit = victim.wait();
  run.node_secret_unchanged = node_secret.unchanged();
  run.victim_secret_unchanged = victim_secret.unchanged();
  run.intrusions = surface.intrusions();
  return run;
}

void expect_nothing_reached(const HostileRun& run) {
  EXPECT_TRUE(run.victim_alive_after);
  EXPECT_EQ(run.victim_exit, 0);
  EXPECT_TRUE(run.node_secret_unchanged);
  EXPECT_TRUE(run.victim_secret_unchanged);
  EXPECT_EQ(run.intrusions, "");
}

// Runs `body` in a child that gave up root for `uid` if it had it (an
// ordinary user's node); returns what the body wrote to the fd it is given,
// and its exit code.
template <class Body>
std::pair<int, std::string> as_unprivileged_node(uid_t uid, Body body) {
  Pipe out;
  const pid_t child = ::fork();
  if (child == 0) {
    out.read_end.reset();
    int code = 99;
    try {
      if (is_root() && (::setgroups(0, nullptr) != 0 || ::setresgid(uid, uid, uid) != 0 ||
                        ::setresuid(uid, uid, uid) != 0))
        throw std::system_error(errno, std::generic_category(), "dropping root");
      harden_process();
      code = body(out.write_end.get());
    } catch (const std::exception& e) {
      const std::string text = std::string("error=") + e.what() + "\n";
      [[maybe_unused]] auto n = ::write(out.write_end.get(), text.data(), text.size());
    }
    ::_exit(code);
  }
  out.write_end.reset();
  auto text = read_all(out.read_end.get());
  int status = 0;
  ::waitpid(child, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), text};
}

// Whether an unprivileged node could create user namespaces on this host.
bool user_namespaces_available() {
  const auto [code, text] = as_unprivileged_node(unprivileged_node_uid(), [](int) {
    // clone, not unshare: unshare refuses a process with threads, and
    // sanitizer runtimes start one in a forked child.
    const long pid = ::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, nullptr, nullptr, nullptr, 0);
    if (pid == 0) ::_exit(0);
    if (pid < 0) return 1;
    ::waitpid(static_cast<pid_t>(pid), nullptr, 0);
    return 0;
  });
  return code == 0;
}

void write_text(int fd, const std::string& text) {
  [[maybe_unused]] auto n = ::write(fd, text.data(), text.size());
}

std::string describe_run(const HostileRun& run) {
  return "hostile_output=\n" + run.hostile_output + "hostile_exit=" + std::to_string(run.hostile_exit) +
         "\nvictim_alive_after=" + std::to_string(int{run.victim_alive_after}) +
         "\nvictim_exit=" + std::to_string(run.victim_exit) +
         "\nnode_secret_unchanged=" + std::to_string(int{run.node_secret_unchanged}) +
         "\nvictim_secret_unchanged=" + std::to_string(int{run.victim_secret_unchanged}) +
         "\nintrusions=" + run.intrusions + "\n";
}

HostileRun parse_run(const std::string& text) {
  HostileRun run;
  const auto end = text.find("hostile_exit=");
  run.hostile_output = text.substr(0, end);
  const auto values = key_values(text.substr(end == std::string::npos ? text.size() : end));
  const auto number = [&](const char* key) {
    return values.count(key) != 0 ? std::atoi(values.at(key).c_str()) : -1;
  };
  run.hostile_exit = number("hostile_exit");
  run.victim_alive_after = number("victim_alive_after") == 1;
  run.victim_exit = number("victim_exit");
  run.node_secret_unchanged = number("node_secret_unchanged") == 1;
  run.victim_secret_unchanged = number("victim_secret_unchanged") == 1;
  run.intrusions = values.count("intrusions") != 0 ? values.at("intrusions") : "?";
  return run;
}

// The hostile run in user-namespace mode, by an unprivileged node.
HostileRun run_hostile_unprivileged(const SandboxConfig& config, bool victim_undumpable) {
  const uid_t uid = unprivileged_node_uid();
  const ScratchDir home("sandbox-user", VDTU_TEST_SCRATCH_DIR,  // the node user's own files
                        is_root() ? std::optional<uid_t>(uid) : std::nullopt);
  const auto [code, text] = as_unprivileged_node(uid, [&](int out) {
    const Sandbox sandbox(config);
    write_text(out, describe_run(run_hostile(sandbox, victim_undumpable, home.path())));
    return 0;
  });
  EXPECT_EQ(code, 0) << text;
  return parse_run(text);
}

class SandboxTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { harden_process(); }

  // PEs may write only beneath a directory of this test, so that whatever
  // else the test creates (the build tree may lie under /tmp) is outside.
  [[nodiscard]] SandboxConfig uid_mode() const { return with_mode(SandboxMode::kUid); }
  [[nodiscard]] SandboxConfig userns_mode() const { return with_mode(SandboxMode::kUserNamespace); }
  [[nodiscard]] SandboxConfig with_mode(SandboxMode mode) const {
    SandboxConfig config;
    config.mode = mode;
    config.writable_paths = {writable_.path().string()};
    return config;
  }
  [[nodiscard]] const std::filesystem::path& writable() const { return writable_.path(); }

 private:
  ScratchDir writable_{"sandbox-writable"};
};

// ---- the hostile PE -----------------------------------------------------------------

TEST_F(SandboxTest, UidModeHostilePeReachesNeitherNodeNorVictim) {
  if (!is_root()) GTEST_SKIP() << "uid mode needs root";
  const Sandbox sandbox(uid_mode());
  // The victim stays dumpable, as a PE is until its library starts: separate
  // uids alone must keep the hostile PE out.
  const auto run = run_hostile(sandbox, /*victim_undumpable=*/false);
  expect_denied(parse_attempts(run.hostile_output));
  EXPECT_EQ(run.hostile_exit, 0) << run.hostile_output;
  expect_nothing_reached(run);
}

TEST_F(SandboxTest, UserNamespaceModeHostilePeReachesNeitherNodeNorVictim) {
  if (!user_namespaces_available()) GTEST_SKIP() << "no user namespaces for an unprivileged node here";
  const auto run = run_hostile_unprivileged(userns_mode(), /*victim_undumpable=*/true);
  expect_denied(parse_attempts(run.hostile_output));
  EXPECT_EQ(run.hostile_exit, 0) << run.hostile_output;
  expect_nothing_reached(run);
}

// Same uid, and the victim still dumpable (the moment between exec and its
// library's start): Landlock's domains keep its fds, memory and signals out of
// reach; only the numbers of its open fds can be listed.
TEST_F(SandboxTest, UserNamespaceModeLandlockCoversTheStartWindow) {
  if (!user_namespaces_available()) GTEST_SKIP() << "no user namespaces for an unprivileged node here";
  const auto run = run_hostile_unprivileged(userns_mode(), /*victim_undumpable=*/false);
  expect_denied(parse_attempts(run.hostile_output), {"proc_fd_list@victim"});
  expect_nothing_reached(run);
}

// ---- starting programs ------------------------------------------------------------

TEST_F(SandboxTest, ProgramUnderADirectoryThePeCannotSearchStillStarts) {
  if (!is_root()) GTEST_SKIP() << "uid mode needs root";
  const ScratchDir dir("sandbox-private");  // mode 0700, root's
  const auto program = dir.path() / "probe";
  std::filesystem::copy_file(VDTU_SANDBOX_PROBE_PATH, program);
  std::filesystem::permissions(program,
                               std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                                   std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                                   std::filesystem::perms::others_exec);
  const Sandbox sandbox(uid_mode());
  Pe pe(sandbox, program.string(), {"identity"}, 0);
  const auto values = key_values(pe.output());
  EXPECT_EQ(pe.wait(), 0);
  EXPECT_EQ(values.at("uid"), std::to_string(sandbox.uid_of_slot(0)));
}

TEST_F(SandboxTest, UidModeGivesEachPeItsOwnIdsAndNothingElse) {
  if (!is_root()) GTEST_SKIP() << "uid mode needs root";
  const Sandbox sandbox(uid_mode());
  // An fd the node forgot to mark close-on-exec must not reach the PE.
  const UniqueFd leaked(::open("/dev/null", O_RDONLY));
  Pe first(sandbox, VDTU_SANDBOX_PROBE_PATH, {"identity"}, 0);
  Pe second(sandbox, VDTU_SANDBOX_PROBE_PATH, {"identity"}, 1);
  const auto a = key_values(first.output());
  const auto b = key_values(second.output());
  ASSERT_EQ(first.wait(), 0);
  ASSERT_EQ(second.wait(), 0);
  EXPECT_NE(a.at("uid"), b.at("uid"));
  for (const auto& v : {a, b}) {
    EXPECT_NE(v.at("uid"), "0");
    EXPECT_EQ(v.at("uid"), v.at("euid"));
    EXPECT_EQ(v.at("gid"), v.at("uid"));
    EXPECT_EQ(v.at("egid"), v.at("uid"));
    EXPECT_EQ(v.at("groups"), "0");
    EXPECT_EQ(v.at("no_new_privs"), "1");
    EXPECT_EQ(v.at("seccomp"), "2");
    EXPECT_EQ(v.at("cwd"), "/");
    EXPECT_EQ(v.at("fds"), "0,1,2");
    EXPECT_EQ(v.at("pgid"), v.at("pid"));
    EXPECT_EQ(v.at("sid"), v.at("pid"));
    EXPECT_EQ(v.at("ppid"), std::to_string(::getpid()));
  }
  EXPECT_EQ(a.at("uid"), std::to_string(sandbox.uid_of_slot(0)));
  EXPECT_EQ(b.at("uid"), std::to_string(sandbox.uid_of_slot(1)));
  // Own network and IPC namespaces, different from the node's and each other's.
  const auto own = [](const char* ns) {
    return std::filesystem::read_symlink(std::string("/proc/self/ns/") + ns).string();
  };
  EXPECT_NE(a.at("netns"), own("net"));
  EXPECT_NE(a.at("netns"), b.at("netns"));
  EXPECT_NE(a.at("ipcns"), own("ipc"));
  EXPECT_EQ(a.at("userns"), own("user"));
}

// Sources and targets that cross (fd 40 becomes 41 and 41 becomes 40), next
// to the numbers the child uses for itself: each arrives where asked.
TEST_F(SandboxTest, PassedFdsArriveUnderTheirNumbers) {
  if (!is_root()) GTEST_SKIP() << "uid mode needs root";
  const Secret first("first");
  const Secret second("second");
  const UniqueFd a(::fcntl(first.fd.get(), F_DUPFD_CLOEXEC, 40));
  const UniqueFd b(::fcntl(second.fd.get(), F_DUPFD_CLOEXEC, 41));
  ASSERT_EQ(a.get(), 40);
  ASSERT_EQ(b.get(), 41);
  const Sandbox sandbox(uid_mode());
  Pe pe(sandbox, VDTU_SANDBOX_PROBE_PATH, {"read", "40", "41", "5"}, 0,
        {{a.get(), 41}, {b.get(), 40}, {a.get(), 5}});
  const auto values = key_values(pe.output());
  EXPECT_EQ(pe.wait(), 0);
  EXPECT_EQ(values.at("fd41"), "first");
  EXPECT_EQ(values.at("fd40"), "second");
  EXPECT_EQ(values.at("fd5"), "first");
  Pe identity(sandbox, VDTU_SANDBOX_PROBE_PATH, {"identity"}, 0, {{a.get(), 41}, {b.get(), 40}});
  EXPECT_EQ(key_values(identity.output()).at("fds"), "0,1,2,40,41");
  EXPECT_EQ(identity.wait(), 0);
}

TEST_F(SandboxTest, UserNamespaceModeRunsPesInTheirOwnNamespace) {
  if (!user_namespaces_available()) GTEST_SKIP() << "no user namespaces for an unprivileged node here";
  const uid_t uid = unprivileged_node_uid();
  const auto config = userns_mode();
  const auto [code, text] = as_unprivileged_node(uid, [&](int out) {
    const Sandbox sandbox(config);
    Pe pe(sandbox, VDTU_SANDBOX_PROBE_PATH, {"identity"}, 0);
    write_text(out, pe.output());
    const auto own_userns = std::filesystem::read_symlink("/proc/self/ns/user").string();
    write_text(out, "node_userns=" + own_userns + "\nexit=" + std::to_string(pe.wait()) + "\n");
    return 0;
  });
  ASSERT_EQ(code, 0) << text;
  const auto v = key_values(text);
  EXPECT_EQ(v.at("exit"), "0") << text;
  EXPECT_EQ(v.at("uid"), std::to_string(uid));  // the node's uid, mapped to itself
  EXPECT_NE(v.at("userns"), v.at("node_userns"));
  EXPECT_EQ(v.at("no_new_privs"), "1");
  EXPECT_EQ(v.at("seccomp"), "2");
  EXPECT_EQ(v.at("fds"), "0,1,2");
}

// ---- the filter: errno, not death; what must keep working --------------------------

void expect_all_checks_ok(const std::string& output) {
  std::istringstream lines(output);
  std::string line;
  int checks = 0;
  while (std::getline(lines, line)) {
    if (line.find(" ok=") == std::string::npos) continue;
    ++checks;
    EXPECT_NE(line.find(" ok=1"), std::string::npos) << line;
  }
  EXPECT_GT(checks, 5) << output;
}

TEST_F(SandboxTest, DeniedCallsAnswerEpermAndThePeLivesOn) {
  if (!is_root()) GTEST_SKIP() << "uid mode needs root";
  const Sandbox sandbox(uid_mode());
  Pe pe(sandbox, VDTU_SANDBOX_PROBE_PATH, {"denied"}, 0);
  const auto output = pe.output();
  EXPECT_EQ(pe.wait(), 0) << output;
  expect_all_checks_ok(output);
}

TEST_F(SandboxTest, UserNamespaceModeDeniedCallsAnswerEperm) {
  if (!user_namespaces_available()) GTEST_SKIP() << "no user namespaces for an unprivileged node here";
  const auto config = userns_mode();
  const auto [code, text] = as_unprivileged_node(unprivileged_node_uid(), [&](int out) {
    const Sandbox sandbox(config);
    Pe pe(sandbox, VDTU_SANDBOX_PROBE_PATH, {"denied"}, 0);
    write_text(out, pe.output());
    write_text(out, "exit=" + std::to_string(pe.wait()) + "\n");
    return 0;
  });
  ASSERT_EQ(code, 0) << text;
  EXPECT_EQ(key_values(text).at("exit"), "0") << text;
  expect_all_checks_ok(text);
}

void expect_allowed_behaviour_works(const Sandbox& sandbox, const std::string& program) {
  Secret shared("from-the-node");
  Pe pe(sandbox, program, {"allowed", "--memfd", "3", "--undumpable"}, 0, {{shared.fd.get(), 3}});
  const auto output = pe.output();
  EXPECT_EQ(pe.wait(), 0) << output;
  expect_all_checks_ok(output);
  EXPECT_STREQ(reinterpret_cast<const char*>(shared.map.data() + 64), "from-the-pe");
  Pe aborting(sandbox, program, {"abort"}, 1);
  EXPECT_EQ(aborting.wait(), 128 + SIGABRT);
}

TEST_F(SandboxTest, OwnSignalsThreadsForkAndPassedMemoryWork) {
  if (!is_root()) GTEST_SKIP() << "uid mode needs root";
  expect_allowed_behaviour_works(Sandbox(uid_mode()), VDTU_SANDBOX_PROBE_PATH);
}

#ifdef VDTU_SANDBOX_PROBE_ADDRESS_PATH
// AddressSanitizer (with LeakSanitizer, which ptraces the program's own
// threads at exit) and ThreadSanitizer read /proc/self/maps and more at start.
TEST_F(SandboxTest, SanitizerBuiltProgramsRun) {
  if (!is_root()) GTEST_SKIP() << "uid mode needs root";
  auto config = uid_mode();
  config.allow_ptrace_within_pe = true;
  const Sandbox sandbox(config);
  expect_allowed_behaviour_works(sandbox, VDTU_SANDBOX_PROBE_ADDRESS_PATH);
  expect_allowed_behaviour_works(sandbox, VDTU_SANDBOX_PROBE_THREAD_PATH);
}
#endif

// ---- lifecycle ----------------------------------------------------------------------

TEST_F(SandboxTest, APeDiesWithItsNode) {
  if (!is_root()) GTEST_SKIP() << "uid mode needs root";
  Pipe report;
  const pid_t node = ::fork();
  if (node == 0) {
    report.read_end.reset();
    try {
      const Sandbox sandbox(uid_mode());
      auto pe = sandbox.spawn({VDTU_SANDBOX_PROBE_PATH, {"victim"}, pe_environment(), {}, 0});
      write_text(report.write_end.get(), std::to_string(pe.pid) + "\n");
      ::pause();
    } catch (...) {
    }
    ::_exit(1);
  }
  report.write_end.reset();
  const auto line = read_line(report.read_end.get());
  ASSERT_FALSE(line.empty());
  const UniqueFd pe(static_cast<int>(::syscall(SYS_pidfd_open, std::atoi(line.c_str()), 0)));
  ASSERT_TRUE(pe.valid());
  ::kill(node, SIGKILL);
  ::waitpid(node, nullptr, 0);
  pollfd p{pe.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 60'000), 1) << "the PE outlived its node";
}

TEST_F(SandboxTest, KillingTheProcessGroupEndsWhatAPeStarted) {
  if (!is_root()) GTEST_SKIP() << "uid mode needs root";
  const Sandbox sandbox(uid_mode());
  Pe pe(sandbox, VDTU_SANDBOX_PROBE_PATH, {"orphan"}, 0);
  const auto values = key_values(pe.output());
  ASSERT_EQ(values.count("child"), 1U);
  EXPECT_EQ(values.at("setsid"), "EPERM");   // it cannot leave the PE's session
  EXPECT_EQ(values.at("setpgid"), "EPERM");  // nor its process group
  const UniqueFd orphan(
      static_cast<int>(::syscall(SYS_pidfd_open, std::atoi(values.at("child").c_str()), 0)));
  ASSERT_TRUE(orphan.valid());
  ASSERT_TRUE(pe.exited());
  Sandbox::kill_process_group(pe.pid());  // before reaping: the group id is still the PE's
  EXPECT_EQ(pe.wait(), 0);
  pollfd p{orphan.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 60'000), 1) << "what the PE started outlived it";
}

TEST_F(SandboxTest, WritesOutsideTheWritablePathsAreRefused) {
  if (!is_root()) GTEST_SKIP() << "uid mode needs root";
  const ScratchDir dir("sandbox-open");
  ::chmod(dir.path().c_str(), 0777);  // the directory's mode allows it; Landlock must not
  const Sandbox sandbox(uid_mode());
  Pe outside(sandbox, VDTU_SANDBOX_PROBE_PATH, {"write", (dir.path() / "x").string()}, 0);
  EXPECT_EQ(key_values(outside.output()).at("errno"), "EACCES");
  EXPECT_EQ(outside.wait(), 0);
  ::chmod(writable().c_str(), 0777);
  Pe inside(sandbox, VDTU_SANDBOX_PROBE_PATH, {"write", (writable() / "x").string()}, 0);
  EXPECT_EQ(key_values(inside.output()).at("errno"), "0");
  EXPECT_EQ(inside.wait(), 0);
}

// ---- bad input ----------------------------------------------------------------------

TEST_F(SandboxTest, BadConfigurationsAndRequestsAreClearErrors) {
  EXPECT_THROW(UidRange({0, 10}).validate(0), std::invalid_argument);
  EXPECT_THROW(UidRange({65000, 1000}).validate(0), std::invalid_argument);
  EXPECT_THROW(UidRange({0xfffffff0U, 100}).validate(0), std::invalid_argument);
  EXPECT_THROW(UidRange({5000, 0}).validate(0), std::invalid_argument);
  EXPECT_THROW(UidRange({5000, 10}).validate(5005), std::invalid_argument);
  // 1024 uids per pid above 2^31: pids up to 2^21 - 1; a larger one is a
  // clear error naming the keys that set a range by hand.
  EXPECT_NO_THROW(UidRange::for_node_pid((1 << 21) - 1).validate(0));
  try {
    (void)UidRange::for_node_pid(1 << 21);
    ADD_FAILURE() << "pid 2^21 got a default uid range";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("set pe_uid_base and pe_uid_count"), std::string::npos) << e.what();
  }
  EXPECT_EQ(UidRange::for_node_pid(1).base, UidRange::kDefaultRegionStart);
  EXPECT_EQ(UidRange::for_node_pid(2).base - UidRange::for_node_pid(1).base, UidRange::kSlotsPerNode);
  EXPECT_EQ(parse_sandbox_mode("userns"), SandboxMode::kUserNamespace);
  EXPECT_EQ(parse_sandbox_mode("root"), std::nullopt);

  if (!is_root()) GTEST_SKIP() << "the rest needs root";
  auto config = uid_mode();
  config.writable_paths = {"/no/such/directory"};
  EXPECT_THROW(Sandbox{config}, std::system_error);
  config = uid_mode();
  config.working_directory = "relative";
  EXPECT_THROW(Sandbox{config}, std::invalid_argument);
  config = uid_mode();
  config.mode = SandboxMode::kUserNamespace;
  EXPECT_THROW(Sandbox{config}, std::invalid_argument);  // userns as root: PEs would be root outside

  config = uid_mode();
  config.uids = UidRange{UidRange::for_node_pid(::getpid()).base, 2};
  const Sandbox sandbox(config);
  const auto request = [](std::vector<FdMapping> fds, std::uint32_t slot = 0,
                          std::string program = VDTU_SANDBOX_PROBE_PATH) {
    return SpawnRequest{std::move(program), {"identity"}, {}, std::move(fds), slot};
  };
  EXPECT_THROW((void)sandbox.spawn(request({}, 2)), std::out_of_range);
  EXPECT_THROW((void)sandbox.spawn(request({{0, 5}, {1, 5}})), std::invalid_argument);
  EXPECT_THROW((void)sandbox.spawn(request({{0, 4096}})), std::invalid_argument);
  EXPECT_THROW((void)sandbox.spawn(request({{999, 3}})), std::invalid_argument);
  try {
    (void)sandbox.spawn(request({}, 0, "/no/such/program"));
    ADD_FAILURE() << "a missing program started";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), ENOENT);
  }

  // A step in the child that fails is reported by name, and the child reaped.
  const ScratchDir locked("sandbox-cwd");  // 0700: the PE's uid cannot enter it
  config = uid_mode();
  config.working_directory = locked.path().string();
  const Sandbox locked_out(config);
  try {
    (void)locked_out.spawn(request({}));
    ADD_FAILURE() << "chdir into a directory the PE cannot enter succeeded";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), EACCES);
    EXPECT_NE(std::string(e.what()).find("chdir"), std::string::npos) << e.what();
  }
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);  // no child left behind
}

TEST_F(SandboxTest, DescribesWhatPesGet) {
  if (!is_root()) GTEST_SKIP() << "uid mode needs root";
  const Sandbox sandbox(uid_mode());
  const auto text = sandbox.describe();
  EXPECT_NE(text.find("sandbox uid: a uid and gid per PE slot"), std::string::npos) << text;
  EXPECT_NE(text.find("seccomp"), std::string::npos) << text;
  SandboxConfig none;
  none.mode = SandboxMode::kNone;
  EXPECT_NE(Sandbox(none).describe().find("INSECURE"), std::string::npos);
}

TEST_F(SandboxTest, UidModeNeedsRootAndSaysSo) {
  if (!is_root()) {
    EXPECT_THROW(Sandbox{uid_mode()}, std::runtime_error);
    return;
  }
  const auto config = uid_mode();
  const auto [code, text] = as_unprivileged_node(unprivileged_node_uid(), [&](int out) {
    try {
      const Sandbox sandbox(config);
    } catch (const std::runtime_error& e) {
      write_text(out, std::string("refused=") + e.what() + "\n");
    }
    return 0;
  });
  EXPECT_EQ(code, 0);
  EXPECT_NE(text.find("refused=sandbox \"uid\""), std::string::npos) << text;
}

}  // namespace
}  // namespace vdtu::sandbox

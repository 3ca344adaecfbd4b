#include "guest.hpp"

#include <fcntl.h>
#include <fmt/core.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <set>
#include <stdexcept>
#include <system_error>

#include "cpio_archive.hpp"

namespace vdtu::vm {
namespace {

constexpr std::string_view kExitMarker = "vdtu-vm-exit ";

std::string random_nonce() {
  unsigned char bytes[8];
  if (::getrandom(bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes))
    throw std::system_error(errno, std::generic_category(), "getrandom");
  std::string out;
  for (unsigned char b : bytes) out += fmt::format("{:02x}", b);
  return out;
}

// Words that end up on QEMU's command line or the kernel's: nothing that
// could split them or add an option.
void check_word(const std::string& what, const std::string& value, std::string_view allowed) {
  if (value.empty() || value.find_first_not_of(allowed) != std::string::npos)
    throw std::invalid_argument(fmt::format("{} '{}' has characters other than {}", what, value, allowed));
}

}  // namespace

void check_guest_spec(const GuestSpec& spec) {
  check_word("the MAC address", spec.mac, "0123456789abcdefABCDEF:");
  if (spec.mac.size() != 17) throw std::invalid_argument(fmt::format("'{}' is not a MAC address", spec.mac));
  if (!spec.address.empty()) check_word("the guest address", spec.address, "0123456789./");
  if (spec.memory_mib < 64 || spec.memory_mib > 16384)
    throw std::invalid_argument("guest memory must be 64 to 16384 MiB");
  if (spec.network.kind == GuestNetwork::Kind::vhost_user &&
      (spec.network.vhost_socket.empty() || spec.network.vhost_socket.find(',') != std::string::npos))
    throw std::invalid_argument("the vhost-user socket path must be set and have no ','");
  for (const auto& [path, contents] : spec.files) {
    if (path.size() < 2 || path.front() != '/')
      throw std::invalid_argument(fmt::format("guest file '{}' is not an absolute path", path));
  }
}

namespace {

// /vdtu/run and the run's files, with every directory they need.
std::string run_archive(const GuestSpec& spec) {
  CpioArchive archive;
  std::set<std::string> directories;
  const auto add_parents = [&](const std::string& path) {
    for (auto slash = path.find('/'); slash != std::string::npos; slash = path.find('/', slash + 1)) {
      const auto dir = path.substr(0, slash);
      if (directories.insert(dir).second) archive.add_directory(dir);
    }
  };
  add_parents("vdtu/run");
  archive.add_file("vdtu/run", "#!/bin/sh\n" + spec.command + "\n", 0755);
  for (const auto& [path, contents] : spec.files) {
    const auto relative = path.substr(1);
    add_parents(relative);
    archive.add_file(relative, contents, 0600);
  }
  return archive.finish();
}

// The image's archives, zero-padded to 4 bytes (the kernel looks for an
// uncompressed archive only there), then this run's.
void write_initrd(const std::filesystem::path& out, const GuestImage& image, const std::string& run) {
  std::ofstream file(out, std::ios::binary | std::ios::trunc);
  for (const auto& layer : image.initrds) {
    std::ifstream in(layer, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + layer.string());
    file << in.rdbuf();
  }
  const auto size = static_cast<std::size_t>(file.tellp());
  file << std::string((4 - size % 4) % 4, '\0') << run;
  if (!file.flush()) throw std::runtime_error("cannot write " + out.string());
}

std::vector<std::string> network_words(const GuestSpec& spec) {
  const auto device = fmt::format("virtio-net-pci,netdev=n0,mac={},romfile=,vectors=0", spec.mac);
  switch (spec.network.kind) {
    case GuestNetwork::Kind::none: return {};
    case GuestNetwork::Kind::vhost_user:
      // reconnect=1: a switch restarted gets its guest back. vectors=0: QEMU
      // 7.2 under TCG crashes setting up MSI-X for a vhost-user device.
      return {"-chardev", fmt::format("socket,id=c0,path={},reconnect=1", spec.network.vhost_socket),
              "-netdev",  "vhost-user,id=n0,chardev=c0",
              "-device",  device};
    case GuestNetwork::Kind::udp:
      return {"-netdev",
              fmt::format("socket,id=n0,udp=127.0.0.1:{},localaddr=127.0.0.1:{}", spec.network.udp_remote,
                          spec.network.udp_local),
              "-device", device};
  }
  return {};
}

}  // namespace

Guest::Guest(const GuestSpec& spec, const GuestImage& image)
    : name_(spec.name), nonce_(random_nonce()), echo_(spec.echo_console), echo_prefix_(spec.echo_prefix) {
  check_guest_spec(spec);
  const auto initrd = scratch_ / "initrd";
  write_initrd(initrd, image, run_archive(spec));
  if (!spec.console_file.empty()) {
    console_copy_.reset(::open(spec.console_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!console_copy_)
      throw std::system_error(errno, std::generic_category(), "cannot create " + spec.console_file.string());
  }
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
  console_.reset(pipe_fds[0]);
  const UniqueFd write_end(pipe_fds[1]);

  // no_timer_check: a TCG guest on a busy host can miss the IO-APIC timer
  // check and panic at boot.
  std::string append = fmt::format("console=ttyS0 quiet panic=-1 no_timer_check vdtu.nonce={}", nonce_);
  if (!spec.address.empty()) append += " vdtu.ip=" + spec.address;
  const auto memory = fmt::format("{}M", spec.memory_mib);
  std::vector<std::string> words{
      "qemu-system-x86_64", "-M", "pc", "-accel", "tcg", "-smp", "1", "-m", memory,
      // Guest RAM in a memfd shared with whoever maps it: a vhost-user backend
      // gets its fd in SET_MEM_TABLE.
      "-object", fmt::format("memory-backend-memfd,id=mem,size={},share=on", memory), "-numa",
      "node,memdev=mem", "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none", "-serial",
      "stdio", "-no-reboot",
      // QEMU's own seccomp filter: no exec, no privilege changes, no obsolete calls.
      "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny", "-kernel",
      image.kernel.string(), "-initrd", initrd.string(), "-append", append};
  for (auto& w : network_words(spec)) words.push_back(std::move(w));

  cluster::ChildOptions options;
  options.open(0, "/dev/null", O_RDONLY);
  options.dup2(write_end.get(), 1);
  options.dup2(write_end.get(), 2);
  options.own_process_group = true;
  options.ends_with_parent = true;
  qemu_.emplace(words, options);
}

bool Guest::read_console() {
  char buffer[4096];
  for (;;) {
    const auto n = ::read(console_.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::system_error(errno, std::generic_category(), "reading the console of " + name_);
    if (n == 0) return false;
    const std::string_view chunk(buffer, static_cast<std::size_t>(n));
    console_text_ += chunk;
    if (console_copy_) (void)::write(console_copy_.get(), chunk.data(), chunk.size());
    take_lines();
    return true;  // one read per call: the caller polls again
  }
}

// Looks for "vdtu-vm-exit NONCE STATUS" in the complete lines not seen yet.
void Guest::take_lines() {
  for (auto end = console_text_.find('\n', scanned_); end != std::string::npos;
       end = console_text_.find('\n', scanned_)) {
    std::string_view line(console_text_.data() + scanned_, end - scanned_);
    scanned_ = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (echo_) {
      // The guest writes what it likes: no control sequence reaches our terminal.
      std::string clean(line);
      std::replace_if(
          clean.begin(), clean.end(),
          [](char c) { return (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f; }, '?');
      const auto text =
          echo_prefix_.empty() ? fmt::format("{}\n", clean) : fmt::format("[{}] {}\n", echo_prefix_, clean);
      (void)::write(STDOUT_FILENO, text.data(), text.size());
    }
    const auto at = line.find(kExitMarker);
    if (at == std::string_view::npos) continue;
    line.remove_prefix(at + kExitMarker.size());
    if (!line.starts_with(nonce_ + " ")) continue;
    line.remove_prefix(nonce_.size() + 1);
    int status = 0;
    const auto [last, error] = std::from_chars(line.data(), line.data() + line.size(), status);
    if (error == std::errc{} && last == line.data() + line.size() && status >= 0 && status <= 255)
      exit_status_ = status;
  }
}

bool Guest::ended() { return qemu_->reaped() || qemu_->try_wait().has_value(); }

void Guest::kill() {
  qemu_->kill_all();
  (void)qemu_->wait();
}

std::string Guest::describe() {
  if (exit_status_) return fmt::format("exit {}", *exit_status_);
  std::string why = ended() ? "QEMU ended (" + cluster::describe_status(*qemu_->status()) + ")"
                            : std::string("QEMU still running");
  // The console's last lines say what QEMU or the guest last did.
  std::size_t from = console_text_.size();
  for (int lines = 0; lines < 6 && from > 0; ++lines) {
    const auto nl = console_text_.rfind('\n', from - 1);
    from = nl == std::string::npos ? 0 : nl;
  }
  return fmt::format("{}: no exit status from the guest; console ends with:\n{}", why,
                     console_text_.substr(from));
}

}  // namespace vdtu::vm

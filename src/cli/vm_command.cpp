#include "vm_command.hpp"

#include <fmt/core.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "vm/guest_image.hpp"
#include "vm/guest_run.hpp"

namespace vdtu::cli {
namespace {

constexpr int kTimedOutExit = 124;
constexpr int kNoStatusExit = 125;

std::uint16_t parse_port(const std::string& text) {
  unsigned value = 0;
  const auto [last, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || last != text.data() + text.size() || value == 0 || value > 65535)
    throw std::invalid_argument(fmt::format("--udp: '{}' is not a port (1-65535)", text));
  return static_cast<std::uint16_t>(value);
}

vm::GuestNetwork network(const VmOptions& o) {
  vm::GuestNetwork net;
  if (!o.vhost_user.empty()) {
    net.kind = vm::GuestNetwork::Kind::vhost_user;
    net.vhost_socket = o.vhost_user;
  } else if (!o.udp.empty()) {
    const auto colon = o.udp.find(':');
    if (colon == std::string::npos) throw std::invalid_argument("--udp takes LOCAL:REMOTE (two ports)");
    net.kind = vm::GuestNetwork::Kind::udp;
    net.udp_local = parse_port(o.udp.substr(0, colon));
    net.udp_remote = parse_port(o.udp.substr(colon + 1));
  }
  return net;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

int run_vm(const VmOptions& o) {
  if (o.image_only) {
    const auto image = vm::build_guest_image(o.programs);
    fmt::print("kernel {}\n", image.kernel.string());
    for (const auto& i : image.initrds) fmt::print("initrd {}\n", i.string());
    return 0;
  }
  if (o.command.empty()) throw std::invalid_argument("no command for the guest (after --)");
  vm::GuestSpec spec;
  spec.name = "guest";
  spec.network = network(o);
  spec.mac = o.mac;
  spec.address = o.ip;
  spec.memory_mib = o.memory_mib;
  spec.command = fmt::format("{}", fmt::join(o.command, " "));
  spec.echo_console = !o.quiet;
  spec.console_file = o.console_path;
  for (const auto& f : o.files) {
    const auto eq = f.find('=');
    if (eq == std::string::npos || eq == 0) throw std::invalid_argument("--file takes GUEST_PATH=HOST_FILE");
    spec.files.emplace_back(f.substr(0, eq), read_file(f.substr(eq + 1)));
  }
  vm::check_guest_spec(spec);  // before the image: a typo costs no build
  const auto image = vm::build_guest_image(o.programs);
  const auto outcomes = vm::run_guests({spec}, image, o.timeout_seconds);
  const auto& outcome = outcomes.at(0);
  (void)std::fflush(stdout);
  if (outcome.exit_status) {
    fmt::print(stderr, "vdtu vm: the guest's command ended: exit {}\n", *outcome.exit_status);
    return *outcome.exit_status;
  }
  fmt::print(stderr, "vdtu vm: {}\n", outcome.description);
  return outcome.timed_out ? kTimedOutExit : kNoStatusExit;
}

}  // namespace vdtu::cli

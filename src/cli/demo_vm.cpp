// Demo checks with QEMU guests (as root, with qemu-system-x86_64 installed):
// two guests ping each other through the switch, and two vdtu nodes in
// guests run the cross-node capability scenarios through virtio-net.
#include <fmt/core.h>
#include <unistd.h>

#include <filesystem>

#include "cluster_command.hpp"
#include "common/sibling_program.hpp"
#include "demo.hpp"
#include "vm/guest_cluster.hpp"
#include "vm/guest_image.hpp"
#include "vm/guest_run.hpp"

namespace vdtu::cli {
namespace {

constexpr double kGuestTimeoutSeconds = 150;

bool qemu_installed() {
  for (const char* dir : {"/usr/bin", "/usr/local/bin"}) {
    if (::access((std::string(dir) + "/qemu-system-x86_64").c_str(), X_OK) == 0) return true;
  }
  return false;
}

// Pings the peer until it answers (it may still be booting), then three
// more; the guest at `.1` then waits for the other's "done" so that neither
// powers off while the other still pings it.
std::string ping_script(const std::string& peer, bool first) {
  auto script = fmt::format(
      "n=0; until ping -c 1 -W 1 {0} >/dev/null; do n=$((n+1)); [ $n -lt 90 ] || exit 1; done\n"
      "ping -c 3 {0} || exit 2\n",
      peer);
  if (first) return script + "nc -l -p 5000 </dev/null | grep -q done || exit 3\n";
  return script +
         fmt::format(
             "n=0; until echo done | nc {0} 5000; do n=$((n+1)); [ $n -lt 30 ] || exit 3; sleep 1; done\n",
             peer);
}

bool report(const std::vector<vm::GuestOutcome>& outcomes) {
  bool ok = true;
  for (const auto& o : outcomes) {
    if (o.exit_status == 0) continue;
    ok = false;
    fmt::print("  {}: {}\n  console:\n{}\n", o.name, o.description, o.console);
  }
  return ok;
}

bool two_guests_ping(vm::GuestLink link) {
  const auto image = vm::build_guest_image({});
  std::vector<vm::GuestSpec> guests(2);
  for (unsigned n = 0; n < 2; ++n) {
    auto& g = guests[n];
    g.name = fmt::format("guest {}", n);
    g.mac = fmt::format("52:54:00:00:00:{:02x}", n + 1);
    g.address = fmt::format("10.0.0.{}/24", n + 1);
    g.command = ping_script(fmt::format("10.0.0.{}", 2 - n), n == 0);
  }
  return report(vm::run_guests_on(link, guests, image, kGuestTimeoutSeconds));
}

bool nodes_in_guests(vm::GuestLink link) {
  auto spec = echo_cluster(2, 1);
  const auto vpe = spec.nodes[0].kernels[0].vpes[0][0];
  spec.nodes[0].kernels[0].vpes = {{vpe, "gate-server", "east"}, {vpe, "gate-client", "west"}};
  spec.nodes[1].kernels[0].vpes = {{vpe, "gate-server", "west"}, {vpe, "gate-client", "east"}};
  spec.timeout_seconds = 90;
  vm::GuestClusterOptions options;
  options.link = link;
  const auto result = vm::run_cluster_in_guests(spec, options);
  for (const auto& f : result.failures) fmt::print("  {}\n", f);
  return result.nodes_failed == 0;
}

}  // namespace

std::vector<DemoCheck> vm_checks() {
  if (::geteuid() != 0 || !qemu_installed()) return {};
  constexpr auto link = vm::GuestLink::vhost_user_switch;
  return {
      {"two QEMU guests ping each other through vdtu switch (vhost-user ports)",
       [] { return two_guests_ping(link); }},
      {"vdtu nodes in two QEMU guests, bridge over virtio-net and the switch, datagrams sealed: session, "
       "obtain, PING/PONG, delegate, revoke, both ways",
       [] { return nodes_in_guests(link); }},
  };
}

}  // namespace vdtu::cli

#include "guest_run.hpp"

#include <fmt/core.h>
#include <poll.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <system_error>

#include "common/stop_signals.hpp"

namespace vdtu::vm {
namespace {

using Clock = std::chrono::steady_clock;

// Waits for consoles, QEMU ends and stop signals until every guest ended or
// the deadline; the stop signal that came, 0 if none.
int supervise(std::vector<std::unique_ptr<Guest>>& guests, StopSignals& signals, Clock::time_point deadline) {
  std::vector<bool> console_open(guests.size(), true);
  for (;;) {
    if (const int s = signals.take(); s != 0) return s;
    std::vector<pollfd> fds{{signals.fd(), POLLIN, 0}};
    std::vector<std::size_t> owner;
    bool running = false;
    for (std::size_t i = 0; i < guests.size(); ++i) {
      if (console_open[i]) {
        fds.push_back({guests[i]->console_fd(), POLLIN, 0});
        owner.push_back(i);
        running = true;
      } else if (!guests[i]->ended()) {
        fds.push_back({guests[i]->pidfd(), POLLIN, 0});
        owner.push_back(i);
        running = true;
      }
    }
    if (!running) return 0;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return 0;
    if (::poll(fds.data(), fds.size(), static_cast<int>(std::min<std::int64_t>(left, 1000))) < 0 &&
        errno != EINTR)
      throw std::system_error(errno, std::generic_category(), "poll");
    for (std::size_t k = 1; k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      const auto i = owner[k - 1];
      if (console_open[i] && !guests[i]->read_console()) console_open[i] = false;
    }
  }
}

}  // namespace

std::vector<GuestOutcome> run_guests(const std::vector<GuestSpec>& specs, const GuestImage& image,
                                     double timeout_seconds) {
  StopSignals signals;  // first: a signal while QEMUs start stops those started so far
  std::vector<std::unique_ptr<Guest>> guests;
  for (const auto& spec : specs) {
    if (signals.received() != 0) break;
    guests.push_back(std::make_unique<Guest>(spec, image));
  }
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(timeout_seconds));
  int stop = signals.received();
  if (stop == 0) stop = supervise(guests, signals, deadline);
  std::vector<GuestOutcome> outcomes;
  for (auto& g : guests) {
    const bool timed_out = stop == 0 && !g->ended();
    if (!g->ended()) g->kill();
    outcomes.push_back({g->name(), g->exit_status(),
                        timed_out ? fmt::format("timeout ({} s): killed; {}", timeout_seconds, g->describe())
                                  : g->describe(),
                        g->console(), timed_out});
  }
  if (stop != 0) {
    const auto n = guests.size();
    guests.clear();
    throw StoppedBySignal(
        stop, fmt::format("vdtu: {}: killed {} (QEMU) and removed {} files", signal_name(stop),
                          n == 1 ? "the guest" : fmt::format("{} guests", n), n == 1 ? "its" : "their"));
  }
  return outcomes;
}

}  // namespace vdtu::vm

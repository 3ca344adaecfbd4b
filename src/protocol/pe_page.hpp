#pragma once
// A PE's private page: shared by the node and that PE alone, never by the
// PEs that send to it. What must not be forged by another PE lives here
// rather than in the doorbell page every sender maps:
//
//   line 0   config_epoch: the node bumps it after it sent the PE endpoint
//            updates or answers; the PE reads its control socket when it
//            moved (a requester polls it for its answer).
//   line 1   counts the PE publishes about itself (a kernel: capabilities,
//            VPEs, syscalls, kernelcalls) for `vdtu stat`. Written by the PE
//            alone, read by the node only for privileged PEs, and shown as
//            what the PE claims: no decision depends on them.
//   line 2   sleeping: written by the PE before it sleeps on its doorbell
//            (what it waits for) and after; the node reads it to decide
//            whether an update needs a futex wake-up at all.
//
// The PE itself can write the page; that only misleads the PE itself.

#include <cstdint>

#include "vdtu/dtu_types.hpp"
#include "vdtu/mapped_region.hpp"
#include "vdtu/unique_fd.hpp"

namespace vdtu::dtu {

// What a PE sleeping on its doorbell waits for. Only endpoint losses and
// exit notices end every wait; an update of an endpoint wakes a PE that
// waits for that endpoint to appear (Dtu::wait_for_endpoint).
enum class SleepingFor : std::uint8_t { kNothing = 0, kMessages = 1, kEndpoint = 2 };

struct Sleeper {
  SleepingFor what = SleepingFor::kNothing;
  EpId ep = 0;  // with kEndpoint
};

class PePage {
 public:
  PePage() = default;
  // Node: a fresh page.
  static PePage create();
  // PE: map the page received in the node's hello. Throws on a bad size or seals.
  static PePage attach(UniqueFd fd);

  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] bool valid() const { return fd_.valid(); }
  [[nodiscard]] std::uint32_t config_epoch() const;
  // Node: after sending the PE an update.
  void bump_epoch();
  // PE: around a sleep on its doorbell (kNothing once awake again).
  void announce_sleep(Sleeper sleeper);
  // Node: what the PE said it sleeps for (a stale answer only costs a
  // needless wake-up, or, if the PE lies, its own delay).
  [[nodiscard]] Sleeper sleeper() const;
  // PE: its counts, each word stored on its own (a reader may see a mix of
  // two publications, never a torn word).
  void publish(const PublishedCounts& counts);
  // Node: what the PE published last (zeros before it did).
  [[nodiscard]] PublishedCounts published() const;

 private:
  PePage(UniqueFd fd, MappedRegion region) : fd_(std::move(fd)), region_(std::move(region)) {}
  UniqueFd fd_;
  MappedRegion region_;
};

}  // namespace vdtu::dtu

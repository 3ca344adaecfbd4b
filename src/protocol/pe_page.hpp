#pragma once
// A PE's private page: shared by the node and that PE alone, never by the
// PEs that send to it. What must not be forged by another PE lives here
// rather than in the doorbell page every sender maps:
//
//   line 0   config_epoch: the node adds the number of messages (endpoint
//            updates, answers) it is about to send the PE, before it sends
//            them; a PE that sees it move reads its control socket until it
//            has that many (a requester polls it for its answer).
//   line 1   counts the PE publishes about itself (a kernel: capabilities,
//            VPEs, syscalls, kernelcalls) for `vdtu stat`. Written by the PE
//            alone, read by the node only for privileged PEs, and shown as
//            what the PE claims: no decision depends on them.
//   line 2   sleeping: written by the PE before it sleeps on its doorbell
//            or for an answer (what it waits for) and after; the node reads
//            it to decide whether an update needs a futex wake-up at all.
//   line 3   the answer (node): id, status and PE of the last request
//            answered, the id word last (it is the futex an asking PE sleeps on).
//   line 4   node_sleeping (node): set while the node sleeps in epoll, so an
//            asking PE knows to kick it through its control socket.
//   line 5   the request id posted last (PE), then from line 6 the request.
//
// The request and answer lines are a mailbox for privileged PEs (kernels):
// a configuration request without a system call on either side while the
// node polls. The node reads only privileged PEs' mailboxes, copies the
// request out before it checks it, and answers every request it takes.
//
// The PE itself can write the page; that only misleads the PE itself.

#include <chrono>
#include <cstdint>
#include <optional>

#include "protocol/control_messages.hpp"
#include "vdtu/dtu_types.hpp"
#include "vdtu/mapped_region.hpp"
#include "vdtu/unique_fd.hpp"

namespace vdtu::dtu {

// What a PE sleeping on its doorbell waits for. Only endpoint losses and
// exit notices end every wait; an update of an endpoint wakes a PE that
// waits for that endpoint to appear (Dtu::wait_for_endpoint).
// A PE waiting for the answer in its mailbox sleeps on the answer word.
enum class SleepingFor : std::uint8_t { kNothing = 0, kMessages = 1, kEndpoint = 2, kAnswer = 3 };

struct Sleeper {
  SleepingFor what = SleepingFor::kNothing;
  EpId ep = 0;  // with kEndpoint
};

struct MailboxAnswer {
  std::uint32_t id = 0;
  Status status = Status::kOk;
  PeId pe = 0;
};

class PePage {
 public:
  // Where the mailbox's request starts (tests and fuzzers that write the page
  // by hand need it).
  static constexpr std::size_t kRequestOffset = std::size_t{6} * 64;

  PePage() = default;
  // Node: a fresh page.
  static PePage create();
  // PE: map the page received in the node's hello. Throws on a bad size or seals.
  static PePage attach(UniqueFd fd);

  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] bool valid() const { return fd_.valid(); }
  [[nodiscard]] std::uint32_t config_epoch() const;
  // Node: moves the epoch by `messages`, that many about to go into the PE's socket.
  void announce(std::uint32_t messages);
  // PE: around a sleep on its doorbell (kNothing once awake again).
  void announce_sleep(Sleeper sleeper);
  // Node: what the PE said it sleeps for (a stale answer only costs a
  // needless wake-up, or, if the PE lies, its own delay).
  [[nodiscard]] Sleeper sleeper() const;
  // PE: posts a request under `id` (never 0); true if the node sleeps and
  // must be kicked.
  bool post_request(const ControlRequest& request, std::uint32_t id);
  // Node: the request posted after `seen`, copied out (the PE may still
  // write the page), and `seen` moved to it; nothing if none is new.
  std::optional<ControlRequest> take_request(std::uint32_t& seen) const;
  [[nodiscard]] bool has_request(std::uint32_t seen) const;
  // Node: answers a request taken from the mailbox; true if the PE sleeps
  // waiting for it (the caller wakes it with wake_answer_sleeper).
  bool post_answer(const MailboxAnswer& answer);
  void wake_answer_sleeper();
  // PE: the answer last posted, and a sleep of at most `timeout` unless the
  // answer to `id` is there.
  [[nodiscard]] MailboxAnswer answer() const;
  void sleep_for_answer(std::uint32_t id, std::chrono::nanoseconds timeout);
  // Node: around its sleep in epoll.
  void set_node_sleeping(bool sleeping);
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

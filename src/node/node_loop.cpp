#include "node_loop.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <system_error>

#include "channel/spin_then_sleep.hpp"

namespace vdtu::dtu {
namespace {

// Longer than a PE needs to wake up and send its next request (tens of µs in
// a VM): a shorter window makes every request find the node asleep.
constexpr auto kPollAfterWork = std::chrono::microseconds(200);

void drain_eventfd(int fd) {
  std::uint64_t count = 0;
  [[maybe_unused]] auto n = ::read(fd, &count, sizeof(count));
}

}  // namespace

NodeLoop::NodeLoop(const NodeConfig& config)
    : epoll_(::epoll_create1(EPOLL_CLOEXEC)), wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!epoll_ || !wake_) throw std::system_error(errno, std::generic_category(), "epoll/eventfd");
  watch(wake_.get(), event_tag(EventKind::kLoop, 0), false);
  owned_launcher_ = std::make_unique<SandboxLauncher>(config.sandbox);
  launcher_ = owned_launcher_.get();
  core_ = std::make_unique<NodeCore>(config, *this, *launcher_);
  thread_ = std::thread([this] { run(); });
}

NodeLoop::~NodeLoop() {
  post([this] { stopping_ = true; });
  thread_.join();
}

void NodeLoop::watch(int fd, std::uint64_t tag, bool writable) {
  if (fd < 0) return;
  epoll_event ev{};
  ev.events = EPOLLIN | (writable ? EPOLLOUT : 0U);
  ev.data.u64 = tag;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0 && errno == EEXIST) {
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev);
  }
}

void NodeLoop::unwatch(int fd) {
  if (fd >= 0) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

void NodeLoop::post(std::function<void()> task) {
  {
    std::lock_guard lock(tasks_mutex_);
    tasks_.push_back(std::move(task));
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_.get(), &one, sizeof(one));
}

bool NodeLoop::run_tasks() {
  std::deque<std::function<void()>> tasks;
  {
    std::lock_guard lock(tasks_mutex_);
    tasks.swap(tasks_);
  }
  for (auto& t : tasks) t();
  return !tasks.empty();
}

bool NodeLoop::wait_all_exited(std::chrono::milliseconds timeout) {
  const auto deadline = detail::deadline_after(timeout);
  for (;;) {
    std::uint64_t seen = 0;
    {
      std::lock_guard lock(exits_mutex_);
      seen = exits_seen_;
    }
    if (call([](NodeCore& c) { return c.all_exited(); })) return true;
    std::unique_lock lock(exits_mutex_);
    if (!exits_changed_.wait_until(lock, deadline, [&] { return exits_seen_ != seen; })) return false;
  }
}

// An event is work: what it announced is taken in this or the next round.
bool NodeLoop::dispatch(std::uint64_t tag, std::uint32_t events) {
  const auto index = event_index(tag);
  switch (event_kind(tag)) {
    case EventKind::kControl:
      if ((events & EPOLLOUT) != 0) core_->on_writable(index);
      if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) core_->on_control(index);
      return true;
    case EventKind::kExit: core_->on_exit(index); return true;
    case EventKind::kMemory:  // a channel's eventfd: the round serves what it announced
    case EventKind::kBridgeEvent: drain_eventfd(static_cast<int>(index)); return true;
    case EventKind::kBridgeSocket: return true;
    case EventKind::kLoop: drain_eventfd(wake_.get()); return true;
  }
  return false;
}

void NodeLoop::run() {
  std::array<epoll_event, 64> events{};
  detail::PollAfterWork idle(kPollAfterWork);
  bool worked = true;
  std::uint64_t exits = 0;
  while (!stopping_) {
    worked = run_tasks() || worked;
    if (stopping_) break;
    worked = core_->serve_memory() || worked;
    worked = core_->serve_mailboxes() || worked;
    worked = core_->bridge_step(NodeCore::Clock::now()) || worked;
    core_->flush_updates();
    // Not work: it must not keep the loop from sleeping.
    if (!worked) core_->make_channel_ahead();
    int timeout_ms = 0;
    bool armed = false;
    if (!idle.poll_again(worked)) {
      armed = core_->arm_for_sleep();
      if (armed) timeout_ms = static_cast<int>(core_->sleep_limit(NodeCore::Clock::now()).count());
    }
    const int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), timeout_ms);
    if (armed) core_->disarm_after_sleep();
    worked = false;
    for (int i = 0; i < n; ++i) {
      const auto& ev = events[static_cast<std::size_t>(i)];
      worked = dispatch(ev.data.u64, ev.events) || worked;
    }
    if (core_->retirements() != exits) {
      exits = core_->retirements();
      {
        std::lock_guard lock(exits_mutex_);
        exits_seen_ = exits;
      }
      exits_changed_.notify_all();
    }
  }
}

}  // namespace vdtu::dtu

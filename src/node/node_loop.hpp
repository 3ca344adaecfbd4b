#pragma once
// The node's one thread: an epoll loop over every PE's control socket, pidfd
// and memory channel, the bridge's socket and channels. It polls while work
// flows (a sleep and wake-up costs tens of µs in a VM) and sleeps in epoll
// when idle. Other threads reach the node's logic only through call().

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>

#include "event_watcher.hpp"
#include "node_core.hpp"
#include "pe_launcher.hpp"

namespace vdtu::dtu {

class NodeLoop final : public EventWatcher {
 public:
  // Builds the node's logic (throws as NodeCore does) and starts the thread.
  explicit NodeLoop(const NodeConfig& config);
  ~NodeLoop() override;  // stops the thread (the owner ends the PEs first)
  NodeLoop(const NodeLoop&) = delete;
  NodeLoop& operator=(const NodeLoop&) = delete;

  // Runs `f(core)` on the loop's thread and returns its result (or throws
  // what it threw).
  template <class F>
  auto call(F f) -> std::invoke_result_t<F, NodeCore&> {
    using Result = std::invoke_result_t<F, NodeCore&>;
    auto task = std::make_shared<std::packaged_task<Result()>>(
        [this, f = std::move(f)]() mutable { return f(*core_); });
    auto answer = task->get_future();
    post([task] { (*task)(); });
    return answer.get();
  }
  // Waits until no PE runs (false on timeout).
  bool wait_all_exited(std::chrono::milliseconds timeout);

  void watch(int fd, std::uint64_t tag, bool writable) override;
  void unwatch(int fd) override;

 private:
  void post(std::function<void()> task);
  void run();
  bool run_tasks();
  bool dispatch(std::uint64_t tag, std::uint32_t events);

  UniqueFd epoll_;
  UniqueFd wake_;  // eventfd: a task was posted
  PeLauncher* launcher_ = nullptr;
  std::unique_ptr<PeLauncher> owned_launcher_;
  std::unique_ptr<NodeCore> core_;
  std::mutex tasks_mutex_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;  // loop thread only
  // PE exits, for wait_all_exited (written by the loop, read by waiters).
  std::mutex exits_mutex_;
  std::condition_variable exits_changed_;
  std::uint64_t exits_seen_ = 0;
  std::thread thread_;
};

}  // namespace vdtu::dtu

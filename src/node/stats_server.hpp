#pragma once
// The node's read-only stats socket (`vdtu stat`, `vdtu trace`): a Unix
// stream socket the node alone serves, on a thread of its own.
//
// Who may connect: the socket file is 0600 and every client must be of the
// node's uid and in the node's user namespace (SO_PEERCRED, /proc/<pid>/ns/user);
// a PE (another uid, or a user namespace of its own) is refused. What a client
// gets: a snapshot rendered as text or JSON, or a stream of trace records;
// never an fd, a memory address or a way to change anything. What it costs
// the node: a snapshot is taken on the node's thread at most kSnapshotsPerSecond
// times a second; every read and write has a deadline; one client at a time
// (a snapshot request is still answered while a trace runs).
//
// Requests, one line each: "text", "json", "trace SNAPLEN". Replies: the
// rendered snapshot, then the connection closes; or trace records
// (trace_record.hpp) until the client shuts its side, then an end marker
// (a prefix of size 0) and the tap's counters (captured, missed, dropped: 3 x u64).

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <thread>

#include "vdtu/unique_fd.hpp"

namespace vdtu::dtu {

class NodeLoop;

inline constexpr int kSnapshotsPerSecond = 50;

class StatsServer {
 public:
  // Binds `path` (a stale socket file there is replaced; anything else there
  // is an error: std::runtime_error) and starts serving.
  StatsServer(std::filesystem::path path, NodeLoop& loop);
  ~StatsServer();  // stops the thread, removes the socket file
  StatsServer(const StatsServer&) = delete;
  StatsServer& operator=(const StatsServer&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  void run();
  void serve(UniqueFd client, bool trace_allowed);
  void snapshot_reply(int client, bool json);
  void trace(int client, std::size_t snaplen);

  std::filesystem::path path_;
  NodeLoop& loop_;
  UniqueFd listener_;
  UniqueFd stop_;  // eventfd: the destructor asks the thread to end
  std::chrono::steady_clock::time_point last_snapshot_{};
  std::thread thread_;
};

}  // namespace vdtu::dtu

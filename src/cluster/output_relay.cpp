#include "output_relay.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <system_error>

namespace vdtu::cluster {
namespace {

constexpr std::size_t kChunk = 4096;

void print(std::string_view text) { (void)std::fwrite(text.data(), 1, text.size(), stdout); }

}  // namespace

OutputRelay::OutputRelay() {
  std::array<int, 2> fds{};
  if (::pipe2(fds.data(), O_CLOEXEC | O_NONBLOCK) != 0)
    throw std::system_error(errno, std::generic_category(), "pipe for the nodes' output");
  read_ = UniqueFd(fds[0]);
  write_ = UniqueFd(fds[1]);
  // The nodes get a blocking pipe: a node must not lose output when we lag.
  if (::fcntl(write_.get(), F_SETFL, 0) != 0)
    throw std::system_error(errno, std::generic_category(), "pipe for the nodes' output");
}

bool OutputRelay::pass_on(ProgressLine& line) {
  std::array<char, kChunk> buffer{};
  bool open = true;
  for (;;) {
    const auto n = ::read(read_.get(), buffer.data(), buffer.size());
    if (n > 0) {
      partial_.append(buffer.data(), static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) open = false;
    if (n < 0 && errno == EINTR) continue;
    break;  // EAGAIN: all there is for now
  }
  const auto end = partial_.rfind('\n');
  if (end != std::string::npos) {
    line.clear();
    print(std::string_view(partial_).substr(0, end + 1));
    (void)std::fflush(stdout);
    partial_.erase(0, end + 1);
  }
  return open;
}

void OutputRelay::finish(ProgressLine& line) {
  // The nodes have ended: what they wrote is in the pipe now (a process they
  // left behind might hold it open, so this does not wait for end of file).
  (void)pass_on(line);
  if (!partial_.empty()) {
    line.clear();
    print(partial_);
    print("\n");
    (void)std::fflush(stdout);
    partial_.clear();
  }
}

}  // namespace vdtu::cluster

#include "common/progress_line.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdio>

namespace vdtu {
namespace {

constexpr std::string_view kEraseLine = "\r\x1b[K";  // to column 0, erase to the end of the line
constexpr std::size_t kFallbackWidth = 80;

void write_all(std::string_view text) {
  while (!text.empty()) {
    const auto n = ::write(STDERR_FILENO, text.data(), text.size());
    if (n <= 0) return;  // progress is best effort: never fail the work for it
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::size_t terminal_width() {
  winsize size{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 1) return size.ws_col;
  return kFallbackWidth;
}

}  // namespace

ProgressLine::ProgressLine(bool wanted)
    : enabled_(wanted && ::isatty(STDOUT_FILENO) == 1 && ::isatty(STDERR_FILENO) == 1) {}

void ProgressLine::show(std::string_view text) {
  if (!enabled_) return;
  text = text.substr(0, terminal_width() - 1);
  if (shown_ && text == last_) return;
  (void)std::fflush(stdout);  // what was printed before stays above the line
  last_ = text;
  write_all(std::string(kEraseLine) + last_);
  shown_ = true;
}

void ProgressLine::clear() {
  if (!shown_) return;
  write_all(kEraseLine);  // before stdout's pending text, which would otherwise land on the line
  (void)std::fflush(stdout);
  shown_ = false;
}

std::chrono::seconds ProgressLine::elapsed() const {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start_);
}

}  // namespace vdtu

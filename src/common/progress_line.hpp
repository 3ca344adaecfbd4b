#pragma once
// One line of progress for long work (benchmarks, `vdtu cluster`), redrawn in
// place on a terminal: only when both stdout and stderr are terminals, so a
// pipe, a file or a script reading --json never sees it. The line goes to
// stderr; call clear() before printing to stdout, and the next show() draws
// it again below what was printed.

#include <chrono>
#include <string>
#include <string_view>

namespace vdtu {

class ProgressLine {
 public:
  // Shows nothing unless `wanted` and stdout and stderr are terminals.
  explicit ProgressLine(bool wanted);
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;
  ~ProgressLine() { clear(); }

  [[nodiscard]] bool enabled() const { return enabled_; }
  // Replaces the line with `text` (cut to the terminal's width: a wrapped
  // line could not be overwritten).
  void show(std::string_view text);
  // Erases the line, if one is shown.
  void clear();
  // Since construction, for "12 s" in the text.
  [[nodiscard]] std::chrono::seconds elapsed() const;

 private:
  bool enabled_;
  bool shown_ = false;
  std::string last_;  // what is shown: the same text is not drawn again
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace vdtu

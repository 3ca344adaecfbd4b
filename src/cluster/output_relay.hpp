#pragma once
// The nodes' output, passed on line by line around a progress line: with a
// progress line on the terminal, nodes (and their PEs) writing straight to it
// would append to that line. Used only when the progress line is shown; then
// the nodes' stdout and stderr both arrive on our stdout.

#include <string>

#include "common/progress_line.hpp"
#include "vdtu/unique_fd.hpp"

namespace vdtu::cluster {

class OutputRelay {
 public:
  OutputRelay();  // throws std::system_error if there is no pipe to be had
  // What the nodes write to (close-on-exec here; a node gets it as fd 1 and 2).
  [[nodiscard]] int write_fd() const { return write_.get(); }
  [[nodiscard]] int read_fd() const { return read_.get(); }
  // Once every node has it: then the end of their output is end of file.
  void close_write_end() { write_.reset(); }
  // Prints the whole lines that have arrived (clearing `line` first);
  // keeps a partial one for later. Returns false at end of file.
  bool pass_on(ProgressLine& line);
  // Prints what is left, a partial last line too.
  void finish(ProgressLine& line);

 private:
  UniqueFd read_;
  UniqueFd write_;
  std::string partial_;
};

}  // namespace vdtu::cluster

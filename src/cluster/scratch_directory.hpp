#pragma once
// A private directory (0700) for what a cluster run writes: node files (with
// the cluster key) and node logs; also for other runs' sockets and logs (a
// guest's, a benchmark's). Removed with everything in it.

#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

namespace vdtu::cluster {

class ScratchDirectory {
 public:
  // Under $TMPDIR (or /tmp), named NAME-XXXXXX (the name says whose it is
  // when one is left behind). Throws std::system_error if it cannot be made.
  explicit ScratchDirectory(std::string_view name = "vdtu-cluster");
  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;
  ~ScratchDirectory();  // removes it, unless remove() did

  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  [[nodiscard]] std::filesystem::path operator/(const std::string& file) const { return path_ / file; }
  // Writes a file only we can read (0600); throws std::system_error.
  void write(const std::string& file, const std::string& text) const;
  // Removes it now; what went wrong, if anything.
  std::error_code remove() noexcept;

 private:
  std::filesystem::path path_;
  bool removed_ = false;
};

}  // namespace vdtu::cluster

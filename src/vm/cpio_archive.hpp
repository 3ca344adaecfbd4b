#pragma once
// A cpio archive in the "newc" format, the one the Linux kernel unpacks as an
// initramfs: directories and regular files, built in memory. Used for the
// small archive of one guest run (its command, its files), appended to the
// cached image's archives.

#include <cstdint>
#include <string>

namespace vdtu::vm {

class CpioArchive {
 public:
  // `path` is relative to the guest's root ("vdtu/run"); parent directories
  // must be added first. Throws std::invalid_argument for an empty or
  // absolute path, or one with a ".." part.
  void add_directory(const std::string& path, std::uint32_t mode = 0755);
  void add_file(const std::string& path, const std::string& contents, std::uint32_t mode = 0644);
  // The archive with its trailer; the archive stays usable.
  [[nodiscard]] std::string finish() const;

 private:
  void add_entry(const std::string& path, std::uint32_t mode, const std::string& contents);
  std::string bytes_;
  std::uint32_t next_inode_ = 1;
};

}  // namespace vdtu::vm

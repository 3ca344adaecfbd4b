#include "cpio_archive.hpp"

#include <fmt/core.h>
#include <sys/stat.h>

#include <stdexcept>

namespace vdtu::vm {
namespace {

// newc pads the header with the name, and the data, to 4 bytes.
void pad4(std::string& out) {
  while (out.size() % 4 != 0) out += '\0';
}

void check_path(const std::string& path) {
  if (path.empty() || path.front() == '/' || path == ".." || path.starts_with("../") ||
      path.find("/../") != std::string::npos || path.ends_with("/..")) {
    throw std::invalid_argument(fmt::format("'{}' is not a relative path inside the archive", path));
  }
}

}  // namespace

void CpioArchive::add_entry(const std::string& path, std::uint32_t mode, const std::string& contents) {
  // c_magic, then 13 fields of 8 hex digits: ino, mode, uid, gid, nlink,
  // mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize
  // (with its NUL), check (0 in newc).
  const bool directory = S_ISDIR(mode);
  bytes_ += fmt::format(
      "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}", next_inode_++,
      mode, 0, 0, directory ? 2 : 1, 0, contents.size(), 0, 0, 0, 0, path.size() + 1, 0);
  bytes_ += path;
  bytes_ += '\0';
  pad4(bytes_);
  bytes_ += contents;
  pad4(bytes_);
}

void CpioArchive::add_directory(const std::string& path, std::uint32_t mode) {
  check_path(path);
  add_entry(path, S_IFDIR | (mode & 07777U), {});
}

void CpioArchive::add_file(const std::string& path, const std::string& contents, std::uint32_t mode) {
  check_path(path);
  if (contents.size() > 0xffffffffU) throw std::invalid_argument(path + " is too large for a cpio archive");
  add_entry(path, S_IFREG | (mode & 07777U), contents);
}

std::string CpioArchive::finish() const {
  CpioArchive trailer = *this;
  trailer.add_entry("TRAILER!!!", 0, {});
  return trailer.bytes_;
}

}  // namespace vdtu::vm

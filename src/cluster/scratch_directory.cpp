#include "scratch_directory.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "vdtu/unique_fd.hpp"

namespace vdtu::cluster {

ScratchDirectory::ScratchDirectory(std::string_view name) {
  std::string pattern = (std::filesystem::temp_directory_path() / name).string() + "-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr)  // mode 0700
    throw std::system_error(errno, std::generic_category(), "cannot create a directory like " + pattern);
  path_ = pattern;
}

ScratchDirectory::~ScratchDirectory() { remove(); }

void ScratchDirectory::write(const std::string& file, const std::string& text) const {
  const auto path = (path_ / file).string();
  const UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) throw std::system_error(errno, std::generic_category(), "cannot create " + path);
  std::size_t done = 0;
  while (done < text.size()) {
    const auto n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::system_error(errno, std::generic_category(), "cannot write " + path);
    done += static_cast<std::size_t>(n);
  }
}

std::error_code ScratchDirectory::remove() noexcept {
  std::error_code error;
  if (removed_) return error;
  std::filesystem::remove_all(path_, error);
  removed_ = true;
  return error;
}

}  // namespace vdtu::cluster

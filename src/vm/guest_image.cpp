#include "guest_image.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "cluster/child_process.hpp"
#include "cluster/scratch_directory.hpp"
#include "common/sibling_program.hpp"

namespace vdtu::vm {

namespace {
std::filesystem::path user_cache_home() {
  // NOLINTBEGIN(concurrency-mt-unsafe): read before any thread starts
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg == '/') return xdg;
  if (const char* home = std::getenv("HOME"); home != nullptr && *home == '/')
    return std::filesystem::path(home) / ".cache";
  // NOLINTEND(concurrency-mt-unsafe)
  return std::filesystem::temp_directory_path() / ("vdtu-cache-" + std::to_string(::getuid()));
}
}  // namespace

std::filesystem::path guest_image_cache() {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): read before any thread starts
  if (const char* dir = std::getenv("VDTU_CACHE_DIR"); dir != nullptr && *dir != '\0')
    return std::filesystem::path(dir) / "vm";
  const auto own_dir = std::filesystem::read_symlink("/proc/self/exe").parent_path();
  if (std::filesystem::exists(own_dir / "CMakeCache.txt")) return own_dir / "cache" / "vm";  // a build tree
  return user_cache_home() / "vdtu" / "vm";  // installed: never next to /usr/bin/vdtu
}

GuestImage build_guest_image(const std::vector<std::string>& programs) {
  const auto script = sibling_program("vm-image.sh");
  std::vector<std::string> words{"bash", script, "--cache", guest_image_cache().string()};
  for (const auto& p : programs) words.insert(words.end(), {"--with", p});
  const cluster::ScratchDirectory scratch("vdtu-guest-image");  // the script's output
  const auto out = (scratch / "out").string();
  const auto err = (scratch / "err").string();
  cluster::ChildOptions options;
  options.open(0, "/dev/null", O_RDONLY);
  options.open(1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  options.open(2, err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  options.ends_with_parent = true;
  cluster::ChildProcess child(words, options);
  const int status = child.wait();
  const auto read = [](const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
  if (status != 0) {
    throw std::runtime_error("cannot build the guest image (" + cluster::describe_status(status) +
                             "): " + read(err));
  }
  GuestImage image;
  std::istringstream lines(read(out));
  std::string kind;
  std::string path;
  while (lines >> kind >> path) {
    if (kind == "kernel") image.kernel = path;
    if (kind == "initrd") image.initrds.emplace_back(path);
  }
  if (image.kernel.empty() || image.initrds.empty())
    throw std::runtime_error("the guest image script named no kernel or initramfs: " + read(err));
  return image;
}

}  // namespace vdtu::vm

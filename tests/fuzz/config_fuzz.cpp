// Node, cluster and switch files of any content: the first byte picks the
// reader, the rest is the file. A file is read completely or refused with a
// std::runtime_error whose text names the file; anything else escaping (an
// exception of another type, a crash, a sanitizer report, a hang) is a
// finding, as is a refusal without a message.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "cli/cluster_file.hpp"
#include "cli/node_file.hpp"
#include "cli/switch_command.hpp"

namespace {

// One scratch file per process, rewritten for every input, removed at exit.
struct ScratchFile {
  std::string path = "/tmp/vdtu-config-fuzz-XXXXXX";
  ScratchFile() {
    const int fd = ::mkstemp(path.data());
    if (fd < 0) std::abort();
    ::close(fd);
  }
  ~ScratchFile() { ::unlink(path.c_str()); }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;
};

const std::string& scratch_path() {
  static const ScratchFile file;
  return file.path;
}

void write_file(const std::string& path, const std::uint8_t* data, std::size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  (void)std::fclose(f);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto& path = scratch_path();
  write_file(path, data + 1, size - 1);
  try {
    switch (data[0] % 3) {
      case 0: (void)vdtu::cli::parse_node_file(path); break;
      case 1: (void)vdtu::cli::parse_cluster_file(path); break;
      default: {
        vdtu::cli::SwitchOptions options;
        options.config_path = path;
        (void)vdtu::cli::switch_config_from(options);
        break;
      }
    }
  } catch (const std::runtime_error& e) {
    // Every mistake names the file ("FILE:LINE: ..."); the switch's one
    // complaint about its options ("no socket") names none.
    const std::string what = e.what();
    if (what.empty() || (what.find(path) == std::string::npos && what.rfind("no socket", 0) != 0)) {
      (void)std::fprintf(stderr, "refusal without the file's name: %s\n", e.what());
      std::abort();
    }
  }
  return 0;
}

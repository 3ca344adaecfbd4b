#pragma once
// The guest image: Debian's kernel and initramfs archives built by
// scripts/vm-image.sh (found like vdtu's PE programs: build/apps or libexec/vdtu) and cached,
// keyed by their inputs, where guest_image_cache() says.

#include <filesystem>
#include <string>
#include <vector>

namespace vdtu::vm {

struct GuestImage {
  std::filesystem::path kernel;
  // Concatenated in this order into one initramfs: the base (busybox,
  // modules, iperf3, /init), then the layer of extra programs if any.
  std::vector<std::filesystem::path> initrds;
};

// Builds the image, or finds it in the cache. `programs` (host paths) go into
// the guest at the same paths, with the shared libraries they need. Throws
// std::runtime_error with the script's message if it fails.
GuestImage build_guest_image(const std::vector<std::string>& programs);

// Where the cache is: $VDTU_CACHE_DIR/vm if set; in a build tree, cache/vm
// next to vdtu; an installed vdtu uses $XDG_CACHE_HOME/vdtu/vm (or
// ~/.cache/vdtu/vm), never a directory next to /usr/bin/vdtu.
std::filesystem::path guest_image_cache();

}  // namespace vdtu::vm

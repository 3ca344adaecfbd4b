#!/usr/bin/env bash
# Installs the Debian 12 packages vdtu needs, only those missing.
set -euo pipefail

packages=(
  cmake ninja-build g++ clang clang-format clang-tidy libclang-rt-14-dev  # toolchains, sanitizers, libFuzzer
  libgtest-dev                                                            # tests
  libcli11-dev libfmt-dev libtomlplusplus-dev                            # command line, output, config files
  libsodium-dev pkg-config                                                # bridge datagram encryption
  libseccomp-dev                                                          # the PE sandbox's seccomp filter
  iproute2                                                                # network namespaces for cluster tests
  liblwip-dev                                                             # lwip_echo: an IP stack on a switch port
  dpkg-dev file                                                           # cpack -G DEB: dpkg-shlibdeps finds the package's dependencies
  python3-matplotlib                                                      # scripts/plot.py: the figures of docs/BENCHMARKS.md
  qemu-system-x86 busybox-static kmod iperf3                              # vdtu vm: guests (TCG), their initramfs, modinfo/depmod, iperf3 in guests
  dpdk-dev                                                                # dpdk-testpmd: vhost-user tests and benchmark
  libspdlog-dev                                                           # leveled event logs (--log-level)
  nlohmann-json3-dev                                                      # tests: parse `vdtu stat --json`
  tshark                                                                  # tests: read `vdtu trace` files with the dissector
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # wireshark-common (with tshark) asks whether non-root users may capture: no.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The guest kernel (linux-image-amd64's package) is not installed on the host:
# scripts/vm-image.sh fetches it with `apt-get download` into its cache the
# first time a guest is booted.

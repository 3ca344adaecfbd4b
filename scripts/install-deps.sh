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

#!/usr/bin/env bash
# Installs a build into a temporary prefix and builds the example VPE project
# (examples/vpe-project) against the installed package, as a researcher
# outside this tree would: once with find_package(vdtu), once with
# pkg-config; then runs it under a node with the installed vdtu, which must
# find its installed semper_kernel. Then builds the Debian package (not
# installed here) and checks its dependencies and contents. Removes
# everything it made at the end.
#
#   scripts/check-install.sh [BUILD_DIR]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
[ -x "$build/vdtu" ] || { echo "check-install: $build/vdtu missing (build first)" >&2; exit 1; }

work=$(mktemp -d /tmp/vdtu-install-XXXXXX)
trap 'rm -rf "$work"' EXIT
# PEs run under uids of their own (docs/SECURITY.md): they must be able to
# reach the example program in here.
chmod 755 "$work"
prefix=$work/prefix

cmake --install "$build" --prefix "$prefix" >/dev/null
echo "installed into $prefix: $(cd "$prefix" && find . -type f | wc -l) files"

cmake -S examples/vpe-project -B "$work/example" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/example" >/dev/null
echo "example built with find_package(vdtu)"

# pkg-config: the same program by hand.
pc_dir=$(dirname "$(find "$prefix" -name vdtu.pc | head -n 1)")
# shellcheck disable=SC2046  # the flags are meant to split into words
c++ -std=c++20 -o "$work/hello_vpe_pc" examples/vpe-project/hello_vpe.cpp \
  $(PKG_CONFIG_PATH=$pc_dir pkg-config --cflags --libs vdtu)
echo "example built with pkg-config"

# The installed vdtu, from the example's build directory (the node file names
# ./hello_vpe and the bare name semper_kernel).
out=$(cd "$work/example" && "$prefix/bin/vdtu" node --config "$OLDPWD/examples/vpe-project/node.toml" \
  --timeout 60 2>&1) || { echo "$out"; echo "check-install: the example failed under a node" >&2; exit 1; }
echo "$out" | grep -q 'hello_vpe: wrote "hello from a VPE", read it back read-only, revoked both' &&
  echo "$out" | grep -q "PE 1 ($prefix/libexec/vdtu/semper_kernel) exited with 0" ||
  { echo "$out"; echo "check-install: unexpected output" >&2; exit 1; }
echo "example ran under the installed vdtu with the installed semper_kernel"

# The Debian package of the same build.
cpack_out=$(cd "$build" && cpack -G DEB -B "$work/deb" 2>&1) || { echo "$cpack_out"; exit 1; }
deb=$(echo "$work"/deb/vdtu_*.deb)
depends=$(dpkg-deb -f "$deb" Depends)
for needed in libsodium23 libseccomp2 libfmt-dev; do
  case "$depends" in *"$needed"*) ;; *) echo "check-install: $deb does not depend on $needed: $depends" >&2; exit 1 ;; esac
done
contents=$(dpkg-deb -c "$deb")
echo "$contents" | grep -q ' \./usr/libexec/vdtu/semper_kernel$' ||
  { echo "check-install: $deb has no /usr/libexec/vdtu/semper_kernel" >&2; exit 1; }
echo "built $(basename "$deb"): Depends: $depends"

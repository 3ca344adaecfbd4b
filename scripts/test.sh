#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, -Werror builds with clang
# and g++, clang-tidy, the tests under ASan+UBSan (plus short fuzz runs) and
# under TSan, then the optimised g++ build: installed into a temporary prefix
# with the example VPE project built against it and run, and every test on
# it. Ends with ctest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

echo "== clang-format"
git ls-files '*.cpp' '*.hpp' | xargs clang-format --dry-run --Werror

for preset in clang asan tsan; do
  echo "== build: $preset"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset"
done
echo "== clang-tidy"
git ls-files 'src/*.cpp' 'apps/*.cpp' 'bench/*.cpp' |
  xargs -P "$(nproc)" -n 4 clang-tidy -p build-clang --quiet --warnings-as-errors='*' 2>/dev/null

for preset in asan tsan; do
  echo "== tests: $preset"
  # vm: QEMU under TCG is slow and gains nothing from sanitizers.
  # scale: hundreds of PE processes, each several times larger and slower
  # under the sanitizers than this suite's time allows (tests/CMakeLists.txt)
  ctest --preset "$preset" --label-exclude 'cli|vm|scale'
done

echo "== build: release (g++)"
cmake --preset release >/dev/null
cmake --build --preset release
echo "== install: the example VPE project against the installed package"
scripts/check-install.sh build
echo "== tests: release"
ctest --preset release

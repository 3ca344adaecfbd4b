#!/usr/bin/env bash
# Runs every libFuzzer target for a while (default 300 s each; not part of
# CI, whose ctest runs each for 5 s). Builds the `asan` preset first. New
# inputs that add coverage are merged into tests/fuzz/corpus/<target>, so
# the seeds grow with every run; a finding stops the script, its input is
# left as build-asan/tests/fuzz/crash-* (reproduce: fuzz_<target> FILE).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
shift || true
cmake --preset asan >/dev/null
mapfile -t all < <(ninja -C build-asan -t targets all | grep -o '^fuzz_[a-z_]*' | sort -u)
ninja -C build-asan "${all[@]}" >/dev/null
bin=build-asan/tests/fuzz
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(find "$bin" -maxdepth 1 -name 'fuzz_*' -type f -executable -printf '%f\n' | sed 's/^fuzz_//' | sort)
fi
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
for t in "${targets[@]}"; do
  seeds=tests/fuzz/corpus/$t
  work=$bin/corpus/$t
  mkdir -p "$seeds" "$work"
  echo "== $t: ${seconds} s"
  (cd "$bin" && "./fuzz_$t" -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=2048 \
     -print_final_stats=1 "corpus/$t" "../../../$seeds" 2>&1 | grep -v '^vdtu node' | tail -n 12)
  # Keep only what adds coverage to the seeds.
  "$bin/fuzz_$t" -merge=1 -max_len=2048 "$seeds" "$work" >/dev/null 2>&1
  echo "   seeds: $(find "$seeds" -type f | wc -l)"
done

#!/usr/bin/env bash
# Builds every libFuzzer target (tests/fuzz/*_fuzz.cpp) with clang into
# build-fuzz and runs each for a bounded time on its corpus
# (tests/fuzz/corpus/<name>/, seeds committed; new inputs go to a scratch copy).
#
#   scripts/fuzz.sh              # 30 s per target
#   FUZZ_SECONDS=300 scripts/fuzz.sh icmp
#
# Exit status is non-zero if any target finds a crash; the reproducer is left in
# build-fuzz/artifacts/<name>/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-30}
build_dir=${FUZZ_BUILD_DIR:-build-fuzz}
cxx=${CXX_FUZZ:-clang++-14}
command -v "$cxx" >/dev/null || cxx=clang++

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" \
  -DNIGHTSHIFT_FUZZ=ON -DNIGHTSHIFT_TESTS=OFF >/dev/null

targets=()
if [ "$#" -gt 0 ]; then
  for t in "$@"; do targets+=("${t%_fuzz}"); done
else
  for f in tests/fuzz/*_fuzz.cpp; do
    n=$(basename "$f" .cpp)
    targets+=("${n%_fuzz}")
  done
fi

status=0
for t in "${targets[@]}"; do
  cmake --build "$build_dir" --target "${t}_fuzz"
  corpus="$build_dir/corpus/$t"
  artifacts="$build_dir/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  if [ -d "tests/fuzz/corpus/$t" ]; then cp -n tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true; fi
  log="$build_dir/logs/$t.log"
  mkdir -p "$build_dir/logs"
  if "$build_dir/${t}_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 \
      -artifact_prefix="$artifacts/" -print_final_stats=1 "$corpus" tests/fuzz/corpus/"$t" > "$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "fuzz: $t: ${runs:-?} inputs in ${seconds}s, no crash (log: $log)"
  else
    tail -n 40 "$log" >&2
    echo "fuzz: $t FAILED; reproducer in $artifacts/, log in $log" >&2
    status=1
  fi
done
exit $status

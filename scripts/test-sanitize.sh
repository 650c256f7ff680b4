#!/usr/bin/env bash
# Builds nightshift and its tests with AddressSanitizer + UBSan (GCC) into
# build-asan and runs the whole test suite there: memory errors, leaks and
# undefined behaviour fail the run. CI runs it after scripts/test.sh.
#   scripts/test-sanitize.sh [ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${SANITIZE_BUILD_DIR:-build-asan}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNIGHTSHIFT_WERROR=ON -DNIGHTSHIFT_SANITIZE=ON >/dev/null
cmake --build "$build_dir"
# halt_on_error: the first report fails the test that caused it.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$build_dir" --output-on-failure --timeout 300 "$@"

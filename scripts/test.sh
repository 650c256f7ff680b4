#!/usr/bin/env bash
# Builds nightshift and runs every test. On a fresh Debian 12 machine this is the
# whole set-up: it installs the Debian packages first (needs root or sudo).
# Integration tests create network namespaces, so run it as root.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNIGHTSHIFT_WERROR=ON -DNIGHTSHIFT_TESTS=ON
cmake --build "$build_dir"
ctest --test-dir "$build_dir" --output-on-failure --timeout 300 "$@"

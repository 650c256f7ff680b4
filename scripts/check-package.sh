#!/usr/bin/env bash
# Builds the .deb (and its -dbgsym .ddeb) from a configured and built tree and
# runs lintian on it. Fails on any lintian error, and on any warning not in the
# list below, each with why it stays.
#   scripts/check-package.sh [BUILD_DIR]     (default: build)
# The ctest test deploy.deb_lintian runs exactly this.
set -euo pipefail
build=${1:-build}
command -v lintian >/dev/null || { echo "check-package: lintian is not installed (scripts/install-deps.sh)" >&2; exit 1; }
out=$(mktemp -d "${TMPDIR:-/tmp}/nightshift-deb.XXXXXX")
trap 'rm -rf "$out"' EXIT
cpack --config "$build/CPackConfig.cmake" -G DEB -B "$out" >"$out/cpack.log" 2>&1 || { cat "$out/cpack.log" >&2; exit 1; }
deb=$(ls "$out"/nightshift_*.deb)
echo "check-package: built $(basename "$deb") ($(du -h "$deb" | cut -f1)), $(ls "$out"/*.ddeb 2>/dev/null | xargs -r -n1 basename)"

# Warnings we accept, with why: none so far. (Info tags left: hardening-no-bindnow
# and -fortify-functions: the project's compile flags, not the package's;
# package-supports-alternative-init-but-no-init.d-script: systemd only.)
accepted='^$'
# --tag-display-limit 0: every instance of a tag.
lintian --tag-display-limit 0 --display-info "$deb" 2>&1 | grep -v 'running with root privileges' >"$out/lintian.txt" || true
cat "$out/lintian.txt"
errors=$(grep -c '^E: ' "$out/lintian.txt" || true)
warnings=$(grep '^W: ' "$out/lintian.txt" | grep -Ev "$accepted" | wc -l || true)
echo "check-package: lintian: $errors errors, $warnings unexpected warnings"
[ "$errors" -eq 0 ] && [ "$warnings" -eq 0 ]

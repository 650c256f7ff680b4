#!/usr/bin/env bash
# Installs what nightshift needs, builds it and runs the agent on the default
# local config (deploy/examples/local.toml), which probes only this machine.
# Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

# Same configuration as scripts/test.sh: switching options in one build tree
# loses ninja's header dependencies of targets that come and go.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNIGHTSHIFT_WERROR=ON
cmake --build build --target nightshift

config=${1:-deploy/examples/local.toml}
listen=$(sed -n 's/^listen *= *"\([^"]*\)".*/\1/p' "$config" | head -n 1)
echo "nightshift: metrics at http://${listen:-127.0.0.1:9650}/metrics, status page at /status  (health: /healthz; Ctrl-C stops)"
exec build/nightshift run -c "$config"

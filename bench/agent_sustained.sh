#!/usr/bin/env bash
# The whole agent (scheduler, ICMP engine, metrics, rules, incidents) probing N
# loopback targets once a second each, for D seconds, inside a private network
# namespace (loopback only). Reports CPU % of one core and peak RSS from
# /usr/bin/time -v, and the agent's own probe counters.
#   sudo bench/agent_sustained.sh [N=10000] [D=60]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
D=${2:-60}
BIN=${NIGHTSHIFT_BIN:-build/nightshift}
[ -x "$BIN" ] || { echo "build first: cmake -S . -B build -G Ninja && ninja -C build" >&2; exit 1; }
[ -x /usr/bin/time ] || apt-get install -y -q time > /dev/null

if [ "${NIGHTSHIFT_BENCH_IN_NETNS:-}" != 1 ]; then
  exec unshare -n env NIGHTSHIFT_BENCH_IN_NETNS=1 "$0" "$@"
fi
ip link set lo up

work=$(mktemp -d /tmp/nightshift-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
{
  printf '[agent]\nname = "bench"\nlisten = "127.0.0.1:9662"\nstate_dir = "%s/state"\nmax_probes_per_second = %d\n' "$work" $((N * 2))
  printf '[defaults]\ninterval = "1s"\ntimeout = "500ms"\n'
  for ((i = 0; i < N; i++)); do
    printf '[[target]]\nname = "t%d"\naddress = "127.1.%d.%d"\n  [[target.probe]]\n  kind = "icmp"\n  count = 1\n' \
      "$i" $((i / 250)) $((i % 250 + 1))
  done
} > "$work/agent.toml"

/usr/bin/time -v -o "$work/time.txt" timeout -s TERM "$D" "$BIN" run -c "$work/agent.toml" 2> "$work/agent.log" &
timer=$!
sleep $((D - 2))
curl -s 127.0.0.1:9662/metrics > "$work/metrics.txt" || true
wait "$timer" || true

cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {printf "%.2f", u + s}' "$work/time.txt")
rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$work/time.txt")
sent=$(awk '/^nightshift_probes_sent_total/ {print $2}' "$work/metrics.txt")
ok=$(grep -c '^probe_success.* 1$' "$work/metrics.txt" || true)
printf '| targets | seconds | CPU s | CPU %% of one core | peak RSS MiB | probes sent | targets up at the end |\n|---:|---:|---:|---:|---:|---:|---:|\n'
printf '| %d | %d | %s | %s | %s | %s | %s |\n' "$N" "$D" "$cpu" \
  "$(awk -v c="$cpu" -v d="$D" 'BEGIN {printf "%.1f", c * 100 / d}')" "$rss" "$sent" "$ok"

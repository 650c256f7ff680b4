#!/usr/bin/env bash
# Soak under load (issue 11): 10 000 ICMP targets at 1/s, 50 TCP targets that
# are down (50 incidents, one per group), every notification aimed at a dead
# webhook endpoint, and wrk hammering the status page — all at once, for
# D seconds. Samples the agent's RSS and outbox depth every 10 s and reports
# peak RSS, RSS growth after the first minute, and the final queue sizes.
# Runs in a private network namespace (loopback only).
#   sudo bench/soak.sh [D=600] [N=10000]
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-600}
N=${2:-10000}
BIN=${NIGHTSHIFT_BIN:-build/nightshift}
[ -x "$BIN" ] || { echo "build first: scripts/test.sh or cmake --build build" >&2; exit 1; }
command -v wrk >/dev/null || apt-get install -y -q wrk >/dev/null

if [ "${NIGHTSHIFT_BENCH_IN_NETNS:-}" != 1 ]; then
  exec unshare -n env NIGHTSHIFT_BENCH_IN_NETNS=1 "$0" "$@"
fi
ip link set lo up

work=$(mktemp -d /tmp/nightshift-soak-XXXXXX)
agent_pid=""
wrk_pid=""
cleanup() {
  [ -n "$wrk_pid" ] && kill "$wrk_pid" 2>/dev/null || true
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
port=9663
{
  printf '[agent]\nname = "soak"\nlisten = "127.0.0.1:%d"\nstate_dir = "%s/state"\nmax_probes_per_second = %d\n' \
    "$port" "$work" $((N * 2))
  printf '[defaults]\ninterval = "1s"\ntimeout = "500ms"\n'
  printf '[notify]\nfirst_backoff = "1s"\nmax_backoff = "10s"\n'
  # Nothing listens on port 9 here: every delivery is refused, for the whole run.
  printf '[[sink]]\nname = "dead"\ntype = "webhook"\nurl = "http://127.0.0.1:9/hook"\ntimeout = "2s"\n'
  for ((i = 0; i < N; i++)); do
    printf '[[target]]\nname = "t%d"\naddress = "127.1.%d.%d"\ngroup = "g%d"\n  [[target.probe]]\n  kind = "icmp"\n  count = 1\n' \
      "$i" $((i / 250)) $((i % 250 + 1)) $((i % 100))
  done
  for ((i = 0; i < 50; i++)); do
    printf '[[target]]\nname = "down%d"\naddress = "127.0.0.1"\ngroup = "svc%d"\n  [[target.probe]]\n  kind = "tcp"\n  port = %d\n' \
      "$i" "$i" $((40000 + i))
  done
} > "$work/agent.toml"

"$BIN" run -c "$work/agent.toml" 2> "$work/agent.log" &
agent_pid=$!
for _ in $(seq 100); do curl -sf "127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

page=/status
for _ in $(seq 100); do curl -sf "127.0.0.1:$port/status" >/dev/null && break; sleep 0.2; done
wrk -t2 -c32 -d"${D}s" "http://127.0.0.1:$port$page" > "$work/wrk.txt" 2>&1 &
wrk_pid=$!

# Sampled cheaply while the crowd is on: RSS from /proc, open incidents from
# the status page itself; the outbox from /metrics once the crowd has gone.
printf 'second rss_mib open_incidents\n' > "$work/samples.txt"
end=$((SECONDS + D))
while [ $SECONDS -lt $end ] && kill -0 "$agent_pid" 2>/dev/null; do
  rss=$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$agent_pid/status")
  open=$( (curl -s -m 10 "127.0.0.1:$port/status.json" || true) | python3 -c 'import json,sys
try: print(len(json.load(sys.stdin)["open_incidents"]))
except Exception: print("?")')
  printf '%d %s %s\n' $((D - (end - SECONDS))) "$rss" "$open" >> "$work/samples.txt"
  sleep 10
done
wait "$wrk_pid" || true
wrk_pid=""
m=$(curl -s -m 60 "127.0.0.1:$port/metrics" || true)
depth=$(awk '/^nightshift_outbox_depth\{/ {s += $2} END {print s + 0}' <<< "$m")
attempts=$(awk '/^nightshift_notifications_total\{.*result="retry"/ {s += $2} END {print s + 0}' <<< "$m")
hwm=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$agent_pid/status")
alive=$(kill -0 "$agent_pid" 2>/dev/null && echo yes || echo NO)

cat "$work/samples.txt"
rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
at60=$(awk 'NR > 1 && $1 >= 60 {print $2; exit}' "$work/samples.txt")
last=$(tail -1 "$work/samples.txt")
printf '\n| seconds | targets | page under wrk | wrk req/s | peak RSS MiB | RSS at 60 s | RSS at end | open incidents | outbox depth at end | failed deliveries (retried) | agent alive |\n'
printf '|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n'
printf '| %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$D" $((N + 50)) "$page" "$rps" "$hwm" "$at60" \
  "$(cut -d' ' -f2 <<< "$last")" "$(cut -d' ' -f3 <<< "$last")" "$depth" "$attempts" "$alive"
grep -c 'notification failed' "$work/agent.log" | xargs printf 'delivery failures logged: %s\n'

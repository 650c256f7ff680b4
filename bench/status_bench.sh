#!/usr/bin/env bash
# The status page under a crowd (issues 8 and 20): wrk against /status and
# /status.json of an agent probing N loopback targets once a second, and
# against nginx serving the very same bytes (the agent's export_dir), row by
# row in the same run: 64, 1 000 and 4 000 keep-alive connections, and 1 000
# fast ones beside 2 000 slow readers (bench/slow_readers.py: requests sent a
# few bytes at a time, answers read a few hundred bytes a second). Also the
# agent's scheduler lag p99, idle vs under the nightshift runs.
# Runs in a private network namespace (loopback only).
#   sudo bench/status_bench.sh [N=10000] [SECONDS=10]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
D=${2:-20}
BIN=${NIGHTSHIFT_BIN:-build/nightshift}
[ -x "$BIN" ] || { echo "build first: scripts/test.sh" >&2; exit 1; }
for p in wrk nginx; do
  command -v $p >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk nginx-light >/dev/null
done

if [ "${NIGHTSHIFT_BENCH_IN_NETNS:-}" != 1 ]; then
  exec unshare -n env NIGHTSHIFT_BENCH_IN_NETNS=1 "$0" "$@"
fi
ip link set lo up

work=$(mktemp -d /tmp/nightshift-status-bench-XXXXXX)
agent_pid=""
nginx_pid=""
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null || true
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
mkdir -p "$work/www" "$work/nginx"
chmod 755 "$work" "$work/www"  # nginx workers run unprivileged
port=19110
nginx_port=19111
ulimit -n "$(ulimit -Hn)"  # wrk's 4 000 connections and the slow readers
{
  printf '[agent]\nname = "bench"\nlisten = "127.0.0.1:%d"\nstate_dir = "%s/state"\nmax_probes_per_second = %d\n' \
    "$port" "$work" $((N * 2))
  printf '[defaults]\ninterval = "1s"\ntimeout = "500ms"\n[status]\nexport_dir = "%s/www"\n' "$work"
  for ((i = 0; i < N; i++)); do
    printf '[[target]]\nname = "t%d"\naddress = "127.1.%d.%d"\ngroup = "g%d"\nsite = "s%d"\n  [[target.probe]]\n  kind = "icmp"\n  count = 1\n' \
      "$i" $((i / 250)) $((i % 250 + 1)) $((i % 20)) $((i % 5))
  done
  # Three services that are down: the page has incidents to show.
  for ((i = 0; i < 3; i++)); do
    printf '[[target]]\nname = "shop%d"\naddress = "127.0.0.1"\ngroup = "shop"\nsite = "s0"\n  [[target.probe]]\n  kind = "tcp"\n  port = %d\n' \
      "$i" $((41000 + i))
  done
} > "$work/agent.toml"

cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 2;
worker_rlimit_nofile 20000;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 10000; }
http {
  access_log off;
  keepalive_requests 1000000;  # as the agent: a connection is never retired for its count
  types { text/html html; application/json json; application/atom+xml atom; }
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$nginx_port backlog=4096;
    root $work/www;
    location = /status { default_type text/html; try_files /status.html =404; }
    location = /status.json { try_files /status.json =404; }
  }
}
NGINX

"$BIN" run -c "$work/agent.toml" 2> "$work/agent.log" &
agent_pid=$!
for _ in $(seq 100); do curl -sf "127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
# At the agent's HTTP priority (its event threads run at nice 10, below the
# probe loop): on a shared machine both servers then get the same CPU weight.
nice -n 10 nginx -c "$work/nginx/nginx.conf" -g 'daemon off;' 2> "$work/nginx/stderr" &
nginx_pid=$!
sleep 15  # every target probed several times; the incidents declared

# p99 of nightshift_scheduler_lag_seconds over pairs of /metrics snapshots
# (before, after, before, after, ...): only the time inside each pair counts.
lag_p99() {
  python3 - "$@" <<'PY'
import re, sys
def buckets(path):
    b = {}
    for line in open(path):
        m = re.match(r'nightshift_scheduler_lag_seconds_bucket\{.*le="([^"]+)".*\} (\S+)', line)
        if m: b[float(m.group(1)) if m.group(1) != "+Inf" else float("inf")] = float(m.group(2))
    return b
sums = {}
for before, after in zip(sys.argv[1::2], sys.argv[2::2]):
    a, b = buckets(before), buckets(after)
    for le in b: sums[le] = sums.get(le, 0) + b[le] - a.get(le, 0)
d = sorted(sums.items())
total = d[-1][1]
for le, c in d:
    if c >= 0.99 * total:
        print(f"{le * 1000:g} ms (of {int(total)} probes)"); break
PY
}

curl -s "127.0.0.1:$port/metrics" > "$work/m0"
sleep "$D"
curl -s "127.0.0.1:$port/metrics" > "$work/m1"
idle=$(lag_p99 "$work/m0" "$work/m1")

# wrk's latency in ms ("850.00us", "2.13ms", "1.16s").
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.1f", n }'; }

wrk_run() {  # connections url -> "rps p99_ms errors"
  wrk -t2 -c"$1" -d"${D}s" --timeout 5s --latency "$2" > "$work/wrk.txt" 2>&1
  local rps p99 errors
  rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$work/wrk.txt")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")")
  errors=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$work/wrk.txt")
  echo "$rps $p99 $errors"
}

row() {  # label connections path [slow]
  local a b slow_a="" slow_b=""
  if [ -n "${4:-}" ]; then
    python3 bench/slow_readers.py 127.0.0.1 "$port" "$3" "$4" $((D + 8)) > "$work/slow.txt" & local sp=$!
    sleep 5
  fi
  lag_runs=$((lag_runs + 1))  # not inside the redirection: that expands in curl's child
  curl -s "127.0.0.1:$port/metrics" > "$work/lag${lag_runs}a"
  a=$(wrk_run "$2" "http://127.0.0.1:$port$3")
  curl -s "127.0.0.1:$port/metrics" > "$work/lag${lag_runs}b"
  if [ -n "${4:-}" ]; then wait "$sp"; slow_a=" ($(awk '{print $5}' "$work/slow.txt") slow answers)"; fi
  if [ -n "${4:-}" ]; then
    python3 bench/slow_readers.py 127.0.0.1 "$nginx_port" "$3" "$4" $((D + 8)) > "$work/slow.txt" & local sp=$!
    sleep 5
  fi
  b=$(wrk_run "$2" "http://127.0.0.1:$nginx_port$3")
  if [ -n "${4:-}" ]; then wait "$sp"; slow_b=" ($(awk '{print $5}' "$work/slow.txt") slow answers)"; fi
  read -r ar ap ae <<< "$a"
  read -r br bp be <<< "$b"
  printf '| %s | %s | %s | %s ms | %s | %s ms | %s / %s | **%s** |\n' "$1" "$3" "$ar$slow_a" "$ap" "$br$slow_b" "$bp" "$ae" "$be" \
    "$(awk -v a="$ar" -v b="$br" 'BEGIN { printf "%.2f", a / b }')"
}

size_html=$(stat -c %s "$work/www/status.html")
size_json=$(stat -c %s "$work/www/status.json")
# The same bytes: the agent exported them; nginx serves the files.
curl -s "127.0.0.1:$port/status" > "$work/served.html"; cmp "$work/served.html" "$work/www/status.html" || { head -c 300 "$work/served.html"; echo; head -c 300 "$work/www/status.html"; }

printf 'status page bench: %d targets, wrk -t2 -d%ds per row, %s cores, load %s; nightshift, then nginx (2 workers, nice 10), row by row\n\n' "$N" "$D" "$(nproc)" "$(cut -d' ' -f1 /proc/loadavg)"
printf '| load | path | nightshift req/s | p99 | nginx req/s | p99 | errors (ns / nginx) | ratio |\n|---|---|---:|---:|---:|---:|---:|---:|\n'
lag_runs=0
for c in 64 1000 4000; do
  for path in /status /status.json; do row "$c keep-alive" "$c" "$path"; done
done
row "1000 keep-alive + 2000 slow readers" 1000 /status 2000
pairs=()
for ((i = 1; i <= lag_runs; i++)); do pairs+=("$work/lag${i}a" "$work/lag${i}b"); done
loaded=$(lag_p99 "${pairs[@]}")
printf '\npage sizes: status.html %s bytes, status.json %s bytes\n' "$size_html" "$size_json"
printf 'scheduler lag p99: idle %s; during the nightshift runs %s\n' "$idle" "$loaded"
printf 'agent peak RSS: %s MiB; %s\n' "$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' /proc/$agent_pid/status)" \
  "$(grep -o 'open_files_limit=[0-9]* max_connections=[0-9]*' "$work/agent.log" | head -1)"

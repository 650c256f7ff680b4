#!/usr/bin/env bash
# The status page under a crowd (issue 8): wrk against /status and
# /status.json of an agent probing N loopback targets once a second, then
# against nginx serving the very same bytes (the agent's export_dir) in the
# same run; and the agent's scheduler lag p99 idle vs under that load.
# Runs in a private network namespace (loopback only).
#   sudo bench/status_bench.sh [N=10000] [SECONDS=20] [CONNECTIONS=64]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
D=${2:-20}
C=${3:-64}
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
trap cleanup EXIT
mkdir -p "$work/www" "$work/nginx"
chmod 755 "$work" "$work/www"  # nginx workers run unprivileged
port=9665
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
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  types { text/html html; application/json json; }
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:9666;
    root $work/www;
    location = /status { default_type text/html; try_files /status.html =404; }
    location = /status.json { try_files /status.json =404; }
  }
}
NGINX

"$BIN" run -c "$work/agent.toml" 2> "$work/agent.log" &
agent_pid=$!
for _ in $(seq 100); do curl -sf "127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
sleep 15  # every target probed several times; the incidents declared

# p99 of nightshift_scheduler_lag_seconds between two snapshots of /metrics.
lag_p99() {
  python3 - "$1" "$2" <<'PY'
import re, sys
def buckets(path):
    b = {}
    for line in open(path):
        m = re.match(r'nightshift_scheduler_lag_seconds_bucket\{.*le="([^"]+)".*\} (\S+)', line)
        if m: b[float(m.group(1)) if m.group(1) != "+Inf" else float("inf")] = float(m.group(2))
    return b
a, b = buckets(sys.argv[1]), buckets(sys.argv[2])
d = sorted((le, b[le] - a.get(le, 0)) for le in b)
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

run_wrk() {  # url label
  wrk -t2 -c"$C" -d"${D}s" --latency "$1" > "$work/wrk.txt" 2>&1
  local rps p99 p50 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
  p50=$(awk '$1 == "50%" {print $2}' "$work/wrk.txt")
  p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/wrk.txt")
  printf '| %s | %s | %s | %s | %s |\n' "$2" "$rps" "$p50" "$p99" "${non2xx:-0}"
}

printf 'status page bench: %d targets, wrk -t2 -c%d -d%ds, %s\n\n' "$N" "$C" "$D" "$(nproc) cores"
printf '| server and path | requests/s | p50 | p99 | non-2xx |\n|---|---:|---:|---:|---:|\n'
curl -s "127.0.0.1:$port/metrics" > "$work/m2"
run_wrk "http://127.0.0.1:$port/status" "nightshift /status"
run_wrk "http://127.0.0.1:$port/status.json" "nightshift /status.json"
curl -s "127.0.0.1:$port/metrics" > "$work/m3"
loaded=$(lag_p99 "$work/m2" "$work/m3")
size_html=$(stat -c %s "$work/www/status.html")
size_json=$(stat -c %s "$work/www/status.json")
nginx -c "$work/nginx/nginx.conf" -g 'daemon off;' 2> "$work/nginx/stderr" &
nginx_pid=$!
sleep 1
# The same bytes: the agent exported them; nginx serves the files.
curl -s "127.0.0.1:$port/status" > "$work/served.html"; cmp "$work/served.html" "$work/www/status.html" || { head -c 300 "$work/served.html"; echo; head -c 300 "$work/www/status.html"; }
run_wrk "http://127.0.0.1:9666/status" "nginx /status (same bytes)"
run_wrk "http://127.0.0.1:9666/status.json" "nginx /status.json (same bytes)"
printf '\npage sizes: status.html %s bytes, status.json %s bytes\n' "$size_html" "$size_json"
printf 'scheduler lag p99: idle %s; under the nightshift wrk runs %s\n' "$idle" "$loaded"
printf 'agent peak RSS: %s MiB\n' "$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' /proc/$agent_pid/status)"

#!/usr/bin/env bash
# ICMP benchmark: nightshift against Debian's fping on the same loopback
# targets (every address in 127.0.0.0/8 answers). Not a timed test: it prints a
# table (median of RUNS runs) for bench/README.md.
#
#   sudo bench/icmp_bench.sh                 # builds build-bench, 3 runs each
#   RUNS=5 NIGHTSHIFT_BIN=build/nightshift sudo -E bench/icmp_bench.sh
#   SUSTAIN_SECONDS=10 ...                   # shorter sustained run
#
# Everything runs inside a private network namespace (unshare -n) with only
# loopback up: no packet can leave the machine, and other programs' traffic
# does not disturb the numbers. Both tools use raw sockets there (root, default
# net.ipv4.ping_group_range). Measured with /usr/bin/time -v.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

RUNS=${RUNS:-3}
SUSTAIN_SECONDS=${SUSTAIN_SECONDS:-60}

if [ "${NIGHTSHIFT_BENCH_IN_NETNS:-}" != 1 ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "icmp_bench: needs root (network namespace, raw sockets)" >&2; exit 2; fi
  for p in fping time; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$p" >/dev/null
    fi
  done
  if [ -z "${NIGHTSHIFT_BIN:-}" ]; then
    cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DNIGHTSHIFT_TESTS=OFF >/dev/null
    cmake --build build-bench --target nightshift >/dev/null
    export NIGHTSHIFT_BIN=$root/build-bench/nightshift
  fi
  export NIGHTSHIFT_BENCH_IN_NETNS=1
  exec unshare -n "$0" "$@"
fi

ip link set lo up
bin=${NIGHTSHIFT_BIN}
work=$(mktemp -d /tmp/icmp-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Distinct loopback targets 127.1.0.0 upward.
targets() {
  awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++) printf "127.%d.%d.%d\n", 1 + int(i / 65536), int(i / 256) % 256, i % 256 }'
}
targets 10000 >"$work/t10000"
targets 65536 >"$work/t65536"
targets 65535 >"$work/t65535"  # fping 5.1 tracks at most 65535 outstanding sequence numbers

# run NAME OUTFILE -- command...: one measured run; appends "wall cpu rss_kb sent received" to OUTFILE.
run() {
  local out=$1
  shift
  /usr/bin/time -v -o "$work/time" "$@" >"$work/stdout" 2>"$work/stderr" || true
  local wall cpu rss sent recv
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$work/time")
  cpu=$(awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 } END { printf "%.2f", u + s }' "$work/time")
  rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$work/time")
  if grep -q "addresses reachable" "$work/stderr"; then
    # nightshift: "N/M addresses reachable, S sent, R received, ..."
    sent=$(awk '/addresses reachable/ { print $4 }' "$work/stderr")
    recv=$(awk '/addresses reachable/ { print $6 }' "$work/stderr")
  else
    # fping -q -c: "ADDR : xmt/rcv/%loss = S/R/L%..." per address
    read -r sent recv < <(awk -F'= ' '/xmt\/rcv/ { split($2, p, "/"); s += p[1]; r += p[2] } END { print s + 0, r + 0 }' "$work/stderr")
  fi
  if grep -q "fping error" "$work/stderr"; then echo "  ($(grep -m1 'fping error' "$work/stderr"))" >&2; fi
  echo "$wall $cpu $rss $sent $recv" >>"$out"
}

# median of column $2 in file $1
median() { awk -v c="$2" '{ print $c }' "$1" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

results="$work/results"
: >"$results"
measure() {
  local name=$1 targets=$2
  shift 2
  local f="$work/m.$RANDOM"
  : >"$f"
  for _ in $(seq "$RUNS"); do run "$f" "$@"; done
  local wall cpu rss sent recv
  wall=$(median "$f" 1); cpu=$(median "$f" 2); rss=$(median "$f" 3); sent=$(median "$f" 4); recv=$(median "$f" 5)
  local loss pps
  loss=$(awk -v s="$sent" -v r="$recv" 'BEGIN { printf "%.2f", (s > 0 ? 100 * (s - r) / s : 100) }')
  pps=$(awk -v r="$recv" -v c="$cpu" 'BEGIN { if (c > 0) printf "%.0f", r / c; else print "inf" }')
  echo "$name|$targets|$wall|$cpu|$((rss / 1024))|$sent|$recv|$loss|$pps" >>"$results"
  echo "  $name: wall ${wall}s cpu ${cpu}s rss $((rss / 1024))MiB sent $sent received $recv (loss ${loss}%) ${pps} replies/CPU-s" >&2
}

echo "icmp_bench: $RUNS runs each, $(nproc) CPUs, kernel $(uname -r), $(fping -v 2>&1 | head -1)" >&2
echo "one round, one packet per target:" >&2
measure "nightshift -c 1" 10000 "$bin" probe icmp -q -c 1 -t 1000 -f "$work/t10000"
measure "fping -c 1 -i 0 -r 0" 10000 fping -q -c 1 -i 0 -r 0 -t 1000 -f "$work/t10000"
measure "fping -c 1 -i 1 -r 0" 10000 fping -q -c 1 -i 1 -r 0 -t 1000 -f "$work/t10000"
measure "nightshift -c 1" 65536 "$bin" probe icmp -q -c 1 -t 1000 -f "$work/t65536"
measure "fping -c 1 -i 0 -r 0 (65 535)" 65535 fping -q -c 1 -i 0 -r 0 -t 1000 -f "$work/t65535"
measure "fping -c 1 -i 1 -r 0 (65 535)" 65535 fping -q -c 1 -i 1 -r 0 -t 1000 -f "$work/t65535"

echo "sustained, 10 000 targets at 1 probe/s each for ${SUSTAIN_SECONDS}s:" >&2
sustain_runs=$RUNS
RUNS=1 measure "nightshift sustained ${SUSTAIN_SECONDS}s" 10000 "$bin" probe icmp -q -c 1 -t 500 -n "$SUSTAIN_SECONDS" -i 1000 -f "$work/t10000"
# fping 5.1 refuses more than 65 535 packets in flight within its 10 s
# sequence-number expiry: 10 000/s can run for 6 s at most.
RUNS=1 measure "fping -c 6 -p 1000 -i 0 -r 0 (6s)" 10000 fping -q -c 6 -p 1000 -i 0 -r 0 -t 500 -f "$work/t10000"
RUNS=$sustain_runs

echo
echo "| run | targets | wall s | CPU s | peak RSS MiB | sent | received | loss % | replies per CPU-s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
awk -F'|' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }' "$results"
echo
# Ratios of replies per CPU-second, nightshift over fping's best at the same size.
awk -F'|' '
  /^nightshift -c 1/ { ns[$2] = $9 }
  /^fping -c 1/ { n = ($2 == 65535 ? 65536 : $2); if (!(n in fp) || $9 + 0 > fp[n] + 0) fp[n] = $9 }
  /sustained/ { cpu_pct = 100 * $4 / $3; printf "sustained nightshift: %.1f%% of one core, %s MiB peak RSS\n", cpu_pct, $5 }
  /^fping -c 6/ { printf "sustained fping (6 s): %.1f%% of one core, %s MiB peak RSS\n", 100 * $4 / $3, $5 }
  END { for (n in ns) if (n in fp && fp[n] > 0) printf "%s targets: nightshift %s vs fping %s replies per CPU-second: ratio %.2fx\n", n, ns[n], fp[n], ns[n] / fp[n] }' "$results"

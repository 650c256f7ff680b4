#!/usr/bin/env bash
# pcap watch benchmark: `nightshift replay` against Debian's `tshark -r`
# counting comparable things over the same synthetic capture (>= 1 M packets,
# generated here by bench/pcap_gen.cpp, never committed). Both read the file
# on one core; measured with /usr/bin/time -v. Prints a table for bench/README.md.
#
#   bench/pcap_bench.sh                       # builds build-bench, 1 M packets, 3 runs
#   PACKETS=2000000 RUNS=5 NIGHTSHIFT_BIN=build/nightshift bench/pcap_bench.sh
#
# No network traffic at all: both tools read a file.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

PACKETS=${PACKETS:-1000000}
RUNS=${RUNS:-3}

for p in tshark time libpcap-dev; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$p" >/dev/null
  fi
done
if [ -z "${NIGHTSHIFT_BIN:-}" ]; then
  cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DNIGHTSHIFT_TESTS=OFF >/dev/null
  cmake --build build-bench --target nightshift -j 2 >/dev/null
  NIGHTSHIFT_BIN=$root/build-bench/nightshift
fi

work=$(mktemp -d /tmp/pcap-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
g++ -std=c++20 -O2 -I"$root" -I"$root/include" bench/pcap_gen.cpp probes/pcap/pcap_frames.cpp probes/pcap/pcap_codec.cpp \
  -o "$work/pcap_gen" -lpcap
"$work/pcap_gen" "$work/capture.pcap" "$PACKETS" 100
size=$(stat -c %s "$work/capture.pcap")

# run NAME -- command...: one measured run (pinned to CPU 0); prints "wall cpu rss_kb".
run() {
  local name=$1
  shift 2
  /usr/bin/time -v -o "$work/time" taskset -c 0 "$@" >"$work/$name.out" 2>"$work/$name.err"
  local wall cpu rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$work/time")
  cpu=$(awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 } END { print u + s }' "$work/time")
  rss=$(awk -F': ' '/Maximum resident/ { print $2 }' "$work/time")
  echo "$wall $cpu $rss"
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

prefix=198.51.100.0/24
# tshark counts, per 10 s interval, the prefix's packets and bytes, SYNs, RSTs
# and ICMP unreachable: the same counting as replay's (replay also judges
# handshakes and retransmissions, which tshark's default TCP analysis does too).
tshark_args=(-r "$work/capture.pcap" -q -z "io,stat,10,ip.addr==$prefix,tcp.flags.syn==1 && tcp.flags.ack==0,tcp.flags.reset==1,icmp.type==3,tcp.analysis.retransmission")
replay_args=(replay --prefix "$prefix" --interval 10s "$work/capture.pcap")

declare -A results
for tool in nightshift tshark; do
  : >"$work/$tool.runs"
  for _ in $(seq "$RUNS"); do
    if [ "$tool" = nightshift ]; then
      run "$tool" -- "$NIGHTSHIFT_BIN" "${replay_args[@]}" >>"$work/$tool.runs"
    else
      run "$tool" -- tshark "${tshark_args[@]}" >>"$work/$tool.runs"
    fi
  done
done

echo "capture: $PACKETS packets, $size bytes; $RUNS runs each, median; one core (taskset -c 0)"
echo
echo "| tool | wall s | CPU s | peak RSS MiB | packets/s (wall) |"
echo "|---|---:|---:|---:|---:|"
declare -A pps
for tool in nightshift tshark; do
  wall=$(awk '{ print $1 }' "$work/$tool.runs" | median)
  cpu=$(awk '{ print $2 }' "$work/$tool.runs" | median)
  rss=$(awk '{ print $3 }' "$work/$tool.runs" | median)
  pps[$tool]=$(awk -v n="$PACKETS" -v w="$wall" 'BEGIN { printf "%.0f", n / w }')
  label=$([ "$tool" = nightshift ] && echo "nightshift replay" || echo "tshark -r -q -z io,stat")
  printf '| %s | %.2f | %.2f | %.0f | %s |\n' "$label" "$wall" "$cpu" "$(awk -v r="$rss" 'BEGIN { print r / 1024 }')" "${pps[$tool]}"
done
echo
awk -v a="${pps[nightshift]}" -v b="${pps[tshark]}" 'BEGIN { printf "ratio: nightshift replay reads %.1fx as many packets per second as tshark\n", a / b }'
echo
echo "replay totals:"
grep ' total ' "$work/nightshift.out"
echo "tshark io,stat (last lines):"
tail -n 6 "$work/tshark.out"

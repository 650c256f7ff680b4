#!/usr/bin/env bash
# Installs every Debian package that nightshift's build, tests and demo need.
# Idempotent: safe to run any number of times. Needs root (or sudo).
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config
  # libraries
  libpcap-dev libsnmp-dev prometheus-cpp-dev zlib1g-dev libisal-dev libmicrohttpd-dev libgnutls28-dev libcivetweb-dev libtomlplusplus-dev
  libgtest-dev libgmock-dev libsqlite3-dev libcurl4-openssl-dev libssl-dev nlohmann-json3-dev
  libbenchmark-dev
  # fleet mode: the NATS C client (JetStream, KV) and the server its tests start
  libnats-dev nats-server
  # fuzzing (scripts/fuzz.sh): clang with libFuzzer
  clang-14 libclang-rt-14-dev
  # test peers and tools: network namespaces, firewall rules, HTTP client
  iproute2 nftables iptables iputils-ping curl procps libcap2-bin snmpd snmp
  # status page test: a real browser; its crowd bench: wrk against the agent and nginx
  chromium wrk nginx-light
  # paging tests: a real Alertmanager
  prometheus-alertmanager prometheus
  # compatibility test (tests/e2e/compat_test.cpp): the exporters nightshift
  # stands in for, openssl for its certificates and socat for its TLS server
  prometheus-blackbox-exporter prometheus-snmp-exporter openssl socat
  # fault tests: delay packets through NFQUEUE
  libnetfilter-queue-dev
  # packaging: man pages rendered by scripts/md2man.py, the .deb checked by
  # lintian (test deploy.deb_lintian), shell completion checked by zsh -n
  python3 lintian man-db zsh
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"

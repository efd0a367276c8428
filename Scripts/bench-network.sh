#!/usr/bin/env bash
# Measures a local 5-validator network of release binaries on this machine: commit throughput
# and send-to-commit latency of signed transfers, sent over P2P by `node load`.
#   Scripts/bench-network.sh [RATE_LIGHT] [RATE_HEAVY] [SECONDS] [TIMEOUT_COMMIT_MS]
# Prints the figures; stops exactly the processes it started.
set -euo pipefail
cd "$(dirname "$0")/.."
light=${1:-50}
heavy=${2:-5000}
seconds=${3:-10}
commit_ms=${4:-0}
validators=5
base_port=${BENCH_BASE_PORT:-27656}

Scripts/install-deps.sh
swift build -c release --product node >/dev/null
source Scripts/lib-network.sh
work=$(mktemp -d /tmp/kc-bench-XXXXXX)
trap 'stop_all; rm -rf "$work"' EXIT
make_network "$work" "$validators" "$base_port" "$commit_ms" warning
peers=("${net_peers[@]}")
for ((i = 0; i < validators; i++)); do start_node "$i"; done
sleep 4
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $validators validators on 127.0.0.1, release build, timeout_commit_ms=$commit_ms"
echo "== light load: $light tx/s for $seconds s"
"$binary" load --genesis "$work/genesis.json" --rate "$light" --seconds "$seconds" "${peers[@]/#/--peer=}" | tee "$work/light.txt"
next=$(sed -n 's/^next nonces: //p' "$work/light.txt")
echo "== heavy load: $heavy tx/s for $seconds s"
"$binary" load --genesis "$work/genesis.json" --rate "$heavy" --seconds "$seconds" --nonces "$next" "${peers[@]/#/--peer=}"

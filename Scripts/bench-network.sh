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
binary="$(pwd)/.build/release/node"
work=$(mktemp -d /tmp/kc-bench-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

"$binary" devnet-genesis --validators "$validators" >"$work/genesis.json"
node_id() { grep -o '"node_id": "[0-9a-f]\{64\}"' "$work/genesis.json" | sed -n "$(($1 + 1))p" | cut -d'"' -f4; }
peers=()
for ((i = 0; i < validators; i++)); do peers+=("$(node_id "$i")@127.0.0.1:$((base_port + 10 * i))"); done
for ((i = 0; i < validators; i++)); do
  args=()
  for ((j = 0; j < validators; j++)); do [ "$j" -ne "$i" ] && args+=(--peer "${peers[$j]}"); done
  "$binary" init --home "$work/node$i" --genesis "$work/genesis.json" --devnet-index "$i" \
    --p2p-port $((base_port + 10 * i)) --rpc-port $((base_port + 1 + 10 * i)) "${args[@]}" >/dev/null
  sed -i "s/timeout_commit_ms = 1000/timeout_commit_ms = $commit_ms/; s/level = \"info\"/level = \"warning\"/" "$work/node$i/config.toml"
done
for ((i = 0; i < validators; i++)); do
  "$binary" start --home "$work/node$i" >"$work/node$i.log" 2>&1 &
  pids+=($!)
done
sleep 4
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $validators validators on 127.0.0.1, release build, timeout_commit_ms=$commit_ms"
echo "== light load: $light tx/s for $seconds s"
"$binary" load --genesis "$work/genesis.json" --rate "$light" --seconds "$seconds" "${peers[@]/#/--peer=}" | tee "$work/light.txt"
next=$(sed -n 's/^next nonces: //p' "$work/light.txt")
echo "== heavy load: $heavy tx/s for $seconds s"
"$binary" load --genesis "$work/genesis.json" --rate "$heavy" --seconds "$seconds" --nonces "$next" "${peers[@]/#/--peer=}"

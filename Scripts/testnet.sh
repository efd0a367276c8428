#!/usr/bin/env bash
# A real network on this machine: N node processes (release build, loopback) that know only one
# seed node, under a light load. Prints the time until every node has found its peers, heights
# per second, send-to-commit latency, RSS and CPU per node, and bytes sent per node per height.
#
# Usage: Scripts/testnet.sh N [VALIDATORS] [SECONDS]
#   N           nodes in all, the seed included (3 to 90)
#   VALIDATORS  how many of them validate (default: min(N - 1, 20); the devnet genesis has 20 at most)
#   SECONDS     length of the measured window under load (default 60)
# Environment: TESTNET_PORT_BASE (default 20000; node i uses BASE + 10 i and BASE + 10 i + 1),
# TESTNET_RATE (transactions per second of the load, default 20; 0: no load, idle nodes), TESTNET_COMMIT_MS
# (timeout_commit_ms, default 1000), TESTNET_LOG_LEVEL (default warning), KEEP=1 keeps the folder
# with the homes and logs.
# TESTNET_JOIN_HEIGHT=H (default 0: none): after the window, the network runs on to height H,
# then one more node joins by state sync (the full nodes take a snapshot every
# TESTNET_SNAPSHOT_INTERVAL heights, default 1000, and keep 2000 blocks); prints the height it
# restored, how long the restore and the catch-up to the tip took, and the chunks fetched.
# Stops only what it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:?usage: Scripts/testnet.sh N [VALIDATORS] [SECONDS]}
validators=${2:-$(( count - 1 < 20 ? count - 1 : 20 ))}
window=${3:-60}
base=${TESTNET_PORT_BASE:-20000}
rate=${TESTNET_RATE:-20}
commit_ms=${TESTNET_COMMIT_MS:-1000}
if (( count < 3 || count > 90 )); then echo "N must be 3 to 90" >&2; exit 2; fi
if (( validators < 1 || validators > 20 || validators > count - 1 )); then echo "VALIDATORS must be 1 to min(20, N - 1)" >&2; exit 2; fi
if (( base + 10 * count + 1 >= 32768 )); then echo "TESTNET_PORT_BASE + 10 N must stay below 32768 (the ephemeral range)" >&2; exit 2; fi

Scripts/install-deps.sh >/dev/null
swift build -c release --product node 2>&1 | tail -1
binary="$(pwd)/.build/release/node"
dir=$(mktemp -d /tmp/kc-testnet.XXXXXX)
declare -a pids=()
cleanup() {
  for pid in "${pids[@]}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do [ -n "$pid" ] && wait "$pid" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT

p2p_port() { echo $(( base + 10 * $1 )); }
rpc_port() { echo $(( base + 10 * $1 + 1 )); }
for ((i = 0; i < count; i++)); do
  for port in "$(p2p_port "$i")" "$(rpc_port "$i")"; do
    if ss -ltn "sport = :$port" | grep -q LISTEN; then echo "port $port is in use; set TESTNET_PORT_BASE" >&2; exit 1; fi
  done
done

# Node i < VALIDATORS validates (devnet keys of index i); the seed is node VALIDATORS (a full
# node in seed mode); the others are full nodes.
"$binary" devnet-genesis --validators "$validators" >"$dir/genesis.json"
seed=$validators
for ((i = 0; i < count; i++)); do
  "$binary" init --home "$dir/node$i" --genesis "$dir/genesis.json" --devnet-index "$i" \
    --p2p-port "$(p2p_port "$i")" --rpc-port "$(rpc_port "$i")" >/dev/null
  sed -i "s/timeout_commit_ms = 1000/timeout_commit_ms = $commit_ms/; s/level = \"info\"/level = \"${TESTNET_LOG_LEVEL:-warning}\"/" "$dir/node$i/config.toml"
done
sed -i 's/seed_mode = false/seed_mode = true/; s/level = "warning"/level = "info"/' "$dir/node$seed/config.toml"
join_height=${TESTNET_JOIN_HEIGHT:-0}
if (( join_height > 0 )); then
  for ((i = validators + 1; i < count; i++)); do
    sed -i "s/snapshot_interval = 0/snapshot_interval = ${TESTNET_SNAPSHOT_INTERVAL:-1000}/; s/retain_blocks = 0/retain_blocks = 2000/" "$dir/node$i/config.toml"
  done
  if (( count - validators - 1 == 0 )); then echo "TESTNET_JOIN_HEIGHT needs full nodes to serve snapshots (N > VALIDATORS + 1)" >&2; exit 2; fi
fi

start() {
  "$binary" start --home "$dir/node$1" >>"$dir/node$1.log" 2>&1 </dev/null &
  pids[$1]=$!
}
status_field() {  # node field: a number from GET /status (empty when the node does not answer)
  local reply
  reply=$(exec 3<>"/dev/tcp/127.0.0.1/$(rpc_port "$1")" && printf 'GET /status HTTP/1.0\r\nHost: x\r\nConnection: close\r\n\r\n' >&3 && cat <&3) 2>/dev/null || return 0
  echo "$reply" | grep -o "\"$2\":[0-9]*" | head -1 | cut -d: -f2
}
metric() {  # node name: a counter from GET /metrics
  local reply
  reply=$(exec 3<>"/dev/tcp/127.0.0.1/$(rpc_port "$1")" && printf 'GET /metrics HTTP/1.0\r\nHost: x\r\nConnection: close\r\n\r\n' >&3 && cat <&3) 2>/dev/null || return 0
  echo "$reply" | grep "^$2 " | head -1 | awk '{printf "%d", $2}'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

start "$seed"
seed_id=""
for _ in $(seq 1 100); do
  seed_id=$(grep -o 'node_id=[0-9a-f]\{64\}' "$dir/node$seed.log" | head -1 | cut -d= -f2 || true)
  [ -n "$seed_id" ] && break
  sleep 0.1
done
[ -n "$seed_id" ] || { echo "the seed did not start:"; tail -5 "$dir/node$seed.log"; exit 1; }
for ((i = 0; i < count; i++)); do
  [ "$i" = "$seed" ] && continue
  sed -i "s|^seeds = \[\]|seeds = [\"$seed_id@127.0.0.1:$(p2p_port "$seed")\"]|" "$dir/node$i/config.toml"
done

echo "starting $count nodes ($validators validators, 1 seed) in $dir"
started=$(date +%s.%N)
for ((i = 0; i < count; i++)); do [ "$i" = "$seed" ] || { start "$i"; sleep 0.05; }; done

# Discovery: every node but the seed connected to at least min(8, N - 2) peers.
wanted=$(( count - 2 < 8 ? count - 2 : 8 ))
discovered=""
for _ in $(seq 1 240); do
  short=0
  for ((i = 0; i < count; i++)); do
    [ "$i" = "$seed" ] && continue
    peers=$(status_field "$i" peers)
    if [ -z "$peers" ] || (( peers < wanted )); then short=$((short + 1)); fi
  done
  if (( short == 0 )); then discovered=$(date +%s.%N); break; fi
  sleep 0.5
done
if [ -z "$discovered" ]; then echo "after 120 s, $short nodes still had fewer than $wanted peers"; exit 1; fi
discovery_s=$(echo "$discovered - $started" | bc)

# The measured window, under load from one devnet user.
h0=$(status_field 0 height)
declare -a cpu0=() sent0=()
for ((i = 0; i < count; i++)); do cpu0[$i]=$(cpu_ticks "${pids[$i]}"); sent0[$i]=$(metric "$i" membria_p2p_sent_bytes_total); done
t0=$(date +%s.%N)
if (( rate > 0 )); then
  "$binary" load --genesis "$dir/genesis.json" --peer "$(grep -o '"node_id": "[0-9a-f]\{64\}"' "$dir/genesis.json" | head -1 | cut -d'"' -f4)@127.0.0.1:$(p2p_port 0)" \
    --rate "$rate" --seconds "$window" --users 1 >"$dir/load.txt" 2>&1 || true
else
  sleep "$window"
  echo "no load (TESTNET_RATE=0): empty blocks, one per timeout_commit_ms" >"$dir/load.txt"
fi
t1=$(date +%s.%N)
h1=$(status_field 0 height)
elapsed=$(echo "$t1 - $t0" | bc)
heights=$(( h1 - h0 ))
hz=$(getconf CLK_TCK)
rows=()
for ((i = 0; i < count; i++)); do
  pid=${pids[$i]}
  cpu=$(echo "scale=1; ($(cpu_ticks "$pid") - ${cpu0[$i]}) * 100 / $hz / $elapsed" | bc)
  sent=$(( $(metric "$i" membria_p2p_sent_bytes_total) - ${sent0[$i]} ))
  per_height=$(( heights > 0 ? sent / heights : 0 ))
  rows+=("$i $cpu $(( $(rss_kib "$pid") / 1024 )) $per_height")
done
summary() {  # column: min median max over the validators (role v) or the full nodes (role f)
  printf '%s\n' "${rows[@]}" | awk -v v="$validators" -v s="$seed" -v role="$1" -v col="$2" \
    '($1 < v && role == "v") || ($1 > v && role == "f") {print $col}' | sort -n | awk '{a[NR]=$1} END {if (NR) printf "%s / %s / %s", a[1], a[int((NR+1)/2)], a[NR]; else printf "-"}'
}
echo "nodes: $count ($validators validators, $(( count - validators - 1 )) full nodes, 1 seed); commit pause $commit_ms ms; machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "discovery: every node had >= $wanted peers after ${discovery_s} s"
echo "heights: $heights in ${elapsed} s = $(echo "scale=2; $heights / $elapsed" | bc) per second"
grep -E "committed throughput|send-to-commit latency|no load" "$dir/load.txt" || { echo "load:"; cat "$dir/load.txt"; }
echo "validators  CPU % (min / median / max): $(summary v 2); RSS MiB: $(summary v 3); bytes sent per height: $(summary v 4)"
if (( count - validators - 1 > 0 )); then
  echo "full nodes  CPU % (min / median / max): $(summary f 2); RSS MiB: $(summary f 3); bytes sent per height: $(summary f 4)"
fi

# State-sync join: one more node, knowing only the seed, at height >= TESTNET_JOIN_HEIGHT.
if (( join_height > 0 )); then
  joiner=$count
  for port in "$(p2p_port "$joiner")" "$(rpc_port "$joiner")"; do
    if ss -ltn "sport = :$port" | grep -q LISTEN; then echo "port $port is in use; set TESTNET_PORT_BASE" >&2; exit 1; fi
  done
  echo "running on to height $join_height before a node joins by state sync"
  for _ in $(seq 1 7200); do
    h=$(status_field 0 height); [ -n "$h" ] && (( h >= join_height )) && break
    sleep 0.5
  done
  # Wait for the next snapshot above the join height, so the joiner has one to restore.
  interval=${TESTNET_SNAPSHOT_INTERVAL:-1000}
  while true; do
    h=$(status_field 0 height); [ -n "$h" ] && (( h % interval > 10 && h % interval < interval / 2 )) && break
    sleep 0.5
  done
  "$binary" init --home "$dir/node$joiner" --genesis "$dir/genesis.json" --devnet-index "$joiner" \
    --p2p-port "$(p2p_port "$joiner")" --rpc-port "$(rpc_port "$joiner")" >/dev/null
  sed -i "s/timeout_commit_ms = 1000/timeout_commit_ms = $commit_ms/; s/^enable = false/enable = true/; s|^seeds = \[\]|seeds = [\"$seed_id@127.0.0.1:$(p2p_port "$seed")\"]|" "$dir/node$joiner/config.toml"
  joined=$(date +%s.%N)
  start "$joiner"
  restored_line=""
  for _ in $(seq 1 1200); do
    restored_line=$(grep -m1 "state restored by state sync" "$dir/node$joiner.log" || true)
    [ -n "$restored_line" ] && break
    sleep 0.1
  done
  [ -n "$restored_line" ] || { echo "the joining node restored nothing in 120 s:"; grep -v committed "$dir/node$joiner.log" | tail -20; exit 1; }
  restored_at=$(date +%s.%N)
  caught=""
  for _ in $(seq 1 1200); do
    mine=$(status_field "$joiner" height); tip=$(status_field 0 height)
    if [ -n "$mine" ] && [ -n "$tip" ] && (( mine + 2 >= tip )); then caught=$(date +%s.%N); break; fi
    sleep 0.1
  done
  field() { echo "$restored_line" | grep -o "$1=[0-9]*" | cut -d= -f2; }
  echo "state sync: joined at height $(field height) (tip $(status_field 0 height)); restored in $(echo "$restored_at - $joined" | bc) s ($(field chunks) chunks, $(field set_changes) set changes, $(field took_ms) ms of it in the node); at the tip $( [ -n "$caught" ] && echo "$(echo "$caught - $joined" | bc) s" || echo "not within 120 s") after start; RSS $(( $(rss_kib "${pids[$joiner]}") / 1024 )) MiB"
fi

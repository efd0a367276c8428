# Shared by the scripts that run a private network of release nodes on 127.0.0.1.
# Source it, then call: make_network DIR VALIDATORS BASE_PORT COMMIT_MS LOG_LEVEL; start_node I; stop_node I [SIGNAL].
# NET_USERS (default 4): funded devnet users in the genesis. NET_TASKSET: CPU list the nodes run on.
# NET_CONFIG_SED: a further sed expression applied to every node's config.toml (for example
# 's/state_cache_mb = 64/state_cache_mb = 256/').
# NET_BINARY: another build of the node to run (default .build/release/node), to compare two
# builds in one session.
# Node i: P2P BASE_PORT + 10 i, RPC BASE_PORT + 1 + 10 i. PIDs in $pids[i]; only those are ever signalled.

binary="${NET_BINARY:-$(pwd)/.build/release/node}"
declare -a pids=()

make_network() {
  net_dir=$1 net_validators=$2 net_base=$3
  local commit_ms=$4 level=$5
  "$binary" devnet-genesis --validators "$net_validators" --users "${NET_USERS:-4}" >"$net_dir/genesis.json"
  net_peers=()
  local i j
  for ((i = 0; i < net_validators; i++)); do
    net_peers+=("$(grep -o '"node_id": "[0-9a-f]\{64\}"' "$net_dir/genesis.json" | sed -n "$((i + 1))p" | cut -d'"' -f4)@127.0.0.1:$((net_base + 10 * i))")
  done
  for ((i = 0; i < net_validators; i++)); do
    local args=()
    for ((j = 0; j < net_validators; j++)); do [ "$j" -ne "$i" ] && args+=(--peer "${net_peers[$j]}"); done
    "$binary" init --home "$net_dir/node$i" --genesis "$net_dir/genesis.json" --devnet-index "$i" \
      --p2p-port $((net_base + 10 * i)) --rpc-port $((net_base + 1 + 10 * i)) "${args[@]}" >/dev/null
    sed -i "s/timeout_commit_ms = 1000/timeout_commit_ms = $commit_ms/; s/level = \"info\"/level = \"$level\"/" "$net_dir/node$i/config.toml"
    if [ -n "${NET_CONFIG_SED:-}" ]; then sed -i "$NET_CONFIG_SED" "$net_dir/node$i/config.toml"; fi
  done
}

rpc_url() { echo "http://127.0.0.1:$((net_base + 1 + 10 * $1))"; }

start_node() {
  if [ -n "${NET_TASKSET:-}" ]; then
    taskset -c "$NET_TASKSET" "$binary" start --home "$net_dir/node$1" >>"$net_dir/node$1.log" 2>&1 &
  else
    "$binary" start --home "$net_dir/node$1" >>"$net_dir/node$1.log" 2>&1 &
  fi
  pids[$1]=$!
}

stop_node() {
  local pid=${pids[$1]:-}
  [ -n "$pid" ] || return 0
  kill "-${2:-TERM}" "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pids[$1]=""
}

stop_all() {
  local i
  for i in "${!pids[@]}"; do stop_node "$i"; done
}

#!/usr/bin/env bash
# The local 5-validator devnet on 127.0.0.1, from Genesis/devnet.json and the public devnet keys.
#   Scripts/devnet.sh [up]     install what is missing, build, create the homes, start all, wait for height 3
#   Scripts/devnet.sh down     stop every node this script started (by PID file)
#   Scripts/devnet.sh stop N | start N    stop or start one node (fault drills)
#   Scripts/devnet.sh status   whether each node runs, and its height
#   Scripts/devnet.sh logs N   follow node N's log
#   Scripts/devnet.sh reset    stop everything and delete .devnet/
# Node i listens for peers on 26656 + 10 i and serves its RPC on 26657 + 10 i; the dev content
# server (an Arweave stand-in) answers on 1984. Homes, logs and PID files are in .devnet/.
set -euo pipefail
cd "$(dirname "$0")/.."

root=$(pwd)
devnet_dir="$root/.devnet"
validators=5
binary="$root/.build/release/node"
content_port=1984

build() {
  Scripts/install-deps.sh
  swift build -c release --product node
}

node_id() {
  grep -o '"node_id": "[0-9a-f]\{64\}"' "$root/Genesis/devnet.json" | sed -n "$(($1 + 1))p" | cut -d'"' -f4
}

peers_for() {
  local self=$1 list=()
  for ((j = 0; j < validators; j++)); do
    [ "$j" -eq "$self" ] && continue
    list+=("--peer" "$(node_id "$j")@127.0.0.1:$((26656 + 10 * j))")
  done
  printf '%s\n' "${list[@]}"
}

check_index() {
  [[ "${1:-}" =~ ^[0-9]+$ ]] && [ "$1" -lt "$validators" ] || { echo "node index must be 0..$((validators - 1))" >&2; exit 2; }
}

running() {
  local pidfile="$devnet_dir/$1.pid"
  [[ "$1" =~ ^[0-9]+$ ]] && pidfile="$devnet_dir/node$1.pid"
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

start_content() {
  mkdir -p "$devnet_dir/content"
  if running content; then return; fi
  nohup "$binary" arweave-dev-server --dir "$devnet_dir/content" --port "$content_port" >>"$devnet_dir/content.log" 2>&1 &
  echo $! >"$devnet_dir/content.pid"
  echo "content server: started (pid $!, http://127.0.0.1:$content_port, files in .devnet/content)"
}

stop_content() {
  if running content; then kill "$(cat "$devnet_dir/content.pid")"; echo "content server: stopped"; fi
  rm -f "$devnet_dir/content.pid"
}

create() {
  mkdir -p "$devnet_dir"
  for ((i = 0; i < validators; i++)); do
    home="$devnet_dir/node$i"
    [ -f "$home/config.toml" ] && continue
    mapfile -t peer_args < <(peers_for "$i")
    "$binary" init --home "$home" --genesis Genesis/devnet.json --devnet-index "$i" --moniker "devnet-$i" \
      --p2p-port $((26656 + 10 * i)) --rpc-port $((26657 + 10 * i)) "${peer_args[@]}" >/dev/null
    # Every devnet gateway attests by itself, fetching payloads from the dev content server.
    sed -i "s|^mode = \"off\"|mode = \"fetch\"|; s|^gateway = \"https://arweave.net\"|gateway = \"http://127.0.0.1:$content_port\"|" "$home/config.toml"
    echo "node$i: created $home"
  done
}

start_node() {
  local i=$1
  if running "$i"; then echo "node$i: already running (pid $(cat "$devnet_dir/node$i.pid"))"; return; fi
  nohup "$binary" start --home "$devnet_dir/node$i" >>"$devnet_dir/node$i.log" 2>&1 &
  echo $! >"$devnet_dir/node$i.pid"
  echo "node$i: started (pid $!, log .devnet/node$i.log)"
}

stop_node() {
  local i=$1 pidfile="$devnet_dir/node$1.pid"
  if running "$i"; then
    local pid
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    echo "node$i: stopped"
  fi
  rm -f "$pidfile"
}

height_of() {
  local log="$devnet_dir/node$1.log"
  [ -f "$log" ] || { echo 0; return; }
  local h
  h=$(grep -o ' info committed height=[0-9]*' "$log" | tail -n 1 | sed 's/.*height=//')
  echo "${h:-0}"
}

up() {
  build
  create
  start_content
  for ((i = 0; i < validators; i++)); do start_node "$i"; done
  echo "waiting for every node to reach height 3..."
  for _ in $(seq 1 600); do
    local ready=1
    for ((i = 0; i < validators; i++)); do [ "$(height_of "$i")" -ge 3 ] || ready=0; done
    [ "$ready" -eq 1 ] && break
    sleep 0.1
  done
  status
  echo
  echo "The devnet runs. Node i answers RPC on http://127.0.0.1:26657 + 10 i (node0: http://127.0.0.1:26657)."
  echo "Try (docs/gateway-operators.md walks through the whole flow):"
  echo "  $binary status --node http://127.0.0.1:26657"
  echo "  id=\$(curl -s --data-binary @payload.json http://127.0.0.1:$content_port/tx)      # 'upload' a payload"
  echo "  $binary propose-event --home .devnet/node0 --ar-tx-id \$id --payload payload.json --kind answer --wait"
  echo "  $binary query events --home .devnet/node0 --status accepted"
  echo "  Scripts/devnet.sh status            # heights"
  echo "  Scripts/devnet.sh stop 4; Scripts/devnet.sh start 4   # a fault drill"
  echo "  Scripts/devnet.sh logs 0"
  echo "  Scripts/devnet.sh down"
}

status() {
  if [ ! -d "$devnet_dir" ]; then echo "no devnet: run Scripts/devnet.sh up"; return; fi
  for ((i = 0; i < validators; i++)); do
    local state="stopped"
    running "$i" && state="running (pid $(cat "$devnet_dir/node$i.pid"))"
    echo "node$i: $state, height $(height_of "$i"), P2P 127.0.0.1:$((26656 + 10 * i)), RPC http://127.0.0.1:$((26657 + 10 * i))"
  done
  if running content; then echo "content server: running, http://127.0.0.1:$content_port"; else echo "content server: stopped"; fi
}

case "${1:-up}" in
  up) up ;;
  down) for ((i = 0; i < validators; i++)); do stop_node "$i"; done; stop_content ;;
  start) check_index "${2:-}"; [ -x "$binary" ] || build; create; start_node "$2" ;;
  stop) check_index "${2:-}"; stop_node "$2" ;;
  status) status ;;
  logs) check_index "${2:-}"; tail -n 50 -f "$devnet_dir/node$2.log" ;;
  reset) for ((i = 0; i < validators; i++)); do stop_node "$i"; done; stop_content; rm -rf "$devnet_dir"; echo "removed $devnet_dir" ;;
  *) echo "usage: Scripts/devnet.sh [up|down|start N|stop N|status|logs N|reset]" >&2; exit 2 ;;
esac

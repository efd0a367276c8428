#!/usr/bin/env bash
# The local 5-validator devnet on 127.0.0.1, from Genesis/devnet.json and the public devnet keys.
#   Scripts/devnet.sh [up]     install what is missing, build, create the homes, check the ports are free,
#                              start all, wait until every node's /status reports height 3 (a node
#                              that dies is reported with its log, and the script fails)
#   Scripts/devnet.sh down     stop every node this script started (by PID file)
#   Scripts/devnet.sh stop N | start N    stop or start one node (fault drills)
#   Scripts/devnet.sh status   whether each node runs, and the height its /status reports
#   Scripts/devnet.sh logs N   follow node N's log
#   Scripts/devnet.sh reset    stop everything and delete .devnet/
# Node i listens for peers on 26656 + 10 i and serves its RPC on 26657 + 10 i; the dev content
# server (an Arweave stand-in) answers on 1984. Homes, logs and PID files are in .devnet/.
set -euo pipefail
cd "$(dirname "$0")/.."

root=$(pwd)
# For tests and second devnets: DEVNET_DIR, DEVNET_BINARY (used as is, not built),
# DEVNET_PORT_BASE (node i: P2P base + 10 i, RPC base + 1 + 10 i) and DEVNET_CONTENT_PORT.
devnet_dir="${DEVNET_DIR:-$root/.devnet}"
validators=5
binary="${DEVNET_BINARY:-$root/.build/release/node}"
port_base="${DEVNET_PORT_BASE:-26656}"
content_port="${DEVNET_CONTENT_PORT:-1984}"

build() {
  [ -n "${DEVNET_BINARY:-}" ] && return
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
    list+=("--peer" "$(node_id "$j")@127.0.0.1:$((port_base + 10 * j))")
  done
  printf '%s\n' "${list[@]}"
}

check_index() {
  [[ "${1:-}" =~ ^[0-9]+$ ]] && [ "$1" -lt "$validators" ] || { echo "node index must be 0..$((validators - 1))" >&2; exit 2; }
}

# Whether a PID is a live process (a zombie, dead but not yet reaped, is not).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

running() {
  local pidfile="$devnet_dir/$1.pid"
  [[ "$1" =~ ^[0-9]+$ ]] && pidfile="$devnet_dir/node$1.pid"
  [ -f "$pidfile" ] && alive "$(cat "$pidfile")"
}

# Starts a long-running process in the background, appending its output to a log, with none
# of this script's other descriptors: a caller that waits for the script's output or exit
# must not end up waiting for the nodes. Its PID is in $!.
spawn() {
  local log=$1
  shift
  (
    for fd in $(ls "/proc/$BASHPID/fd" 2>/dev/null); do
      if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec nohup "$@" </dev/null >>"$log" 2>&1
  ) &
}

start_content() {
  mkdir -p "$devnet_dir/content"
  if running content; then return; fi
  spawn "$devnet_dir/content.log" "$binary" arweave-dev-server --dir "$devnet_dir/content" --port "$content_port"
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
      --p2p-port $((port_base + 10 * i)) --rpc-port $((port_base + 1 + 10 * i)) "${peer_args[@]}" >/dev/null
    # Every devnet gateway attests by itself, fetching payloads from the dev content server.
    sed -i "s|^mode = \"off\"|mode = \"fetch\"|; s|^gateway = \"https://arweave.net\"|gateway = \"http://127.0.0.1:$content_port\"|" "$home/config.toml"
    echo "node$i: created $home"
  done
}

start_node() {
  local i=$1
  if running "$i"; then echo "node$i: already running (pid $(cat "$devnet_dir/node$i.pid"))"; return; fi
  spawn "$devnet_dir/node$i.log" "$binary" start --home "$devnet_dir/node$i"
  echo $! >"$devnet_dir/node$i.pid"
  echo "node$i: started (pid $!, log $devnet_dir/node$i.log)"
}

stop_node() {
  local i=$1 pidfile="$devnet_dir/node$1.pid"
  if running "$i"; then
    local pid
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then kill -9 "$pid"; fi
    echo "node$i: stopped"
  fi
  rm -f "$pidfile"
}

# GET a path of a local port with bash alone (no curl on a bare machine); prints the body.
http_get() {
  local port=$1 path=$2
  { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && printf 'GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3 && cat <&3" 2>/dev/null |
    sed '1,/^\r\{0,1\}$/d'; } || true
}

# The height node i reports on its live /status, or nothing when it does not answer.
height_of() {
  { http_get $((port_base + 1 + 10 * $1)) /status | grep -o '"height":[0-9]*' | head -n 1 | cut -d: -f2; } || true
}

# Whether something accepts connections on a local TCP port.
port_busy() {
  timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# What listens on a port: "name (pid N)" from ss, when the system can tell.
port_holder() {
  local line
  line=$(ss -Hltnp "sport = :$1" 2>/dev/null | head -n 1 || true)
  if [[ "$line" =~ users:\(\(\"([^\"]*)\",pid=([0-9]+) ]]; then
    echo "${BASH_REMATCH[1]} (pid ${BASH_REMATCH[2]})"
  else
    echo "another process (run: ss -ltnp 'sport = :$1')"
  fi
}

# Before anything starts: every port a node (or the content server) about to start needs is
# free, or the script names what holds it and stops.
check_ports() {
  local busy=0 i port
  for i in "$@"; do
    if [ "$i" = content ]; then
      running content && continue
      if port_busy "$content_port"; then
        echo "error: port $content_port (content server) is in use by $(port_holder "$content_port")" >&2; busy=1
      fi
      continue
    fi
    running "$i" && continue
    for port in $((port_base + 10 * i)) $((port_base + 1 + 10 * i)); do
      if port_busy "$port"; then
        echo "error: port $port (node$i $([ "$port" -eq $((port_base + 10 * i)) ] && echo P2P || echo RPC)) is in use by $(port_holder "$port")" >&2; busy=1
      fi
    done
  done
  if [ "$busy" -ne 0 ]; then
    echo "Stop what holds these ports (or a devnet started elsewhere: Scripts/devnet.sh down there), then try again." >&2
    exit 1
  fi
}

# Reports a node that is not running with the end of its log; returns 1 if any died.
report_dead() {
  local dead=0 i
  for i in "$@"; do
    if ! running "$i"; then
      echo "error: node$i is not running; the last lines of $devnet_dir/node$i.log:" >&2
      tail -n 15 "$devnet_dir/node$i.log" 2>/dev/null | sed 's/^/  /' >&2
      dead=1
    fi
  done
  return "$dead"
}

# Waits until each given node answers /status at height >= 3 (60 s at most); a node that
# dies meanwhile, or never gets there, is reported with its log, and the script fails.
wait_ready() {
  local i pending=("$@") deadline=$((SECONDS + 60))
  echo "waiting for node(s) ${pending[*]} to reach height 3 (read from each node's /status)..."
  while [ ${#pending[@]} -gt 0 ]; do
    report_dead "${pending[@]}" || exit 1
    local left=()
    for i in "${pending[@]}"; do
      local h
      h=$(height_of "$i")
      [ "${h:-0}" -ge 3 ] || left+=("$i")
    done
    pending=("${left[@]+"${left[@]}"}")
    [ ${#pending[@]} -eq 0 ] && break
    if [ "$SECONDS" -ge "$deadline" ]; then
      for i in "${pending[@]}"; do
        echo "error: node$i did not reach height 3 within 60 s (its /status: $(height_of "$i" || true)); the last lines of its log:" >&2
        tail -n 15 "$devnet_dir/node$i.log" 2>/dev/null | sed 's/^/  /' >&2
      done
      exit 1
    fi
    sleep 0.2
  done
}

up() {
  build
  create
  local all=()
  for ((i = 0; i < validators; i++)); do all+=("$i"); done
  check_ports content "${all[@]}"
  start_content
  for i in "${all[@]}"; do start_node "$i"; done
  wait_ready "${all[@]}"
  # A node that fails a moment after its first blocks (a port taken late) is caught here.
  sleep 1
  report_dead "${all[@]}" || exit 1
  status
  echo
  echo "The devnet runs. Node i answers RPC on http://127.0.0.1:$((port_base + 1)) + 10 i (node0: http://127.0.0.1:$((port_base + 1)))."
  echo "Try (docs/gateway-operators.md walks through the whole flow):"
  echo "  $binary status --node http://127.0.0.1:$((port_base + 1))"
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
    local state="stopped" h=""
    if running "$i"; then
      h=$(height_of "$i")
      state="running (pid $(cat "$devnet_dir/node$i.pid")), $([ -n "$h" ] && echo "height $h" || echo "RPC not answering")"
    fi
    echo "node$i: $state, P2P 127.0.0.1:$((port_base + 10 * i)), RPC http://127.0.0.1:$((port_base + 1 + 10 * i))"
  done
  if running content; then echo "content server: running, http://127.0.0.1:$content_port"; else echo "content server: stopped"; fi
}

case "${1:-up}" in
  up) up ;;
  down) for ((i = 0; i < validators; i++)); do stop_node "$i"; done; stop_content ;;
  start) check_index "${2:-}"; [ -x "$binary" ] || build; create; check_ports "$2"; start_node "$2"; wait_ready "$2"; sleep 1; report_dead "$2" || exit 1 ;;
  stop) check_index "${2:-}"; stop_node "$2" ;;
  status) status ;;
  logs) check_index "${2:-}"; tail -n 50 -f "$devnet_dir/node$2.log" ;;
  reset) for ((i = 0; i < validators; i++)); do stop_node "$i"; done; stop_content; rm -rf "$devnet_dir"; echo "removed $devnet_dir" ;;
  *) echo "usage: Scripts/devnet.sh [up|down|start N|stop N|status|logs N|reset]" >&2; exit 2 ;;
esac

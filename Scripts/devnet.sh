#!/usr/bin/env bash
# The local 5-validator devnet.
#
#   Scripts/devnet.sh [up]    install what is missing, build a release binary, create the five
#                             node homes under .devnet/ from Genesis/devnet.json
#   Scripts/devnet.sh status  list the node homes and their keys
#   Scripts/devnet.sh reset   delete .devnet/
#
# Starting the five validators needs P2P between them, which `node start` does not have yet
# (it runs one-validator chains only); until then `up` prepares the homes so they are ready.
set -euo pipefail
cd "$(dirname "$0")/.."

root=$(pwd)
devnet_dir="$root/.devnet"
validators=5
binary="$root/.build/release/node"

build() {
  Scripts/install-deps.sh
  swift build -c release --product node
}

peers_for() {
  local self=$1 list=() node_id
  for ((j = 0; j < validators; j++)); do
    [ "$j" -eq "$self" ] && continue
    node_id=$(grep -o '"node_id": "[0-9a-f]\{64\}"' "$root/Genesis/devnet.json" | sed -n "$((j + 1))p" | cut -d'"' -f4)
    list+=("--peer" "${node_id}@127.0.0.1:$((26656 + 10 * j))")
  done
  printf '%s\n' "${list[@]}"
}

up() {
  build
  mkdir -p "$devnet_dir"
  for ((i = 0; i < validators; i++)); do
    home="$devnet_dir/node$i"
    if [ -f "$home/config.toml" ]; then
      echo "node$i: $home exists, keeping it"
      continue
    fi
    mapfile -t peer_args < <(peers_for "$i")
    "$binary" init --home "$home" --genesis Genesis/devnet.json --devnet-index "$i" --moniker "devnet-$i" \
      --p2p-port $((26656 + 10 * i)) --rpc-port $((26657 + 10 * i)) "${peer_args[@]}" >/dev/null
    echo "node$i: created $home (P2P 127.0.0.1:$((26656 + 10 * i)), RPC 127.0.0.1:$((26657 + 10 * i)))"
  done
  echo
  echo "Devnet homes are ready under .devnet/. Inspect one with:"
  echo "  $binary keys show --home .devnet/node0"
}

status() {
  if [ ! -d "$devnet_dir" ]; then
    echo "no devnet: run Scripts/devnet.sh up"
    exit 0
  fi
  for ((i = 0; i < validators; i++)); do
    home="$devnet_dir/node$i"
    [ -f "$home/config.toml" ] || { echo "node$i: missing"; continue; }
    echo "node$i: $home"
    "$binary" keys show --home "$home" | sed 's/^/  /'
  done
}

case "${1:-up}" in
  up) up ;;
  status) status ;;
  reset) rm -rf "$devnet_dir"; echo "removed $devnet_dir" ;;
  *) echo "usage: Scripts/devnet.sh [up|status|reset]" >&2; exit 2 ;;
esac

#!/bin/sh
# Creates the node home on first start (devnet keys of validator $NODE_INDEX, peers from
# $PEERS), then runs the node. Inside a container the node listens on all interfaces; the
# compose file publishes the RPC on the host's 127.0.0.1 only.
set -eu
home=${MEMBRIA_HOME:-/var/lib/membria/home}
index=${NODE_INDEX:?set NODE_INDEX to the devnet validator index}
genesis=${GENESIS:-/etc/membria/genesis/devnet.json}
p2p=${P2P_PORT:-26656}
rpc=${RPC_PORT:-26657}
if [ ! -f "$home/config.toml" ]; then
  set --
  for peer in ${PEERS:-}; do set -- "$@" --peer "$peer"; done
  membria-node init --home "$home" --genesis "$genesis" --devnet-index "$index" --moniker "devnet-$index" \
    --p2p-port "$p2p" --rpc-port "$rpc" "$@"
  sed -i "s|listen_address = \"127.0.0.1:|listen_address = \"0.0.0.0:|" "$home/config.toml"
  if [ -n "${ARWEAVE_GATEWAY:-}" ]; then
    sed -i "s|^mode = \"off\"|mode = \"fetch\"|; s|^gateway = \"https://arweave.net\"|gateway = \"$ARWEAVE_GATEWAY\"|" "$home/config.toml"
  fi
fi
exec membria-node start --home "$home"

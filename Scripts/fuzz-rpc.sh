#!/usr/bin/env bash
# Fuzzes the RPC with schemathesis (from PyPI) against a one-validator node started here:
# every generated request must get an answer that is not a server error, and match
# specs/openapi.yaml. Prints schemathesis' summary; stops the node it started (by PID).
#   Scripts/fuzz-rpc.sh [MAX_EXAMPLES]
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${1:-50}
Scripts/install-deps.sh
command -v schemathesis >/dev/null 2>&1 || python3 -m pip install -q schemathesis
swift build --product node >/dev/null
binary="$(pwd)/.build/debug/node"
home=$(mktemp -d /tmp/kc-fuzz-XXXXXX)
port=${FUZZ_RPC_PORT:-39757}
"$binary" init --home "$home/node" --p2p-port $((port - 1)) --rpc-port "$port" >/dev/null
sed -i 's/rate_limit_per_second = 200/rate_limit_per_second = 100000/; s/level = "info"/level = "warning"/' "$home/node/config.toml"
"$binary" start --home "$home/node" >"$home/node.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$home"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
echo "== not_a_server_error, $examples examples per operation"
schemathesis run specs/openapi.yaml --url "http://127.0.0.1:$port" --checks not_a_server_error --max-examples "$examples"
# Every other check too, but two: positive_data_acceptance (ST202) expects any schema-valid
# request to succeed, which a strict API cannot honour where validity depends on a signature,
# on chain state or on an id existing (a hex string that is not a signed transaction is refused
# with 400, by design); and /subscribe, a WebSocket that a plain GET reaches only to be told
# 426 Upgrade Required.
echo "== all checks but positive_data_acceptance, /subscribe excluded"
schemathesis run specs/openapi.yaml --url "http://127.0.0.1:$port" --max-examples "$examples" \
    --exclude-checks positive_data_acceptance --exclude-path /subscribe

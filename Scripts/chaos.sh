#!/usr/bin/env bash
# Fault drill on a private 5-validator network of release nodes: for DURATION seconds it
# keeps transfers flowing (each sent with --wait, so the node acknowledges its commit) and
# injects faults: SIGKILL of one node, SIGTERM of one node, two nodes stopped at once. Each
# is followed by a restart. At the end it checks, over the HTTP API, that every node has the
# same block id and state root at every common height and every acknowledged transaction.
#   Scripts/chaos.sh [DURATION_SECONDS]      (default 120)
# Prints what it injected and what it checked; exits non-zero on any violation. It only ever
# signals the processes it started.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-120}
validators=5
base_port=${CHAOS_BASE_PORT:-28656}

Scripts/install-deps.sh
swift build -c release --product node >/dev/null
source Scripts/lib-network.sh
work=$(mktemp -d /tmp/kc-chaos-XXXXXX)
loader=""
cleanup() {
  [ -n "$loader" ] && kill "$loader" 2>/dev/null || true
  stop_all
  rm -rf "$work"
}
trap cleanup EXIT
make_network "$work" "$validators" "$base_port" 200 info
for ((i = 0; i < validators; i++)); do start_node "$i"; done
height() { curl -sf "$(rpc_url "$1")/status" | grep -o '"height":[0-9]*' | cut -d: -f2 || echo 0; }
# The highest height among the nodes not named (0 if none answers).
top_height() {
  local i top=0 h
  for ((i = 0; i < validators; i++)); do
    [[ " $* " == *" $i "* ]] && continue
    h=$(height "$i"); [ "${h:-0}" -gt "$top" ] && top=$h
  done
  echo "$top"
}
for _ in $(seq 1 300); do [ "$(height 0)" -ge 2 ] && break; sleep 0.1; done
echo "network up: $validators validators, RPC $(rpc_url 0) … $(rpc_url 4)"

# Transfers from validator 0's account, acknowledged one by one, sent to any live node.
(
  to=$(grep -o '"address": "[0-9a-f]\{64\}"' "$work/genesis.json" | sed -n 2p | cut -d'"' -f4)
  while true; do
    for i in 0 1 2 3 4; do
      out=$("$binary" transfer --home "$work/node0" --node "$(rpc_url $i)" --to "$to" --amount 1 --wait --timeout 10 --output json 2>/dev/null) || continue
      echo "$out" | grep -o '"hash": "[0-9a-f]\{64\}"' | head -1 | cut -d'"' -f4 >>"$work/acknowledged"
      break
    done
  done
) &
loader=$!

injected=0
halt_violations=0
began=$SECONDS
end=$((SECONDS + duration))
while [ $SECONDS -lt $end ]; do
  sleep 5
  victim=$((RANDOM % validators))
  case $((RANDOM % 3)) in
    0) echo "[$((SECONDS - began)) s] SIGKILL node$victim at height $(height 0); restart in 3 s"
       stop_node "$victim" KILL; sleep 3; start_node "$victim" ;;
    1) echo "[$((SECONDS - began)) s] SIGTERM node$victim at height $(height 0); restart in 2 s"
       stop_node "$victim" TERM; sleep 2; start_node "$victim" ;;
    2) other=$(((victim + 1 + RANDOM % (validators - 1)) % validators))
       for ((w = 0; w < validators; w++)); do [ "$w" -ne "$victim" ] && [ "$w" -ne "$other" ] && break; done
       echo "[$((SECONDS - began)) s] stop node$victim and node$other for 5 s (the other three hold 60% of the power: no quorum)"
       stop_node "$victim" TERM; stop_node "$other" TERM
       # The highest of the three running nodes: one that restarted just before may still be
       # syncing heights the others committed with a quorum.
       sleep 1; before=$(top_height "$victim" "$other"); sleep 4; after=$(top_height "$victim" "$other")
       start_node "$victim"; start_node "$other"
       if [ "$after" -gt $((before + 1)) ]; then
         echo "VIOLATION: the running nodes went from $before to $after without a quorum"; halt_violations=$((halt_violations + 1))
       else
         echo "         halted at height $after as it must; restarted both"
       fi ;;
  esac
  injected=$((injected + 1))
done
kill "$loader" 2>/dev/null || true; wait "$loader" 2>/dev/null || true; loader=""

# Let everyone converge (a node restarted by the last fault may still be starting), then compare.
target=0
for _ in $(seq 1 300); do target=$(top_height); [ "$target" -gt 0 ] && break; sleep 0.1; done
for _ in $(seq 1 600); do
  ok=1
  for ((i = 0; i < validators; i++)); do [ "$(height $i)" -ge "$target" ] || ok=0; done
  [ $ok -eq 1 ] && break
  sleep 0.1
done
violations=$halt_violations
if [ "$target" -lt 2 ]; then echo "VIOLATION: no node reports a height to compare"; violations=$((violations + 1)); fi
for ((i = 0; i < validators; i++)); do
  [ "$(height $i)" -ge "$target" ] || { echo "VIOLATION: node$i did not reach height $target within 60 s"; violations=$((violations + 1)); }
done
for ((h = 1; h <= target; h++)); do
  first=""
  for ((i = 0; i < validators; i++)); do
    pair=$(curl -sf "$(rpc_url $i)/blocks/$h" | grep -o '"id":"[0-9a-f]*"\|"state_root":"[0-9a-f]*"' | head -2 | tr '\n' ' ')
    [ -z "$first" ] && first=$pair
    if [ "$pair" != "$first" ]; then echo "VIOLATION: node$i differs at height $h"; violations=$((violations + 1)); fi
  done
done
acknowledged=0
if [ -f "$work/acknowledged" ]; then
  while read -r hash; do
    acknowledged=$((acknowledged + 1))
    for ((i = 0; i < validators; i++)); do
      curl -sf "$(rpc_url $i)/txs/$hash" >/dev/null || { echo "VIOLATION: node$i lacks acknowledged transaction $hash"; violations=$((violations + 1)); }
    done
  done <"$work/acknowledged"
fi
echo "injected $injected fault(s) in $duration s; checked heights 1..$target on $validators nodes (block id and state root) and $acknowledged acknowledged transaction(s) on every node: $violations violation(s)"
[ "$violations" -eq 0 ]
